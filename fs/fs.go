package fs

import (
	"context"
	"hash/fnv"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"mailfs/remote"
)

// Options tune the filesystem. Zero values take the defaults.
type Options struct {
	// PollInterval: a listing older than this is fetched again (default 60 s).
	PollInterval time.Duration
	// UID and GID own every file (default: the mounting process's).
	UID, GID uint32
	Logger   *slog.Logger

	// PrefetchCount and PrefetchBytes bound one bulk body fetch (defaults
	// 128 messages, 8 MiB).
	PrefetchCount int
	PrefetchBytes int64
	// LargeBody: messages announced larger than this are read in ranges of
	// ChunkSize (defaults 1 MiB and 1 MiB).
	LargeBody int64
	ChunkSize int64
	// MemoryCache bounds the bodies and chunks kept in memory (default 128 MiB).
	MemoryCache int64
	// ReadOnly refuses every change with EROFS, sending nothing.
	ReadOnly bool
	// SpoolDir holds the files being written into folders until they are
	// appended (default: the system's temporary directory).
	SpoolDir string
}

func (o *Options) setDefaults() {
	if o.PollInterval <= 0 {
		o.PollInterval = 60 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.UID == 0 && o.GID == 0 {
		o.UID, o.GID = uint32(os.Getuid()), uint32(os.Getgid())
	}
	if o.PrefetchCount <= 0 {
		o.PrefetchCount = 128
	}
	if o.PrefetchBytes <= 0 {
		o.PrefetchBytes = 8 << 20
	}
	if o.LargeBody <= 0 {
		o.LargeBody = 1 << 20
	}
	if o.ChunkSize <= 0 {
		o.ChunkSize = 1 << 20
	}
	if o.MemoryCache <= 0 {
		o.MemoryCache = 128 << 20
	}
	if o.SpoolDir == "" {
		o.SpoolDir = os.TempDir()
	}
}

// FS is one mounted account.
type FS struct {
	acct  remote.Account
	opts  Options
	log   *slog.Logger
	start time.Time
	mem   *memCache
	// flight collapses concurrent fetches of one body or chunk.
	flight flights

	// bg is the context of background fetches: cancelled by Close, never by
	// one reader giving up.
	bg     context.Context
	cancel context.CancelFunc

	mu       sync.Mutex              // protects the fields below
	dirs     map[string]*dirInfo     // by escaped path ("" is the root)
	folders  map[string]*folderState // by server folder name
	listedAt time.Time
	treeRef  refresher // the folder list's fetches
	treeGen  uint64    // counts changes to the tree made here
}

// dirInfo is one directory of the tree.
type dirInfo struct {
	path     string   // escaped path from the root, "/"-joined
	folder   string   // server folder name, "" when not selectable
	server   string   // the server's name for this directory, selectable or not ("" for the root)
	delim    string   // the server's hierarchy delimiter
	children []string // escaped names of child directories, sorted
}

// childName is the server's name for a folder named seg inside d.
func (d *dirInfo) childName(seg string) string {
	if d.server == "" {
		return seg
	}
	return d.server + d.delim + seg
}

// New makes the filesystem for acct. Call Close when unmounted.
func New(acct remote.Account, opts Options) *FS {
	opts.setDefaults()
	f := &FS{
		acct:    acct,
		opts:    opts,
		log:     opts.Logger,
		start:   time.Now(),
		mem:     newMemCache(opts.MemoryCache),
		folders: make(map[string]*folderState),
	}
	f.bg, f.cancel = context.WithCancel(context.Background())
	return f
}

// Root is the root node, for fusefs.Mount.
func (f *FS) Root() fusefs.InodeEmbedder {
	return &rootNode{folderNode{fs: f, path: ""}}
}

// Close stops background fetches.
func (f *FS) Close() { f.cancel() }

// MountOptions returns the fusefs options mailfs mounts with.
func (f *FS) MountOptions(name string) *fusefs.Options {
	ttl := f.opts.PollInterval
	return &fusefs.Options{
		EntryTimeout: &ttl,
		AttrTimeout:  &ttl,
		// No negative caching: new mail must be found by name at once.
		NegativeTimeout: new(time.Duration),
		UID:             f.opts.UID,
		GID:             f.opts.GID,
		MountOptions: fuse.MountOptions{
			FsName:        "mailfs:" + name,
			Name:          "mailfs",
			DirectMount:   os.Geteuid() == 0,
			MaxReadAhead:  1 << 20,
			DisableXAttrs: false,
		},
	}
}

// tree returns the directory tree, fetching the folder list when it is
// missing. One older than the poll interval is fetched in the background
// and served meanwhile when that takes more than refreshWait; one a change
// here outdated (listedAt zero) is waited for. After a failed fetch none
// other starts before a backoff has passed. A failed refresh keeps the old
// tree when there is one.
func (f *FS) tree(ctx context.Context) (map[string]*dirInfo, error) {
	f.mu.Lock()
	have := f.dirs != nil
	if have && time.Since(f.listedAt) < f.opts.PollInterval {
		dirs := f.dirs
		f.mu.Unlock()
		return dirs, nil
	}
	ch, fresh := f.treeRef.begin()
	if ch == nil { // backing off after a failure
		dirs, err := f.dirs, f.treeRef.err
		f.mu.Unlock()
		if have {
			return dirs, nil
		}
		return nil, err
	}
	if fresh {
		go f.refreshTree(f.treeGen)
	}
	patient := !have || f.listedAt.IsZero()
	started := f.treeRef.started
	f.mu.Unlock()
	if err := waitRefresh(ctx, ch, started, patient); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.dirs == nil {
		return nil, f.treeRef.err
	}
	return f.dirs, nil
}

// refreshTree fetches the folder list and builds the tree. A failure
// keeps the tree there was (logged), or is the refresher's err when there
// was none.
func (f *FS) refreshTree(gen uint64) {
	fctx, cancel := context.WithTimeout(f.bg, 5*time.Minute)
	folders, err := f.acct.Folders(fctx)
	cancel()
	f.mu.Lock()
	defer f.mu.Unlock()
	if err == nil {
		f.dirs = buildTree(folders)
		f.listedAt = time.Now()
		if f.treeGen != gen {
			f.listedAt = time.Time{} // a change here came in meanwhile
		}
	} else if f.dirs != nil {
		f.log.Warn("mailfs: folder list refresh failed, keeping the old one", "err", err)
	}
	f.treeRef.end(err)
}

// buildTree turns the folder list into directories. A folder's parents
// exist as directories even when the server does not list them.
func buildTree(folders []remote.Folder) map[string]*dirInfo {
	dirs := map[string]*dirInfo{"": {path: ""}}
	for _, fo := range folders {
		parent := dirs[""]
		if parent.delim == "" {
			parent.delim = fo.Delim
		}
		for i, seg := range fo.Path {
			p := escapeSegment(seg)
			if parent.path != "" {
				p = parent.path + "/" + p
			}
			d, ok := dirs[p]
			if !ok {
				d = &dirInfo{path: p, server: strings.Join(fo.Path[:i+1], fo.Delim), delim: fo.Delim}
				dirs[p] = d
				parent.children = append(parent.children, p[strings.LastIndexByte(p, '/')+1:])
			}
			if i == len(fo.Path)-1 && !fo.NoSelect {
				d.folder = fo.Name
			}
			parent = d
		}
	}
	for _, d := range dirs {
		slices.Sort(d.children)
		d.children = slices.Compact(d.children)
	}
	return dirs
}

// folder returns the state of a selectable folder, creating it once.
func (f *FS) folder(name string) *folderState {
	f.mu.Lock()
	defer f.mu.Unlock()
	fs, ok := f.folders[name]
	if !ok {
		fs = &folderState{fs: f, name: name, byKey: map[string]*msgState{}, lastOpen: -100}
		f.folders[name] = fs
	}
	return fs
}

// inoOf gives deterministic inode numbers: the same folder or message (under
// one UIDVALIDITY) always gets the same number.
func inoOf(parts ...string) uint64 {
	h := fnv.New64a()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	ino := h.Sum64()
	if ino < 2 {
		ino += 2 // 1 is the root
	}
	return ino
}

func dirIno(path string) uint64 {
	if path == "" {
		return 1
	}
	return inoOf("dir", path)
}

func msgIno(folder string, validity uint32, key string) uint64 {
	return inoOf("msg", folder, strconv.FormatUint(uint64(validity), 10), key)
}

func setTime(a *fuse.Attr, t time.Time) {
	s, ns := uint64(t.Unix()), uint32(t.Nanosecond())
	if t.Unix() < 0 {
		s, ns = 0, 0
	}
	a.Mtime, a.Mtimensec = s, ns
	a.Ctime, a.Ctimensec = s, ns
	a.Atime, a.Atimensec = s, ns
}

// xattrNotSupported answers the namespaces mailfs does not serve: ENOTSUP
// makes `ls -l` stop asking for security.selinux and ACLs (ENODATA would not,
// ENOSYS would switch off user.mail.* too).
func xattrNotSupported(attr string) bool {
	return !strings.HasPrefix(attr, "user.")
}

// dirMode is the permission of every directory.
func (f *FS) dirMode() uint32 {
	if f.opts.ReadOnly {
		return 0o555
	}
	return 0o755
}

// refuse is the answer to a change mailfs cannot make: errno, or EROFS on a
// read-only mount.
func (f *FS) refuse(errno syscall.Errno) syscall.Errno {
	if f.opts.ReadOnly {
		return syscall.EROFS
	}
	return errno
}

// invalidateTree makes the next look at the tree fetch the folder list,
// including a fetch already on its way (begun before the change).
func (f *FS) invalidateTree() {
	f.mu.Lock()
	f.listedAt = time.Time{}
	f.treeGen++
	f.mu.Unlock()
}
