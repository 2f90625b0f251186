package dovecottest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"

	"mailfs/internal/testenv"
)

// Options configures a Server.
type Options struct {
	// POP3 also starts a POP3 listener (Server.POP3Addr).
	POP3 bool

	// StartTimeout bounds the wait for the server to accept logins.
	// Zero means 10 seconds.
	StartTimeout time.Duration

	// ExtraConfig is appended verbatim to the generated dovecot.conf
	// (later settings override earlier ones).
	ExtraConfig string
}

// Server is a running private Dovecot instance.
type Server struct {
	IMAPAddr string // "127.0.0.1:port"
	POP3Addr string // "" unless Options.POP3
	User     string
	Password string
	Dir      string // root directory: config, log, state and mail homes
	BaseDir  string // Dovecot base_dir (sockets, master.pid)
	LogPath  string // Dovecot log file

	opts      Options
	bin       string
	instance  string
	uid, gid  int
	ownedBase bool // BaseDir lies outside Dir

	cmd     *exec.Cmd
	exited  chan struct{} // closed when the master process has been reaped
	waitErr error         // result of cmd.Wait, valid after exited is closed

	stopOnce sync.Once
	stopErr  error

	mailSeq atomic.Uint64 // unique part of Maildir file names
}

const (
	// MailUser is the system account that owns the mail and runs the mail
	// processes.
	MailUser = "mail"

	// maxBaseDir keeps base_dir short enough for unix socket paths
	// (sun_path holds 108 bytes; Dovecot appends names such as
	// "token-login/tokenlogin").
	maxBaseDir = 64

	startAttempts = 5
	stopTimeout   = 5 * time.Second
)

// Binary returns the path of the dovecot executable: $MAILFS_DOVECOT if
// set, else "dovecot" from PATH, else /usr/sbin/dovecot.
func Binary() (string, error) {
	if p := os.Getenv("MAILFS_DOVECOT"); p != "" {
		if fi, err := os.Stat(p); err != nil || !fi.Mode().IsRegular() || fi.Mode()&0o111 == 0 {
			return "", fmt.Errorf("dovecottest: MAILFS_DOVECOT=%s is not an executable file", p)
		}
		return p, nil
	}
	if p, err := exec.LookPath("dovecot"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/sbin/dovecot", "/usr/local/sbin/dovecot"} {
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", errors.New("dovecottest: dovecot binary not found (install dovecot-imapd and dovecot-pop3d)")
}

// TempParent returns the directory under which Start creates its servers:
// /dev/shm when it is a writable tmpfs with at least 1 GiB free, else
// os.TempDir(). Dovecot's Maildir storage rewrites and renames
// dovecot-uidlist for most APPENDs, which costs about 5 ms per message on
// ext4 and a tenth of that on tmpfs. Programs may use it for StartProcess.
func TempParent() string {
	const shm = "/dev/shm"
	var st syscall.Statfs_t
	if err := syscall.Statfs(shm, &st); err == nil && st.Type == tmpfsMagic &&
		uint64(st.Bavail)*uint64(st.Bsize) >= 1<<30 && syscall.Access(shm, 0o2|0o1) == nil {
		return shm
	}
	return os.TempDir()
}

const tmpfsMagic = 0x01021994

// Start starts a server for a test and stops it at cleanup. A missing
// dovecot binary, missing root privileges or a missing "mail" user skip the
// test (fail it under CI); any other error fails it.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	if _, err := Binary(); err != nil {
		testenv.SkipOrFail(t, "%v", err)
	}
	if os.Geteuid() != 0 {
		testenv.SkipOrFail(t, "dovecottest: running Dovecot needs root")
	}
	if _, err := user.Lookup(MailUser); err != nil {
		testenv.SkipOrFail(t, "dovecottest: no %q user: %v", MailUser, err)
	}
	dir, err := os.MkdirTemp(TempParent(), "dovecottest-")
	if err != nil {
		t.Fatalf("dovecottest: %v", err)
	}
	s, err := StartProcess(dir, opts)
	if err != nil {
		os.RemoveAll(dir)
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("dovecottest: tail of %s:\n%s", s.LogPath, s.LogTail(40))
		}
		if err := s.Stop(); err != nil {
			t.Error(err)
		}
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("dovecottest: %v", err)
		}
	})
	return s
}

// StartProcess starts a server whose files live in dir (created if
// missing). The caller must call Stop; dir itself is left in place, except
// for base_dir. The mail user must be able to traverse dir's parents. A
// dir on tmpfs (see TempParent) makes APPEND about ten times faster.
func StartProcess(dir string, opts Options) (*Server, error) {
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("dovecottest: running Dovecot needs root")
	}
	if opts.StartTimeout <= 0 {
		opts.StartTimeout = 10 * time.Second
	}
	dir, err = filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("dovecottest: %w", err)
	}
	// The path goes unquoted into dovecot.conf and through Dovecot's %
	// variable expansion.
	if strings.ContainsAny(dir, " \t\n\"'%#{}\\") {
		return nil, fmt.Errorf("dovecottest: directory %q has characters Dovecot's configuration cannot take", dir)
	}
	u, err := user.Lookup(MailUser)
	if err != nil {
		return nil, fmt.Errorf("dovecottest: look up mail user: %w", err)
	}
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		return nil, fmt.Errorf("dovecottest: uid of %s: %w", MailUser, err)
	}
	gid, err := strconv.Atoi(u.Gid)
	if err != nil {
		return nil, fmt.Errorf("dovecottest: gid of %s: %w", MailUser, err)
	}

	s := &Server{
		User:     "mailfs",
		Password: randomHex(12),
		Dir:      dir,
		LogPath:  filepath.Join(dir, "dovecot.log"),
		opts:     opts,
		bin:      bin,
		uid:      uid,
		gid:      gid,
	}
	err = s.layout()
	for attempt := 1; err == nil; attempt++ {
		err = s.launch()
		if err == nil {
			return s, nil
		}
		if !errors.Is(err, errPortInUse) || attempt == startAttempts {
			break
		}
	}
	s.removeBase()
	return nil, err
}

var errPortInUse = errors.New("port in use")

// layout creates the directories and the password file.
func (s *Server) layout() error {
	if err := os.MkdirAll(s.Dir, 0o755); err != nil {
		return fmt.Errorf("dovecottest: %w", err)
	}
	// Dovecot's unprivileged processes (auth as "dovecot", mail as "mail")
	// must reach the password file and the home directories.
	if err := os.Chmod(s.Dir, 0o755); err != nil {
		return fmt.Errorf("dovecottest: %w", err)
	}
	if err := checkTraversable(filepath.Dir(s.Dir), s.uid, s.gid); err != nil {
		return err
	}

	base := filepath.Join(s.Dir, "run")
	if len(base) > maxBaseDir {
		b, err := os.MkdirTemp("/tmp", "dv")
		if err != nil {
			return fmt.Errorf("dovecottest: %w", err)
		}
		base, s.ownedBase = b, true
	} else if err := os.MkdirAll(base, 0o755); err != nil {
		return fmt.Errorf("dovecottest: %w", err)
	}
	if err := os.Chmod(base, 0o755); err != nil {
		return fmt.Errorf("dovecottest: %w", err)
	}
	s.BaseDir = base
	// A stale pid file from a crashed run would make Dovecot refuse to
	// start if its pid has been reused.
	if err := os.Remove(filepath.Join(base, "master.pid")); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("dovecottest: %w", err)
	}
	s.instance = "dovecottest-" + randomHex(4)

	if err := os.MkdirAll(filepath.Join(s.Dir, "state"), 0o755); err != nil {
		return fmt.Errorf("dovecottest: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(s.Dir, "home"), 0o755); err != nil {
		return fmt.Errorf("dovecottest: %w", err)
	}
	home := filepath.Join(s.Dir, "home", s.User)
	if err := s.mkdirMail(home); err != nil {
		return err
	}
	if err := s.makeMaildir(s.MaildirRoot(), false); err != nil {
		return err
	}
	// The password is a throwaway test credential; the auth process runs
	// as the "dovecot" user and must read the file.
	passwd := fmt.Sprintf("%s:{PLAIN}%s::::::\n", s.User, s.Password)
	if err := os.WriteFile(filepath.Join(s.Dir, "passwd"), []byte(passwd), 0o644); err != nil {
		return fmt.Errorf("dovecottest: %w", err)
	}
	return nil
}

// checkTraversable reports an error if the mail user cannot search dir and
// every ancestor.
func checkTraversable(dir string, uid, gid int) error {
	for {
		fi, err := os.Stat(dir)
		if err != nil {
			return fmt.Errorf("dovecottest: %w", err)
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if ok {
			perm := fi.Mode().Perm()
			okx := perm&0o001 != 0 ||
				(int(st.Gid) == gid && perm&0o010 != 0) ||
				(int(st.Uid) == uid && perm&0o100 != 0)
			if !okx {
				return fmt.Errorf("dovecottest: directory %s is not searchable by user %s; choose a directory under /tmp", dir, MailUser)
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return nil
		}
		dir = parent
	}
}

func (s *Server) confPath() string { return filepath.Join(s.Dir, "dovecot.conf") }
func (s *Server) outPath() string  { return filepath.Join(s.Dir, "dovecot.out") }

// config renders dovecot.conf. Nothing is included from the system
// configuration; every path Dovecot writes to lies under Dir or BaseDir.
func (s *Server) config(imapPort, pop3Port int) string {
	protocols := "imap"
	if s.opts.POP3 {
		protocols += " pop3"
	}
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("# Private Dovecot instance for mailfs tests; generated by dovecottest.")
	w("instance_name = %s", s.instance)
	w("base_dir = %s", s.BaseDir)
	w("state_dir = %s", filepath.Join(s.Dir, "state"))
	w("log_path = %s", s.LogPath)
	w("protocols = %s", protocols)
	w("listen = 127.0.0.1")
	w("ssl = no")
	w("disable_plaintext_auth = no")
	w("auth_mechanisms = plain login")
	w("auth_failure_delay = 0")
	w("auth_verbose = yes")
	w("default_internal_user = dovecot")
	w("default_login_user = dovenull")
	w("first_valid_uid = %d", s.uid)
	w("first_valid_gid = %d", s.gid)
	w("mail_location = maildir:~/Maildir")
	w("mail_fsync = never")
	w("verbose_proctitle = yes")
	w("pop3_no_flag_updates = yes")
	w("pop3_uidl_format = %%08Xu%%08Xv")
	w("namespace inbox {")
	w("  inbox = yes")
	w("  prefix =")
	w("  separator = .")
	w("}")
	w("passdb {")
	w("  driver = passwd-file")
	w("  args = scheme=PLAIN username_format=%%u %s", filepath.Join(s.Dir, "passwd"))
	w("}")
	w("userdb {")
	w("  driver = static")
	w("  args = uid=%d gid=%d home=%s/%%u", s.uid, s.gid, filepath.Join(s.Dir, "home"))
	w("}")
	w("protocol imap {")
	w("  mail_max_userip_connections = 1000")
	w("}")
	w("service imap-login {")
	w("  inet_listener imap {")
	w("    port = %d", imapPort)
	w("  }")
	w("  inet_listener imaps {")
	w("    port = 0")
	w("  }")
	w("}")
	w("service imap {")
	w("  process_limit = 1024")
	w("}")
	if s.opts.POP3 {
		w("service pop3-login {")
		w("  inet_listener pop3 {")
		w("    port = %d", pop3Port)
		w("  }")
		w("  inet_listener pop3s {")
		w("    port = 0")
		w("  }")
		w("}")
		w("protocol pop3 {")
		w("  mail_max_userip_connections = 1000")
		w("}")
		w("service pop3 {")
		w("  process_limit = 1024")
		w("}")
	}
	if s.opts.ExtraConfig != "" {
		w("%s", s.opts.ExtraConfig)
	}
	return b.String()
}

// launch picks ports, writes the config, starts the master process and
// waits until it accepts logins.
func (s *Server) launch() error {
	imapPort, err := freePort()
	if err != nil {
		return err
	}
	s.IMAPAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(imapPort))
	s.POP3Addr = ""
	pop3Port := 0
	if s.opts.POP3 {
		for pop3Port == 0 || pop3Port == imapPort {
			if pop3Port, err = freePort(); err != nil {
				return err
			}
		}
		s.POP3Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(pop3Port))
	}
	if err := os.WriteFile(s.confPath(), []byte(s.config(imapPort, pop3Port)), 0o644); err != nil {
		return fmt.Errorf("dovecottest: %w", err)
	}
	out, err := os.OpenFile(s.outPath(), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("dovecottest: %w", err)
	}
	logStart, outStart := fileSize(s.LogPath), fileSize(s.outPath())

	// -F keeps the master in the foreground as our child, so it can be
	// waited for and its stdout/stderr (early config errors) captured.
	cmd := exec.Command(s.bin, "-F", "-c", s.confPath())
	cmd.Dir = s.Dir
	cmd.Stdout = out
	cmd.Stderr = out
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	// The master gets SIGTERM if this process dies without calling Stop.
	// Pdeathsig fires when the forking thread exits, so the fork happens
	// on a locked thread that lives until the master has been reaped.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	s.cmd = cmd
	s.exited = make(chan struct{})
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with this goroutine
		defer out.Close()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		s.waitErr = cmd.Wait()
		close(s.exited)
	}()
	if err := <-started; err != nil {
		return fmt.Errorf("dovecottest: start %s: %w", s.bin, err)
	}

	if err := s.waitReady(); err != nil {
		// The start error matters more than a failure to clean up; the
		// processes die with Pdeathsig at the latest.
		_ = s.terminate()
		tail := s.startFailureText(logStart, outStart)
		if strings.Contains(tail, "Address already in use") {
			return fmt.Errorf("dovecottest: %w: %w\n%s", errPortInUse, err, tail)
		}
		return fmt.Errorf("%w\n%s", err, tail)
	}
	return nil
}

// waitReady waits until IMAP accepts a login (and POP3 greets), the master
// exits, or the start timeout passes.
func (s *Server) waitReady() error {
	deadline := time.Now().Add(s.opts.StartTimeout)
	var lastErr error
	for {
		select {
		case <-s.exited:
			return fmt.Errorf("dovecottest: dovecot exited during start-up: %v", s.waitErr)
		default:
		}
		lastErr = s.probeIMAP(deadline)
		if lastErr == nil && s.POP3Addr != "" {
			lastErr = probeGreeting(s.POP3Addr, "+OK", deadline)
		}
		if lastErr == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("dovecottest: dovecot not ready after %v: %w", s.opts.StartTimeout, lastErr)
		}
		select {
		case <-s.exited:
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// probeIMAP reads the greeting and logs in, which checks the passdb, the
// userdb and the mail directory in one go.
func (s *Server) probeIMAP(deadline time.Time) error {
	conn, err := net.DialTimeout("tcp", s.IMAPAddr, time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(deadline)
	r := bufio.NewReader(conn)
	line, err := r.ReadString('\n')
	if err != nil {
		return fmt.Errorf("read IMAP greeting: %w", err)
	}
	// "* OK Waiting for authentication process to respond.." comes first
	// while the auth process is starting; the real greeting follows.
	for strings.Contains(line, "Waiting for authentication") {
		if line, err = r.ReadString('\n'); err != nil {
			return fmt.Errorf("read IMAP greeting: %w", err)
		}
	}
	if !strings.HasPrefix(line, "* OK") {
		return fmt.Errorf("unexpected IMAP greeting %q", strings.TrimSpace(line))
	}
	fmt.Fprintf(conn, "p1 LOGIN %q %q\r\np2 LOGOUT\r\n", s.User, s.Password)
	for {
		line, err = r.ReadString('\n')
		if err != nil {
			return fmt.Errorf("IMAP probe login: %w", err)
		}
		if strings.HasPrefix(line, "p1 ") {
			if !strings.HasPrefix(line, "p1 OK") {
				return fmt.Errorf("IMAP probe login failed: %s", strings.TrimSpace(line))
			}
			return nil
		}
	}
}

func probeGreeting(addr, prefix string, deadline time.Time) error {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(deadline)
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return fmt.Errorf("read greeting from %s: %w", addr, err)
	}
	if !strings.HasPrefix(line, prefix) {
		return fmt.Errorf("unexpected greeting %q from %s", strings.TrimSpace(line), addr)
	}
	if prefix == "+OK" {
		io.WriteString(conn, "QUIT\r\n")
	}
	return nil
}

// startFailureText returns what Dovecot printed and logged since the
// failed start began.
func (s *Server) startFailureText(logStart, outStart int64) string {
	var b strings.Builder
	if out := strings.TrimSpace(tailString(readFrom(s.outPath(), outStart), 20)); out != "" {
		fmt.Fprintf(&b, "dovecot output:\n%s\n", out)
	}
	logTail := tailString(readFrom(s.LogPath, logStart), 20)
	if strings.TrimSpace(logTail) == "" {
		logTail = "(nothing logged)"
	}
	fmt.Fprintf(&b, "tail of %s:\n%s", s.LogPath, logTail)
	return b.String()
}

// LogTail returns the last n lines of the Dovecot log.
func (s *Server) LogTail(n int) string {
	return tailString(readFrom(s.LogPath, 0), n)
}

// readFrom returns the file from offset off, at most its last MiB.
func readFrom(path string, off int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size()-off > 1<<20 {
		off = fi.Size() - 1<<20
	}
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return ""
	}
	b, _ := io.ReadAll(f)
	return string(b)
}

func tailString(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// freePort returns a port on 127.0.0.1 that was free a moment ago. Another
// process may take it before Dovecot binds it; launch then retries.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("dovecottest: pick a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// MasterPID returns the pid recorded in base_dir/master.pid, or the pid of
// the started process if the file is missing.
func (s *Server) MasterPID() int {
	if b, err := os.ReadFile(filepath.Join(s.BaseDir, "master.pid")); err == nil {
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 0 {
			return pid
		}
	}
	if s.cmd != nil && s.cmd.Process != nil {
		return s.cmd.Process.Pid
	}
	return 0
}

// Stop stops the server: SIGTERM to the master (SIGKILL after a few
// seconds), waits until the master and every process it started are gone
// and the ports are closed, then removes base_dir. It is idempotent.
func (s *Server) Stop() error {
	s.stopOnce.Do(func() { s.stopErr = s.stop() })
	return s.stopErr
}

func (s *Server) stop() error {
	var errs []error
	if s.cmd != nil && s.cmd.Process != nil {
		if err := s.terminate(); err != nil {
			errs = append(errs, err)
		}
	}
	for _, addr := range []string{s.IMAPAddr, s.POP3Addr} {
		if addr != "" {
			if err := waitPortClosed(addr, stopTimeout); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if err := s.removeBase(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// terminate stops the master and every process it started. The master
// alone takes a second to shut down and leaves mail processes with open
// connections running for ten more seconds, so the children get SIGTERM
// at the same time.
func (s *Server) terminate() error {
	var errs []error
	pid := s.cmd.Process.Pid
	if p := s.MasterPID(); p != pid {
		// With -F the pid file names our child; anything else is
		// unexpected, and not ours to kill.
		errs = append(errs, fmt.Errorf("dovecottest: master.pid says %d, started process is %d", p, pid))
	}
	children := make(map[int]uint64)
	collect := func() {
		var found []proc
		select {
		case <-s.exited:
			// Reaped: the pid may have been reused; orphaned children
			// are still found by their process title.
		default:
			found = childProcs(pid)
		}
		found = append(found, instanceProcs(s.instance)...)
		for _, c := range found {
			if _, ok := children[c.pid]; !ok && c.pid != pid {
				children[c.pid] = c.start
				signalIfSame(c.pid, c.start, syscall.SIGTERM)
			}
		}
	}

	// Signal through os.Process: it refuses once the pid has been reaped
	// and might belong to another process.
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		errs = append(errs, fmt.Errorf("dovecottest: signal master %d: %w", pid, err))
	}
	collect()
	if !s.waitExit(stopTimeout, collect) {
		s.cmd.Process.Signal(syscall.SIGKILL)
		for cpid, start := range children {
			signalIfSame(cpid, start, syscall.SIGKILL)
		}
		if !s.waitExit(stopTimeout, nil) {
			errs = append(errs, fmt.Errorf("dovecottest: master %d did not exit", pid))
		}
	}
	collect()

	if left := waitGone(children, stopTimeout); len(left) > 0 {
		for cpid, start := range left {
			signalIfSame(cpid, start, syscall.SIGKILL)
		}
		if left = waitGone(left, stopTimeout); len(left) > 0 {
			errs = append(errs, fmt.Errorf("dovecottest: dovecot processes still running: %v", mapKeys(left)))
		}
	}
	return errors.Join(errs...)
}

// waitExit waits for the master to be reaped, calling poll meanwhile.
func (s *Server) waitExit(d time.Duration, poll func()) bool {
	timeout := time.After(d)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-s.exited:
			return true
		case <-timeout:
			return false
		case <-tick.C:
			if poll != nil {
				poll()
			}
		}
	}
}

func waitPortClosed(addr string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		conn, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err != nil {
			return nil
		}
		conn.Close()
		if time.Now().After(deadline) {
			return fmt.Errorf("dovecottest: %s still accepts connections after stop", addr)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (s *Server) removeBase() error {
	if s.BaseDir == "" {
		return nil
	}
	if err := os.RemoveAll(s.BaseDir); err != nil {
		return fmt.Errorf("dovecottest: %w", err)
	}
	return nil
}

// Dial returns a client logged in over plain IMAP, closed at cleanup.
func (s *Server) Dial(t testing.TB) *imapclient.Client {
	t.Helper()
	c, err := s.Connect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// Connect returns a client logged in over plain IMAP. The caller closes it.
// ctx bounds the dial and the login only.
func (s *Server) Connect(ctx context.Context) (*imapclient.Client, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", s.IMAPAddr)
	if err != nil {
		return nil, fmt.Errorf("dovecottest: dial %s: %w", s.IMAPAddr, err)
	}
	c := imapclient.New(conn, nil)
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	err = c.Login(s.User, s.Password).Wait()
	if !stop() {
		err = ctx.Err()
	}
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("dovecottest: login to %s: %w", s.IMAPAddr, err)
	}
	return c, nil
}

// MaildirRoot returns the user's Maildir (the INBOX; other folders are
// Maildir++ subdirectories such as ".Lists.golang").
func (s *Server) MaildirRoot() string {
	return filepath.Join(s.Dir, "home", s.User, "Maildir")
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

func (s *Server) mkdirMail(dir string) error {
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("dovecottest: %w", err)
	}
	if err := os.Chown(dir, s.uid, s.gid); err != nil {
		return fmt.Errorf("dovecottest: %w", err)
	}
	return nil
}

// proc identifies a process by pid and start time, so that a reused pid is
// not mistaken for it.
type proc struct {
	pid   int
	start uint64
}

// procStat returns the state, parent pid and start time of pid.
func procStat(pid int) (state byte, ppid int, start uint64, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, 0, false
	}
	// The command name may contain spaces and parentheses; fields resume
	// after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state), f[1] field 4 (ppid), f[19] field 22
	// (starttime).
	if len(f) < 20 {
		return 0, 0, 0, false
	}
	ppid, err1 := strconv.Atoi(f[1])
	start, err2 := strconv.ParseUint(f[19], 10, 64)
	if err1 != nil || err2 != nil || len(f[0]) == 0 {
		return 0, 0, 0, false
	}
	return f[0][0], ppid, start, true
}

func childProcs(parent int) []proc {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []proc
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if _, ppid, start, ok := procStat(pid); ok && ppid == parent {
			out = append(out, proc{pid, start})
		}
	}
	return out
}

// alive reports whether the process pid with the given start time still
// runs (a zombie counts as gone).
func alive(pid int, start uint64) bool {
	state, _, st, ok := procStat(pid)
	return ok && st == start && state != 'Z' && state != 'X'
}

func signalIfSame(pid int, start uint64, sig syscall.Signal) {
	if alive(pid, start) {
		syscall.Kill(pid, sig)
	}
}

// instanceProcs returns the live processes whose title names the instance
// ("dovecot-<instance>/imap ...").
func instanceProcs(instance string) []proc {
	if instance == "" {
		return nil
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	marker := []byte("dovecot-" + instance + "/")
	var out []proc
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil || !bytes.HasPrefix(cmdline, marker) {
			continue
		}
		if state, _, start, ok := procStat(pid); ok && state != 'Z' && state != 'X' {
			out = append(out, proc{pid, start})
		}
	}
	return out
}

// waitGone waits until none of procs is alive and returns those that are.
func waitGone(procs map[int]uint64, d time.Duration) map[int]uint64 {
	deadline := time.Now().Add(d)
	for {
		left := make(map[int]uint64)
		for pid, start := range procs {
			if alive(pid, start) {
				left[pid] = start
			}
		}
		if len(left) == 0 || time.Now().After(deadline) {
			return left
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func mapKeys(m map[int]uint64) []int {
	var ks []int
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}
