// Command bench measures mailfs against the floors that bound it: what a
// minimal IMAP client needs to list and to read the same mailbox, and what
// ls and grep cost on a local copy of it.
//
//	go run ./internal/bench [-n 10000] [-reps 5] [-quick] [-v]
//
// It starts a private Dovecot (root, dovecot-imapd and fuse3 needed),
// loads mailgen.Generate(1, n) into its INBOX, builds cmd/mailfs into a
// temporary directory and mounts it as a subprocess, a fresh one for each
// cold measurement. Every measurement is repeated -reps times and reported
// as median, min and max. ls and grep run with LC_ALL=C.
package main

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"mailfs/internal/dovecottest"
	"mailfs/internal/mailgen"
	"mailfs/internal/testenv"
)

const (
	seed        = 1
	accountName = "bench"
	passwordEnv = "MAILFS_BENCH_PASSWORD"
)

type options struct {
	n       int
	reps    int
	verbose bool
}

func main() {
	var o options
	flag.IntVar(&o.n, "n", 10000, "number of messages")
	flag.IntVar(&o.reps, "reps", 5, "repetitions of each measurement")
	flag.BoolVar(&o.verbose, "v", false, "print every sample")
	quick := flag.Bool("quick", false, "smoke run: -n 500 -reps 3 (unless given)")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: go run ./internal/bench [-n N] [-reps R] [-quick] [-v]\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}
	if *quick {
		set := map[string]bool{}
		flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
		if !set["n"] {
			o.n = 500
		}
		if !set["reps"] {
			o.reps = 3
		}
	}
	if o.n < 1 || o.reps < 1 {
		fmt.Fprintln(os.Stderr, "bench: -n and -reps must be at least 1")
		os.Exit(2)
	}

	// The first Ctrl-C cancels the run, which then cleans up; a second
	// one kills the process (mailfs still unmounts through Pdeathsig).
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		stop()
	}()

	if _, err := run(ctx, o, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		os.Exit(1)
	}
}

// bench is the state of one run.
type bench struct {
	o        options
	progress io.Writer

	tmp    string // everything below is removed at the end
	mailfs string // the mailfs binary built for this run
	cfg    string // mailfs configuration file
	mnt    string // mount point
	local  string // local copy of the mailbox, <uid>.eml
	srv    *dovecottest.Server
	mounts int

	bytes int64            // total size of the messages as served
	sizes map[uint32]int64 // served size by UID
	token string           // in exactly one message
	match string           // its file name, "<uid>.eml"

	samples     map[string][]time.Duration
	volumes     map[string][]int64 // bytes mailfs read, by measurement
	loadAtStart string             // /proc/loadavg when the measurements started
}

// report is what run prints, for the test to check.
type report struct {
	rows      []row
	ratios    []ratio
	bug       bool
	grepMatch string // the file every grep found
	text      string
	tmp       string // removed by the time run returns
}

type row struct {
	name             string
	median, min, max time.Duration
	samples          int
}

type ratio struct {
	name  string
	value float64
}

// rowNames lists the measurements in report order, with what each is.
var rowNames = []struct{ name, what string }{
	{"floor_list", "IMAP client: login, EXAMINE, UID FETCH 1:* (UID FLAGS RFC822.SIZE INTERNALDATE)"},
	{"floor_ls_local", "ls -l on the local copy"},
	{"mailfs_mount_ls_cold", "start mailfs mount, wait for mountinfo, ls -l MNT/INBOX"},
	{"mailfs_ls_warm", "second ls -l on the same mount"},
	{"floor_bulk_body", "IMAP client: login, EXAMINE, UID FETCH 1:* (BODY.PEEK[])"},
	{"floor_grep_local", "grep -rl TOKEN on the local copy"},
	{"mailfs_grep_cold", "grep -rl TOKEN MNT/INBOX on a fresh mount (grep only)"},
	{"mailfs_mount_grep_cold", "start mailfs mount, wait for mountinfo, grep -rl"},
	{"mailfs_grep_warm", "second grep -rl on the same mount"},
	{"mailfs_mount", "(info) start mailfs until MNT is in mountinfo"},
	{"mailfs_umount", "(info) mailfs umount until the mount process exited"},
}

// run does the whole benchmark and prints the report to out; progress
// goes to progress. Everything it started or created is gone when it
// returns, also after an error or a cancelled ctx.
func run(ctx context.Context, o options, out, progress io.Writer) (rep *report, err error) {
	b := &bench{o: o, progress: progress, samples: map[string][]time.Duration{}, volumes: map[string][]int64{}}
	root := testenv.ModuleRoot()
	if root == "" {
		return nil, errors.New("run from inside the mailfs module")
	}
	b.tmp, err = os.MkdirTemp(dovecottest.TempParent(), "mailfs-bench-")
	if err != nil {
		return nil, err
	}
	defer func() {
		if rerr := os.RemoveAll(b.tmp); rerr != nil {
			err = errors.Join(err, rerr)
		}
	}()
	if b.tmp, err = filepath.EvalSymlinks(b.tmp); err != nil {
		return nil, err
	}
	// Dovecot's mail processes run as the mail user and must traverse it.
	if err := os.Chmod(b.tmp, 0o755); err != nil {
		return nil, err
	}
	b.mailfs = filepath.Join(b.tmp, "mailfs")
	b.cfg = filepath.Join(b.tmp, "config.toml")
	b.mnt = filepath.Join(b.tmp, "mnt")
	b.local = filepath.Join(b.tmp, "local")
	for _, d := range []string{b.mnt, b.local} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return nil, err
		}
	}

	b.logf("building mailfs")
	build := exec.CommandContext(ctx, "go", "build", "-o", b.mailfs, "./cmd/mailfs")
	build.Dir = root
	if outb, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build ./cmd/mailfs: %v\n%s", err, outb)
	}

	b.logf("starting Dovecot")
	b.srv, err = dovecottest.StartProcess(filepath.Join(b.tmp, "dovecot"), dovecottest.Options{})
	if err != nil {
		return nil, err
	}
	defer func() {
		if serr := b.srv.Stop(); serr != nil {
			err = errors.Join(err, serr)
		}
	}()
	if err := b.writeConfig(); err != nil {
		return nil, err
	}
	if err := b.load(ctx); err != nil {
		return nil, err
	}

	b.loadAtStart = loadAvg()
	for i := 1; i <= o.reps; i++ {
		b.logf("repetition %d of %d", i, o.reps)
		if err := b.repetition(ctx); err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("interrupted: %w", ctx.Err())
			}
			return nil, err
		}
	}

	rep = b.report(root)
	rep.tmp = b.tmp
	fmt.Fprint(out, rep.text)
	return rep, nil
}

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(b.progress, "bench: "+format+"\n", args...)
}

func (b *bench) record(name string, d time.Duration) {
	b.samples[name] = append(b.samples[name], d)
	if b.o.verbose {
		b.logf("  %-24s %s", name, fmtDur(d))
	}
}

// recordRead records how many bytes the mount process read during a
// measurement, when /proc tells.
func (b *bench) recordRead(name string, n int64) {
	if n < 0 {
		return
	}
	b.volumes[name] = append(b.volumes[name], n)
	if b.o.verbose {
		b.logf("  %-24s mailfs read %s", name, fmtBytes(n))
	}
}

func (b *bench) writeConfig() error {
	_, port, err := net.SplitHostPort(b.srv.IMAPAddr)
	if err != nil {
		return err
	}
	cfg := fmt.Sprintf(`[accounts.%s]
protocol = "imap"
host = "127.0.0.1"
port = %s
tls = "none"
username = %q
password_env = %q
`, accountName, port, b.srv.User, passwordEnv)
	return os.WriteFile(b.cfg, []byte(cfg), 0o600)
}

// load fills Dovecot's INBOX, warms its index and writes the local copy
// from the bytes Dovecot serves.
func (b *bench) load(ctx context.Context) error {
	b.logf("generating %d messages", b.o.n)
	msgs := mailgen.Generate(seed, b.o.n)
	raws := make([][]byte, len(msgs))
	var genBytes int64
	for i, m := range msgs {
		raws[i] = m.Raw
		genBytes += int64(len(m.Raw))
	}
	b.token = mailgen.Token(seed, b.o.n-1)
	b.logf("writing the Maildir (%d bytes)", genBytes)
	if err := b.srv.WriteMaildir("INBOX", raws); err != nil {
		return err
	}

	// Dovecot indexes the new files at the first access: not timed.
	b.logf("warming Dovecot's index")
	if err := floorList(ctx, b.srv, b.o.n); err != nil {
		return fmt.Errorf("warm-up: %w", err)
	}

	b.logf("fetching every message for the local copy")
	bodies, err := b.srv.FetchAll(ctx, "INBOX")
	if err != nil {
		return err
	}
	if len(bodies) != b.o.n {
		return fmt.Errorf("Dovecot serves %d messages, want %d", len(bodies), b.o.n)
	}
	b.sizes = make(map[uint32]int64, len(bodies))
	for uid, body := range bodies {
		name := strconv.FormatUint(uint64(uid), 10) + ".eml"
		if err := os.WriteFile(filepath.Join(b.local, name), body, 0o644); err != nil {
			return err
		}
		b.sizes[uid] = int64(len(body))
		b.bytes += int64(len(body))
		if bytes.Contains(body, []byte(b.token)) {
			if b.match != "" {
				return fmt.Errorf("token %s in both %s and %s", b.token, b.match, name)
			}
			b.match = name
		}
	}
	if b.match == "" {
		return fmt.Errorf("token %s in no message", b.token)
	}
	fmt.Fprintf(b.progress, "bench: %d messages, %d bytes as served by Dovecot (%s; generated: %d bytes)\n",
		b.o.n, b.bytes, fmtBytes(b.bytes), genBytes)
	return nil
}

// repetition takes one sample of every measurement.
func (b *bench) repetition(ctx context.Context) error {
	if err := b.timed("floor_list", func() error { return floorList(ctx, b.srv, b.o.n) }); err != nil {
		return err
	}
	if err := b.timed("floor_ls_local", func() error { return lsL(ctx, b.local) }); err != nil {
		return err
	}
	if err := b.mountLs(ctx); err != nil {
		return err
	}
	if err := b.timed("floor_bulk_body", func() error { return floorBulkBody(ctx, b.srv, b.o.n, b.bytes) }); err != nil {
		return err
	}
	if err := b.timed("floor_grep_local", func() error { return b.grep(ctx, b.local) }); err != nil {
		return err
	}
	return b.mountGrep(ctx)
}

func (b *bench) timed(name string, f func() error) error {
	start := time.Now()
	if err := f(); err != nil {
		return err
	}
	b.record(name, time.Since(start))
	return nil
}

// mountLs measures a fresh mount with a cold ls -l, then a warm one, and
// checks the listing against what Dovecot serves.
func (b *bench) mountLs(ctx context.Context) (err error) {
	m, err := b.mount(ctx)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, b.unmount(m)) }()
	inbox := filepath.Join(b.mnt, "INBOX")
	if err := lsL(ctx, inbox); err != nil {
		return err
	}
	b.record("mailfs_mount_ls_cold", time.Since(m.start))
	b.record("mailfs_mount", m.mounted)
	read := m.readBytes()
	b.recordRead("mailfs_mount_ls_cold", read)
	if err := b.timed("mailfs_ls_warm", func() error { return lsL(ctx, inbox) }); err != nil {
		return err
	}
	b.recordRead("mailfs_ls_warm", m.readBytes()-read)
	return b.checkListing(inbox)
}

// mountGrep measures grep -r on a fresh mount, then again on the same
// mount.
func (b *bench) mountGrep(ctx context.Context) (err error) {
	m, err := b.mount(ctx)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, b.unmount(m)) }()
	b.record("mailfs_mount", m.mounted)
	inbox := filepath.Join(b.mnt, "INBOX")
	read := m.readBytes()
	start := time.Now()
	if err := b.grep(ctx, inbox); err != nil {
		return err
	}
	end := time.Now()
	b.record("mailfs_grep_cold", end.Sub(start))
	b.record("mailfs_mount_grep_cold", end.Sub(m.start))
	read2 := m.readBytes()
	b.recordRead("mailfs_grep_cold", read2-read)
	if err := b.timed("mailfs_grep_warm", func() error { return b.grep(ctx, inbox) }); err != nil {
		return err
	}
	b.recordRead("mailfs_grep_warm", m.readBytes()-read2)
	return nil
}

// checkListing compares the mounted folder with Dovecot's messages:
// every <uid>.eml and nothing else, with the served size.
func (b *bench) checkListing(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	seen := make(map[uint32]bool, len(ents))
	var badSize []string
	for _, e := range ents {
		uid, err := strconv.ParseUint(strings.TrimSuffix(e.Name(), ".eml"), 10, 32)
		size, known := b.sizes[uint32(uid)]
		if err != nil || !known || !strings.HasSuffix(e.Name(), ".eml") {
			return fmt.Errorf("mailfs lists an unexpected entry %s", e.Name())
		}
		seen[uint32(uid)] = true
		fi, err := e.Info()
		if err != nil {
			return err
		}
		if fi.Size() != size {
			badSize = append(badSize, fmt.Sprintf("%s: %d, served %d", e.Name(), fi.Size(), size))
		}
	}
	if len(seen) != len(b.sizes) {
		return fmt.Errorf("mailfs lists %d of %d messages", len(seen), len(b.sizes))
	}
	if len(badSize) > 0 {
		return fmt.Errorf("mailfs shows a wrong size for %d messages, e.g. %s", len(badSize), badSize[0])
	}
	return nil
}

// lsL runs ls -l dir with its output discarded.
func lsL(ctx context.Context, dir string) error {
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "ls", "-l", dir)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	cmd.Stderr = &stderr // Stdout nil: /dev/null
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("ls -l %s: %v: %s", dir, err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// grep runs grep -rl TOKEN dir and checks that it names exactly the one
// message holding the token. GNU grep treats an output of /dev/null like
// -l (it stops reading a file at its first match), so -l into a pipe does
// the same work as `grep -r TOKEN dir >/dev/null` and shows the result.
func (b *bench) grep(ctx context.Context, dir string) error {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "grep", "-rl", b.token, dir)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	err := cmd.Run()
	got := strings.TrimSpace(stdout.String())
	want := filepath.Join(dir, b.match)
	if err != nil || got != want {
		return fmt.Errorf("grep -rl %s %s: %v: found %q, want %q; stderr: %s",
			b.token, dir, err, got, want, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// report computes the table and the ratios and renders them.
func (b *bench) report(root string) *report {
	rep := &report{grepMatch: b.match}
	med := map[string]time.Duration{}
	for _, rn := range rowNames {
		s := slices.Clone(b.samples[rn.name])
		if len(s) == 0 {
			continue
		}
		slices.Sort(s)
		r := row{name: rn.name, min: s[0], max: s[len(s)-1], samples: len(s)}
		if len(s)%2 == 1 {
			r.median = s[len(s)/2]
		} else {
			r.median = (s[len(s)/2-1] + s[len(s)/2]) / 2
		}
		med[rn.name] = r.median
		rep.rows = append(rep.rows, r)
	}
	div := func(a time.Duration, bs ...time.Duration) float64 {
		var sum time.Duration
		for _, d := range bs {
			sum += d
		}
		return float64(a) / float64(cmp.Or(sum, 1))
	}
	rep.ratios = []ratio{
		{"mount+ls -l cold / (floor_list + floor_ls_local)", div(med["mailfs_mount_ls_cold"], med["floor_list"], med["floor_ls_local"])},
		{"ls -l warm / floor_ls_local", div(med["mailfs_ls_warm"], med["floor_ls_local"])},
		{"grep -r cold / (floor_bulk_body + floor_grep_local)", div(med["mailfs_grep_cold"], med["floor_bulk_body"], med["floor_grep_local"])},
		{"grep -r warm / floor_grep_local", div(med["mailfs_grep_warm"], med["floor_grep_local"])},
	}
	rep.bug = rep.ratios[0].value > 2

	var w strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&w, format+"\n", args...) }
	p("mailfs benchmark")
	p("command:  %s", commandLine())
	p("settings: -n %d -reps %d", b.o.n, b.o.reps)
	p("machine:  nproc=%d; %s", runtime.NumCPU(), machine())
	p("load:     %s at the start of the measurements, %s at the end (other processes disturb them)", b.loadAtStart, loadAvg())
	p("go:       %s %s/%s", runtime.Version(), runtime.GOOS, runtime.GOARCH)
	p("mailfs:   %s", gitDescribe(root))
	p("tools:    %s; %s; run with LC_ALL=C", toolVersion("ls"), toolVersion("grep"))
	p("data:     %d messages, %d bytes (%s) as served by Dovecot, in INBOX", b.o.n, b.bytes, fmtBytes(b.bytes))
	p("grep:     TOKEN=%s, found in INBOX/%s only, by every grep", b.token, b.match)
	p("")
	p("%-24s %12s %12s %12s  %s", "name", "median", "min", "max", "samples")
	for _, r := range rep.rows {
		p("%-24s %12s %12s %12s  %d", r.name, fmtDur(r.median), fmtDur(r.min), fmtDur(r.max), r.samples)
	}
	if len(b.volumes) > 0 {
		p("")
		p("bytes the mailfs process read (rchar: IMAP responses and FUSE requests), median:")
		for _, name := range []string{"mailfs_mount_ls_cold", "mailfs_ls_warm", "mailfs_grep_cold", "mailfs_grep_warm"} {
			v := slices.Clone(b.volumes[name])
			if len(v) == 0 {
				continue
			}
			slices.Sort(v)
			m := v[len(v)/2]
			p("  %-24s %12s  %5.2f x the mailbox", name, fmtBytes(m), float64(m)/float64(cmp.Or(b.bytes, 1)))
		}
	}
	p("")
	p("ratios of medians:")
	for _, r := range rep.ratios {
		p("  %-52s %7.2f", r.name, r.value)
	}
	if rep.bug {
		p("")
		p("BUG: mount + cold ls -l is more than 2x its floor")
	}
	p("")
	p("rows:")
	for _, rn := range rowNames {
		p("  %-24s %s", rn.name, rn.what)
	}
	rep.text = w.String()
	return rep
}

func fmtDur(d time.Duration) string {
	return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
}

func fmtBytes(n int64) string {
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}

// commandLine returns the command line of this process; a binary that
// go run built into its cache is shown as "go run ./internal/bench".
func commandLine() string {
	if strings.Contains(os.Args[0], string(filepath.Separator)+"go-build") {
		return shellQuote(append([]string{"go", "run", "./internal/bench"}, os.Args[1:]...))
	}
	return shellQuote(os.Args)
}

// shellQuote renders argv so that it can be pasted into a shell.
func shellQuote(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if a != "" && strings.Trim(a, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,+") == "" {
			q[i] = a
		} else {
			q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
	}
	return strings.Join(q, " ")
}

// machine describes the CPU, kernel and memory, as far as /proc tells.
func machine() string {
	var parts []string
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(data), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				parts = append(parts, strings.TrimSpace(v))
				break
			}
		}
	}
	if data, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		parts = append(parts, "Linux "+strings.TrimSpace(string(data)))
	}
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		for line := range strings.SplitSeq(string(data), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "MemTotal:" {
				if kb, err := strconv.ParseInt(f[1], 10, 64); err == nil {
					parts = append(parts, fmt.Sprintf("%.1f GiB RAM", float64(kb)/(1<<20)))
				}
				break
			}
		}
	}
	return strings.Join(parts, "; ")
}

// loadAvg returns the 1, 5 and 15 minute load averages.
func loadAvg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(data)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "unknown"
}

// gitDescribe names the commit the benchmarked mailfs was built from.
func gitDescribe(root string) string {
	out, err := exec.Command("git", "-C", root, "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown commit"
	}
	s := "commit " + strings.TrimSpace(string(out))
	if st, err := exec.Command("git", "-C", root, "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(st) > 0 {
		s += " with uncommitted changes"
	}
	return s
}

// toolVersion returns the first line of `tool --version`.
func toolVersion(tool string) string {
	out, err := exec.Command(tool, "--version").Output()
	if err != nil {
		return tool + " (version unknown)"
	}
	line, _, _ := strings.Cut(string(out), "\n")
	return line
}
