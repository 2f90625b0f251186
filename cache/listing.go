package cache

import (
	"cmp"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/dgraph-io/badger/v4"

	"mailfs/remote"
)

// putListing records a folder's new listing. A new UIDVALIDITY first drops
// everything cached of the folder under any other one; for IMAP, messages
// the listing shows expunged are dropped too.
func (s *Store) putListing(folder string, l *remote.Listing) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	var keys [][]byte
	s.mu.Lock()
	old, had := s.validity[folder]
	s.validity[folder] = l.UIDValidity // from now on nothing older is served or stored
	stale := had && old != l.UIDValidity
	for f := range s.bodies {
		if f.folder == folder && f.validity != l.UIDValidity {
			stale = true
			for key := range s.bodies[f] {
				s.removeBodyLocked(f, key)
			}
		}
	}
	for f := range s.headers {
		if f.folder == folder && f.validity != l.UIDValidity {
			stale = true
			delete(s.headers, f)
		}
	}
	for f := range s.partials {
		if f.folder == folder && f.validity != l.UIDValidity {
			stale = true
			for key := range s.partials[f] {
				s.removePartialLocked(f, key)
			}
		}
	}
	if !s.pop3 {
		keys = s.expungedLocked(folder, l)
	}
	s.mu.Unlock()

	// A failed deletion is logged, not returned: the index no longer has
	// those messages and their keys name their UIDVALIDITY, so they can
	// never be served; the listing is still worth storing.
	if stale {
		s.log.Info("cache: UIDVALIDITY changed, dropping the folder's cached messages", "folder", folder, "old", old, "new", l.UIDValidity)
		if err := s.dropFolderExcept(folder, l.UIDValidity); err != nil {
			s.log.Warn("cache: dropping messages under an old UIDVALIDITY failed", "folder", folder, "err", err)
		}
	}
	if len(keys) > 0 {
		if err := s.deleteKeys(keys); err != nil {
			s.log.Warn("cache: dropping expunged messages failed", "folder", folder, "err", err)
		}
	}

	enc := encodeListing(l)
	sum := sha256.Sum256(enc)
	hash := string(sum[:])
	s.mu.Lock()
	same := !stale && had && s.listHash[folder] == hash
	s.mu.Unlock()
	if same {
		return nil
	}
	ents := []entry{{key: s.listingKey(folder, l.UIDValidity), value: enc}}
	if had && old != l.UIDValidity {
		ents = append(ents, entry{key: s.listingKey(folder, old), del: true})
	}
	if err := s.write(ents); err != nil {
		return fmt.Errorf("cache: store listing of %q: %v", folder, err)
	}
	s.mu.Lock()
	s.listHash[folder] = hash
	s.mu.Unlock()
	return nil
}

// expungedLocked removes from the index the IMAP messages of folder that l
// shows expunged (a UID below its highest that it lacks: UIDs only grow)
// and returns their keys.
func (s *Store) expungedLocked(folder string, l *remote.Listing) [][]byte {
	if len(l.Messages) == 0 {
		return nil
	}
	f := fv{folder, l.UIDValidity}
	if len(s.bodies[f]) == 0 && len(s.headers[f]) == 0 && len(s.partials[f]) == 0 {
		return nil
	}
	listed := make(map[string]bool, len(l.Messages))
	var top uint32
	for _, m := range l.Messages {
		listed[m.Key] = true
		top = max(top, m.UID)
	}
	gone := func(key string) bool {
		uid, err := strconv.ParseUint(key, 10, 32)
		return err == nil && uint32(uid) < top && !listed[key]
	}
	var keys [][]byte
	for key, m := range s.bodies[f] {
		if gone(key) {
			s.removeBodyLocked(f, key)
			keys = append(keys, s.bodyKeys(f, key, m)...)
		}
	}
	for key := range s.headers[f] {
		if gone(key) {
			s.removeHeaderLocked(f, key)
			keys = append(keys, s.headerKey(f, key))
		}
	}
	for key, p := range s.partials[f] {
		if gone(key) {
			s.removePartialLocked(f, key)
			keys = append(keys, s.partialKeys(f, key, p, 0)...)
		}
	}
	return keys
}

// dropFolderExcept deletes from the disk every body, record, header and
// listing of folder under a UIDVALIDITY other than keep, found by scanning (not from
// the index, so that nothing left over by a crash survives).
func (s *Store) dropFolderExcept(folder string, keep uint32) error {
	var keys [][]byte
	err := s.view(func(txn *badger.Txn) error {
		for _, kind := range []string{kindMeta, kindBody, kindHeader, kindListing} {
			prefix := makePrefix(kind, s.account, folder)
			it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
			for it.Seek(prefix); it.ValidForPrefix(prefix); it.Next() {
				parts, ok := splitKey(it.Item().Key())
				if ok && len(parts) > 3 {
					if v, ok := parseHex8(parts[3]); ok && v == keep {
						continue
					}
				}
				keys = append(keys, it.Item().KeyCopy(nil))
			}
			it.Close()
		}
		return nil
	})
	if err == nil {
		err = s.deleteKeys(keys)
	}
	if err != nil {
		return fmt.Errorf("cache: drop messages of %q under an old UIDVALIDITY: %v", folder, err)
	}
	return nil
}

// putFolders records the folder list, unless it is unchanged.
func (s *Store) putFolders(folders []remote.Folder) error {
	enc, err := encodeFolders(folders)
	if err != nil {
		return err
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.Lock()
	same := s.folderNames != nil && s.foldersEnc == string(enc)
	s.mu.Unlock()
	if same {
		return nil
	}
	if err := s.write([]entry{{key: s.foldersKey(), value: enc}}); err != nil {
		return fmt.Errorf("cache: store folder list: %v", err)
	}
	s.mu.Lock()
	s.setFolderNames(folders, string(enc))
	s.mu.Unlock()
	return nil
}

// cachedFolders returns the cached folder list, or false if there is none.
func (s *Store) cachedFolders() ([]remote.Folder, bool) {
	s.mu.Lock()
	enc, ok := s.foldersEnc, s.folderNames != nil
	s.mu.Unlock()
	if !ok {
		return nil, false
	}
	folders, err := decodeFolders([]byte(enc))
	if err != nil {
		s.log.Warn("cache: folder list unreadable", "err", err)
		return nil, false
	}
	return folders, true
}

// storedListing reads the folder's cached listing; nil if there is none.
func (s *Store) storedListing(folder string) (*remote.Listing, error) {
	s.mu.Lock()
	v, ok := s.validity[folder]
	s.mu.Unlock()
	if !ok {
		return nil, nil
	}
	var l *remote.Listing
	err := s.view(func(txn *badger.Txn) error {
		item, err := txn.Get(s.listingKey(folder, v))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return item.Value(func(b []byte) error {
			var err error
			l, err = decodeListing(b)
			return err
		})
	})
	if err != nil {
		return nil, fmt.Errorf("cache: read listing of %q: %w", folder, err)
	}
	return l, nil
}

// decorate returns what List shows for l: every message whose body is
// cached gets the body's true size (and for POP3 its recorded date);
// without all, messages whose bodies are not cached are left out. A POP3
// listing is followed by the cached messages it lacks, in the order they
// were first cached: the cache may be their only copy.
func (s *Store) decorate(folder string, l *remote.Listing, all bool) *remote.Listing {
	out := &remote.Listing{UIDValidity: l.UIDValidity, Messages: make([]remote.MessageInfo, 0, len(l.Messages))}
	f := fv{folder, l.UIDValidity}
	s.mu.Lock()
	defer s.mu.Unlock()
	bodies := s.bodies[f]
	var seen map[string]bool
	if s.pop3 {
		seen = make(map[string]bool, len(l.Messages))
	}
	for _, m := range l.Messages {
		key := m.Key
		if key == "" {
			key = strconv.FormatUint(uint64(m.UID), 10)
		}
		bm := bodies[key]
		if bm == nil && !all {
			continue
		}
		if bm != nil {
			m.Size = bm.size
			if s.pop3 {
				m.Date = time.Unix(0, bm.date)
			}
		}
		if seen != nil {
			seen[key] = true
		}
		out.Messages = append(out.Messages, m)
	}
	if s.pop3 {
		var extra []victim
		for key, bm := range bodies {
			if !seen[key] {
				extra = append(extra, victim{f: f, key: key, m: bm})
			}
		}
		slices.SortFunc(extra, func(a, b victim) int { return cmp.Compare(a.m.seq, b.m.seq) })
		for _, e := range extra {
			out.Messages = append(out.Messages, remote.MessageInfo{Key: e.key, Size: e.m.size, Date: time.Unix(0, e.m.date)})
		}
	}
	return out
}

// offlineListing is List without a server: the cached listing restricted
// to what can be read. ok is false when the cache knows nothing of folder.
func (s *Store) offlineListing(folder string) (*remote.Listing, bool, error) {
	return s.cachedListing(folder, false)
}

// cachedListing is the cached listing of folder; with all, every message
// it lists, else only those whose bodies are cached.
func (s *Store) cachedListing(folder string, all bool) (*remote.Listing, bool, error) {
	l, err := s.storedListing(folder)
	if err != nil {
		return nil, false, err
	}
	if l == nil {
		if !s.pop3 {
			return nil, false, nil
		}
		// A POP3 folder never listed (bodies stored directly): its bodies.
		s.mu.Lock()
		n := len(s.bodies[fv{folder, 0}])
		s.mu.Unlock()
		if n == 0 {
			return nil, false, nil
		}
		l = &remote.Listing{}
	}
	return s.decorate(folder, l, all), true, nil
}

// missErr says why ref cannot be read without a server. It always wraps
// ErrUnavailable; where the cache knows better it also wraps
// ErrUIDValidity (the folder's cached listing has another UIDVALIDITY) or
// ErrNotFound (the cached listing or folder list lacks it): offline, the
// cache is the mount's view of the account.
func (s *Store) missErr(ref remote.Ref) error {
	key := msgKey(ref)
	s.mu.Lock()
	v, listed := s.validity[ref.Folder]
	knownFolder := s.folderNames == nil || s.folderNames[ref.Folder]
	s.mu.Unlock()
	switch {
	case listed && v != ref.UIDValidity:
		return fmt.Errorf("cache: %s/%s: %w, and offline: %w (listed under %d, cached listing has %d)",
			ref.Folder, key, remote.ErrUIDValidity, remote.ErrUnavailable, ref.UIDValidity, v)
	case !listed && !knownFolder:
		return fmt.Errorf("cache: folder %q: %w in the cached folder list, and offline: %w", ref.Folder, remote.ErrNotFound, remote.ErrUnavailable)
	case !listed:
		return fmt.Errorf("cache: %s/%s: not cached, and offline: %w", ref.Folder, key, remote.ErrUnavailable)
	}
	l, err := s.storedListing(ref.Folder)
	if err == nil && l != nil && !slices.ContainsFunc(l.Messages, func(m remote.MessageInfo) bool { return m.Key == key }) {
		return fmt.Errorf("cache: %s/%s: %w in the cached listing, and offline: %w", ref.Folder, key, remote.ErrNotFound, remote.ErrUnavailable)
	}
	return fmt.Errorf("cache: %s/%s: not cached, and offline: %w", ref.Folder, key, remote.ErrUnavailable)
}
