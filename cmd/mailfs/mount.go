package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"mailfs/fs"
	"mailfs/internal/syncer"
	"mailfs/remote"
)

type mountOptions struct {
	config   string
	readOnly bool
	offline  bool
	verbose  bool
}

func cmdMount(args []string, stdout, stderr io.Writer) error {
	var o mountOptions
	fl := flag.NewFlagSet("mount", flag.ContinueOnError)
	fl.StringVar(&o.config, "config", "", "configuration file (default $XDG_CONFIG_HOME/mailfs/config.toml)")
	fl.BoolVar(&o.readOnly, "read-only", false, "refuse every change with EROFS")
	fl.BoolVar(&o.offline, "offline", false, "no network: serve what the cache holds")
	fl.BoolVar(&o.verbose, "v", false, "log debug messages")
	rest, err := parseFlags(fl, args, 2, 2, stderr)
	if err != nil {
		return err
	}
	name, mountpoint := rest[0], rest[1]
	log := newLogger(stderr, o.verbose)
	if err := checkMountpoint(mountpoint); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	acct, err := openAccount(ctx, o.config, name, o.offline, log)
	stop()
	if err != nil {
		return err
	}
	defer acct.Close()
	// Offline, nothing can be sent: every change is refused like on a
	// read-only mount.
	opts := fs.Options{PollInterval: acct.cfg.PollInterval, Logger: log, ReadOnly: o.readOnly || o.offline, SpoolDir: acct.spool}
	return serve(acct.cached, name, mountpoint, opts, stdout, stderr, log, func(ctx context.Context) {
		if acct.cfg.Protocol == "pop3" && acct.inner != nil {
			go downloadAll(ctx, acct, acct.cfg.DeleteAfterDownload, log)
		}
	})
}

// downloadAll fetches every POP3 message not yet cached, in the background
// of a mount, so that the whole maildrop is readable offline soon after
// mounting; with delete_after_download, each batch is deleted from the
// server once durably cached.
func downloadAll(ctx context.Context, acct *opened, deleteAfter bool, log *slog.Logger) {
	opts := syncer.Options{Logger: log, Workers: 1}
	if deleteAfter {
		if d, ok := acct.inner.(remote.Deleter); ok {
			opts.DeleteFromServer = d.Delete
		}
	}
	res, err := syncer.Run(ctx, acct.cached, opts)
	if err != nil && ctx.Err() == nil {
		log.Warn("background download stopped", "account", acct.name, "err", err)
		return
	}
	if res.Messages > 0 {
		log.Info("downloaded for offline use", "account", acct.name, "messages", res.Messages, "bytes", res.Bytes,
			"deleted_from_server", res.Deleted, "elapsed", res.Elapsed.Round(time.Millisecond))
	}
}

// remoteError turns a connection failure into a one-line message and the
// matching exit code.
func remoteError(account string, err error) error {
	switch {
	case errors.Is(err, remote.ErrAuth):
		return fail(exitAuth, "account %q: %v (check username and password_cmd/password_env)", account, err)
	case errors.Is(err, remote.ErrTLS):
		return fail(exitNetwork, "account %q: %v (check tls, ca_file, or the server's certificate)", account, err)
	case errors.Is(err, remote.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		return fail(exitNetwork, "account %q: %v (check host and port, and that the server is reachable)", account, err)
	}
	return fail(exitFailure, "account %q: %v", account, err)
}

// checkMountpoint gives one-line errors for the usual mistakes, before any
// mount is attempted.
func checkMountpoint(dir string) error {
	st, err := os.Stat(dir)
	if errors.Is(err, os.ErrNotExist) {
		return fail(exitMount, "mount point %s does not exist: create it with mkdir -p %s", dir, dir)
	}
	if errors.Is(err, syscall.ENOTCONN) {
		return fail(exitMount, "mount point %s is the dead mount of a mailfs that stopped: run mailfs umount %s", dir, dir)
	}
	if err != nil {
		return fail(exitMount, "mount point %s: %v", dir, err)
	}
	if !st.IsDir() {
		return fail(exitMount, "mount point %s is not a directory", dir)
	}
	if mounted, _ := isMountpoint(dir); mounted {
		return fail(exitMount, "mount point %s is busy: something is mounted there already (mailfs umount %s)", dir, dir)
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		return fail(exitMount, "/dev/fuse is missing: load the fuse module (modprobe fuse) or install fuse3")
	}
	if os.Geteuid() != 0 {
		if _, err := exec.LookPath("fusermount3"); err != nil {
			if _, err2 := exec.LookPath("fusermount"); err2 != nil {
				return fail(exitMount, "fusermount3 not found: install fuse3 (apt-get install fuse3) to mount as an ordinary user")
			}
		}
		if f, err := os.OpenFile("/dev/fuse", os.O_RDWR, 0); err != nil {
			return fail(exitMount, "cannot open /dev/fuse (%v): make it usable by your user (it is mode 0666 on most desktops)", errors.Unwrap(err))
		} else {
			f.Close()
		}
	}
	return nil
}

// isMountpoint reports whether dir is listed as a mount point in
// /proc/self/mountinfo.
func isMountpoint(dir string) (bool, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return false, err
	}
	if r, err := filepath.EvalSymlinks(abs); err == nil {
		abs = r
	}
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && unescapeMountinfo(f[4]) == abs {
			return true, nil
		}
	}
	return false, nil
}

func unescapeMountinfo(s string) string {
	r := strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`)
	return r.Replace(s)
}

// mountSpec is one filesystem to mount.
type mountSpec struct {
	acct       remote.Account
	name       string
	mountpoint string
	opts       fs.Options
	// ready, if set, runs once the mount is up, with a context that ends
	// at unmount.
	ready func(ctx context.Context)
}

// serve mounts acct at mountpoint and runs until it is unmounted or
// interrupted. The caller closes acct.
func serve(acct remote.Account, name, mountpoint string, opts fs.Options, stdout, stderr io.Writer, log *slog.Logger, ready func(ctx context.Context)) error {
	return serveAll([]mountSpec{{acct: acct, name: name, mountpoint: mountpoint, opts: opts, ready: ready}}, log, nil)
}

// serveAll mounts every spec and runs until all are unmounted; Ctrl-C
// unmounts them cleanly, a second Ctrl-C while one is busy detaches it
// lazily. after, if set, runs once all are mounted.
func serveAll(specs []mountSpec, log *slog.Logger, after func()) error {
	type mounted struct {
		spec   mountSpec
		server *fuse.Server
	}
	var ms []mounted
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	unmountAll := func() {
		for _, m := range ms {
			m.server.Unmount()
			m.server.Wait()
		}
	}
	for _, spec := range specs {
		filesystem := fs.New(spec.acct, spec.opts)
		mopts := filesystem.MountOptions(spec.name)
		mopts.Logger = slog.NewLogLogger(log.Handler(), slog.LevelDebug)
		mopts.MountOptions.Logger = mopts.Logger
		server, err := fusefs.Mount(spec.mountpoint, filesystem.Root(), mopts)
		if err != nil {
			filesystem.Close()
			unmountAll()
			return mountError(spec.mountpoint, err)
		}
		defer filesystem.Close()
		ms = append(ms, mounted{spec: spec, server: server})
		log.Info("mounted", "account", spec.name, "mountpoint", spec.mountpoint)
		if spec.ready != nil {
			spec.ready(ctx)
		}
	}
	if after != nil {
		after()
	}

	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	done := make(chan int, len(ms))
	for i, m := range ms {
		go func() {
			m.server.Wait()
			done <- i
		}()
	}
	left := len(ms)
	tries := 0
	for left > 0 {
		select {
		case i := <-done:
			left--
			log.Info("unmounted", "mountpoint", ms[i].spec.mountpoint)
		case <-sigs:
			tries++
			cancel()
			for _, m := range ms {
				if !isMounted(m.spec.mountpoint) {
					continue
				}
				if tries > 1 {
					log.Warn("detaching the busy mount lazily", "mountpoint", m.spec.mountpoint)
					lazyUnmount(m.spec.mountpoint)
					continue
				}
				if err := m.server.Unmount(); err != nil {
					log.Warn("cannot unmount: the mount is busy (a shell or program is inside it); leave it and press Ctrl-C again to detach it lazily",
						"mountpoint", m.spec.mountpoint, "err", err)
				}
			}
		}
	}
	return nil
}

func isMounted(dir string) bool {
	ok, _ := isMountpoint(dir)
	return ok
}

func lazyUnmount(mountpoint string) {
	if os.Geteuid() == 0 {
		if err := syscall.Unmount(mountpoint, syscall.MNT_DETACH); err == nil {
			return
		}
	}
	for _, bin := range []string{"fusermount3", "fusermount"} {
		if exec.Command(bin, "-u", "-z", mountpoint).Run() == nil {
			return
		}
	}
}

func mountError(mountpoint string, err error) error {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "busy"), errors.Is(err, syscall.EBUSY):
		return fail(exitMount, "mount point %s is busy: %v", mountpoint, err)
	case strings.Contains(msg, "fusermount"):
		return fail(exitMount, "cannot mount %s: %v (install fuse3; as an ordinary user /dev/fuse must be usable)", mountpoint, err)
	}
	return fail(exitMount, "cannot mount %s: %v", mountpoint, err)
}

func cmdUmount(args []string, stderr io.Writer) error {
	fl := flag.NewFlagSet("umount", flag.ContinueOnError)
	rest, err := parseFlags(fl, args, 1, 1, stderr)
	if err != nil {
		return err
	}
	dir := rest[0]
	if mounted, err := isMountpoint(dir); err == nil && !mounted {
		return fail(exitUnmount, "umount: %s is not mounted", dir)
	}
	var lastErr error
	for _, bin := range []string{"fusermount3", "fusermount"} {
		path, err := exec.LookPath(bin)
		if err != nil {
			continue
		}
		out, err := exec.Command(path, "-u", dir).CombinedOutput()
		if err == nil {
			return nil
		}
		lastErr = fmt.Errorf("%s", strings.TrimSpace(string(out)))
		break
	}
	if os.Geteuid() == 0 {
		if err := syscall.Unmount(dir, 0); err == nil {
			return nil
		} else if lastErr == nil {
			lastErr = err
		}
	}
	if lastErr == nil {
		lastErr = errors.New("fusermount3 not found (install fuse3)")
	}
	return fail(exitUnmount, "umount %s: %v", dir, lastErr)
}
