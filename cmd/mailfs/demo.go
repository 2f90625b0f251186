package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"mailfs/cache"
	"mailfs/fs"
	"mailfs/internal/mailgen"
	"mailfs/internal/memserver"
	"mailfs/internal/pop3server"
	"mailfs/remote/imap"
	"mailfs/remote/pop3"
)

// cmdDemo serves the sample mailbox from two embedded servers, IMAP and
// POP3, and mounts both: MOUNTPOINT/imap and MOUNTPOINT/pop3.
func cmdDemo(args []string, stdout, stderr io.Writer) error {
	fl := flag.NewFlagSet("demo", flag.ContinueOnError)
	verbose := fl.Bool("v", false, "log debug messages")
	rest, err := parseFlags(fl, args, 0, 1, stderr)
	if err != nil {
		return err
	}
	base := "mnt"
	if len(rest) == 1 {
		base = rest[0]
	}
	log := newLogger(stderr, *verbose)
	imapDir, popDir := filepath.Join(base, "imap"), filepath.Join(base, "pop3")
	for _, dir := range []string{imapDir, popDir} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fail(exitMount, "demo: create mount point: %v", err)
		}
		if err := checkMountpoint(dir); err != nil {
			return err
		}
	}

	demo := mailgen.Demo()
	var msgs []memserver.Message
	var pops []pop3server.Message
	var size int64
	for i, m := range demo {
		msgs = append(msgs, memserver.Message{Folder: m.Folder, Date: m.Date, Flags: m.Flags, Raw: m.Raw})
		size += int64(len(m.Raw))
		if m.Folder == "INBOX" {
			// UIDLs as servers make them; one with a '/', shown as %2F.
			uidl := fmt.Sprintf("%08x.demo", i+1)
			if i == 2 {
				uidl = "2026/11/demo-3"
			}
			pops = append(pops, pop3server.Message{UIDL: uidl, Raw: m.Raw})
		}
	}
	isrv, err := memserver.Start(msgs)
	if err != nil {
		return fail(exitFailure, "demo: %v", err)
	}
	defer isrv.Close()
	psrv, err := pop3server.Start(pops, pop3server.Options{Username: "demo", Password: "demo"})
	if err != nil {
		return fail(exitFailure, "demo: %v", err)
	}
	defer psrv.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	iacct, err := imap.Dial(ctx, imap.Config{Addr: isrv.Addr, TLS: imap.TLSNone, Username: isrv.Username, Password: isrv.Password, Logger: log})
	if err != nil {
		return remoteError("demo-imap", err)
	}
	defer iacct.Close()
	pacct, err := pop3.Dial(ctx, pop3.Config{Addr: psrv.Addr, TLS: "none", Username: "demo", Password: "demo", Logger: log})
	if err != nil {
		return remoteError("demo-pop3", err)
	}
	defer pacct.Close()
	// The POP3 account keeps its messages in a cache, as a real mount
	// does; the demo's lives in memory and is gone at exit.
	store, err := cache.Open(cache.Options{InMemory: true, Account: "demo-pop3", Protocol: "pop3", Logger: log})
	if err != nil {
		return fail(exitFailure, "demo: %v", err)
	}
	defer store.Close()
	popped := &opened{name: "demo-pop3", cfg: nil, inner: pacct, store: store, cached: store.Wrap(pacct)}

	abs, _ := filepath.Abs(base)
	opts := fs.Options{PollInterval: 30 * time.Second, Logger: log}
	return serveAll([]mountSpec{
		{acct: iacct, name: "demo-imap", mountpoint: imapDir, opts: opts},
		{acct: popped.cached, name: "demo-pop3", mountpoint: popDir, opts: opts, ready: func(ctx context.Context) {
			go downloadAll(ctx, popped, false, log)
		}},
	}, log, func() {
		fmt.Fprintf(stdout, `
mailfs demo: %d messages (%.1f MB) from an in-process IMAP server on %s,
mounted at %s/imap; the %d INBOX messages also from a POP3 server on %s,
mounted at %[4]s/pop3 (downloaded into a cache in the background).
Try, in another terminal:

  ls -l %[4]s/imap/INBOX | head
  ls %[4]s/imap %[4]s/imap/Lists
  cat %[4]s/imap/INBOX/1.eml
  grep -rl invoice %[4]s/imap
  getfattr -d %[4]s/imap/INBOX/1.eml
  ls -l %[4]s/pop3/INBOX | head

Press Ctrl-C here to unmount.
`, len(msgs), float64(size)/1e6, isrv.Addr, abs, len(pops), psrv.Addr)
	})
}
