package fs

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"mailfs/internal/header"
	"mailfs/internal/mailgen"
	"mailfs/internal/memserver"
	"mailfs/remote"
)

func fixtureMailbox() []mailgen.Message {
	msgs := mailgen.Fixtures()
	for i := range msgs {
		if i%3 == 1 {
			msgs[i].Folder = "Lists/golang"
		}
	}
	msgs = append(msgs, mailgen.Message{Folder: "Entwürfe", Date: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Flags: []string{`\Draft`, `\Seen`}, Raw: []byte("Subject: draft\r\n\r\nhi\r\n")})
	return msgs
}

func TestMountLayoutAndBytes(t *testing.T) {
	msgs := fixtureMailbox()
	_, acct := startMem(t, msgs)
	dir, _ := mount(t, acct, Options{})

	top, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range top {
		names = append(names, e.Name())
	}
	if want := []string{"Entwürfe", "INBOX", "Lists"}; !slices.Equal(names, want) {
		t.Fatalf("root: got %v, want %v", names, want)
	}
	if st, err := os.Stat(filepath.Join(dir, "Lists", "golang")); err != nil || !st.IsDir() {
		t.Fatalf("Lists/golang: got %v, %v, want a directory", st, err)
	}

	// Every message: name <uid>.eml in UID order, stat size == bytes ==
	// what was appended, mtime == INTERNALDATE.
	byFolder := map[string][]mailgen.Message{}
	for _, m := range msgs {
		byFolder[m.Folder] = append(byFolder[m.Folder], m)
	}
	for folder, want := range byFolder {
		var files []string
		for _, name := range readdirnames(t, filepath.Join(dir, folder)) {
			if strings.HasSuffix(name, ".eml") {
				files = append(files, name)
			}
		}
		if len(files) != len(want) {
			t.Fatalf("%s: got %d files, want %d", folder, len(files), len(want))
		}
		for i, name := range files {
			if wantName := strconv.Itoa(i+1) + ".eml"; name != wantName {
				t.Fatalf("%s: entry %d: got %q, want %q", folder, i, name, wantName)
			}
			p := filepath.Join(dir, folder, name)
			st, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want[i].Raw) {
				t.Errorf("%s: content differs from the appended message (%d vs %d bytes)", p, len(got), len(want[i].Raw))
			}
			if st.Size() != int64(len(got)) {
				t.Errorf("%s: stat size %d, read %d bytes", p, st.Size(), len(got))
			}
			if st.Mode().Perm() != 0o444 || !st.Mode().IsRegular() {
				t.Errorf("%s: mode %v, want -r--r--r--", p, st.Mode())
			}
			if !st.ModTime().Equal(want[i].Date) {
				t.Errorf("%s: mtime %v, want %v", p, st.ModTime(), want[i].Date)
			}
		}
	}
}

func TestLsCostsOneListingPerFolder(t *testing.T) {
	msgs := mailgen.Demo()
	_, acct := startMem(t, msgs)
	dir, _ := mount(t, acct, Options{})
	folders := map[string]int{}
	for _, m := range msgs {
		folders[m.Folder]++
	}
	for folder, n := range folders {
		ents, err := os.ReadDir(filepath.Join(dir, folder))
		if err != nil {
			t.Fatal(err)
		}
		files := 0
		for _, e := range ents {
			if _, err := os.Lstat(filepath.Join(dir, folder, e.Name())); err != nil {
				t.Fatal(err)
			}
			// What ls -l asks too: ENOTSUP, never ENODATA or ENOSYS.
			_, err := unix.Lgetxattr(filepath.Join(dir, folder, e.Name()), "security.selinux", make([]byte, 64))
			if err != syscall.ENOTSUP {
				t.Fatalf("getxattr security.selinux: got %v, want ENOTSUP", err)
			}
			if !e.IsDir() {
				files++
			}
		}
		if files != n {
			t.Errorf("%s: got %d files, want %d", folder, files, n)
		}
	}
	if got, want := acct.lists.Load(), int64(len(folders)); got != want {
		t.Errorf("listing fetches: got %d, want %d (one per folder)", got, want)
	}
	if got := acct.fetches(); got != 0 {
		t.Errorf("header/body fetches during ls -l: got %d, want 0", got)
	}
}

func TestXattrs(t *testing.T) {
	msgs := mailgen.Fixtures()
	_, acct := startMem(t, msgs)
	dir, _ := mount(t, acct, Options{})
	for i, m := range msgs {
		p := filepath.Join(dir, "INBOX", strconv.Itoa(i+1)+".eml")
		before := acct.fetches()
		want := header.Fields(m.Raw)
		list := make([]byte, 4096)
		n, err := unix.Listxattr(p, list)
		if err != nil {
			t.Fatalf("listxattr %s: %v", p, err)
		}
		attrs := strings.Split(strings.TrimSuffix(string(list[:n]), "\x00"), "\x00")
		for _, a := range attrs {
			buf := make([]byte, 8192)
			n, err := unix.Getxattr(p, a, buf)
			if err != nil {
				t.Fatalf("getxattr %s %s: %v", p, a, err)
			}
			got := string(buf[:n])
			name := strings.TrimPrefix(a, "user.mail.")
			switch name {
			case "uid":
				if got != strconv.Itoa(i+1) {
					t.Errorf("%s uid: got %q, want %d", p, got, i+1)
				}
			case "flags":
				flags := slices.Clone(m.Flags)
				remote.SortFlags(flags)
				if got != strings.Join(flags, " ") {
					t.Errorf("%s flags: got %q, want %q", p, got, strings.Join(flags, " "))
				}
			default:
				if got != want[name] {
					t.Errorf("%s %s: got %q, want %q", p, name, got, want[name])
				}
			}
		}
		for _, name := range []string{"subject", "from", "to", "cc", "date", "message-id"} {
			if _, has := want[name]; !has && slices.Contains(attrs, "user.mail."+name) {
				t.Errorf("%s: lists user.mail.%s, which the message does not have", p, name)
			}
			if _, has := want[name]; has && !slices.Contains(attrs, "user.mail."+name) {
				t.Errorf("%s: does not list user.mail.%s", p, name)
			}
		}
		if got := acct.fetches() - before; got != 1 {
			t.Errorf("%s: getfattr -d cost %d fetches, want 1", p, got)
		}
		if _, err := unix.Getxattr(p, "user.mail.nonsense", nil); err != syscall.ENODATA {
			t.Errorf("unknown user.mail attribute: got %v, want ENODATA", err)
		}
	}
	if acct.bodies.Load()+acct.bulks.Load() != 0 {
		t.Errorf("xattrs fetched bodies")
	}
}

func TestReadOnlyRefusesEveryChange(t *testing.T) {
	_, acct := startMem(t, mailgen.Fixtures())
	dir, _ := mount(t, acct, Options{ReadOnly: true})
	if st, err := os.Stat(filepath.Join(dir, "INBOX")); err != nil || st.Mode().Perm() != 0o555 {
		t.Errorf("read-only folder mode: got %v, %v, want dr-xr-xr-x", st.Mode(), err)
	}
	msg := filepath.Join(dir, "INBOX", "1.eml")
	checks := []struct {
		name string
		err  error
	}{
		{"unlink", os.Remove(msg)},
		{"rmdir", syscall.Rmdir(filepath.Join(dir, "INBOX"))},
		{"mkdir", os.Mkdir(filepath.Join(dir, "INBOX", "new"), 0o755)},
		{"rename", os.Rename(msg, filepath.Join(dir, "INBOX", "2x.eml"))},
		{"create", func() error { _, err := os.Create(filepath.Join(dir, "INBOX", "new.eml")); return err }()},
		{"write", func() error { _, err := os.OpenFile(msg, os.O_WRONLY, 0); return err }()},
		{"truncate", os.Truncate(msg, 0)},
		{"chmod", os.Chmod(msg, 0o644)},
		{"setxattr", unix.Setxattr(msg, "user.mail.flags", []byte(`\Seen`), 0)},
		{"symlink", os.Symlink("x", filepath.Join(dir, "INBOX", "link"))},
	}
	for _, c := range checks {
		if !isErrno(c.err, syscall.EROFS) {
			t.Errorf("%s: got %v, want EROFS", c.name, c.err)
		}
	}
	if _, err := os.Stat(msg); err != nil {
		t.Errorf("after the refused changes: %v", err)
	}
	if n := acct.changes.Load(); n != 0 {
		t.Errorf("%d changes reached the server of a read-only mount", n)
	}
}

func TestNewMailShowsAfterPollInterval(t *testing.T) {
	srv, acct := startMem(t, mailgen.Fixtures())
	dir, _ := mount(t, acct, Options{PollInterval: 300 * time.Millisecond})
	n0 := countFiles(t, filepath.Join(dir, "INBOX"))
	if err := srv.Append([]memserver.Message{{Folder: "INBOX", Date: time.Now(), Raw: []byte("Subject: new\r\n\r\nnew mail\r\n")}}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for countFiles(t, filepath.Join(dir, "INBOX")) != n0+1 {
		if time.Now().After(deadline) {
			t.Fatalf("new message not listed within 5 s (poll interval 300 ms)")
		}
		time.Sleep(100 * time.Millisecond)
	}
	got, err := os.ReadFile(filepath.Join(dir, "INBOX", strconv.Itoa(n0+1)+".eml"))
	if err != nil || string(got) != "Subject: new\r\n\r\nnew mail\r\n" {
		t.Fatalf("new message: got %q, %v", got, err)
	}
}

func countFiles(t *testing.T, dir string) int {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		if !e.IsDir() {
			n++
		}
	}
	return n
}

// readdirnames returns a directory's entries in the order readdir returns
// them.
func readdirnames(t *testing.T, dir string) []string {
	t.Helper()
	f, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// TestUIDValidityChange: a folder deleted and created again gets a new
// UIDVALIDITY and reuses UIDs; the mount must never serve the old body
// under the new UID.
func TestUIDValidityChange(t *testing.T) {
	old := []byte("Subject: old\r\n\r\nthe old message\r\n")
	srv, acct := startMem(t, []mailgen.Message{{Folder: "Work", Date: time.Unix(1700000000, 0), Raw: old}})
	dir, _ := mount(t, acct, Options{PollInterval: 200 * time.Millisecond})
	p := filepath.Join(dir, "Work", "1.eml")
	if got, err := os.ReadFile(p); err != nil || !bytes.Equal(got, old) {
		t.Fatalf("before: got %q, %v", got, err)
	}
	if err := srv.User().Delete("Work"); err != nil {
		t.Fatal(err)
	}
	fresh := []byte("Subject: new\r\n\r\na different message under the same UID\r\n")
	if err := srv.Append([]memserver.Message{{Folder: "Work", Date: time.Unix(1700000100, 0), Raw: fresh}}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	countFiles(t, filepath.Join(dir, "Work")) // the refresh
	got, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, fresh) {
		t.Fatalf("after the UIDVALIDITY change: got %q, want %q", got, fresh)
	}
}

// TestRereadServedByPageCache: a second pass over every message fetches
// nothing, even with a memory cache far too small to hold them: the
// kernel keeps the pages (FOPEN_KEEP_CACHE) and open does not refetch a
// message whose size is known.
func TestRereadServedByPageCache(t *testing.T) {
	msgs := mailgen.Demo()
	_, acct := startMem(t, msgs)
	dir, _ := mount(t, acct, Options{MemoryCache: 256 << 10})
	read := func() {
		for _, name := range readdirnames(t, filepath.Join(dir, "Lists", "golang")) {
			if _, err := os.ReadFile(filepath.Join(dir, "Lists", "golang", name)); err != nil {
				t.Fatal(err)
			}
		}
	}
	read()
	first := acct.fetches()
	read()
	if again := acct.fetches() - first; again != 0 {
		t.Errorf("second pass: %d fetches, want 0 (first pass: %d)", again, first)
	}
}
