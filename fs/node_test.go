package fs

import (
	"context"
	"slices"
	"syscall"
	"testing"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"mailfs/internal/mailgen"
	"mailfs/remote"
)

// Node tests: the node methods called directly, without a mount, on an
// account served by the in-process IMAP server.

func newRoot(t *testing.T, msgs []mailgen.Message) (*rootNode, *counting) {
	t.Helper()
	_, acct := startMem(t, msgs)
	f := New(acct, Options{Logger: testLogger(t)})
	t.Cleanup(f.Close)
	root := f.Root().(*rootNode)
	fusefs.NewNodeFS(root, f.MountOptions("test")) // initialises the root inode
	return root, acct
}

func TestNodeLookupAndReaddir(t *testing.T) {
	root, acct := newRoot(t, fixtureMailbox())
	ctx := context.Background()
	ds, errno := root.Readdir(ctx)
	if errno != 0 {
		t.Fatal(errno)
	}
	var names []string
	for ds.HasNext() {
		e, _ := ds.Next()
		names = append(names, e.Name)
	}
	if want := []string{"Entwürfe", "INBOX", "Lists"}; !slices.Equal(names, want) {
		t.Fatalf("root readdir: got %v, want %v", names, want)
	}
	var out fuse.EntryOut
	inbox, errno := root.Lookup(ctx, "INBOX", &out)
	if errno != 0 {
		t.Fatal(errno)
	}
	if out.Attr.Mode != syscall.S_IFDIR|0o755 {
		t.Errorf("INBOX mode: got %o, want %o", out.Attr.Mode, syscall.S_IFDIR|0o755)
	}
	dir := inbox.Operations().(*folderNode)
	for _, name := range []string{"nope", "0.eml", "999.eml", "1", ".eml", "%zz", "Lists%2Fgolang"} {
		if _, errno := dir.Lookup(ctx, name, &out); errno != syscall.ENOENT {
			t.Errorf("lookup %q: got %v, want ENOENT", name, errno)
		}
	}
	msg, errno := dir.Lookup(ctx, "1.eml", &out)
	if errno != 0 {
		t.Fatal(errno)
	}
	want := fixtureMailbox()[0].Raw
	if out.Attr.Size != uint64(len(want)) || out.Attr.Mode != syscall.S_IFREG|0o444 {
		t.Errorf("1.eml attr: got size %d mode %o, want %d %o", out.Attr.Size, out.Attr.Mode, len(want), syscall.S_IFREG|0o444)
	}
	if acct.lists.Load() != 1 || acct.fetches() != 0 {
		t.Errorf("lookups cost %d listings and %d fetches, want 1 and 0", acct.lists.Load(), acct.fetches())
	}

	mn := msg.Operations().(*messageNode)
	for _, flags := range []uint32{syscall.O_WRONLY, syscall.O_RDWR, syscall.O_RDONLY | syscall.O_TRUNC} {
		if _, _, errno := mn.Open(ctx, flags); errno != syscall.EPERM {
			t.Errorf("open flags %#x: got %v, want EPERM (messages are immutable)", flags, errno)
		}
	}
	fh, fuseFlags, errno := mn.Open(ctx, syscall.O_RDONLY)
	if errno != 0 {
		t.Fatal(errno)
	}
	if fuseFlags&fuse.FOPEN_KEEP_CACHE == 0 {
		t.Errorf("open flags %#x lack FOPEN_KEEP_CACHE", fuseFlags)
	}
	res, errno := mn.Read(ctx, fh, make([]byte, 1<<20), 0)
	if errno != 0 {
		t.Fatal(errno)
	}
	got, _ := res.Bytes(make([]byte, 1<<20))
	if string(got) != string(want) {
		t.Errorf("read: got %d bytes, want %d", len(got), len(want))
	}
	for _, attr := range []string{"security.selinux", "system.posix_acl_access", "trusted.x"} {
		if _, errno := mn.Getxattr(ctx, attr, nil); errno != syscall.ENOTSUP {
			t.Errorf("getxattr %s: got %v, want ENOTSUP", attr, errno)
		}
		if _, errno := dir.Getxattr(ctx, attr, nil); errno != syscall.ENOTSUP {
			t.Errorf("dir getxattr %s: got %v, want ENOTSUP", attr, errno)
		}
	}
	if n, errno := mn.Getxattr(ctx, "user.mail.uid", nil); errno != syscall.ERANGE || n != 1 {
		t.Errorf("getxattr size query: got %d, %v, want 1, ERANGE", n, errno)
	}
	root.fs.opts.ReadOnly = true
	if errno := dir.Unlink(ctx, "1.eml"); errno != syscall.EROFS {
		t.Errorf("unlink on a read-only mount: got %v, want EROFS", errno)
	}
}

func TestBuildTree(t *testing.T) {
	dirs := buildTree([]remote.Folder{
		{Name: "INBOX", Path: []string{"INBOX"}},
		{Name: "INBOX.5.eml", Path: []string{"INBOX", "5.eml"}},
		{Name: "Lists.golang", Path: []string{"Lists", "golang"}},
		{Name: "a/b", Path: []string{"a/b"}},
		{Name: "..", Path: []string{".."}},
		{Name: "Archive", Path: []string{"Archive"}, NoSelect: true},
	})
	checks := map[string]string{ // path → server folder ("" for none)
		"":              "",
		"INBOX":         "INBOX",
		"INBOX/5%2Eeml": "INBOX.5.eml",
		"Lists":         "",
		"Lists/golang":  "Lists.golang",
		"a%2Fb":         "a/b",
		"%2E%2E":        "..",
		"Archive":       "",
	}
	for p, folder := range checks {
		d, ok := dirs[p]
		if !ok {
			t.Errorf("directory %q missing", p)
			continue
		}
		if d.folder != folder {
			t.Errorf("directory %q: folder %q, want %q", p, d.folder, folder)
		}
	}
	if len(dirs) != len(checks) {
		t.Errorf("got %d directories, want %d", len(dirs), len(checks))
	}
	if want := []string{"%2E%2E", "Archive", "INBOX", "Lists", "a%2Fb"}; !slices.Equal(dirs[""].children, want) {
		t.Errorf("root children: got %v, want %v", dirs[""].children, want)
	}
}
