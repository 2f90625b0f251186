package main

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"mailfs/internal/dovecottest"
)

// vmHWM returns the peak resident set size of process pid, in bytes.
func vmHWM(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				t.Fatalf("VmHWM %q: %v", rest, err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc/PID/status")
	return 0
}

// TestDraftNeverPartial: a file written into a folder is appended whole or
// not at all. A cp that failed with EFBIG appended its first 256 MiB; a
// writer killed before closing had its part appended; drafts were held in
// memory (RSS 1.2 GB for one cp).
func TestDraftNeverPartial(t *testing.T) {
	needFUSE(t)
	needTools(t, "cp", "sh", "head")
	// Dovecot does not enforce it, but mailfs takes what it advertises.
	dc := dovecottest.Start(t, dovecottest.Options{ExtraConfig: "imap_capability = +APPENDLIMIT=1048576\n"})
	appendMessages(t, dc, "INBOX", [][]byte{message("inbox", 1, 1, 1)})
	a := newAccount(t, dc, "imap", "")
	mnt := filepath.Join(t.TempDir(), "mnt")
	mountAccount(t, a, mnt)
	before := snapshot(t, dc)

	// Over APPENDLIMIT: cp fails, nothing reaches the server.
	src := filepath.Join(t.TempDir(), "big.eml")
	big := append([]byte("Subject: big\r\n\r\n"), bytes.Repeat([]byte("0123456789abcdef\r\n"), 3<<20/18)...)
	if err := os.WriteFile(src, big, 0o644); err != nil {
		t.Fatal(err)
	}
	r := runTool(t, mnt, "cp", src, "INBOX/big.eml")
	if r.code == 0 || !strings.Contains(r.stderr, "too large") {
		t.Errorf("cp of 3 MiB where the server takes 1 MiB: %s; want a failure with EFBIG (File too large)", r)
	}
	wantChanges(t, "cp over the limit", before, snapshot(t, dc))
	if _, err := os.Stat(filepath.Join(mnt, "INBOX", "big.eml")); !os.IsNotExist(err) {
		t.Errorf("the failed file is still there: %v", err)
	}

	// A writer killed with the file open: nothing appended.
	killWriter := func(mnt string, script string) {
		t.Helper()
		cmd := exec.Command("sh", "-c", script)
		cmd.Dir = mnt
		stdin, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		out := &syncBuffer{mu: make(chan struct{}, 1)}
		cmd.Stdout = out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		io.WriteString(stdin, "Subject: half\r\n\r\nfirst half\r\n")
		deadline := time.Now().Add(10 * time.Second)
		for !strings.Contains(out.String(), "written") && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		time.Sleep(200 * time.Millisecond) // the part written, the file open
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		stdin.Close()
		time.Sleep(300 * time.Millisecond)
	}
	// cat writes what it reads, and is killed with its output open.
	killWriter(mnt, `echo written; exec cat >INBOX/killed.eml`)
	wantChanges(t, "writer killed", before, snapshot(t, dc))
	if _, err := os.Stat(filepath.Join(mnt, "INBOX", "killed.eml")); !os.IsNotExist(err) {
		t.Errorf("the file of the killed writer is still there: %v", err)
	}

	// A file within the limit is appended whole.
	small := message("small", 1, 200, 3)
	if err := os.WriteFile(src, small, 0o644); err != nil {
		t.Fatal(err)
	}
	mustRun(t, mnt, "cp", src, "INBOX/small.eml")
	after := snapshot(t, dc)
	if n := len(after["INBOX"]); n != 2 || !bytes.Equal(after["INBOX"][1].Body, serverForm(small)) {
		t.Errorf("after cp of a small file: %d messages in INBOX, want the file appended as it is", n)
	}
}

// TestDraftMemoryBounded: a large file written into a folder is spooled to
// disk, not held in memory, and appended whole.
func TestDraftMemoryBounded(t *testing.T) {
	needFUSE(t)
	needTools(t, "cp")
	dc := dovecottest.Start(t, dovecottest.Options{})
	a := newAccount(t, dc, "imap", "")
	mnt := filepath.Join(t.TempDir(), "mnt")
	d := mountAccount(t, a, mnt)
	line := []byte("The quick brown fox jumps over the lazy dog 0123456789\r\n")
	src := filepath.Join(t.TempDir(), "large.eml")
	// A first file of 4 MiB warms the buffers FUSE requests and the
	// upload use: the peak after it is the base what grows is measured
	// from.
	warm := append([]byte("Subject: warm\r\n\r\n"), bytes.Repeat(line, (4<<20)/len(line))...)
	if err := os.WriteFile(src, warm, 0o644); err != nil {
		t.Fatal(err)
	}
	mustRun(t, mnt, "cp", src, "INBOX/warm.eml")
	base := vmHWM(t, d.cmd.Process.Pid)

	const size = 160 << 20
	large := append([]byte("Subject: large\r\n\r\n"), bytes.Repeat(line, size/len(line))...)
	if err := os.WriteFile(src, large, 0o644); err != nil {
		t.Fatal(err)
	}
	mustRun(t, mnt, "cp", src, "INBOX/large.eml")
	peak := vmHWM(t, d.cmd.Process.Pid)
	t.Logf("cp of a %d MiB file: daemon peak RSS %d MiB (%d MiB before)", size>>20, peak>>20, base>>20)
	// Held in memory, the file alone would be 160 MiB; what grows is
	// the garbage collector's slack (with the race detector's shadow),
	// about 60 MiB whatever the size.
	if grew := peak - base; grew > size/2 {
		t.Errorf("the daemon's peak RSS grew by %d MiB for a %d MiB file; want it bounded (< %d MiB)", grew>>20, size>>20, size>>21)
	}
	after := snapshot(t, dc)
	if n := len(after["INBOX"]); n != 2 || !bytes.Equal(after["INBOX"][1].Body, large) {
		t.Fatalf("after cp: %d messages, want the file appended whole", n)
	}
}

// TestDraftKilledAfterEarlierClose: a shell writing through a descriptor
// it keeps (exec 3>f) closes a duplicate after each command, and each close
// appends what is there; when the shell is then killed, that partial
// version is deleted again.
func TestDraftKilledAfterEarlierClose(t *testing.T) {
	needFUSE(t)
	needTools(t, "sh", "sleep")
	dc := dovecottest.Start(t, dovecottest.Options{})
	a := newAccount(t, dc, "imap", `expunge = "immediate"`)
	mnt := filepath.Join(t.TempDir(), "mnt")
	mountAccount(t, a, mnt)
	before := snapshot(t, dc)
	cmd := exec.Command("sh", "-c", `exec 3>INBOX/part.eml; printf 'Subject: part\r\n\r\nfirst part\r\n' >&3; echo written; exec sleep 60`)
	cmd.Dir = mnt
	out := &syncBuffer{mu: make(chan struct{}, 1)}
	cmd.Stdout = out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), "written") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	if mid := snapshot(t, dc); len(mid["INBOX"]) != 1 {
		t.Fatalf("after the first close of a duplicate: %d messages, want the part appended", len(mid["INBOX"]))
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	time.Sleep(300 * time.Millisecond)
	wantChanges(t, "shell killed", before, snapshot(t, dc))
}
