package fs

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"mailfs/internal/header"
	"mailfs/remote"
)

// msgState is what mailfs knows of one message under one UIDVALIDITY. It
// outlives the nodes that show it.
type msgState struct {
	folder *folderState
	ref    remote.Ref
	name   string // file name
	ino    uint64
	index  int // position in the folder's order; written under folder.mu

	mu       sync.Mutex // protects the fields below
	info     remote.MessageInfo
	size     int64 // the true size once known, else the announced one
	verified bool  // size is known to equal the body's length
	reported int64 // the size last handed to the kernel
	fields   map[string]string
	parent   *fusefs.Inode // directory and node of the latest lookup
	node     *fusefs.Inode
}

func newMsgState(s *folderState, validity uint32, m remote.MessageInfo) *msgState {
	return &msgState{
		folder: s,
		ref:    remote.Ref{Folder: s.name, UIDValidity: validity, UID: m.UID, Key: m.Key},
		name:   messageFileName(m.Key),
		ino:    msgIno(s.name, validity, m.Key),
		info:   m,
		size:   m.Size,
	}
}

func (ms *msgState) fillAttr(a *fuse.Attr) {
	ms.mu.Lock()
	size := ms.size
	ms.reported = size
	date := ms.info.Date
	ms.mu.Unlock()
	if date.IsZero() {
		date = ms.folder.fs.start // POP3, not downloaded yet
	}
	opts := &ms.folder.fs.opts
	a.Mode = syscall.S_IFREG | 0o444
	a.Nlink = 1
	a.Size = uint64(size)
	a.Blocks = (uint64(size) + 511) / 512
	a.Blksize = 4096
	a.Uid, a.Gid = opts.UID, opts.GID
	setTime(a, date)
}

// setEntry records the directory a lookup found ms in (for invalidating
// the entry when it leaves the listing).
func (ms *msgState) setEntry(parent *fusefs.Inode) {
	ms.mu.Lock()
	ms.parent = parent
	ms.mu.Unlock()
}

// setNode records the node the kernel knows ms by, for size corrections.
// Not from Lookup: go-fuse drops a new node there when the inode number
// is known already, and keeps the old one.
func (ms *msgState) setNode(node *fusefs.Inode) {
	ms.mu.Lock()
	ms.node = node
	ms.mu.Unlock()
}

func (ms *msgState) parentEntry() (*fusefs.Inode, string) {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	return ms.parent, ms.name
}

func (ms *msgState) flags() string {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	return strings.Join(ms.info.Flags, " ")
}

// announced is the size to plan fetches by.
func (ms *msgState) sizeNow() (int64, bool) {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	return ms.size, ms.verified
}

// setSize records the true size. When it differs from what the kernel was
// told, the kernel's cached attributes are invalidated (pages need not be:
// the bytes already read are right, only the length was wrong).
func (ms *msgState) setSize(n int64) {
	ms.mu.Lock()
	old := ms.size
	ms.size = n
	ms.verified = true
	stale := ms.reported != n && ms.node != nil
	node := ms.node
	ms.mu.Unlock()
	if old != n {
		ms.folder.fs.log.Info("mailfs: server announced a wrong size, corrected",
			"folder", ms.ref.Folder, "message", ms.name, "announced", old, "actual", n)
	}
	if stale {
		node.NotifyContent(-1, 0)
	}
}

// messageNode is one message file.
type messageNode struct {
	fusefs.Inode
	ms *msgState
}

var (
	_ fusefs.NodeGetattrer     = (*messageNode)(nil)
	_ fusefs.NodeOpener        = (*messageNode)(nil)
	_ fusefs.NodeReader        = (*messageNode)(nil)
	_ fusefs.NodeGetxattrer    = (*messageNode)(nil)
	_ fusefs.NodeListxattrer   = (*messageNode)(nil)
	_ fusefs.NodeSetxattrer    = (*messageNode)(nil)
	_ fusefs.NodeRemovexattrer = (*messageNode)(nil)
	_ fusefs.NodeSetattrer     = (*messageNode)(nil)
)

// Getattr implements fusefs.NodeGetattrer.
func (n *messageNode) Getattr(ctx context.Context, fh fusefs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	n.ms.setNode(&n.Inode)
	n.ms.fillAttr(&out.Attr)
	return 0
}

// Setattr implements fusefs.NodeSetattrer: messages are immutable.
func (n *messageNode) Setattr(ctx context.Context, fh fusefs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	return n.ms.folder.fs.refuse(syscall.EPERM)
}

// Open implements fusefs.NodeOpener. It makes sure the size is true before
// the first read: a small message is fetched whole (with the ones that follow
// when reading is sequential), a large one has its length probed. The kernel
// may keep its pages: a message never changes under one UIDVALIDITY.
func (n *messageNode) Open(ctx context.Context, flags uint32) (fusefs.FileHandle, uint32, syscall.Errno) {
	if flags&(syscall.O_WRONLY|syscall.O_RDWR|syscall.O_TRUNC|syscall.O_APPEND) != 0 {
		return nil, 0, n.ms.folder.fs.refuse(syscall.EPERM) // messages are immutable
	}
	ms := n.ms
	ms.setNode(&n.Inode)
	f := ms.folder.fs
	h := &messageHandle{ms: ms}
	size, verified := ms.sizeNow()
	switch {
	case verified:
		// The size is known to be true: nothing to fetch now. The kernel
		// may well have the pages (FOPEN_KEEP_CACHE); a read it cannot
		// answer from them fetches the body then.
	case size <= f.opts.LargeBody:
		body, err := f.body(ctx, ms)
		if err != nil {
			return nil, 0, toErrno(f.log, "open "+ms.ref.Folder+"/"+ms.name, err)
		}
		if body == nil {
			body = []byte{} // an empty message: fetched, not to fetch again
		}
		h.body = body
	default:
		body, err := f.verifySize(ctx, ms)
		if err != nil {
			return nil, 0, toErrno(f.log, "open "+ms.ref.Folder+"/"+ms.name, err)
		}
		h.body = body
	}
	// A correction found in the background must reach the kernel before
	// this open's first read.
	ms.mu.Lock()
	stale := ms.reported != ms.size
	ms.mu.Unlock()
	if stale {
		n.NotifyContent(-1, 0)
	}
	return h, fuse.FOPEN_KEEP_CACHE, 0
}

// Read implements fusefs.NodeReader.
func (n *messageNode) Read(ctx context.Context, fh fusefs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	h, ok := fh.(*messageHandle)
	if !ok {
		return nil, syscall.EBADF
	}
	f := n.ms.folder.fs
	body, err := h.wholeBody(ctx)
	if err != nil {
		return nil, toErrno(f.log, "read "+n.ms.ref.Folder+"/"+n.ms.name, err)
	}
	if body == nil {
		b, err := f.readRange(ctx, n.ms, off, int64(len(dest)))
		if err != nil {
			return nil, toErrno(f.log, "read "+n.ms.ref.Folder+"/"+n.ms.name, err)
		}
		return fuse.ReadResultData(b), 0
	}
	if off >= int64(len(body)) {
		return fuse.ReadResultData(nil), 0
	}
	return fuse.ReadResultData(body[off:min(off+int64(len(dest)), int64(len(body)))]), 0
}

// wholeBody returns the handle's bytes, fetching a small message's body at
// the first read when Open did not need it; nil for a large message read in
// ranges.
func (h *messageHandle) wholeBody(ctx context.Context) ([]byte, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.body != nil {
		return h.body, nil
	}
	f := h.ms.folder.fs
	if size, _ := h.ms.sizeNow(); size > f.opts.LargeBody {
		return nil, nil
	}
	body, err := f.body(ctx, h.ms)
	if err != nil {
		return nil, err
	}
	if body == nil {
		body = []byte{} // an empty message is not a large one
	}
	h.body = body
	return body, nil
}

// messageHandle is an open message: its bytes, or nil for a large message
// read in ranges.
type messageHandle struct {
	ms *msgState

	mu   sync.Mutex // protects body when it is fetched at the first read
	body []byte
}

const xattrPrefix = "user.mail."

var headerAttrs = []string{"subject", "from", "to", "cc", "date", "message-id"}

// Listxattr implements fusefs.NodeListxattrer: uid and flags (IMAP), the
// header fields the message has (one small fetch, kept).
func (n *messageNode) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	fields, err := n.ms.folder.fs.headerFields(ctx, n.ms)
	if err != nil {
		return 0, toErrno(n.ms.folder.fs.log, "listxattr", err)
	}
	var b strings.Builder
	if n.ms.ref.UID != 0 { // IMAP; POP3 has neither UIDs nor flags
		b.WriteString(xattrPrefix + "uid\x00" + xattrPrefix + "flags\x00")
	}
	for _, name := range headerAttrs {
		if _, ok := fields[name]; ok {
			b.WriteString(xattrPrefix + name + "\x00")
		}
	}
	return copyXattr(dest, b.String())
}

// Getxattr implements fusefs.NodeGetxattrer for user.mail.*.
func (n *messageNode) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	if xattrNotSupported(attr) {
		return 0, syscall.ENOTSUP
	}
	name, ok := strings.CutPrefix(attr, xattrPrefix)
	if !ok {
		return 0, syscall.ENODATA
	}
	ms := n.ms
	switch name {
	case "uid":
		if ms.ref.UID == 0 {
			return 0, syscall.ENODATA
		}
		return copyXattr(dest, strconv.FormatUint(uint64(ms.ref.UID), 10))
	case "flags":
		if ms.ref.UID == 0 {
			return 0, syscall.ENODATA
		}
		return copyXattr(dest, ms.flags())
	}
	known := false
	for _, h := range headerAttrs {
		known = known || h == name
	}
	if !known {
		return 0, syscall.ENODATA
	}
	fields, err := ms.folder.fs.headerFields(ctx, ms)
	if err != nil {
		return 0, toErrno(ms.folder.fs.log, "getxattr", err)
	}
	v, ok := fields[name]
	if !ok {
		return 0, syscall.ENODATA
	}
	return copyXattr(dest, v)
}

func copyXattr(dest []byte, v string) (uint32, syscall.Errno) {
	if len(dest) < len(v) {
		return uint32(len(v)), syscall.ERANGE
	}
	return uint32(copy(dest, v)), 0
}

// Setxattr implements fusefs.NodeSetxattrer: user.mail.flags sets the
// message's flags (UID STORE FLAGS); the other attributes are the
// message's own and cannot change.
func (n *messageNode) Setxattr(ctx context.Context, attr string, data []byte, flags uint32) syscall.Errno {
	if xattrNotSupported(attr) {
		return syscall.ENOTSUP
	}
	f := n.ms.folder.fs
	if attr != xattrPrefix+"flags" || n.ms.ref.UID == 0 {
		return f.refuse(syscall.EPERM)
	}
	return n.setFlags(ctx, strings.Fields(string(data)))
}

// Removexattr implements fusefs.NodeRemovexattrer: removing
// user.mail.flags clears the flags.
func (n *messageNode) Removexattr(ctx context.Context, attr string) syscall.Errno {
	if xattrNotSupported(attr) {
		return syscall.ENOTSUP
	}
	f := n.ms.folder.fs
	if attr != xattrPrefix+"flags" || n.ms.ref.UID == 0 {
		return f.refuse(syscall.EPERM)
	}
	return n.setFlags(ctx, nil)
}

func (n *messageNode) setFlags(ctx context.Context, flags []string) syscall.Errno {
	ms := n.ms
	f := ms.folder.fs
	if f.opts.ReadOnly {
		return syscall.EROFS
	}
	fs, ok := can[remote.FlagSetter](f.acct)
	if !ok {
		return syscall.EPERM
	}
	for _, fl := range flags {
		if strings.EqualFold(fl, `\Recent`) {
			return syscall.EINVAL // only the server sets \Recent
		}
	}
	if err := fs.SetFlags(ctx, ms.ref, flags); err != nil {
		errno := toErrno(f.log, "set flags of "+ms.ref.Folder+"/"+ms.name, err)
		if errno == syscall.ENOENT {
			ms.folder.remove(ms)
		}
		return errno
	}
	flags = slices.Clone(flags)
	remote.SortFlags(flags)
	ms.mu.Lock()
	ms.info.Flags = flags
	ms.mu.Unlock()
	if hasFlag(flags, `\Deleted`) {
		ms.folder.remove(ms) // hidden, as every message flagged \Deleted
	}
	return 0
}

// headerFields returns the decoded header fields of ms: from the body when
// it is in memory, else with one small fetch. Kept once known.
func (f *FS) headerFields(ctx context.Context, ms *msgState) (map[string]string, error) {
	ms.mu.Lock()
	fields := ms.fields
	ms.mu.Unlock()
	if fields != nil {
		return fields, nil
	}
	raw, ok := f.mem.get(bodyKey{ms: ms, chunk: -1})
	if !ok {
		var err error
		raw, err = f.acct.Header(ctx, ms.ref)
		if err != nil {
			return nil, err
		}
	}
	all := header.Fields(raw)
	fields = make(map[string]string, len(headerAttrs))
	for _, name := range headerAttrs {
		if v, ok := all[name]; ok {
			fields[name] = v
		}
	}
	ms.mu.Lock()
	ms.fields = fields
	ms.mu.Unlock()
	return fields, nil
}
