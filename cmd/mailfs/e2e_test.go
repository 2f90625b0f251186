package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"mailfs/internal/dovecottest"
	"mailfs/internal/mailgen"
	"mailfs/internal/testenv"
)

// These tests run the mailfs binary in a subprocess and real programs (ls,
// grep, getfattr) on its mount: never exec onto a mount served by the test
// process itself.

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "mailfs-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "mailfs")
	out, err := exec.Command("go", "build", "-race", "-o", binary, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build: %v\n%s", err, out)
		os.Exit(1)
	}
	os.Chmod(dir, 0o755)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func needFUSE(t *testing.T) {
	t.Helper()
	if _, err := os.Stat("/dev/fuse"); err != nil {
		testenv.SkipOrFail(t, "no /dev/fuse")
	}
	for _, tool := range []string{"fusermount3", "getfattr", "grep", "ls"} {
		if _, err := exec.LookPath(tool); err != nil {
			testenv.SkipOrFail(t, "%s not installed", tool)
		}
	}
}

// daemon is a running `mailfs mount` or `mailfs demo`.
type daemon struct {
	cmd    *exec.Cmd
	mnt    string
	stdout *syncBuffer
	stderr *syncBuffer
	done   chan error
}

type syncBuffer struct {
	mu chan struct{}
	b  bytes.Buffer
}

func newSyncBuffer() *syncBuffer { return &syncBuffer{mu: make(chan struct{}, 1)} }
func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu <- struct{}{}
	defer func() { <-s.mu }()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string {
	s.mu <- struct{}{}
	defer func() { <-s.mu }()
	return s.b.String()
}

// start runs the binary with args and waits until mnt is mounted. cred,
// if set, runs it as that user.
func start(t *testing.T, mnt string, cred *syscall.Credential, env []string, args ...string) *daemon {
	t.Helper()
	d := &daemon{mnt: mnt, stdout: newSyncBuffer(), stderr: newSyncBuffer(), done: make(chan error, 1)}
	d.cmd = exec.Command(binary, args...)
	d.cmd.Stdout = d.stdout
	d.cmd.Stderr = d.stderr
	d.cmd.Env = append(os.Environ(), env...)
	if cred != nil {
		d.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		d.cmd.Dir = "/"
	}
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.done <- d.cmd.Wait() }()
	deadline := time.Now().Add(20 * time.Second)
	for !mounted(mnt) {
		select {
		case err := <-d.done:
			t.Fatalf("mailfs exited before mounting: %v\n%s", err, d.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			d.cmd.Process.Kill()
			t.Fatalf("not mounted after 20 s\n%s", d.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Cleanup(func() {
		if mounted(mnt) {
			exec.Command("fusermount3", "-u", "-z", mnt).Run()
		}
		select {
		case <-d.done:
		default:
			d.cmd.Process.Kill()
			<-d.done
		}
	})
	return d
}

// stop interrupts the daemon like Ctrl-C and checks that it unmounted and
// exited cleanly.
func (d *daemon) stop(t *testing.T) {
	t.Helper()
	d.cmd.Process.Signal(os.Interrupt)
	select {
	case err := <-d.done:
		d.done <- err
		if err != nil {
			t.Errorf("mailfs exited with %v after Ctrl-C\n%s", err, d.stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("mailfs still running 15 s after Ctrl-C\n%s", d.stderr.String())
	}
	if mounted(d.mnt) {
		t.Errorf("%s still mounted after Ctrl-C", d.mnt)
	}
}

func mounted(dir string) bool {
	ok, _ := isMountpoint(dir)
	return ok
}

func sh(t *testing.T, cred *syscall.Credential, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}

// checkDemo runs what the demo tells a newcomer to try.
func checkDemo(t *testing.T, d *daemon, cred *syscall.Credential) {
	base := filepath.Dir(d.mnt)
	mnt := filepath.Join(base, "imap")
	demo := mailgen.Demo()
	counts := map[string]int{}
	for _, m := range demo {
		counts[m.Folder]++
	}
	for folder, n := range counts {
		out := sh(t, cred, "ls", "-l", filepath.Join(mnt, folder))
		files := 0
		for _, line := range strings.Split(out, "\n") {
			if strings.HasPrefix(line, "-r--r--r--") && strings.HasSuffix(line, ".eml") {
				files++
			}
		}
		if files != n {
			t.Errorf("ls -l %s: %d message files, want %d\n%s", folder, files, n, out)
		}
	}
	// grep -r finds exactly the messages that contain the word.
	want := 0
	for _, m := range demo {
		if bytes.Contains(m.Raw, []byte("invoice")) {
			want++
		}
	}
	out := sh(t, cred, "grep", "-rl", "invoice", mnt)
	if got := len(strings.Fields(out)); got != want || want == 0 {
		t.Errorf("grep -rl invoice: %d files, want %d", got, want)
	}
	out = sh(t, cred, "getfattr", "-d", filepath.Join(mnt, "INBOX", "1.eml"))
	for _, attr := range []string{"user.mail.uid=\"1\"", "user.mail.subject=", "user.mail.from=", "user.mail.flags="} {
		if !strings.Contains(out, attr) {
			t.Errorf("getfattr -d: no %s in\n%s", attr, out)
		}
	}
	if !strings.Contains(d.stdout.String(), "getfattr -d") {
		t.Errorf("the demo does not say what to try:\n%s", d.stdout.String())
	}

	// The POP3 side: INBOX only, one file per UIDL ('/' escaped), the
	// same bytes.
	inbox := map[string]bool{}
	for _, m := range demo {
		if m.Folder == "INBOX" {
			inbox[string(pop3Bytes(m.Raw))] = true
		}
	}
	pop := filepath.Join(base, "pop3", "INBOX")
	out = sh(t, cred, "ls", pop)
	names := strings.Fields(out)
	if len(names) != len(inbox) {
		t.Errorf("pop3 INBOX: %d files, want %d", len(names), len(inbox))
	}
	if !strings.Contains(out, "2026%2F11%2Fdemo-3.eml") {
		t.Errorf("pop3 INBOX: no escaped UIDL 2026%%2F11%%2Fdemo-3.eml in\n%s", out)
	}
	// getfattr -d on a POP3 message: the header fields, no uid or flags.
	out = sh(t, cred, "getfattr", "-d", filepath.Join(pop, "00000001.demo.eml"))
	if !strings.Contains(out, "user.mail.subject=") || strings.Contains(out, "user.mail.uid") || strings.Contains(out, "user.mail.flags") {
		t.Errorf("getfattr -d on a POP3 message:\n%s", out)
	}
	for _, name := range names {
		got := sh(t, cred, "cat", filepath.Join(pop, name))
		if !inbox[got] {
			t.Errorf("pop3 %s: content is none of the INBOX messages (%d bytes)", name, len(got))
		}
	}
}

func TestDemoAsRoot(t *testing.T) {
	needFUSE(t)
	if os.Geteuid() != 0 {
		testenv.SkipOrFail(t, "needs root")
	}
	base := filepath.Join(t.TempDir(), "mnt")
	d := start(t, filepath.Join(base, "pop3"), nil, nil, "demo", base)
	checkDemo(t, d, nil)
	d.stop(t)
}

func TestDemoAsOrdinaryUser(t *testing.T) {
	needFUSE(t)
	if os.Geteuid() != 0 {
		testenv.SkipOrFail(t, "needs root to switch to an ordinary user")
	}
	u, err := user.Lookup("nobody")
	if err != nil {
		testenv.SkipOrFail(t, "no user nobody")
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if f, err := os.Stat("/dev/fuse"); err != nil || f.Mode().Perm()&0o006 != 0o006 {
		testenv.SkipOrFail(t, "/dev/fuse is not usable by ordinary users (chmod 0666 /dev/fuse, as desktops ship it)")
	}
	base, err := os.MkdirTemp("", "mailfs-user-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	if err := os.Chown(base, uid, gid); err != nil {
		t.Fatal(err)
	}
	cred := &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	d := start(t, filepath.Join(base, "mnt", "pop3"), cred, []string{"HOME=" + base}, "demo", filepath.Join(base, "mnt"))
	checkDemo(t, d, cred)
	// Files belong to the mounting user (and, without allow_other, only
	// that user may enter the mount).
	if owner := strings.TrimSpace(sh(t, cred, "stat", "-c", "%u", filepath.Join(base, "mnt", "imap", "INBOX", "1.eml"))); owner != u.Uid {
		t.Errorf("owner: got uid %s, want %s", owner, u.Uid)
	}
	d.stop(t)
}

// TestMountDovecot mounts a configured account on a private Dovecot with
// the password from the environment, and checks the user-facing errors.
func TestMountDovecot(t *testing.T) {
	needFUSE(t)
	dc := dovecottest.Start(t, dovecottest.Options{})
	ctx := context.Background()
	if err := dc.CreateFolder(ctx, "Lists.golang"); err != nil {
		t.Fatal(err)
	}
	fixtures := mailgen.Fixtures()
	var raws [][]byte
	for _, m := range fixtures {
		raws = append(raws, m.Raw)
	}
	if _, err := dc.Append(ctx, "Lists.golang", raws); err != nil {
		t.Fatal(err)
	}
	host, port, _ := strings.Cut(dc.IMAPAddr, ":")
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.toml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`
[accounts.test]
protocol = "imap"
host = %q
port = %s
tls = "none"
username = %q
password_env = "MAILFS_TEST_PASSWORD"
`, host, port, dc.User)), 0o600)
	mnt := filepath.Join(dir, "mnt")
	os.Mkdir(mnt, 0o755)

	// A cache of its own, never the user's.
	env := []string{"MAILFS_TEST_PASSWORD=" + dc.Password, "XDG_CACHE_HOME=" + filepath.Join(dir, "cache")}
	d := start(t, mnt, nil, env, "mount", "--config", cfg, "test", mnt)
	served, err := dc.FetchAll(ctx, "Lists.golang")
	if err != nil {
		t.Fatal(err)
	}
	for uid, want := range served {
		got, err := os.ReadFile(filepath.Join(mnt, "Lists", "golang", fmt.Sprintf("%d.eml", uid)))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("uid %d: got %d bytes, %v; want %d bytes", uid, len(got), err, len(want))
		}
	}
	if out := sh(t, nil, "grep", "-rlc", "example", filepath.Join(mnt, "Lists")); len(strings.Fields(out)) == 0 {
		t.Errorf("grep -r over the mount found nothing")
	}
	// A second mount on the busy mount point: a clear error.
	out, code := runCLI(t, env, "mount", "--config", cfg, "test", mnt)
	if code != exitMount || !strings.Contains(out, "busy") {
		t.Errorf("mount on a busy mount point: exit %d, %q", code, out)
	}
	d.stop(t)

	// The errors a user meets, each one line naming what to fix.
	errCases := []struct {
		name string
		env  []string
		args []string
		code int
		want string
	}{
		{"wrong password", []string{"MAILFS_TEST_PASSWORD=wrong-pw-123"}, []string{"mount", "--config", cfg, "test", mnt}, exitAuth, "password"},
		{"unknown account", nil, []string{"mount", "--config", cfg, "nosuch", mnt}, exitConfig, `"test"`},
		{"missing mount point", []string{"MAILFS_TEST_PASSWORD=x"}, []string{"mount", "--config", cfg, "test", filepath.Join(dir, "nope")}, exitMount, "mkdir -p"},
		{"missing config", nil, []string{"mount", "--config", filepath.Join(dir, "none.toml"), "test", mnt}, exitConfig, "none.toml"},
		{"no password", nil, []string{"mount", "--config", cfg, "test", mnt}, exitConfig, "MAILFS_TEST_PASSWORD"},
		{"usage", nil, []string{"mount", "test"}, exitUsage, "usage"},
	}
	for _, c := range errCases {
		t.Run(c.name, func(t *testing.T) {
			env := append([]string{"XDG_CACHE_HOME=" + filepath.Join(dir, "cache")}, c.env...)
			if c.env == nil {
				env = append(env, "MAILFS_TEST_PASSWORD=")
			}
			out, code := runCLI(t, env, c.args...)
			if code != c.code {
				t.Errorf("exit code: got %d, want %d (%s)", code, c.code, out)
			}
			if !strings.Contains(out, c.want) {
				t.Errorf("message %q does not mention %q", out, c.want)
			}
			if strings.Contains(out, "wrong-pw-123") {
				t.Errorf("the message shows the password: %q", out)
			}
			if c.name != "usage" && strings.Count(strings.TrimSpace(out), "\n") != 0 {
				t.Errorf("message is not one line: %q", out)
			}
		})
	}
	if mounted(mnt) {
		t.Errorf("%s left mounted", mnt)
	}
}

// runCLI runs the binary to completion and returns its stderr and exit code.
func runCLI(t *testing.T, env []string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.Stdout = io.Discard
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	// Keep the last line: the one-line error.
	sc := bufio.NewScanner(strings.NewReader(stderr.String()))
	var lines []string
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if len(lines) == 0 {
		return "", code
	}
	if args[0] == "mount" && len(args) == 2 {
		return stderr.String(), code
	}
	return lines[len(lines)-1], code
}
