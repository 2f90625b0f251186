package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"mailfs/fs"
	"mailfs/internal/mailgen"
	"mailfs/internal/memserver"
	"mailfs/remote/imap"
)

func cmdDemo(args []string, stdout, stderr io.Writer) error {
	fl := flag.NewFlagSet("demo", flag.ContinueOnError)
	verbose := fl.Bool("v", false, "log debug messages")
	rest, err := parseFlags(fl, args, 0, 1, stderr)
	if err != nil {
		return err
	}
	mountpoint := "mnt"
	if len(rest) == 1 {
		mountpoint = rest[0]
	}
	log := newLogger(stderr, *verbose)
	if err := os.MkdirAll(mountpoint, 0o755); err != nil {
		return fail(exitMount, "demo: create mount point: %v", err)
	}
	if err := checkMountpoint(mountpoint); err != nil {
		return err
	}

	var msgs []memserver.Message
	for _, m := range mailgen.Demo() {
		msgs = append(msgs, memserver.Message{Folder: m.Folder, Date: m.Date, Flags: m.Flags, Raw: m.Raw})
	}
	srv, err := memserver.Start(msgs)
	if err != nil {
		return fail(exitFailure, "demo: %v", err)
	}
	defer srv.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	acct, err := imap.Dial(ctx, imap.Config{
		Addr:     srv.Addr,
		TLS:      imap.TLSNone,
		Username: srv.Username,
		Password: srv.Password,
		Logger:   log,
	})
	if err != nil {
		return remoteError("demo", err)
	}
	abs, _ := filepath.Abs(mountpoint)
	count, size := len(msgs), int64(0)
	for _, m := range msgs {
		size += int64(len(m.Raw))
	}
	return serve(acct, "demo", mountpoint, fs.Options{PollInterval: 30 * time.Second, Logger: log}, stdout, stderr, log, func() {
		fmt.Fprintf(stdout, `
mailfs demo: %d messages (%.1f MB) from an in-process IMAP server on %s,
mounted at %s. Try, in another terminal:

  ls -l %[4]s/INBOX | head
  ls %[4]s %[4]s/Lists
  cat %[4]s/INBOX/1.eml
  grep -rl invoice %[4]s
  getfattr -d %[4]s/INBOX/1.eml

Press Ctrl-C here to unmount.
`, count, float64(size)/1e6, srv.Addr, abs)
	})
}
