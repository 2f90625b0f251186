package main

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"mailfs/internal/dovecottest"
	"mailfs/internal/testenv"
)

// account is a configured account for the CLI tests: a config file, a
// private cache directory, the password in the environment.
type account struct {
	cfg, cacheHome string
	env            []string
}

func newAccount(t *testing.T, dc *dovecottest.Server, protocol string, extra string) account {
	t.Helper()
	addr := dc.IMAPAddr
	if protocol == "pop3" {
		addr = dc.POP3Addr
	}
	host, port, _ := strings.Cut(addr, ":")
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.toml")
	err := os.WriteFile(cfg, []byte(fmt.Sprintf(`
[accounts.test]
protocol = %q
host = %q
port = %s
tls = "none"
username = %q
password_env = "MAILFS_TEST_PASSWORD"
%s
`, protocol, host, port, dc.User, extra)), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	return account{cfg: cfg, cacheHome: filepath.Join(dir, "cache"),
		env: []string{"MAILFS_TEST_PASSWORD=" + dc.Password, "XDG_CACHE_HOME=" + filepath.Join(dir, "cache")}}
}

func (a account) mount(t *testing.T, mnt string, flags ...string) *daemon {
	t.Helper()
	os.MkdirAll(mnt, 0o755)
	args := append([]string{"mount", "--config", a.cfg}, flags...)
	args = append(args, "test", mnt)
	return start(t, mnt, nil, a.env, args...)
}

// readAll returns every file of dir by name.
func readAll(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	f, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, n := range names {
		if _, dup := out[n]; dup {
			t.Errorf("%s listed twice", n)
		}
		b, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			t.Fatalf("read %s: %v", n, err)
		}
		st, err := os.Stat(filepath.Join(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		if st.Size() != int64(len(b)) {
			t.Errorf("%s: stat size %d, read %d bytes", n, st.Size(), len(b))
		}
		out[n] = b
	}
	return out
}

// pop3Bytes is what a POP3 RETR of a message holds, dot-stuffing undone:
// the message as Dovecot serves it over IMAP, and a final CRLF where the
// message had none (the line before the terminating "." must end).
func pop3Bytes(imapBytes []byte) []byte {
	if bytes.HasSuffix(imapBytes, []byte("\r\n")) {
		return imapBytes
	}
	return append(slices.Clone(imapBytes), '\r', '\n')
}

// sameMessages checks that got holds exactly the messages of want, each
// once, whatever their names.
func sameMessages(t *testing.T, what string, got map[string][]byte, want [][]byte) {
	t.Helper()
	count := map[string]int{}
	for _, w := range want {
		count[string(w)]++
	}
	for name, b := range got {
		if count[string(b)] == 0 {
			t.Errorf("%s: %s is none of the expected messages (%d bytes)", what, name, len(b))
			continue
		}
		count[string(b)]--
	}
	missing := 0
	for _, c := range count {
		missing += c
	}
	if missing > 0 || len(got) != len(want) {
		t.Errorf("%s: %d files, want %d (%d expected messages missing)", what, len(got), len(want), missing)
	}
}

// TestPOP3CorpusOffline: the shared corpus through a POP3 mount on
// Dovecot, byte-exact; then the server stops and a --offline mount serves
// the same bytes from the cache.
func TestPOP3CorpusOffline(t *testing.T) {
	needFUSE(t)
	corpus := testenv.Corpus(t)
	dc := dovecottest.Start(t, dovecottest.Options{POP3: true})
	ctx := context.Background()
	var raws [][]byte
	for _, c := range corpus {
		raws = append(raws, c.Data)
	}
	if _, err := dc.Append(ctx, "INBOX", raws); err != nil {
		t.Fatal(err)
	}
	served, err := dc.FetchAll(ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	var want [][]byte
	for _, b := range served {
		want = append(want, pop3Bytes(b))
	}
	a := newAccount(t, dc, "pop3", "")
	mnt := filepath.Join(t.TempDir(), "mnt")
	d := a.mount(t, mnt)
	sameMessages(t, "online", readAll(t, filepath.Join(mnt, "INBOX")), want)
	// The cache belongs to the mount: a sync meanwhile is told so.
	out, code := runCLI(t, a.env, "sync", "--config", a.cfg, "test")
	if code != exitMount || !strings.Contains(out, "in use by another mount") {
		t.Errorf("sync while mounted: exit %d, %q; want %d and 'in use by another mount'", code, out, exitMount)
	}
	d.stop(t)

	if err := dc.Stop(); err != nil {
		t.Fatal(err)
	}
	d = a.mount(t, mnt, "--offline")
	sameMessages(t, "offline", readAll(t, filepath.Join(mnt, "INBOX")), want)
	d.stop(t)
}

// TestSyncKilledResumes: kill -9 in the middle of mailfs sync, run it
// again: every message is in the cache exactly once and byte-exact.
func TestSyncKilledResumes(t *testing.T) {
	needFUSE(t)
	dc := dovecottest.Start(t, dovecottest.Options{})
	ctx := context.Background()
	var raws [][]byte
	for i := range 400 {
		raws = append(raws, []byte(fmt.Sprintf("Subject: m%d\r\nMessage-ID: <%d@example.org>\r\n\r\n%s\r\n", i, i, strings.Repeat("body line\r\n", 200+i*40))))
	}
	if _, err := dc.Append(ctx, "INBOX", raws); err != nil {
		t.Fatal(err)
	}
	a := newAccount(t, dc, "imap", "")
	for i, delay := range []time.Duration{30 * time.Millisecond, 120 * time.Millisecond, 300 * time.Millisecond} {
		cmd := exec.Command(binary, "sync", "--config", a.cfg, "test")
		cmd.Env = append(os.Environ(), a.env...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(delay)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		t.Logf("sync %d killed after %v", i, delay)
	}
	out, code := runCLI(t, a.env, "sync", "--config", a.cfg, "test")
	if code != 0 {
		t.Fatalf("sync after kills: exit %d: %s", code, out)
	}
	// A second run finds nothing to do.
	cmd := exec.Command(binary, "sync", "--config", a.cfg, "test")
	cmd.Env = append(os.Environ(), a.env...)
	stdout, err := cmd.Output()
	if err != nil || !strings.Contains(string(stdout), ": 0 messages") {
		t.Errorf("second sync: %q, %v; want 0 messages fetched", stdout, err)
	}
	dc.Stop()
	mnt := filepath.Join(t.TempDir(), "mnt")
	d := a.mount(t, mnt, "--offline")
	sameMessages(t, "offline after resumed sync", readAll(t, filepath.Join(mnt, "INBOX")), raws)
	d.stop(t)
}

// TestUIDValidityWithCache: a folder recreated on Dovecot gets a new
// UIDVALIDITY and reuses UIDs; a body cached under the old one is never
// served, online or offline.
func TestUIDValidityWithCache(t *testing.T) {
	needFUSE(t)
	dc := dovecottest.Start(t, dovecottest.Options{})
	ctx := context.Background()
	if err := dc.CreateFolder(ctx, "Work"); err != nil {
		t.Fatal(err)
	}
	old := []byte("Subject: old\r\n\r\nthe old message\r\n")
	if _, err := dc.Append(ctx, "Work", [][]byte{old}); err != nil {
		t.Fatal(err)
	}
	a := newAccount(t, dc, "imap", "")
	if out, code := runCLI(t, a.env, "sync", "--config", a.cfg, "test"); code != 0 {
		t.Fatalf("sync: %s", out)
	}
	c := dc.Dial(t)
	if err := c.Delete("Work").Wait(); err != nil {
		t.Fatal(err)
	}
	if err := dc.CreateFolder(ctx, "Work"); err != nil {
		t.Fatal(err)
	}
	fresh := []byte("Subject: new\r\n\r\nanother message under the same UID\r\n")
	if _, err := dc.Append(ctx, "Work", [][]byte{fresh}); err != nil {
		t.Fatal(err)
	}
	mnt := filepath.Join(t.TempDir(), "mnt")
	d := a.mount(t, mnt)
	if got, err := os.ReadFile(filepath.Join(mnt, "Work", "1.eml")); err != nil || !bytes.Equal(got, fresh) {
		t.Fatalf("online after the change: got %q, %v; want %q", got, err, fresh)
	}
	d.stop(t)
	dc.Stop()
	d = a.mount(t, mnt, "--offline")
	got := readAll(t, filepath.Join(mnt, "Work"))
	for name, b := range got {
		if bytes.Equal(b, old) {
			t.Errorf("offline: %s serves the message of the old UIDVALIDITY", name)
		}
	}
	d.stop(t)
}

// TestDeleteAfterDownloadKilled: sync with delete_after_download, killed at
// random points between download and DELE: every message is on the server
// or in the cache, never lost; a final run empties the server.
func TestDeleteAfterDownloadKilled(t *testing.T) {
	needFUSE(t)
	dc := dovecottest.Start(t, dovecottest.Options{POP3: true})
	ctx := context.Background()
	var raws [][]byte
	for i := range 300 {
		raws = append(raws, []byte(fmt.Sprintf("Subject: d%d\r\n\r\n%s\r\n", i, strings.Repeat("x", 500+i*97))))
	}
	if _, err := dc.Append(ctx, "INBOX", raws); err != nil {
		t.Fatal(err)
	}
	a := newAccount(t, dc, "pop3", "delete_after_download = true")
	rng := rand.New(rand.NewPCG(1, 2))
	kills := 5
	if n, err := strconv.Atoi(os.Getenv("MAILFS_TEST_KILLS")); err == nil {
		kills = n // more, to look for rare failures
	}
	for i := range kills {
		cmd := exec.Command(binary, "sync", "--config", a.cfg, "test")
		cmd.Env = append(os.Environ(), a.env...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		delay := time.Duration(20+rng.IntN(400)) * time.Millisecond
		time.Sleep(delay)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		checkNothingLost(t, dc, a, raws, fmt.Sprintf("after kill %d at %v", i, delay))
	}
	if out, code := runCLI(t, a.env, "sync", "--config", a.cfg, "test"); code != 0 {
		t.Fatalf("final sync: %s", out)
	}
	onServer, err := dc.FetchAll(ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	if len(onServer) != 0 {
		t.Errorf("after a complete sync with delete_after_download: %d messages left on the server", len(onServer))
	}
	checkNothingLost(t, dc, a, raws, "at the end")
}

// checkNothingLost: the union of the server's maildrop and the cache holds
// every message.
func checkNothingLost(t *testing.T, dc *dovecottest.Server, a account, raws [][]byte, when string) {
	t.Helper()
	onServer, err := dc.FetchAll(context.Background(), "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, b := range onServer {
		have[string(b)] = true
	}
	mnt := filepath.Join(t.TempDir(), "mnt")
	d := a.mount(t, mnt, "--offline")
	cached := readAll(t, filepath.Join(mnt, "INBOX"))
	d.stop(t)
	for _, b := range cached {
		have[string(b)] = true
	}
	lost := 0
	for _, r := range raws {
		if !have[string(r)] {
			lost++
		}
	}
	t.Logf("%s: %d on the server, %d cached", when, len(onServer), len(cached))
	if lost > 0 {
		t.Errorf("%s: %d messages neither on the server nor in the cache", when, lost)
	}
}
