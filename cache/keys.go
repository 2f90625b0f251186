package cache

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"mailfs/remote"
)

// schemaVersion is the layout of keys and values below. It is the first
// component of every data key and the value of schemaKey; a cache of
// another version is refused at Open, never read.
const schemaVersion = 1

// schemaKey holds the decimal schema version. It carries no version prefix
// itself, so that any later mailfs can read it.
var schemaKey = []byte("mailfs-schema")

// Kinds of record, the component after the version.
const (
	kindFolders = "F" // F/account → JSON []remote.Folder
	kindListing = "L" // L/account/folder/validity → encodeListing
	kindMeta    = "M" // M/account/folder/validity/key → encodeMeta
	kindBody    = "B" // B/account/folder/validity/key/chunk → bytes
	kindHeader  = "H" // H/account/folder/validity/key → header bytes
)

// A key is the version and its components, each preceded by a NUL byte and
// escaped so that it holds none: NUL becomes 0x01 0x01 and 0x01 becomes
// 0x01 0x02. Any folder name or message key (any bytes, "/" included) is
// thus one unambiguous component, and the prefix of a folder ends with a
// NUL that no longer folder name can continue.
func appendComponent(dst []byte, s string) []byte {
	dst = append(dst, 0)
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case 0:
			dst = append(dst, 1, 1)
		case 1:
			dst = append(dst, 1, 2)
		default:
			dst = append(dst, c)
		}
	}
	return dst
}

// makeKey builds the key of a record of kind with the given components.
func makeKey(kind string, parts ...string) []byte {
	n := 2 + len(kind)
	for _, p := range parts {
		n += 1 + len(p) + 2
	}
	k := make([]byte, 0, n)
	k = strconv.AppendInt(k, schemaVersion, 10)
	k = appendComponent(k, kind)
	for _, p := range parts {
		k = appendComponent(k, p)
	}
	return k
}

// makePrefix is makeKey with a trailing separator: the prefix of every key
// that has these components and at least one more.
func makePrefix(kind string, parts ...string) []byte {
	return append(makeKey(kind, parts...), 0)
}

// splitKey returns the components of a data key after the version, or
// false for a key of another version or a malformed one.
func splitKey(k []byte) ([]string, bool) {
	raw := bytes.Split(k, []byte{0})
	if len(raw) < 2 || string(raw[0]) != strconv.Itoa(schemaVersion) {
		return nil, false
	}
	out := make([]string, 0, len(raw)-1)
	for _, c := range raw[1:] {
		var b []byte
		for i := 0; i < len(c); i++ {
			if c[i] != 1 {
				b = append(b, c[i])
				continue
			}
			if i+1 >= len(c) {
				return nil, false
			}
			i++
			switch c[i] {
			case 1:
				b = append(b, 0)
			case 2:
				b = append(b, 1)
			default:
				return nil, false
			}
		}
		out = append(out, string(b))
	}
	return out, true
}

// hex8 formats a UIDVALIDITY or chunk number with fixed width, so that keys
// sort numerically.
func hex8(v uint32) string {
	const digits = "0123456789abcdef"
	var b [8]byte
	for i := 7; i >= 0; i-- {
		b[i] = digits[v&0xf]
		v >>= 4
	}
	return string(b[:])
}

func parseHex8(s string) (uint32, bool) {
	if len(s) != 8 {
		return 0, false
	}
	v, err := strconv.ParseUint(s, 16, 32)
	return uint32(v), err == nil
}

// fv is a folder under one UIDVALIDITY: the scope of message keys.
type fv struct {
	folder   string
	validity uint32
}

func (s *Store) foldersKey() []byte { return makeKey(kindFolders, s.account) }

func (s *Store) listingKey(folder string, validity uint32) []byte {
	return makeKey(kindListing, s.account, folder, hex8(validity))
}

func (s *Store) metaKey(f fv, key string) []byte {
	return makeKey(kindMeta, s.account, f.folder, hex8(f.validity), key)
}

func (s *Store) headerKey(f fv, key string) []byte {
	return makeKey(kindHeader, s.account, f.folder, hex8(f.validity), key)
}

func (s *Store) chunkKey(f fv, key string, i int64) []byte {
	return makeKey(kindBody, s.account, f.folder, hex8(f.validity), key, hex8(uint32(i)))
}

// msgKey is the key a ref names its message by: Key, else the decimal UID.
func msgKey(ref remote.Ref) string {
	if ref.Key != "" {
		return ref.Key
	}
	return strconv.FormatUint(uint64(ref.UID), 10)
}

// bodyMeta describes one cached body; its record is written after the
// body's chunks, so a body is cached exactly when its meta exists.
type bodyMeta struct {
	size  int64  // bytes
	chunk int64  // chunk size the body was stored with
	date  int64  // Date header, else download time (unix ns)
	seq   uint64 // order of first caching
	atime int64  // last use (unix ns, strictly increasing)
	dirty bool   // atime changed since the record was written
}

func (m *bodyMeta) chunks() int64 {
	if m.size == 0 {
		return 0
	}
	return (m.size + m.chunk - 1) / m.chunk
}

const metaLen = 1 + 5*8

func encodeMeta(m *bodyMeta) []byte {
	b := make([]byte, 1, metaLen)
	b[0] = 1
	b = binary.BigEndian.AppendUint64(b, uint64(m.size))
	b = binary.BigEndian.AppendUint64(b, uint64(m.chunk))
	b = binary.BigEndian.AppendUint64(b, uint64(m.date))
	b = binary.BigEndian.AppendUint64(b, m.seq)
	b = binary.BigEndian.AppendUint64(b, uint64(m.atime))
	return b
}

func decodeMeta(b []byte) (*bodyMeta, error) {
	if len(b) != metaLen || b[0] != 1 {
		return nil, errors.New("corrupt body record")
	}
	u := func(i int) uint64 { return binary.BigEndian.Uint64(b[1+8*i:]) }
	m := &bodyMeta{size: int64(u(0)), chunk: int64(u(1)), date: int64(u(2)), seq: u(3), atime: int64(u(4))}
	if m.size < 0 || m.chunk <= 0 {
		return nil, errors.New("corrupt body record")
	}
	return m, nil
}

// encodeListing: a version byte, then uvarints and length-prefixed
// strings; dates as seconds and nanoseconds with a presence flag.
func encodeListing(l *remote.Listing) []byte {
	b := []byte{1}
	b = binary.AppendUvarint(b, uint64(l.UIDValidity))
	b = binary.AppendUvarint(b, uint64(len(l.Messages)))
	str := func(s string) {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	for _, m := range l.Messages {
		b = binary.AppendUvarint(b, uint64(m.UID))
		str(m.Key)
		b = binary.AppendVarint(b, m.Size)
		if m.Date.IsZero() {
			b = append(b, 0)
		} else {
			b = append(b, 1)
			b = binary.AppendVarint(b, m.Date.Unix())
			b = binary.AppendUvarint(b, uint64(m.Date.Nanosecond()))
		}
		b = binary.AppendUvarint(b, uint64(len(m.Flags)))
		for _, f := range m.Flags {
			str(f)
		}
	}
	return b
}

var errCorruptListing = errors.New("corrupt listing record")

func decodeListing(b []byte) (*remote.Listing, error) {
	if len(b) == 0 || b[0] != 1 {
		return nil, errCorruptListing
	}
	b = b[1:]
	bad := false
	uv := func() uint64 {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			bad = true
			return 0
		}
		b = b[n:]
		return v
	}
	sv := func() int64 {
		v, n := binary.Varint(b)
		if n <= 0 {
			bad = true
			return 0
		}
		b = b[n:]
		return v
	}
	str := func() string {
		n := uv()
		if bad || n > uint64(len(b)) {
			bad = true
			return ""
		}
		s := string(b[:n])
		b = b[n:]
		return s
	}
	l := &remote.Listing{UIDValidity: uint32(uv())}
	n := uv()
	if bad || n > uint64(len(b)) {
		return nil, errCorruptListing
	}
	l.Messages = make([]remote.MessageInfo, 0, n)
	for range n {
		var m remote.MessageInfo
		m.UID = uint32(uv())
		m.Key = str()
		m.Size = sv()
		if len(b) == 0 {
			return nil, errCorruptListing
		}
		hasDate := b[0]
		b = b[1:]
		if hasDate == 1 {
			sec := sv()
			nsec := uv()
			m.Date = time.Unix(sec, int64(nsec)).UTC()
		}
		nf := uv()
		if bad || nf > uint64(len(b)) {
			return nil, errCorruptListing
		}
		for range nf {
			m.Flags = append(m.Flags, str())
		}
		if bad {
			return nil, errCorruptListing
		}
		l.Messages = append(l.Messages, m)
	}
	if len(b) != 0 {
		return nil, errCorruptListing
	}
	return l, nil
}

func encodeFolders(folders []remote.Folder) ([]byte, error) {
	b, err := json.Marshal(folders)
	if err != nil {
		return nil, fmt.Errorf("cache: encode folder list: %w", err)
	}
	return b, nil
}

func decodeFolders(b []byte) ([]remote.Folder, error) {
	var folders []remote.Folder
	if err := json.Unmarshal(b, &folders); err != nil {
		return nil, fmt.Errorf("corrupt folder list record: %w", err)
	}
	return folders, nil
}
