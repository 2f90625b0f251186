package mailgen

import (
	"encoding/base64"
	"encoding/binary"
	"math/rand/v2"
)

// Attachment bodies are base64 with 76-character lines. Drawing every byte
// from a random generator would dominate the run time of Generate, so the
// bulk of each attachment is copied from a pool of pre-encoded lines built
// once per call from the seed; the first lines (with the file type's magic
// number) and the last, partial line are random for every attachment, and
// the copied run starts at a random line of the pool.

const (
	rawLine     = 57      // decoded bytes per base64 line
	encLine     = 76 + 2  // encoded line with CRLF
	headLines   = 16      // random lines at the start of every attachment
	maxPoolLine = 1 << 18 // 15 MB decoded, 20 MB encoded
	minPoolLine = 1 << 10
)

type linePool struct {
	buf []byte // n lines of encLine bytes
	n   int
}

// newLinePool returns a pool of n encoded lines derived from seed.
func newLinePool(seed int64, n int) *linePool {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:8], uint64(seed))
	copy(key[8:], "mailgen attachment line pool")
	c := rand.NewChaCha8(key)
	src := make([]byte, n*rawLine)
	_, _ = c.Read(src)
	buf := make([]byte, n*encLine)
	for i := range n {
		line := buf[i*encLine : (i+1)*encLine]
		base64.StdEncoding.Encode(line, src[i*rawLine:(i+1)*rawLine])
		line[76], line[77] = '\r', '\n'
	}
	return &linePool{buf: buf, n: n}
}

// poolLinesFor returns how many pool lines an attachment of the given
// decoded size uses.
func poolLinesFor(decoded int) int {
	return max(0, decoded/rawLine-headLines)
}

// encodedSize returns the size of a base64 body of decoded bytes with
// CRLF-terminated 76-character lines.
func encodedSize(decoded int) int {
	n := decoded / rawLine * encLine
	if rem := decoded % rawLine; rem > 0 {
		n += (rem+2)/3*4 + 2
	}
	return n
}

// decodedFor returns the largest decoded size whose encoding fits in n bytes.
func decodedFor(n int) int {
	d := n / encLine * rawLine
	rest := n - n/encLine*encLine - 2
	if rest >= 4 {
		d += min(rest/4*3, rawLine-1)
	}
	return d
}

// appendBase64 appends the encoding of decoded pseudo-random bytes that
// start with magic.
func appendBase64(dst []byte, r *rand.Rand, pool *linePool, magic []byte, decoded int) []byte {
	enc := base64.StdEncoding
	var scratch [headLines * rawLine]byte
	head := min(decoded, headLines*rawLine)
	fillRandom(r, scratch[:head])
	copy(scratch[:head], magic)
	dst = appendEncodedLines(dst, enc, scratch[:head])

	rest := decoded - head
	lines := rest / rawLine
	if lines > 0 {
		if pool == nil || pool.n == 0 {
			panic("mailgen: attachment line pool too small")
		}
		start := r.IntN(pool.n)
		for lines > 0 {
			k := min(lines, pool.n-start)
			dst = append(dst, pool.buf[start*encLine:(start+k)*encLine]...)
			lines -= k
			start = 0
		}
	}
	if tail := rest % rawLine; tail > 0 {
		fillRandom(r, scratch[:tail])
		dst = appendEncodedLines(dst, enc, scratch[:tail])
	}
	return dst
}

func appendEncodedLines(dst []byte, enc *base64.Encoding, src []byte) []byte {
	for len(src) > 0 {
		k := min(len(src), rawLine)
		dst = enc.AppendEncode(dst, src[:k])
		dst = append(dst, '\r', '\n')
		src = src[k:]
	}
	return dst
}

func fillRandom(r *rand.Rand, b []byte) {
	for len(b) >= 8 {
		binary.LittleEndian.PutUint64(b, r.Uint64())
		b = b[8:]
	}
	if len(b) > 0 {
		var tmp [8]byte
		binary.LittleEndian.PutUint64(tmp[:], r.Uint64())
		copy(b, tmp[:])
	}
}

// attachKind describes a kind of attached file.
type attachKind struct {
	ctype string
	ext   string
	magic []byte
	names []string // {...} templates for the base name
}

var attachKinds = []attachKind{
	{"application/pdf", ".pdf", []byte("%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"),
		[]string{"report-{month}", "contract-draft", "slides-{project}", "{project}-overview", "minutes-{month}", "offer-{project}"}},
	{"image/jpeg", ".jpg", []byte("\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"),
		[]string{"IMG_{num}", "photo-{place}", "whiteboard", "team-{place}"}},
	{"image/png", ".png", []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"),
		[]string{"screenshot-{num}", "diagram-{project}", "mockup-{noun}"}},
	{"application/zip", ".zip", []byte("PK\x03\x04\x14\x00\x00\x00\x08\x00"),
		[]string{"logs-{project}", "{project}-export", "assets-{month}"}},
	{"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", ".xlsx", []byte("PK\x03\x04\x14\x00\x06\x00\x08\x00"),
		[]string{"budget-{month}", "{project}-numbers", "forecast-{month}"}},
	{"application/vnd.openxmlformats-officedocument.wordprocessingml.document", ".docx", []byte("PK\x03\x04\x14\x00\x06\x00\x08\x00"),
		[]string{"{noun}-{project}", "notes-{month}", "Präsentation-{project}", "Übersicht-{month}"}},
}
