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

	"mailfs/fs"
	"mailfs/internal/config"
	"mailfs/remote"
	"mailfs/remote/imap"
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
	fl.BoolVar(&o.offline, "offline", false, "serve the cache only (not available yet)")
	fl.BoolVar(&o.verbose, "v", false, "log debug messages")
	rest, err := parseFlags(fl, args, 2, 2, stderr)
	if err != nil {
		return err
	}
	if o.offline {
		return fail(exitNotReady, "mount: --offline is not available yet: this version has no local cache")
	}
	name, mountpoint := rest[0], rest[1]
	log := newLogger(stderr, o.verbose)

	path := o.config
	if path == "" {
		if path, err = config.DefaultPath(); err != nil {
			return fail(exitConfig, "%v", err)
		}
	}
	cfg, err := config.Load(path)
	if err != nil {
		return fail(exitConfig, "%v", err)
	}
	acct, err := cfg.Account(name)
	if err != nil {
		return fail(exitConfig, "%v", err)
	}
	if acct.Protocol != "imap" {
		return fail(exitNotReady, "account %q: protocol %q is not available yet (only imap)", name, acct.Protocol)
	}
	if err := checkMountpoint(mountpoint); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	password, err := acct.Password(ctx)
	stop()
	if err != nil {
		return fail(exitConfig, "%v", err)
	}
	tlsConfig, err := acct.TLSConfig()
	if err != nil {
		return fail(exitConfig, "%v", err)
	}
	dialCtx, cancel := context.WithTimeout(context.Background(), acct.Timeout+5*time.Second)
	defer cancel()
	remoteAcct, err := imap.Dial(dialCtx, imap.Config{
		Addr:        acct.Addr(),
		TLS:         imap.TLSMode(acct.TLS),
		TLSConfig:   tlsConfig,
		Username:    acct.Username,
		Password:    password,
		Auth:        acct.Auth,
		Connections: acct.Connections,
		Timeout:     acct.Timeout,
		Logger:      log,
	})
	if err != nil {
		return remoteError(name, err)
	}
	return serve(remoteAcct, name, mountpoint, fs.Options{PollInterval: acct.PollInterval, Logger: log}, stdout, stderr, log, nil)
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

// serve mounts acct at mountpoint and runs until it is unmounted or
// interrupted; Ctrl-C unmounts cleanly, a second Ctrl-C while the mount is
// busy detaches it lazily. ready, if set, runs once the mount is up.
func serve(acct remote.Account, name, mountpoint string, opts fs.Options, stdout, stderr io.Writer, log *slog.Logger, ready func()) error {
	defer acct.Close()
	filesystem := fs.New(acct, opts)
	defer filesystem.Close()
	mopts := filesystem.MountOptions(name)
	mopts.Logger = slog.NewLogLogger(log.Handler(), slog.LevelDebug)
	mopts.MountOptions.Logger = mopts.Logger
	server, err := fusefs.Mount(mountpoint, filesystem.Root(), mopts)
	if err != nil {
		return mountError(mountpoint, err)
	}
	log.Info("mounted", "account", name, "mountpoint", mountpoint)
	if ready != nil {
		ready()
	}

	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	done := make(chan struct{})
	go func() {
		server.Wait()
		close(done)
	}()
	tries := 0
	for {
		select {
		case <-done:
			log.Info("unmounted", "mountpoint", mountpoint)
			return nil
		case <-sigs:
			tries++
			if tries > 1 {
				log.Warn("detaching the busy mount lazily", "mountpoint", mountpoint)
				lazyUnmount(mountpoint)
				continue
			}
			if err := server.Unmount(); err != nil {
				log.Warn("cannot unmount: the mount is busy (a shell or program is inside it); leave it and press Ctrl-C again to detach it lazily",
					"mountpoint", mountpoint, "err", err)
			}
		}
	}
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
