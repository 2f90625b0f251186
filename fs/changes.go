package fs

import (
	"context"
	"errors"
	"io"
	"net/mail"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"mailfs/remote"
)

// Changes through the mount. Each one is sent to the server before it is
// answered, and takes effect in the tree only once the server said yes.

var (
	_ fusefs.NodeUnlinker = (*folderNode)(nil)
	_ fusefs.NodeRmdirer  = (*folderNode)(nil)
	_ fusefs.NodeMkdirer  = (*folderNode)(nil)
	_ fusefs.NodeRenamer  = (*folderNode)(nil)
	_ fusefs.NodeCreater  = (*folderNode)(nil)
)

// maxDraft bounds a message written through the mount when the server
// says nothing of its own limit (IMAP APPENDLIMIT).
const maxDraft = 256 << 20

// draftLimit is the largest message that can be written into a folder.
func (f *FS) draftLimit() int64 {
	if l, ok := can[remote.AppendLimiter](f.acct); ok {
		if n := l.AppendLimit(); n > 0 {
			return n
		}
	}
	return maxDraft
}

// can returns acct as T when the account behind it, through decorators
// like the cache (which have every method but pass them on), really has the
// ability: a POP3 account cannot append, so cp into it is EPERM at once,
// not a failure at close.
func can[T any](acct remote.Account) (T, bool) {
	t, ok := acct.(T)
	if !ok {
		return t, false
	}
	for {
		u, ok := acct.(interface{ Unwrap() remote.Account })
		if !ok {
			return t, true
		}
		acct = u.Unwrap()
		if acct == nil {
			return t, false // offline
		}
		if _, ok := acct.(T); !ok {
			return t, false
		}
	}
}

// asFolderNode returns the folderNode of a directory (root or not).
func asFolderNode(e fusefs.InodeEmbedder) *folderNode {
	switch n := e.(type) {
	case *folderNode:
		return n
	case *rootNode:
		return &n.folderNode
	}
	return nil
}

// message returns the message a file name in this directory stands for.
func (n *folderNode) message(ctx context.Context, name string) (*dirInfo, *msgState, syscall.Errno) {
	d, err := n.dir(ctx)
	if err != nil {
		return nil, nil, toErrno(n.fs.log, "lookup", err)
	}
	if d.folder == "" {
		return d, nil, 0
	}
	key, ok := messageKey(name)
	if !ok && isShortened(name) {
		key, ok = n.fs.folder(d.folder).shortKey(name)
	}
	var ms *msgState
	if ok {
		if ms, err = n.fs.folder(d.folder).lookup(ctx, key); err != nil {
			return nil, nil, toErrno(n.fs.log, "lookup", err)
		}
	}
	if ms == nil {
		// The name mv gave a message, or a file was written under.
		ms = n.fs.folder(d.folder).aliasFor(name)
	}
	return d, ms, 0
}

// Unlink implements fusefs.NodeUnlinker: IMAP \Deleted (expunged as
// configured), POP3 DELE. The file leaves the listing at once.
func (n *folderNode) Unlink(ctx context.Context, name string) syscall.Errno {
	f := n.fs
	if f.opts.ReadOnly {
		return syscall.EROFS
	}
	d, ms, errno := n.message(ctx, name)
	if errno != 0 {
		return errno
	}
	if ms == nil {
		if d != nil && d.folder != "" && f.folder(d.folder).dropDraft(name) {
			return 0 // a file being written, never appended
		}
		return syscall.ENOENT
	}
	del, ok := can[remote.Deleter](f.acct)
	if !ok {
		return syscall.EPERM
	}
	if err := del.Delete(ctx, []remote.Ref{ms.ref}); err != nil {
		errno := toErrno(f.log, "unlink "+ms.ref.Folder+"/"+name, err)
		if errno == syscall.ENOENT {
			ms.folder.remove(ms) // gone on the server: gone here too
		}
		return errno
	}
	ms.folder.remove(ms)
	f.log.Info("deleted", "folder", ms.ref.Folder, "message", name)
	return 0
}

// Rmdir implements fusefs.NodeRmdirer: DELETE of an empty folder.
func (n *folderNode) Rmdir(ctx context.Context, name string) syscall.Errno {
	f := n.fs
	if f.opts.ReadOnly {
		return syscall.EROFS
	}
	child, errno := n.childDir(ctx, name)
	if errno != 0 {
		return errno
	}
	if len(child.children) > 0 {
		return syscall.ENOTEMPTY
	}
	if child.folder != "" {
		msgs, err := f.folder(child.folder).listing(ctx, 0)
		if err != nil {
			return toErrno(f.log, "rmdir", err)
		}
		if len(msgs) > 0 {
			return syscall.ENOTEMPTY
		}
	}
	fe, ok := can[remote.FolderEditor](f.acct)
	if !ok {
		return syscall.EPERM
	}
	if err := fe.DeleteFolder(ctx, child.server); err != nil {
		return toErrno(f.log, "rmdir "+child.server, err)
	}
	f.invalidateTree()
	f.log.Info("deleted folder", "folder", child.server)
	return 0
}

// childDir returns the child directory name of n.
func (n *folderNode) childDir(ctx context.Context, name string) (*dirInfo, syscall.Errno) {
	if !dirName(name) {
		return nil, syscall.ENOENT
	}
	dirs, err := n.fs.tree(ctx)
	if err != nil {
		return nil, toErrno(n.fs.log, "lookup", err)
	}
	child := dirs[joinPath(n.path, name)]
	if child == nil {
		return nil, syscall.ENOENT
	}
	return child, 0
}

func joinPath(dir, name string) string {
	if dir == "" {
		return name
	}
	return dir + "/" + name
}

// Mkdir implements fusefs.NodeMkdirer: CREATE.
func (n *folderNode) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	f := n.fs
	if f.opts.ReadOnly {
		return nil, syscall.EROFS
	}
	seg, ok := unescapeSegment(name)
	if !ok {
		return nil, syscall.EINVAL // a name mailfs would show escaped: ask for that form
	}
	d, err := n.dir(ctx)
	if err != nil {
		return nil, toErrno(f.log, "mkdir", err)
	}
	if d.server != "" && d.delim == "" {
		return nil, syscall.EPERM // a flat server: no folders inside folders
	}
	if d.delim != "" && strings.Contains(seg, d.delim) {
		// The server would take x.y for y inside x: never split a name.
		return nil, syscall.EINVAL
	}
	fe, ok := can[remote.FolderEditor](f.acct)
	if !ok {
		return nil, syscall.EPERM
	}
	if err := fe.CreateFolder(ctx, d.childName(seg)); err != nil {
		return nil, toErrno(f.log, "mkdir "+d.childName(seg), err)
	}
	f.invalidateTree()
	f.log.Info("created folder", "folder", d.childName(seg))
	p := joinPath(n.path, name)
	child := &folderNode{fs: f, path: p}
	child.fillDir(&out.Attr)
	return n.NewInode(ctx, child, fusefs.StableAttr{Mode: syscall.S_IFDIR, Ino: dirIno(p)}), 0
}

// Rename implements fusefs.NodeRenamer: a message into another folder is
// UID MOVE (it is listed there under its new UID); a directory is RENAME.
func (n *folderNode) Rename(ctx context.Context, name string, newParent fusefs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	f := n.fs
	if f.opts.ReadOnly {
		return syscall.EROFS
	}
	if flags&^uint32(unixRenameNoReplace) != 0 {
		return syscall.EINVAL // RENAME_EXCHANGE, RENAME_WHITEOUT
	}
	np := asFolderNode(newParent)
	if np == nil {
		return syscall.EXDEV
	}
	d, ms, errno := n.message(ctx, name)
	if errno != 0 {
		return errno
	}
	if ms != nil {
		nd, err := np.dir(ctx)
		if err != nil {
			return toErrno(f.log, "rename", err)
		}
		if nd.folder == "" || nd.folder == d.folder {
			return syscall.EPERM // a message's name is its UID
		}
		var to remote.Ref
		if om, ok := can[remote.OneMover](f.acct); ok {
			to, err = om.MoveOne(ctx, ms.ref, nd.folder)
		} else if mv, ok := can[remote.Mover](f.acct); ok {
			err = mv.Move(ctx, []remote.Ref{ms.ref}, nd.folder)
		} else {
			return syscall.EPERM
		}
		if err != nil {
			errno := toErrno(f.log, "move "+ms.ref.Folder+"/"+name, err)
			if errno == syscall.ENOENT {
				ms.folder.remove(ms)
			}
			return errno
		}
		ms.folder.remove(ms)
		dst := f.folder(nd.folder)
		if to.UID != 0 {
			dst.addAlias(newName, ms, to)
		}
		dst.invalidate()
		// The kernel's entry for newName is the old inode; newName now
		// stands for the message under its new UID (an alias, for mv's
		// check that the file arrived), and the old name for nothing.
		go func() {
			np.NotifyEntry(newName)
			n.NotifyEntry(name)
		}()
		f.log.Info("moved", "from", ms.ref.Folder, "message", name, "to", nd.folder)
		return 0
	}
	child, errno := n.childDir(ctx, name)
	if errno != 0 {
		return errno
	}
	seg, ok := unescapeSegment(newName)
	if !ok {
		return syscall.EINVAL
	}
	nd, err := np.dir(ctx)
	if err != nil {
		return toErrno(f.log, "rename", err)
	}
	if nd.delim != "" && strings.Contains(seg, nd.delim) {
		return syscall.EINVAL // the server's delimiter: never split a name
	}
	if strings.HasPrefix(joinPath(np.path, newName)+"/", child.path+"/") {
		return syscall.EINVAL // into itself
	}
	fe, ok := can[remote.FolderEditor](f.acct)
	if !ok || child.server == "" {
		return syscall.EPERM
	}
	if err := fe.RenameFolder(ctx, child.server, nd.childName(seg)); err != nil {
		return toErrno(f.log, "rename "+child.server, err)
	}
	f.invalidateTree()
	// Nodes below the old name carry its path: have the kernel look the
	// new name up afresh.
	go np.NotifyEntry(newName)
	f.log.Info("renamed folder", "from", child.server, "to", nd.childName(seg))
	return 0
}

// unixRenameNoReplace is RENAME_NOREPLACE: a folder or message never
// replaces another anyway.
const unixRenameNoReplace = 1

// Create implements fusefs.NodeCreater: a new file in a folder is a
// message being written; closing it APPENDs it.
func (n *folderNode) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*fusefs.Inode, fusefs.FileHandle, uint32, syscall.Errno) {
	f := n.fs
	if f.opts.ReadOnly {
		return nil, nil, 0, syscall.EROFS
	}
	d, err := n.dir(ctx)
	if err != nil {
		return nil, nil, 0, toErrno(f.log, "create", err)
	}
	if d.folder == "" {
		return nil, nil, 0, syscall.EPERM // not a folder that holds messages
	}
	if _, ok := can[remote.Appender](f.acct); !ok {
		return nil, nil, 0, syscall.EPERM
	}
	spool, err := os.CreateTemp(f.opts.SpoolDir, "draft-*")
	if err != nil {
		f.log.Warn("mailfs: no spool file for a new message", "dir", f.opts.SpoolDir, "err", err)
		return nil, nil, 0, syscall.EIO
	}
	// Unlinked at once: the bytes live as long as the draft, and nothing
	// is left behind after a crash.
	os.Remove(spool.Name())
	s := f.folder(d.folder)
	dr := &draftNode{folder: s, name: name, parent: n, created: time.Now(), spool: spool, limit: f.draftLimit()}
	s.mu.Lock()
	if s.drafts == nil {
		s.drafts = map[string]*draftNode{}
	}
	if _, exists := s.drafts[name]; exists {
		s.mu.Unlock()
		spool.Close()
		return nil, nil, 0, syscall.EEXIST
	}
	s.drafts[name] = dr
	s.mu.Unlock()
	dr.fillAttr(&out.Attr)
	child := n.NewInode(ctx, dr, fusefs.StableAttr{Mode: syscall.S_IFREG, Ino: inoOf("draft", d.folder, name, dr.created.String())})
	return child, dr.handle(true), fuse.FOPEN_DIRECT_IO, 0
}

// dropDraft forgets a draft being unlinked before it was appended.
func (s *folderState) dropDraft(name string) bool {
	s.mu.Lock()
	dr, ok := s.drafts[name]
	if ok {
		delete(s.drafts, name)
	}
	s.mu.Unlock()
	if ok {
		dr.mu.Lock()
		dr.dropped = true
		dr.mu.Unlock()
	}
	return ok
}

func (s *folderState) draft(name string) *draftNode {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.drafts[name]
}

// draftNode is a file being written into a folder. Its bytes are spooled
// to an unlinked temporary file (mode 0600, in Options.SpoolDir), never
// held in memory, until it is closed; then it is APPENDed, streamed from
// that file, leaves the directory, and the message shows under its UID.
//
// A draft that a write failed for (too large, no space) or whose writer
// was killed before closing it is never appended: a partial message must
// not reach the server.
type draftNode struct {
	fusefs.Inode
	folder  *folderState
	parent  *folderNode
	name    string
	created time.Time
	limit   int64 // the largest message the server takes

	// commitMu orders the content: writes and truncations, and the APPEND
	// that streams it, hold it, so an upload never sends a mix of two
	// versions. Taken before mu, never inside it; rm and stat take only
	// mu, so they never wait for an upload.
	commitMu sync.Mutex

	mu       sync.Mutex // protects the fields below; never held across the network
	spool    *os.File   // the bytes; nil once released
	size     int64
	appended bool          // the spool is on the server as it stands
	prev     remote.Ref    // the message appended last, replaced when more is written
	dropped  bool          // unlinked before it was appended
	failed   bool          // the last append failed, and close said so
	broken   syscall.Errno // a write failed (or the writer was killed): never appended
	open     int           // handles not yet released
}

// draftHandle is one open of a draft; write says whether it was opened
// for writing. Only a writer's close appends, and the draft ends at the
// last release of any handle: cat or a file manager's preview opening a
// file still being written must neither append half of it nor close it
// under the writer.
type draftHandle struct {
	write bool
}

// handle counts a new open of the draft.
func (dr *draftNode) handle(write bool) *draftHandle {
	dr.mu.Lock()
	dr.open++
	dr.mu.Unlock()
	return &draftHandle{write: write}
}

var (
	_ fusefs.NodeGetattrer = (*draftNode)(nil)
	_ fusefs.NodeSetattrer = (*draftNode)(nil)
	_ fusefs.NodeOpener    = (*draftNode)(nil)
	_ fusefs.NodeReader    = (*draftNode)(nil)
	_ fusefs.NodeWriter    = (*draftNode)(nil)
	_ fusefs.NodeFlusher   = (*draftNode)(nil)
	_ fusefs.NodeReleaser  = (*draftNode)(nil)
)

func (dr *draftNode) fillAttr(a *fuse.Attr) {
	dr.mu.Lock()
	size := dr.size
	dr.mu.Unlock()
	opts := &dr.folder.fs.opts
	a.Mode = syscall.S_IFREG | 0o644
	a.Nlink = 1
	a.Size = uint64(size)
	a.Blocks = (uint64(size) + 511) / 512
	a.Uid, a.Gid = opts.UID, opts.GID
	setTime(a, dr.created)
}

func (dr *draftNode) Getattr(ctx context.Context, fh fusefs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	dr.fillAttr(&out.Attr)
	return 0
}

// Setattr allows truncation (shells open with O_TRUNC) and ignores mode
// and times (cp -p): they have no place in a message.
func (dr *draftNode) Setattr(ctx context.Context, fh fusefs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if size, ok := in.GetSize(); ok {
		dr.commitMu.Lock()
		errno := dr.truncate(int64(size))
		dr.commitMu.Unlock()
		if errno != 0 {
			return errno
		}
	}
	dr.fillAttr(&out.Attr)
	return 0
}

func (dr *draftNode) truncate(size int64) syscall.Errno {
	dr.mu.Lock()
	defer dr.mu.Unlock()
	if dr.spool == nil {
		return syscall.EBADF
	}
	if size > dr.limit {
		return dr.breakWith(syscall.EFBIG, "too large", size)
	}
	if err := dr.spool.Truncate(size); err != nil {
		return dr.breakWith(errnoOf(err), err.Error(), size)
	}
	dr.size = size
	dr.appended = false
	return 0
}

// breakWith marks the draft as never to be appended; dr.mu is held.
func (dr *draftNode) breakWith(errno syscall.Errno, why string, at int64) syscall.Errno {
	if dr.broken == 0 {
		dr.folder.fs.log.Warn("mailfs: a file being written into a folder failed; it will not be appended",
			"folder", dr.folder.name, "file", dr.name, "reason", why, "offset", at, "limit", dr.limit)
	}
	dr.broken = errno
	return errno
}

// errnoOf is the errno of a failed file operation, EIO if it has none.
func errnoOf(err error) syscall.Errno {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno
	}
	return syscall.EIO
}

func (dr *draftNode) Open(ctx context.Context, flags uint32) (fusefs.FileHandle, uint32, syscall.Errno) {
	dr.mu.Lock()
	gone := dr.spool == nil
	dr.mu.Unlock()
	if gone {
		return nil, 0, syscall.ENOENT
	}
	return dr.handle(flags&(syscall.O_WRONLY|syscall.O_RDWR) != 0), fuse.FOPEN_DIRECT_IO, 0
}

// writer reports whether fh was opened for writing.
func writer(fh fusefs.FileHandle) bool {
	h, ok := fh.(*draftHandle)
	return ok && h.write
}

func (dr *draftNode) Read(ctx context.Context, fh fusefs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	dr.mu.Lock()
	defer dr.mu.Unlock()
	if dr.spool == nil {
		return nil, syscall.EBADF
	}
	if off >= dr.size {
		return fuse.ReadResultData(nil), 0
	}
	n, err := dr.spool.ReadAt(dest[:min(int64(len(dest)), dr.size-off)], off)
	if err != nil && err != io.EOF {
		return nil, errnoOf(err)
	}
	return fuse.ReadResultData(dest[:n]), 0
}

func (dr *draftNode) Write(ctx context.Context, fh fusefs.FileHandle, data []byte, off int64) (uint32, syscall.Errno) {
	dr.commitMu.Lock()
	defer dr.commitMu.Unlock()
	dr.mu.Lock()
	defer dr.mu.Unlock()
	if dr.spool == nil {
		return 0, syscall.EBADF
	}
	end := off + int64(len(data))
	if end > dr.limit {
		return 0, dr.breakWith(syscall.EFBIG, "too large", end)
	}
	if _, err := dr.spool.WriteAt(data, off); err != nil {
		return 0, dr.breakWith(errnoOf(err), err.Error(), off)
	}
	// Written after an append (a shell's `exec 3>f; echo a >&3; echo b >&3`
	// closes a duplicate after each command): the next flush appends the
	// whole and deletes the earlier message.
	dr.appended = false
	dr.size = max(dr.size, end)
	return uint32(len(data)), 0
}

// Flush implements fusefs.NodeFlusher: close(2) of a written draft
// APPENDs it, so that an error reaches the program that wrote it. A
// program killed with the file open closes it too, on its way out: then
// what it wrote is incomplete, and is not appended; a version appended at
// an earlier close of a duplicate descriptor (a shell's `exec 3>f; echo a
// >&3`) is deleted again.
func (dr *draftNode) Flush(ctx context.Context, fh fusefs.FileHandle) syscall.Errno {
	if !writer(fh) {
		return 0 // a reader's close changes nothing
	}
	if caller, ok := fuse.FromContext(ctx); ok && killed(caller.Pid) {
		dr.commitMu.Lock()
		defer dr.commitMu.Unlock()
		dr.mu.Lock()
		dr.breakWith(syscall.EINTR, "the writer was killed before it closed the file", dr.size)
		prev := dr.prev
		dr.prev = remote.Ref{}
		dr.mu.Unlock()
		if prev.UID != 0 {
			f := dr.folder.fs
			if del, ok := can[remote.Deleter](f.acct); ok {
				err := del.Delete(context.Background(), []remote.Ref{prev})
				f.log.Warn("mailfs: the writer of a file was killed; the version appended at an earlier close is deleted",
					"folder", dr.folder.name, "file", dr.name, "uid", prev.UID, "err", err)
			}
			dr.folder.invalidate()
		}
		return syscall.EINTR
	}
	return dr.commit(ctx)
}

// Release implements fusefs.NodeReleaser: the last close; a draft never
// flushed with data is appended here as a last resort.
func (dr *draftNode) Release(ctx context.Context, fh fusefs.FileHandle) syscall.Errno {
	dr.mu.Lock()
	failed := dr.failed
	dr.mu.Unlock()
	if writer(fh) && !failed {
		dr.commit(context.Background())
	}
	dr.mu.Lock()
	dr.open--
	last := dr.open <= 0
	dr.mu.Unlock()
	if last {
		dr.finish() // appended, dropped, or failed (and said so at close)
	}
	return 0
}

// commit APPENDs the draft once, if it has data and no write failed.
func (dr *draftNode) commit(ctx context.Context) syscall.Errno {
	// One commit at a time, and no write while it streams; dr.mu is not
	// held across the network, so that rm and stat of the draft (and the
	// folder's lock, which rm takes first) never wait for an upload.
	dr.commitMu.Lock()
	defer dr.commitMu.Unlock()
	dr.mu.Lock()
	if dr.broken != 0 {
		errno := dr.broken
		dr.failed = true
		dr.mu.Unlock()
		return errno
	}
	if dr.appended || dr.dropped || dr.size == 0 || dr.spool == nil {
		dr.mu.Unlock()
		return 0
	}
	spool, size := dr.spool, dr.size
	prev := dr.prev
	dr.mu.Unlock()

	f := dr.folder.fs
	ap, ok := can[remote.Appender](f.acct)
	if !ok {
		dr.fail()
		return syscall.EPERM
	}
	var date time.Time
	if m, err := mail.ReadMessage(io.NewSectionReader(spool, 0, min(size, 256<<10))); err == nil {
		if d, err := m.Header.Date(); err == nil {
			date = d
		}
	}
	uid, validity, err := ap.Append(ctx, dr.folder.name, spool, size, date, nil)
	if err != nil {
		dr.fail()
		return toErrno(f.log, "append to "+dr.folder.name, err)
	}
	f.log.Info("appended", "folder", dr.folder.name, "file", dr.name, "uid", uid, "bytes", size)
	if prev.UID != 0 {
		// The earlier version of this file, superseded by this one.
		if del, ok := can[remote.Deleter](f.acct); ok {
			if err := del.Delete(ctx, []remote.Ref{prev}); err != nil {
				f.log.Warn("mailfs: earlier version of a rewritten file not deleted", "folder", dr.folder.name, "uid", prev.UID, "err", err)
			}
		}
	}
	dr.mu.Lock()
	dr.prev = remote.Ref{}
	if uid != 0 {
		dr.prev = remote.Ref{Folder: dr.folder.name, UIDValidity: validity, UID: uid, Key: strconv.FormatUint(uint64(uid), 10)}
	}
	dr.appended = true // no write can have come in: commitMu
	dr.failed = false
	dr.mu.Unlock()
	dr.folder.invalidate()
	return 0
}

// fail records that the program was told its close failed: the last close
// does not try again behind its back.
func (dr *draftNode) fail() {
	dr.mu.Lock()
	dr.failed = true
	dr.mu.Unlock()
}

// finish ends a draft at its last close: it leaves the directory, its
// spool is released, and the message shows as <uid>.eml at the next
// listing.
func (dr *draftNode) finish() {
	s := dr.folder
	s.mu.Lock()
	if s.drafts[dr.name] == dr {
		delete(s.drafts, dr.name)
	}
	s.mu.Unlock()
	dr.release()
	s.invalidate()
	go dr.parent.NotifyEntry(dr.name)
}

// release closes the spool file.
func (dr *draftNode) release() {
	dr.commitMu.Lock()
	defer dr.commitMu.Unlock()
	dr.mu.Lock()
	defer dr.mu.Unlock()
	if dr.spool != nil {
		dr.spool.Close()
		dr.spool = nil
	}
}

// killed reports whether process pid is exiting because a signal killed
// it: the kernel closes a killed program's files on its way out (and FUSE
// sends FLUSH), with PF_EXITING set and the signal in its exit code.
func killed(pid uint32) bool {
	if pid == 0 {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.FormatUint(uint64(pid), 10) + "/stat")
	if err != nil {
		return false
	}
	return statKilled(string(b))
}

// statKilled reads /proc/PID/stat: field 9 is the task's flags (PF_EXITING
// = 0x4), field 52 its exit code (the signal in the low 7 bits).
func statKilled(stat string) bool {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return false
	}
	f := strings.Fields(stat[i+1:]) // f[0] is field 3
	if len(f) < 50 {
		return false
	}
	flags, err1 := strconv.ParseUint(f[9-3], 10, 64)
	code, err2 := strconv.ParseInt(f[52-3], 10, 64)
	const pfExiting = 0x4
	return err1 == nil && err2 == nil && flags&pfExiting != 0 && code&0x7f != 0
}
