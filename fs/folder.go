package fs

import (
	"context"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"mailfs/remote"
)

// folderState is the listing of one selectable folder.
type folderState struct {
	fs   *FS
	name string

	mu          sync.Mutex // protects the fields below
	listedAt    time.Time
	validity    uint32
	order       []*msgState           // display order (ascending UID)
	byKey       map[string]*msgState  // current messages by key
	ref         refresher             // the listing's fetches
	stale       bool                  // a change made here: list again at the next look
	gen         uint64                // counts changes made here; a listing fetched across one is stale
	short       map[string]string     // keys of messages whose names were shortened, by name
	aliases     map[string]alias      // names mv gave moved messages, until listings show their UIDs
	drafts      map[string]*draftNode // files being written, appended when closed
	lastOpen    int                   // index in order of the last message opened, for read-ahead
	prefetching int                   // read-ahead batches in flight
}

// noteOpen records that ms is being opened and reports whether reading
// looks sequential: the previous open was of one of the few messages before.
func (s *folderState) noteOpen(ms *msgState) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	idx := ms.index
	seq := idx > s.lastOpen && idx <= s.lastOpen+4
	s.lastOpen = idx
	return seq
}

// listing returns the current messages. A missing listing is fetched and
// waited for; one older than maxAge is fetched in the background and, when
// that takes more than refreshWait, served as it is meanwhile: a stalled
// server must not hold `ls` or `cat` of what is known already. A listing a
// change made here outdated (stale) is waited for. After a failed fetch, no
// other is started before a backoff has passed: a server that is down is not
// asked on every system call. A failed refresh keeps the listing there was.
func (s *folderState) listing(ctx context.Context, maxAge time.Duration) ([]*msgState, error) {
	s.mu.Lock()
	have := !s.listedAt.IsZero()
	old := have && time.Since(s.listedAt) >= maxAge
	if have && !s.stale && !old {
		order := s.order
		s.mu.Unlock()
		return order, nil
	}
	ch, fresh := s.ref.begin()
	if ch == nil { // backing off after a failure
		order, err := s.order, s.ref.err
		s.mu.Unlock()
		if have {
			return order, nil
		}
		return nil, err
	}
	if fresh {
		go s.refresh(s.gen, have)
	}
	// Only old (and not asked for fresh, maxAge 0): wait a little for the
	// refresh, then serve it.
	patient := !have || s.stale || maxAge <= 0
	started := s.ref.started
	s.mu.Unlock()
	if err := waitRefresh(ctx, ch, started, patient); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.listedAt.IsZero() {
		return nil, s.ref.err
	}
	return s.order, nil
}

// refresh fetches the listing and installs it. A failure keeps the
// listing there was (logged), or is the refresher's err when there was
// none.
func (s *folderState) refresh(gen uint64, have bool) {
	lctx, cancel := context.WithTimeout(s.fs.bg, 10*time.Minute)
	lst, err := s.fs.acct.List(lctx, s.name)
	cancel()
	var removed []*msgState
	s.mu.Lock()
	if err == nil {
		removed = s.apply(lst)
		if s.gen != gen {
			s.stale = true // changed while the listing was on its way
		}
	}
	s.ref.end(err)
	s.mu.Unlock()
	if err != nil && have {
		s.fs.log.Warn("mailfs: listing refresh failed, keeping the old one", "folder", s.name, "err", err)
	}
	s.fs.forget(removed)
}

// apply installs a new listing and returns the messages that left. Called
// with s.mu held.
func (s *folderState) apply(lst *remote.Listing) (removed []*msgState) {
	if lst.UIDValidity != s.validity {
		for _, ms := range s.order {
			removed = append(removed, ms)
		}
		s.byKey = make(map[string]*msgState, len(lst.Messages))
		s.validity = lst.UIDValidity
	}
	next := make(map[string]*msgState, len(lst.Messages))
	order := make([]*msgState, 0, len(lst.Messages))
	short := map[string]string{}
	for _, m := range lst.Messages {
		if hasFlag(m.Flags, `\Deleted`) {
			continue // deleted (by rm here or elsewhere), awaiting expunge: hidden
		}
		ms, ok := s.byKey[m.Key]
		if ok {
			ms.mu.Lock()
			ms.info.Flags = m.Flags
			ms.info.Date = m.Date // POP3: known once downloaded
			if !ms.verified {
				ms.size = m.Size // the cache knows the true size by now
			}
			ms.mu.Unlock()
		} else {
			ms = newMsgState(s, lst.UIDValidity, m)
		}
		if _, dup := next[m.Key]; dup {
			continue
		}
		ms.index = len(order)
		next[m.Key] = ms
		order = append(order, ms)
		if isShortened(ms.name) {
			short[ms.name] = m.Key
		}
	}
	for k, ms := range s.byKey {
		if _, ok := next[k]; !ok {
			removed = append(removed, ms)
		}
	}
	s.byKey = next
	s.order = order
	s.short = short
	s.listedAt = time.Now()
	s.stale = false
	return removed
}

// lookup returns the message with key, refreshing a stale listing first.
//
// A message in the listing at hand is returned without a refresh even when
// the listing is stale: a change made here takes its message out at once,
// and rm or cp of many files must not fetch the listing once per file. A
// name no IMAP message can have (not a number) is not looked for either.
func (s *folderState) lookup(ctx context.Context, key string) (*msgState, error) {
	s.mu.Lock()
	have := !s.listedAt.IsZero()
	ms := s.byKey[key]
	numeric := s.validity == 0 || isDigits(key)
	s.mu.Unlock()
	if have && (ms != nil || !numeric) {
		return ms, nil
	}
	if _, err := s.listing(ctx, s.fs.opts.PollInterval); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.byKey[key], nil
}

// dirName reports whether name can be a directory's: the escaped form of
// a folder name, or a long one shortened.
func dirName(name string) bool {
	if _, ok := unescapeSegment(name); ok {
		return true
	}
	return isShortened(name) && !strings.HasSuffix(name, ".eml")
}

// shortKey returns the key of the message listed under a shortened name.
func (s *folderState) shortKey(name string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key, ok := s.short[name]
	return key, ok
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// forget tells the kernel about messages that left a listing, from another
// goroutine: the caller may be inside a READDIR of that very directory, and
// an entry invalidation waits for the directory's lock.
func (f *FS) forget(removed []*msgState) {
	if len(removed) == 0 {
		return
	}
	go func() {
		for _, ms := range removed {
			if parent, name := ms.parentEntry(); parent != nil {
				parent.NotifyEntry(name)
			}
		}
	}()
}

// folderNode is a directory: a folder, a parent of folders, or both.
type folderNode struct {
	fusefs.Inode
	fs   *FS
	path string // escaped path from the root
}

var (
	_ fusefs.NodeLookuper      = (*folderNode)(nil)
	_ fusefs.NodeReaddirer     = (*folderNode)(nil)
	_ fusefs.NodeGetattrer     = (*folderNode)(nil)
	_ fusefs.NodeGetxattrer    = (*folderNode)(nil)
	_ fusefs.NodeListxattrer   = (*folderNode)(nil)
	_ fusefs.NodeSetxattrer    = (*folderNode)(nil)
	_ fusefs.NodeRemovexattrer = (*folderNode)(nil)
	_ fusefs.NodeSetattrer     = (*folderNode)(nil)
	_ fusefs.NodeMkdirer       = (*folderNode)(nil)
	_ fusefs.NodeRmdirer       = (*folderNode)(nil)
	_ fusefs.NodeUnlinker      = (*folderNode)(nil)
	_ fusefs.NodeRenamer       = (*folderNode)(nil)
	_ fusefs.NodeCreater       = (*folderNode)(nil)
	_ fusefs.NodeMknoder       = (*folderNode)(nil)
	_ fusefs.NodeSymlinker     = (*folderNode)(nil)
	_ fusefs.NodeLinker        = (*folderNode)(nil)
)

// rootNode is the mount's root: the directory of top-level folders.
type rootNode struct {
	folderNode
}

var _ fusefs.NodeStatfser = (*rootNode)(nil)

// Statfs reports an empty, read-only filesystem of unknown size.
func (r *rootNode) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	out.Bsize = 4096
	out.Frsize = 4096
	out.NameLen = 255
	return 0
}

func (n *folderNode) dir(ctx context.Context) (*dirInfo, error) {
	dirs, err := n.fs.tree(ctx)
	if err != nil {
		return nil, err
	}
	d := dirs[n.path]
	if d == nil {
		return nil, remote.ErrNotFound
	}
	return d, nil
}

func (n *folderNode) fillDir(a *fuse.Attr) {
	a.Mode = syscall.S_IFDIR | n.fs.dirMode()
	a.Nlink = 2
	a.Uid, a.Gid = n.fs.opts.UID, n.fs.opts.GID
	setTime(a, n.fs.start)
}

// Getattr implements fusefs.NodeGetattrer.
func (n *folderNode) Getattr(ctx context.Context, fh fusefs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	n.fillDir(&out.Attr)
	return 0
}

// Lookup implements fusefs.NodeLookuper: a message of this folder, or a
// child folder. Answered from the listing, so READDIRPLUS costs nothing on
// the network.
func (n *folderNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	d, err := n.dir(ctx)
	if err != nil {
		return nil, toErrno(n.fs.log, "lookup", err)
	}
	if d.folder != "" {
		s := n.fs.folder(d.folder)
		if dr := s.draft(name); dr != nil {
			dr.fillAttr(&out.Attr)
			return dr.EmbeddedInode(), 0
		}
	}
	key, ok := messageKey(name)
	if !ok && d.folder != "" && isShortened(name) && strings.HasSuffix(name, ".eml") {
		key, ok = n.fs.folder(d.folder).shortKey(name)
	}
	if ok {
		if d.folder == "" {
			return nil, syscall.ENOENT
		}
		ms, err := n.fs.folder(d.folder).lookup(ctx, key)
		if err != nil {
			return nil, toErrno(n.fs.log, "lookup", err)
		}
		if ms == nil {
			// Not a message of the listing: perhaps the name mv just gave
			// a moved message. The kernel must not keep that entry: the
			// name may soon be another message's.
			if ms = n.fs.folder(d.folder).aliasFor(name); ms == nil {
				return nil, syscall.ENOENT
			}
			out.SetEntryTimeout(0)
			out.SetAttrTimeout(0)
		}
		ms.fillAttr(&out.Attr)
		node := &messageNode{ms: ms}
		child := n.NewInode(ctx, node, fusefs.StableAttr{Mode: syscall.S_IFREG, Ino: ms.ino})
		ms.setEntry(&n.Inode)
		return child, 0
	}
	if !dirName(name) {
		return nil, syscall.ENOENT
	}
	p := name
	if n.path != "" {
		p = n.path + "/" + name
	}
	dirs, err := n.fs.tree(ctx)
	if err != nil {
		return nil, toErrno(n.fs.log, "lookup", err)
	}
	if dirs[p] == nil {
		return nil, syscall.ENOENT
	}
	child := &folderNode{fs: n.fs, path: p}
	child.fillDir(&out.Attr)
	return n.NewInode(ctx, child, fusefs.StableAttr{Mode: syscall.S_IFDIR, Ino: dirIno(p)}), 0
}

var _ fusefs.NodeOpendirer = (*folderNode)(nil)

// Opendir implements fusefs.NodeOpendirer: a folder's listing is fetched
// here, so that a folder the server will not open is an error at opendir
// (EIO, logged), not an empty directory: ENOENT from readdir reads as its
// end. A folder the server says is gone is ENOENT, and leaves the tree.
func (n *folderNode) Opendir(ctx context.Context) syscall.Errno {
	d, err := n.dir(ctx)
	if err != nil {
		return toErrno(n.fs.log, "opendir", err)
	}
	if d.folder == "" {
		return 0
	}
	if _, err := n.fs.folder(d.folder).listing(ctx, n.fs.opts.PollInterval); err != nil {
		errno := toErrno(n.fs.log, "opendir "+d.folder, err)
		if errno == syscall.ENOENT {
			n.fs.invalidateTree()
			if name, parent := n.Parent(); parent != nil {
				go parent.NotifyEntry(name)
			}
		}
		return errno
	}
	return 0
}

// Readdir implements fusefs.NodeReaddirer: child folders, then messages in
// UID order. A listing older than the poll interval is fetched again here,
// so new mail shows on the next `ls`.
func (n *folderNode) Readdir(ctx context.Context) (fusefs.DirStream, syscall.Errno) {
	d, err := n.dir(ctx)
	if err != nil {
		return nil, toErrno(n.fs.log, "readdir", err)
	}
	var msgs []*msgState
	if d.folder != "" {
		msgs, err = n.fs.folder(d.folder).listing(ctx, n.fs.opts.PollInterval)
		if err != nil {
			return nil, toErrno(n.fs.log, "readdir", err)
		}
	}
	entries := make([]fuse.DirEntry, 0, len(d.children)+len(msgs))
	for _, c := range d.children {
		p := c
		if n.path != "" {
			p = n.path + "/" + c
		}
		entries = append(entries, fuse.DirEntry{Name: c, Mode: syscall.S_IFDIR, Ino: dirIno(p)})
	}
	for _, ms := range msgs {
		entries = append(entries, fuse.DirEntry{Name: ms.name, Mode: syscall.S_IFREG, Ino: ms.ino})
	}
	if d.folder != "" {
		entries = append(entries, n.fs.folder(d.folder).draftEntries()...)
	}
	return fusefs.NewListDirStream(entries), 0
}

// Getxattr implements fusefs.NodeGetxattrer: folders carry no attributes.
func (n *folderNode) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	if xattrNotSupported(attr) {
		return 0, syscall.ENOTSUP
	}
	return 0, syscall.ENODATA
}

// Listxattr implements fusefs.NodeListxattrer.
func (n *folderNode) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	return 0, 0
}

// The changes that make no sense on mail say so, rather than letting the
// kernel pretend they succeeded.

func (n *folderNode) Setxattr(ctx context.Context, attr string, data []byte, flags uint32) syscall.Errno {
	if xattrNotSupported(attr) {
		return syscall.ENOTSUP
	}
	return n.fs.refuse(syscall.EPERM)
}

func (n *folderNode) Removexattr(ctx context.Context, attr string) syscall.Errno {
	if xattrNotSupported(attr) {
		return syscall.ENOTSUP
	}
	return n.fs.refuse(syscall.EPERM)
}

// Setattr accepts what cp -a and touch ask of a directory (times, mode),
// changing nothing: a folder has no such attributes.
func (n *folderNode) Setattr(ctx context.Context, fh fusefs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if n.fs.opts.ReadOnly {
		return syscall.EROFS
	}
	if _, ok := in.GetSize(); ok {
		return syscall.EISDIR
	}
	n.fillDir(&out.Attr)
	return 0
}

func (n *folderNode) Mknod(ctx context.Context, name string, mode uint32, dev uint32, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	return nil, n.fs.refuse(syscall.EPERM)
}

func (n *folderNode) Symlink(ctx context.Context, target, name string, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	return nil, n.fs.refuse(syscall.EPERM)
}

func (n *folderNode) Link(ctx context.Context, target fusefs.InodeEmbedder, name string, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	return nil, n.fs.refuse(syscall.EPERM)
}

func hasFlag(flags []string, flag string) bool {
	for _, f := range flags {
		if strings.EqualFold(f, flag) {
			return true
		}
	}
	return false
}

// invalidate makes the next look at the folder fetch its listing again,
// including a listing already on its way (fetched before the change).
func (s *folderState) invalidate() {
	s.mu.Lock()
	s.stale = true
	s.gen++
	s.mu.Unlock()
}

// alias is a name a message got from mv: the kernel (and mv, which checks)
// expects the moved file under the name it was given, while the server
// lists it under its new UID. For a while both names work.
type alias struct {
	ms      *msgState
	expires time.Time
}

const aliasLife = 10 * time.Second

// addAlias makes name stand for the message that landed as to.
func (s *folderState) addAlias(name string, from *msgState, to remote.Ref) {
	from.mu.Lock()
	info := from.info
	size, verified := from.size, from.verified
	from.mu.Unlock()
	info.UID, info.Key = to.UID, to.Key
	ms := newMsgState(s, to.UIDValidity, info)
	ms.size, ms.verified = size, verified
	ms.name = name
	s.mu.Lock()
	if s.aliases == nil {
		s.aliases = map[string]alias{}
	}
	s.aliases[name] = alias{ms: ms, expires: time.Now().Add(aliasLife)}
	s.mu.Unlock()
}

// aliasFor returns the message a fresh alias names.
func (s *folderState) aliasFor(name string) *msgState {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.aliases[name]
	if !ok {
		return nil
	}
	if time.Now().After(a.expires) {
		delete(s.aliases, name)
		return nil
	}
	return a.ms
}

// remove takes a deleted or moved message out of the listing at once.
func (s *folderState) remove(ms *msgState) {
	s.mu.Lock()
	if s.byKey[ms.ref.Key] == ms {
		delete(s.byKey, ms.ref.Key)
		order := make([]*msgState, 0, len(s.order))
		for _, m := range s.order {
			if m != ms {
				m.index = len(order)
				order = append(order, m)
			}
		}
		s.order = order
	}
	// A listing on its way may still hold it.
	s.stale = true
	s.gen++
	s.mu.Unlock()
}

// draftEntries lists the files being written, by name.
func (s *folderState) draftEntries() []fuse.DirEntry {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []fuse.DirEntry
	for name, dr := range s.drafts {
		out = append(out, fuse.DirEntry{Name: name, Mode: syscall.S_IFREG, Ino: dr.StableAttr().Ino})
	}
	slices.SortFunc(out, func(a, b fuse.DirEntry) int { return strings.Compare(a.Name, b.Name) })
	return out
}
