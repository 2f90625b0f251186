// Command mailfs mounts a mail account as a filesystem.
//
//	mailfs mount [--config FILE] [--read-only] [-v] ACCOUNT MOUNTPOINT
//	mailfs demo [MOUNTPOINT]
//	mailfs umount MOUNTPOINT
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/pprof"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1 // anything not listed below
	exitUsage   = 2
	exitConfig  = 3 // bad or missing configuration, password command failed
	exitAuth    = 4 // the server refused the credentials
	exitNetwork = 5 // server unreachable, TLS failure
	exitMount   = 6 // mount point missing or busy, /dev/fuse missing
	exitUnmount = 7
)

// exitError carries the exit code of a failure; its message is one line.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func fail(code int, format string, args ...any) error {
	return &exitError{code: code, err: fmt.Errorf(format, args...)}
}

const usage = `usage:
  mailfs mount [--config FILE] [--offline] [--read-only] [-v] ACCOUNT MOUNTPOINT
  mailfs sync [--config FILE] [-v] ACCOUNT [FOLDER...]
  mailfs demo [-v] [MOUNTPOINT]        (default MOUNTPOINT: ./mnt)
  mailfs umount MOUNTPOINT
`

func main() {
	// MAILFS_CPUPROFILE=PREFIX writes a CPU profile of the whole run to
	// PREFIX.<pid>, for `go tool pprof`.
	if prefix := os.Getenv("MAILFS_CPUPROFILE"); prefix != "" {
		if f, err := os.Create(fmt.Sprintf("%s.%d", prefix, os.Getpid())); err == nil {
			pprof.StartCPUProfile(f)
			code := run(os.Args[1:], os.Stdout, os.Stderr)
			pprof.StopCPUProfile()
			f.Close()
			os.Exit(code)
		}
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	var err error
	switch args[0] {
	case "mount":
		err = cmdMount(args[1:], stdout, stderr)
	case "demo":
		err = cmdDemo(args[1:], stdout, stderr)
	case "umount", "unmount":
		err = cmdUmount(args[1:], stderr)
	case "sync":
		err = cmdSync(args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return exitOK
	default:
		fmt.Fprintf(stderr, "mailfs: unknown command %q\n%s", args[0], usage)
		return exitUsage
	}
	if err == nil {
		return exitOK
	}
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	fmt.Fprintf(stderr, "mailfs: %v\n", err)
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return exitFailure
}

func newLogger(w io.Writer, verbose bool) *slog.Logger {
	level := slog.LevelInfo
	if verbose {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

// parseFlags parses fs and requires between min and max positional args.
func parseFlags(fs *flag.FlagSet, args []string, min, max int, stderr io.Writer) ([]string, error) {
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, &exitError{code: exitUsage, err: err}
	}
	rest := fs.Args()
	if len(rest) < min || len(rest) > max {
		return nil, fail(exitUsage, "%s: wrong number of arguments\n%s", fs.Name(), usage)
	}
	return rest, nil
}
