// Command bench measures mailfs against the floors that bound it: what a
// minimal IMAP or POP3 client needs to list and to read the same mailbox,
// and what ls and grep cost on a local copy of it.
//
//	go run ./internal/bench [-n 10000] [-reps 5] [-quick] [-v]
//
// It starts a private Dovecot (root, dovecot-imapd, dovecot-pop3d and fuse3
// needed), loads mailgen.Generate(1, n) into its INBOX, builds cmd/mailfs
// into a temporary directory and runs it as a subprocess: a fresh mount for
// each cold measurement, `mailfs sync` of the POP3 and of the IMAP account
// into an empty cache, and an --offline mount of the synced IMAP cache.
// Every mailfs process gets an XDG_CACHE_HOME of its own below the
// temporary directory, empty unless it is to read a synced cache. Every
// measurement is repeated -reps times and reported as median, min and max.
// ls and grep run with LC_ALL=C.
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
	accountName = "bench"    // the IMAP account
	popAccount  = "popbench" // the same mailbox over POP3
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
	built  string // the commit it was built from
	cfg    string // mailfs configuration file
	mnt    string // mount point
	local  string // local copy of the mailbox, <uid>.eml
	srv    *dovecottest.Server
	mounts int
	caches int // cache directories made so far

	bytes    int64            // total size of the messages as served
	sizes    map[uint32]int64 // served size by UID
	popBytes int64            // total size of the RETR payloads over POP3
	token    string           // in exactly one message
	match    string           // its file name, "<uid>.eml"

	samples     map[string][]time.Duration
	volumes     map[string][]int64 // bytes mailfs read, by measurement
	synced      map[string][]int   // messages each mailfs sync fetched, by account
	loadAtStart string             // /proc/loadavg when the measurements started
}

// report is what run prints, for the test to check.
type report struct {
	rows      []row
	ratios    []ratio
	bug       bool
	grepMatch string           // the file every grep found
	synced    map[string][]int // messages each mailfs sync fetched, by account
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
	{"floor_grep_local", "grep -rl TOKEN on the local copy (page-cache warm: see storage)"},
	{"mailfs_grep_cold", "grep -rl TOKEN MNT/INBOX on a fresh mount (grep only)"},
	{"mailfs_mount_grep_cold", "start mailfs mount, wait for mountinfo, grep -rl"},
	{"mailfs_grep_warm", "second grep -rl on the same mount"},
	{"mailfs_grep_offline", "grep -rl TOKEN MNT/INBOX on a fresh mailfs mount --offline of a fully synced cache (grep only)"},
	{"floor_pop3_retr", "POP3 client (go-pop3): connect, USER/PASS, UIDL, RETR every message in order, QUIT"},
	{"mailfs_sync_pop3", "mailfs sync of the POP3 account into an empty cache (the whole process)"},
	{"mailfs_sync_imap", "(info) mailfs sync of the IMAP account into an empty cache, before mailfs_grep_offline"},
	{"mailfs_mount_offline", "(info) start mailfs mount --offline until MNT is in mountinfo"},
	{"mailfs_mount", "(info) start mailfs (online) until MNT is in mountinfo"},
	{"mailfs_umount", "(info) mailfs umount until the mount process exited"},
}

// run does the whole benchmark and prints the report to out; progress
// goes to progress. Everything it started or created is gone when it
// returns, also after an error or a cancelled ctx.
func run(ctx context.Context, o options, out, progress io.Writer) (rep *report, err error) {
	b := &bench{o: o, progress: progress, samples: map[string][]time.Duration{}, volumes: map[string][]int64{}, synced: map[string][]int{}}
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
	b.built = gitDescribe(root) // the work tree may change during the run
	build := exec.CommandContext(ctx, "go", "build", "-o", b.mailfs, "./cmd/mailfs")
	build.Dir = root
	if outb, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build ./cmd/mailfs: %v\n%s", err, outb)
	}

	b.logf("starting Dovecot")
	b.srv, err = dovecottest.StartProcess(filepath.Join(b.tmp, "dovecot"), dovecottest.Options{POP3: true})
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

	rep = b.report()
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

// writeConfig writes the IMAP account and the POP3 account, both on the
// same Dovecot user.
func (b *bench) writeConfig() error {
	var cfg strings.Builder
	for _, a := range []struct{ name, protocol, addr string }{
		{accountName, "imap", b.srv.IMAPAddr},
		{popAccount, "pop3", b.srv.POP3Addr},
	} {
		_, port, err := net.SplitHostPort(a.addr)
		if err != nil {
			return fmt.Errorf("%s address %q: %w", a.protocol, a.addr, err)
		}
		fmt.Fprintf(&cfg, `[accounts.%s]
protocol = %q
host = "127.0.0.1"
port = %s
tls = "none"
username = %q
password_env = %q

`, a.name, a.protocol, port, b.srv.User, passwordEnv)
	}
	return os.WriteFile(b.cfg, []byte(cfg.String()), 0o600)
}

// env is the environment of a mailfs subprocess: the password, and
// cacheHome as XDG_CACHE_HOME, so that no run touches the user's cache.
func (b *bench) env(cacheHome string) []string {
	return append(os.Environ(), passwordEnv+"="+b.srv.Password, "XDG_CACHE_HOME="+cacheHome)
}

// newCacheHome makes an empty directory for a mailfs process to use as
// XDG_CACHE_HOME. The caller removes it.
func (b *bench) newCacheHome() (string, error) {
	b.caches++
	dir := filepath.Join(b.tmp, fmt.Sprintf("cache-%d", b.caches))
	return dir, os.Mkdir(dir, 0o700)
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

	// Dovecot's POP3 computes every message's size at login and caches
	// it: not timed either. This also gives the payload of all RETRs.
	b.logf("warming Dovecot's POP3 sizes")
	if b.popBytes, err = floorPOP3(ctx, b.srv, b.o.n); err != nil {
		return fmt.Errorf("warm-up: %w", err)
	}
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
	if err := b.mountGrep(ctx); err != nil {
		return err
	}
	if err := b.offlineGrep(ctx); err != nil {
		return err
	}
	if err := b.timed("floor_pop3_retr", func() error { return b.popFloor(ctx) }); err != nil {
		return err
	}
	return b.syncPOP3(ctx)
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
	cacheHome, err := b.newCacheHome()
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, os.RemoveAll(cacheHome)) }()
	m, err := b.mount(ctx, cacheHome, false)
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

// mountGrep measures grep -r on a fresh mount with an empty cache, then
// again on the same mount.
func (b *bench) mountGrep(ctx context.Context) (err error) {
	cacheHome, err := b.newCacheHome()
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, os.RemoveAll(cacheHome)) }()
	m, err := b.mount(ctx, cacheHome, false)
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
func (b *bench) report() *report {
	rep := &report{grepMatch: b.match, synced: b.synced}
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
		{"grep -r offline / floor_grep_local", div(med["mailfs_grep_offline"], med["floor_grep_local"])},
		{"mailfs_sync_pop3 / floor_pop3_retr", div(med["mailfs_sync_pop3"], med["floor_pop3_retr"])},
		{"(info) mailfs_sync_imap / floor_bulk_body", div(med["mailfs_sync_imap"], med["floor_bulk_body"])},
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
	p("mailfs:   %s", b.built)
	p("tools:    %s; %s; run with LC_ALL=C", toolVersion("ls"), toolVersion("grep"))
	p("data:     %d messages, %d bytes (%s) as served by Dovecot, in INBOX", b.o.n, b.bytes, fmtBytes(b.bytes))
	p("pop3:     the same INBOX; RETR payloads %d bytes (%s), every message fetched by every mailfs sync", b.popBytes, fmtBytes(b.popBytes))
	p("grep:     TOKEN=%s, found in INBOX/%s only, by every grep", b.token, b.match)
	p("storage:  %s", storage(b.tmp))
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
	p("download rates (bytes / median time):")
	for _, r := range []struct {
		name  string
		bytes int64
	}{
		{"floor_bulk_body", b.bytes},
		{"mailfs_sync_imap", b.bytes},
		{"floor_pop3_retr", b.popBytes},
		{"mailfs_sync_pop3", b.popBytes},
	} {
		if d, ok := med[r.name]; ok && d > 0 {
			p("  %-24s %12s  %8.1f MiB/s  %8.0f messages/s", r.name, fmtDur(d),
				float64(r.bytes)/(1<<20)/d.Seconds(), float64(b.o.n)/d.Seconds())
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

// storage tells where the temporary files are and what that means for the
// grep rows. The benchmark drops no caches: on tmpfs, where
// dovecottest.TempParent puts them when it can, drop_caches could not
// evict them anyway.
func storage(dir string) string {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return "unknown (" + err.Error() + ")"
	}
	if st.Type == 0x01021994 {
		return "temporary files on tmpfs: Dovecot's Maildir, the local copy and every mailfs cache are in memory, " +
			"so floor_grep_local and mailfs_grep_offline both read from RAM (no caches dropped: tmpfs cannot be)"
	}
	names := map[int64]string{0xEF53: "ext4", 0x58465342: "xfs", 0x9123683E: "btrfs", 0x794C7630: "overlayfs"}
	name := cmp.Or(names[int64(st.Type)], fmt.Sprintf("file system type %#x", st.Type))
	return "temporary files on " + name + ", no caches dropped: the local copy is page-cache warm, " +
		"and so is most of a mailfs cache just written by mailfs sync"
}
