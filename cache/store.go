package cache

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/dgraph-io/badger/v4"

	"mailfs/remote"
)

// Options configure Open.
type Options struct {
	// Dir is the account's cache directory, e.g.
	// $XDG_CACHE_HOME/mailfs/<account>. It is created with mode 0700 (and
	// made 0700 if it exists with looser permissions). Empty with InMemory.
	Dir string
	// InMemory keeps everything in memory (tests): nothing touches the disk.
	InMemory bool
	// Account is the account's name, part of every key.
	Account string
	// Protocol is "imap" or "pop3".
	Protocol string
	// MaxSize bounds the bytes of cached IMAP bodies; 0 means unlimited.
	// POP3 bodies are never evicted: the cache may be their only copy.
	MaxSize int64
	// EncryptionKey, if set (16, 24 or 32 bytes), encrypts everything at
	// rest with AES. The same key is needed to open the cache again.
	EncryptionKey []byte
	Logger        *slog.Logger
}

var (
	// ErrInUse: another mount (or any process) has the cache directory open.
	ErrInUse = errors.New("cache in use by another mount")
	// ErrSchema: the cache was written by a mailfs with another key layout.
	ErrSchema = errors.New("unsupported cache schema version")
	// ErrEncryptionKey: the key does not open the cache (wrong key, a key
	// for an unencrypted cache, or none for an encrypted one).
	ErrEncryptionKey = errors.New("encryption key does not match")
)

// Tuning. Bodies are stored in chunks, so that a range is read without the
// rest of a large message and no value outgrows a value-log file.
const (
	defaultChunk   = 256 << 10
	memTableSize   = 16 << 20
	valueThreshold = 4 << 10 // larger values (most bodies) go to the value log
	vlogFileSize   = 64 << 20
	gcInterval     = 5 * time.Minute
	gcDiscardRatio = 0.5
	gcAfterEvict   = 32 << 20 // bytes evicted at once that call for a value-log GC
	flushInterval  = 30 * time.Second
	evictTarget    = 0.9 // eviction stops at this fraction of MaxSize
)

// Store is one account's cache: a badger database, the in-memory index of
// what it holds, and the goroutines that evict, persist access times and
// collect value-log garbage.
type Store struct {
	db      *badger.DB
	log     *slog.Logger
	account string
	pop3    bool
	maxSize int64
	chunk   int64
	where   string // directory, for messages
	memory  bool

	// closeMu guards the database against use after Close: every database
	// call holds it for reading; Close takes it for writing once and sets
	// closed. Nothing holding it waits for wmu or for the network.
	closeMu sync.RWMutex
	closed  bool

	// wmu serializes every write that changes what the index mirrors
	// (bodies, headers, listings, folder lists, deletions, eviction,
	// access-time flushes), so that the index and the disk agree: a body
	// is written before it enters the index and leaves the index before
	// it is deleted. Taken before mu, never while holding mu or closeMu.
	wmu sync.Mutex

	// mu protects the in-memory index below. Held only for map work,
	// never across database calls or the network.
	mu          sync.Mutex
	validity    map[string]uint32           // folder → UIDVALIDITY of its cached listing
	listHash    map[string]string           // folder → SHA-256 of the listing last written (skip rewrites)
	folderNames map[string]bool             // the cached folder list; nil if none
	foldersEnc  string                      // encoded folder list last written
	bodies      map[fv]map[string]*bodyMeta // cached bodies
	headers     map[fv]map[string]struct{}  // cached header records
	total       int64                       // bytes of all cached bodies
	seq         uint64                      // next bodyMeta.seq
	clock       int64                       // last atime handed out
	partials    map[fv]map[string]*partial  // bodies being kept from ranges (partial.go)
	partBytes   int64                       // bytes of all partials' chunks
	streams     map[fv]map[string]*inflight // bodies being streamed in (stream.go)

	evictCh chan struct{} // wakes the evictor (buffered 1)
	gcCh    chan struct{} // wakes the value-log collector (buffered 1)
	stop    chan struct{} // closed by Close
	wg      sync.WaitGroup
	once    sync.Once
	errc    error // Close's result
}

// DefaultDir returns the cache directory of account:
// $XDG_CACHE_HOME/mailfs/<account>, else ~/.cache/mailfs/<account>.
func DefaultDir(account string) (string, error) {
	if account == "" || account == "." || account == ".." || strings.ContainsAny(account, "/\x00") {
		return "", fmt.Errorf("cache: account name %q cannot name a directory", account)
	}
	base := os.Getenv("XDG_CACHE_HOME")
	if !filepath.IsAbs(base) { // the XDG spec: relative paths are ignored
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("cache: no cache directory: %w", err)
		}
		base = filepath.Join(home, ".cache")
	}
	return filepath.Join(base, "mailfs", account), nil
}

// Open opens (creating it if needed) the cache of one account.
func Open(opts Options) (*Store, error) { return open(opts, defaultChunk) }

func open(opts Options, chunk int64) (*Store, error) {
	if opts.Account == "" {
		return nil, errors.New("cache: no account name")
	}
	if opts.Protocol != "imap" && opts.Protocol != "pop3" {
		return nil, fmt.Errorf("cache: protocol %q: want imap or pop3", opts.Protocol)
	}
	if opts.MaxSize < 0 {
		return nil, fmt.Errorf("cache: negative maximum size %d", opts.MaxSize)
	}
	switch len(opts.EncryptionKey) {
	case 0, 16, 24, 32:
	default:
		return nil, fmt.Errorf("cache: encryption key of %d bytes: want 16, 24 or 32", len(opts.EncryptionKey))
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var bo badger.Options
	where := opts.Dir
	if opts.InMemory {
		if opts.Dir != "" {
			return nil, errors.New("cache: a directory and InMemory: choose one")
		}
		where = "(in memory)"
		// In memory every value lives in the memtable: it must hold a
		// chunk, and a transaction at most 15% of it.
		bo = badger.DefaultOptions("").WithInMemory(true).
			WithMemTableSize(8 << 20).WithValueThreshold(1 << 20)
	} else {
		if opts.Dir == "" {
			return nil, errors.New("cache: no directory")
		}
		if err := prepareDir(opts.Dir); err != nil {
			return nil, err
		}
		bo = badger.DefaultOptions(opts.Dir).
			WithMemTableSize(memTableSize).
			WithValueThreshold(valueThreshold).
			WithValueLogFileSize(vlogFileSize)
	}
	bo = bo.WithLogger(slogBridge{log}).
		WithNumMemtables(3).
		WithNumCompactors(2).
		WithBlockCacheSize(16 << 20).
		WithMetricsEnabled(false).
		WithDetectConflicts(false). // wmu orders the writes
		WithSyncWrites(false)       // Sync makes what matters durable
	if len(opts.EncryptionKey) > 0 {
		// Encrypted tables need an index cache.
		bo = bo.WithEncryptionKey(opts.EncryptionKey).WithIndexCacheSize(8 << 20)
	}
	db, err := badger.Open(bo)
	for try := 0; err != nil && isNewFileError(err) && try < 2; try++ {
		// A process killed between creating a memtable or value-log file
		// and its first write leaves it empty, and badger v4 refuses to
		// open such a directory once ("Create a new file", badger issue
		// 2207), having made the file whole under its lock: the next
		// Open succeeds.
		log.Info("cache: reopening after an interrupted run left an empty log file", "dir", where)
		db, err = badger.Open(bo)
	}
	if err != nil {
		return nil, openError(where, opts.EncryptionKey != nil, err)
	}
	s := &Store{
		db:       db,
		log:      log,
		account:  opts.Account,
		pop3:     opts.Protocol == "pop3",
		maxSize:  opts.MaxSize,
		chunk:    chunk,
		where:    where,
		memory:   opts.InMemory,
		validity: map[string]uint32{},
		listHash: map[string]string{},
		bodies:   map[fv]map[string]*bodyMeta{},
		headers:  map[fv]map[string]struct{}{},
		partials: map[fv]map[string]*partial{},
		streams:  map[fv]map[string]*inflight{},
		evictCh:  make(chan struct{}, 1),
		gcCh:     make(chan struct{}, 1),
		stop:     make(chan struct{}),
	}
	if err := s.checkSchema(); err != nil {
		db.Close()
		return nil, err
	}
	if err := s.load(); err != nil {
		db.Close()
		return nil, err
	}
	s.wg.Go(s.evictLoop)
	s.wg.Go(s.flushLoop)
	if !s.memory { // badger has no value log in memory
		s.wg.Go(s.gcLoop)
	}
	s.kick(s.evictCh)
	return s, nil
}

// prepareDir creates dir with mode 0700, or tightens an existing one.
func prepareDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("cache: create %s: %w", dir, err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("cache: %s is not a directory", dir)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("cache: make %s private: %w", dir, err)
		}
	}
	return nil
}

// openError turns badger's errors into ours. badger formats the errors it
// wraps with %v, so the lock and key errors are recognised by their text
// too.
func openError(where string, haveKey bool, err error) error {
	msg := err.Error()
	switch {
	case errors.Is(err, syscall.EWOULDBLOCK) || strings.Contains(msg, "Cannot acquire directory lock"):
		return fmt.Errorf("cache: %s: %w (badger's directory lock is held: is this account mounted, or syncing, elsewhere?)", where, ErrInUse)
	case errors.Is(err, badger.ErrEncryptionKeyMismatch) || strings.Contains(msg, badger.ErrEncryptionKeyMismatch.Error()):
		if haveKey {
			return fmt.Errorf("cache: %s: %w: wrong key, or the cache was written without encryption", where, ErrEncryptionKey)
		}
		return fmt.Errorf("cache: %s: %w: the cache is encrypted and no key was given", where, ErrEncryptionKey)
	}
	return fmt.Errorf("cache: open %s: %v", where, err)
}

// isNewFileError recognises badger's z.NewFile sentinel, which it wraps
// with %v.
func isNewFileError(err error) bool {
	return strings.Contains(err.Error(), "Create a new file")
}

// checkSchema writes the schema version into a new cache and refuses a
// cache of another version.
func (s *Store) checkSchema() error {
	var got string
	var empty bool
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(schemaKey)
		if errors.Is(err, badger.ErrKeyNotFound) {
			it := txn.NewIterator(badger.IteratorOptions{})
			defer it.Close()
			it.Rewind()
			empty = !it.Valid()
			return nil
		}
		if err != nil {
			return err
		}
		v, err := item.ValueCopy(nil)
		got = string(v)
		return err
	})
	if err != nil {
		return fmt.Errorf("cache: %s: read schema version: %v", s.where, err)
	}
	want := strconv.Itoa(schemaVersion)
	switch {
	case got == want:
		return nil
	case got == "" && empty:
		err := s.db.Update(func(txn *badger.Txn) error { return txn.Set(schemaKey, []byte(want)) })
		if err != nil {
			return fmt.Errorf("cache: %s: write schema version: %v", s.where, err)
		}
		return nil
	case got == "":
		return fmt.Errorf("cache: %s: %w: data without a schema version; remove the directory to start afresh", s.where, ErrSchema)
	}
	return fmt.Errorf("cache: %s: %w %q (this mailfs reads version %s); remove the directory to start afresh", s.where, ErrSchema, got, want)
}

// load builds the index from the database: listings' validities, the
// folder list, body records (and the sequence and clock after them),
// headers; chunks that belong to no body (a crash while storing one) are
// deleted.
func (s *Store) load() error {
	var orphans [][]byte
	err := s.db.View(func(txn *badger.Txn) error {
		if item, err := txn.Get(s.foldersKey()); err == nil {
			b, err := item.ValueCopy(nil)
			if err != nil {
				return err
			}
			folders, err := decodeFolders(b)
			if err != nil {
				return err
			}
			s.setFolderNames(folders, string(b))
		} else if !errors.Is(err, badger.ErrKeyNotFound) {
			return err
		}
		scan := func(kind string, values bool, fn func(parts []string, item *badger.Item) error) error {
			prefix := makePrefix(kind, s.account)
			it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: values, PrefetchSize: 100})
			defer it.Close()
			for it.Seek(prefix); it.ValidForPrefix(prefix); it.Next() {
				parts, ok := splitKey(it.Item().Key())
				if !ok || len(parts) < 2 {
					continue
				}
				if err := fn(parts[2:], it.Item()); err != nil {
					return err
				}
			}
			return nil
		}
		err := scan(kindListing, false, func(p []string, _ *badger.Item) error {
			if len(p) == 2 {
				if v, ok := parseHex8(p[1]); ok {
					s.validity[p[0]] = v
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		err = scan(kindMeta, true, func(p []string, item *badger.Item) error {
			if len(p) != 3 {
				return nil
			}
			v, ok := parseHex8(p[1])
			if !ok {
				return nil
			}
			var m *bodyMeta
			err := item.Value(func(b []byte) error {
				var err error
				m, err = decodeMeta(b)
				return err
			})
			if err != nil {
				s.log.Warn("cache: unreadable body record skipped", "folder", p[0], "key", p[2], "err", err)
				return nil
			}
			s.addBody(fv{p[0], v}, p[2], m)
			s.seq = max(s.seq, m.seq+1)
			s.clock = max(s.clock, m.atime)
			return nil
		})
		if err != nil {
			return err
		}
		err = scan(kindHeader, false, func(p []string, _ *badger.Item) error {
			if len(p) == 3 {
				if v, ok := parseHex8(p[1]); ok {
					s.addHeader(fv{p[0], v}, p[2])
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		return scan(kindBody, false, func(p []string, item *badger.Item) error {
			if len(p) != 4 {
				return nil
			}
			v, ok1 := parseHex8(p[1])
			i, ok2 := parseHex8(p[3])
			if m := s.bodies[fv{p[0], v}][p[2]]; ok1 && ok2 && m != nil && int64(i) < m.chunks() {
				return nil
			}
			orphans = append(orphans, item.KeyCopy(nil))
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("cache: %s: read index: %v", s.where, err)
	}
	if len(orphans) > 0 {
		s.log.Info("cache: removing chunks of bodies never completely stored", "chunks", len(orphans))
		if err := s.deleteKeys(orphans); err != nil {
			s.log.Warn("cache: removing stray chunks failed", "err", err)
		}
	}
	s.log.Debug("cache: opened", "dir", s.where, "bodies", s.count(), "bytes", s.total)
	return nil
}

func (s *Store) count() int {
	n := 0
	for _, m := range s.bodies {
		n += len(m)
	}
	return n
}

// Close stops the background work, writes pending access times and closes
// the database. Accounts from Wrap must not be used afterwards.
func (s *Store) Close() error {
	s.once.Do(func() {
		close(s.stop)
		s.wg.Wait()
		s.flushAtimes()
		s.closeMu.Lock()
		s.closed = true
		s.errc = s.db.Close()
		s.closeMu.Unlock()
		if s.errc != nil {
			s.errc = fmt.Errorf("cache: close %s: %v", s.where, s.errc)
		}
	})
	return s.errc
}

var errClosed = fmt.Errorf("cache: closed: %w", remote.ErrUnavailable)

// withDB runs fn on the open database.
func (s *Store) withDB(fn func(db *badger.DB) error) error {
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		return errClosed
	}
	return fn(s.db)
}

func (s *Store) view(fn func(txn *badger.Txn) error) error {
	return s.withDB(func(db *badger.DB) error { return db.View(fn) })
}

// sync makes every write so far durable.
func (s *Store) sync() error {
	if err := s.withDB(func(db *badger.DB) error { return db.Sync() }); err != nil {
		return fmt.Errorf("cache: sync %s: %v", s.where, err)
	}
	return nil
}

// kick wakes a background goroutine without waiting.
func (s *Store) kick(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

func (s *Store) evictLoop() {
	for {
		select {
		case <-s.stop:
			return
		case <-s.evictCh:
			if n := s.evict(); n >= gcAfterEvict {
				s.kick(s.gcCh)
			}
		}
	}
}

func (s *Store) gcLoop() {
	t := time.NewTicker(gcInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		case <-s.gcCh:
		}
		s.runGC()
	}
}

// runGC rewrites value-log files while badger finds one at least half
// garbage; it stops when there is nothing left to do or at Close.
func (s *Store) runGC() {
	if s.memory {
		return
	}
	for range 100 {
		select {
		case <-s.stop:
			return
		default:
		}
		err := s.withDB(func(db *badger.DB) error { return db.RunValueLogGC(gcDiscardRatio) })
		switch {
		case err == nil:
			s.log.Debug("cache: value-log file rewritten")
			continue
		case errors.Is(err, badger.ErrNoRewrite), errors.Is(err, badger.ErrRejected), errors.Is(err, errClosed):
		default:
			s.log.Warn("cache: value-log garbage collection", "err", err)
		}
		return
	}
}

func (s *Store) flushLoop() {
	t := time.NewTicker(flushInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.flushAtimes()
		}
	}
}

// slogBridge is badger's Logger on a slog.Logger. badger's Info is
// start-up and compaction chatter, so it goes to Debug.
type slogBridge struct{ log *slog.Logger }

func (b slogBridge) logf(level slog.Level, format string, args ...any) {
	ctx := context.Background()
	if !b.log.Enabled(ctx, level) {
		return
	}
	b.log.Log(ctx, level, "cache: badger: "+strings.TrimSpace(fmt.Sprintf(format, args...)))
}

func (b slogBridge) Errorf(f string, a ...any)   { b.logf(slog.LevelError, f, a...) }
func (b slogBridge) Warningf(f string, a ...any) { b.logf(slog.LevelWarn, f, a...) }
func (b slogBridge) Infof(f string, a ...any)    { b.logf(slog.LevelDebug, f, a...) }
func (b slogBridge) Debugf(f string, a ...any)   { b.logf(slog.LevelDebug, f, a...) }
