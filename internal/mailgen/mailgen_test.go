package mailgen

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"
)

// decoder decodes RFC 2047 encoded words. The standard library decodes
// UTF-8, US-ASCII and ISO-8859-1 itself; CharsetReader is the fallback for
// other single-byte Latin charsets.
var decoder = &mime.WordDecoder{CharsetReader: func(charset string, in io.Reader) (io.Reader, error) {
	switch strings.ToLower(charset) {
	case "iso-8859-1", "latin1", "iso-8859-15", "windows-1252":
		b, err := io.ReadAll(in)
		if err != nil {
			return nil, err
		}
		var sb strings.Builder
		for _, c := range b {
			sb.WriteRune(rune(c))
		}
		return strings.NewReader(sb.String()), nil
	}
	return nil, fmt.Errorf("unexpected charset %q", charset)
}}

// checkLineEndings reports bare CR or LF.
func checkLineEndings(raw []byte) error {
	crlf := bytes.Count(raw, []byte("\r\n"))
	if bytes.Count(raw, []byte("\r")) == crlf && bytes.Count(raw, []byte("\n")) == crlf {
		return nil
	}
	for i, c := range raw {
		switch {
		case c == '\n' && (i == 0 || raw[i-1] != '\r'):
			return fmt.Errorf("bare LF at offset %d", i)
		case c == '\r' && (i+1 == len(raw) || raw[i+1] != '\n'):
			return fmt.Errorf("bare CR at offset %d", i)
		}
	}
	return fmt.Errorf("inconsistent line endings")
}

// part is a leaf of a message's MIME tree, with its body decoded.
type part struct {
	ctype    string
	params   map[string]string
	filename string
	body     []byte
}

// walk parses raw and returns its leaf parts.
func walk(raw []byte) (*mail.Message, []part, error) {
	m, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return nil, nil, err
	}
	var parts []part
	var visit func(h map[string][]string, body io.Reader, depth int) error
	visit = func(h map[string][]string, body io.Reader, depth int) error {
		get := func(k string) string {
			if v := h[k]; len(v) > 0 {
				return v[0]
			}
			return ""
		}
		ct := get("Content-Type")
		if ct == "" {
			ct = "text/plain"
		}
		mt, params, err := mime.ParseMediaType(ct)
		if err != nil {
			return fmt.Errorf("Content-Type %q: %v", ct, err)
		}
		if strings.HasPrefix(mt, "multipart/") {
			if depth > 3 {
				return fmt.Errorf("nested too deep")
			}
			mr := multipart.NewReader(body, params["boundary"])
			n := 0
			for {
				p, err := mr.NextPart()
				if err == io.EOF {
					break
				}
				if err != nil {
					return err
				}
				if err := visit(p.Header, p, depth+1); err != nil {
					return err
				}
				n++
			}
			if n == 0 {
				return fmt.Errorf("empty %s", mt)
			}
			return nil
		}
		var r io.Reader = body
		switch strings.ToLower(get("Content-Transfer-Encoding")) {
		case "base64":
			r = base64.NewDecoder(base64.StdEncoding, body)
		case "quoted-printable":
			r = quotedprintable.NewReader(body)
		}
		data, err := io.ReadAll(r)
		if err != nil {
			return fmt.Errorf("%s body: %v", mt, err)
		}
		var filename string
		if cd := get("Content-Disposition"); cd != "" {
			_, dp, err := mime.ParseMediaType(cd)
			if err != nil {
				return fmt.Errorf("Content-Disposition %q: %v", cd, err)
			}
			filename = dp["filename"]
		}
		parts = append(parts, part{mt, params, filename, data})
		return nil
	}
	return m, parts, visit(m.Header, m.Body, 0)
}

// tokens returns the tokens in raw.
func tokens(raw []byte) []string {
	var out []string
	for {
		i := bytes.Index(raw, []byte("mailgen-"))
		if i < 0 {
			return out
		}
		j := i + len("mailgen-")
		if j < len(raw) && raw[j] == '-' {
			j++
		}
		for _, dashes := 0, 0; j < len(raw) && dashes < 2; j++ {
			c := raw[j]
			if c == '-' {
				dashes++
			} else if c < '0' || c > '9' {
				break
			}
		}
		out = append(out, string(raw[i:j]))
		raw = raw[j:]
	}
}

// checkMessage checks the structure of a generated message.
func checkMessage(t *testing.T, name string, m Message, token string, deep bool) {
	t.Helper()
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("%s: %s", name, fmt.Sprintf(format, args...))
	}
	if err := checkLineEndings(m.Raw); err != nil {
		fail("%v", err)
	}
	if !bytes.HasSuffix(m.Raw, []byte("\r\n")) {
		fail("no final CRLF")
	}
	if m.Date.Location() != time.UTC {
		fail("Date %v not in UTC", m.Date)
	}
	if !m.Date.Before(ReferenceDate()) {
		fail("Date %v not before the reference date", m.Date)
	}
	hdrEnd := bytes.Index(m.Raw, []byte("\r\n\r\n"))
	if hdrEnd < 0 {
		fail("no end of header")
	}
	for line := range bytes.SplitSeq(m.Raw[:hdrEnd], []byte("\r\n")) {
		if len(line) > 998 {
			fail("header line of %d bytes", len(line))
		}
		if !utf8.Valid(line) || !isASCII(string(line)) {
			fail("non-ASCII header line %q", line)
		}
	}
	var msg *mail.Message
	var parts []part
	var err error
	if deep {
		msg, parts, err = walk(m.Raw)
	} else {
		msg, err = mail.ReadMessage(bytes.NewReader(m.Raw))
	}
	if err != nil {
		fail("%v", err)
	}
	h := msg.Header
	for _, k := range []string{"From", "To", "Subject", "Date", "Message-Id", "Mime-Version", "Content-Type"} {
		if h.Get(k) == "" {
			fail("no %s header", k)
		}
	}
	d, err := h.Date()
	if err != nil {
		fail("Date: %v", err)
	}
	if !d.Equal(m.Date) {
		fail("Date header %v, Message.Date %v", d, m.Date)
	}
	if _, err := mail.ParseAddress(h.Get("From")); err != nil {
		fail("From %q: %v", h.Get("From"), err)
	}
	if _, err := mail.ParseAddressList(h.Get("To")); err != nil {
		fail("To %q: %v", h.Get("To"), err)
	}
	if cc := h.Get("Cc"); cc != "" {
		if _, err := mail.ParseAddressList(cc); err != nil {
			fail("Cc %q: %v", cc, err)
		}
	}
	if _, err := decoder.DecodeHeader(h.Get("Subject")); err != nil {
		fail("Subject %q: %v", h.Get("Subject"), err)
	}
	// The only tokens in the message are its own.
	found := false
	for _, tok := range tokens(m.Raw) {
		if tok != token {
			fail("contains token %s, want only %s", tok, token)
		}
		found = true
	}
	if !found {
		fail("token %s missing", token)
	}
	if !deep {
		return
	}
	var text bool
	for _, p := range parts {
		switch p.ctype {
		case "text/plain", "text/html":
			if !utf8.Valid(p.body) {
				fail("%s part is not valid UTF-8", p.ctype)
			}
			if p.ctype == "text/plain" && bytes.Contains(p.body, []byte(token)) {
				text = true
			}
		default:
			if p.filename == "" {
				fail("%s part without file name", p.ctype)
			}
			var ak *attachKind
			for i := range attachKinds {
				if attachKinds[i].ctype == p.ctype {
					ak = &attachKinds[i]
				}
			}
			if ak == nil {
				fail("unexpected part type %s", p.ctype)
			}
			if !bytes.HasPrefix(p.body, ak.magic) {
				fail("%s attachment does not start with its magic number", p.ctype)
			}
		}
	}
	if !text {
		fail("no text/plain part with the token")
	}
}

func TestToken(t *testing.T) {
	if got, want := Token(1, 42), "mailgen-1-000042"; got != want {
		t.Errorf("Token(1, 42) = %q, want %q", got, want)
	}
	if strings.HasPrefix(Token(1, 10), Token(1, 1)) {
		t.Errorf("Token(1, 1) is a prefix of Token(1, 10)")
	}
}

func TestGenerateEmpty(t *testing.T) {
	for _, n := range []int{-1, 0} {
		if msgs := Generate(1, n); len(msgs) != 0 {
			t.Errorf("Generate(1, %d) returned %d messages", n, len(msgs))
		}
	}
}

func TestGenerateDeterministic(t *testing.T) {
	t.Parallel()
	a := Generate(42, 200)
	prev := runtime.GOMAXPROCS(1) // a different number of workers
	b := Generate(42, 200)
	runtime.GOMAXPROCS(prev)
	if len(a) != 200 || len(b) != 200 {
		t.Fatalf("got %d and %d messages, want 200", len(a), len(b))
	}
	for i := range a {
		if !bytes.Equal(a[i].Raw, b[i].Raw) || !a[i].Date.Equal(b[i].Date) ||
			a[i].Folder != b[i].Folder || !slices.Equal(a[i].Flags, b[i].Flags) {
			t.Fatalf("message %d differs between two calls", i)
		}
	}
	c := Generate(43, 200)
	same := 0
	for i := range a {
		if bytes.Equal(a[i].Raw, c[i].Raw) {
			same++
		}
	}
	if same > 0 {
		t.Errorf("%d messages are identical for seeds 42 and 43", same)
	}
}

func TestGenerateWellFormed(t *testing.T) {
	t.Parallel()
	const seed, n = 7, 300
	msgs := Generate(seed, n)
	deepBig := false
	for i, m := range msgs {
		if m.Folder != "INBOX" {
			t.Fatalf("message %d in folder %q", i, m.Folder)
		}
		if i > 0 && m.Date.Before(msgs[i-1].Date) {
			t.Fatalf("message %d is older than message %d", i, i-1)
		}
		// Decode all small messages and one large one (decoding is slow
		// with the race detector).
		deep := len(m.Raw) < 256*kB || (len(m.Raw) > 3*mB && !deepBig)
		deepBig = deepBig || (deep && len(m.Raw) > 3*mB)
		checkMessage(t, fmt.Sprintf("Generate(%d, %d)[%d]", seed, n, i), m, Token(seed, i), deep)
	}
}

var (
	mix2000     []Message
	mix2000Once sync.Once
)

func generate2000() []Message {
	mix2000Once.Do(func() { mix2000 = Generate(1, 2000) })
	return mix2000
}

func TestGenerateMix(t *testing.T) {
	t.Parallel()
	msgs := generate2000()
	const n = 2000
	var plain, alt, attach, big, invoice, replies, encoded, answered, seen, flagged int
	ref := ReferenceDate()
	threads := make(map[string]bool)
	for i, m := range msgs {
		checkMessage(t, fmt.Sprintf("Generate(1, 2000)[%d]", i), m, Token(1, i), false)
		if m.Date.Before(ref.AddDate(-2, 0, 0)) {
			t.Fatalf("message %d: date %v more than two years before %v", i, m.Date, ref)
		}
		msg, _ := mail.ReadMessage(bytes.NewReader(m.Raw))
		mt, _, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		size := len(m.Raw)
		inRange := func(lo, hi int) {
			if size < lo || size > hi {
				t.Errorf("message %d: %s of %d bytes, want %d..%d", i, mt, size, lo, hi)
			}
		}
		switch {
		case mt == "text/plain":
			plain++
			inRange(1*kB, 8*kB)
		case mt == "multipart/alternative":
			alt++
			inRange(8*kB, 60*kB)
		case mt == "multipart/mixed" && size < 2*mB:
			attach++
			inRange(60*kB, 1536*kB)
		case mt == "multipart/mixed":
			big++
			inRange(3*mB, 12*mB)
		default:
			t.Errorf("message %d: unexpected type %s", i, mt)
		}
		if bytes.Contains(m.Raw, []byte("invoice")) || bytes.Contains(m.Raw, []byte("Invoice")) {
			invoice++
		}
		threads[msg.Header.Get("Message-Id")] = true
		if irt := msg.Header.Get("In-Reply-To"); irt != "" {
			replies++
			if !threads[irt] {
				t.Errorf("message %d replies to %s, which is not an earlier message", i, irt)
			}
		}
		if strings.Contains(msg.Header.Get("Subject"), "=?") {
			encoded++
		}
		seen += b2i(slices.Contains(m.Flags, `\Seen`))
		answered += b2i(slices.Contains(m.Flags, `\Answered`))
		flagged += b2i(slices.Contains(m.Flags, `\Flagged`))
	}
	share := func(name string, got int, lo, hi float64) {
		f := float64(got) / n
		t.Logf("%-9s %4d (%.1f%%)", name, got, 100*f)
		if f < lo || f > hi {
			t.Errorf("%s: %.1f%% of the messages, want %.1f%%..%.1f%%", name, 100*f, 100*lo, 100*hi)
		}
	}
	share("plain", plain, 0.66, 0.74)
	share("alt", alt, 0.17, 0.23)
	share("attach", attach, 0.06, 0.10)
	share("big", big, 0.004, 0.008)
	share("invoice", invoice, 0.03, 0.08)
	share("replies", replies, 0.15, 0.30)
	share("encoded", encoded, 0.02, 0.15)
	share("seen", seen, 0.85, 1)
	share("answered", answered, 0.05, 0.25)
	share("flagged", flagged, 0.02, 0.08)
	_, total := Total(msgs)
	t.Logf("Generate(1, 2000): %d bytes", total)
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestTotal(t *testing.T) {
	msgs := []Message{{Raw: make([]byte, 10)}, {Raw: make([]byte, 32)}}
	if c, b := Total(msgs); c != 2 || b != 42 {
		t.Errorf("Total = %d, %d, want 2, 42", c, b)
	}
	if c, b := Total(nil); c != 0 || b != 0 {
		t.Errorf("Total(nil) = %d, %d", c, b)
	}
}

func TestFixtures(t *testing.T) {
	names := FixtureNames()
	fx := Fixtures()
	if len(fx) != len(names) || len(fx) < 8 || len(fx) > 12 {
		t.Fatalf("%d fixtures, %d names, want 8..12", len(fx), len(names))
	}
	subjects := map[string]string{
		"01-plain.eml":             "Server migration on Saturday",
		"02-subject-utf8-b.eml":    "Grüße aus dem Büro – Planung für Q4",
		"03-subject-utf8-q-cc.eml": "Café-Treffen am Freitag: Ergebnisse & nächste Schritte",
		"04-subject-latin1.eml":    "Réunion du comité : ordre du jour",
		"05-folded-subject.eml": "Follow-up on the quarterly infrastructure review: storage costs, " +
			"network upgrades, the on-call rotation and the proposal to consolidate monitoring dashboards",
		"08-no-message-id.eml": "[backup] nightly job finished: 0 errors",
	}
	fromNames := map[string]string{
		"02-subject-utf8-b.eml":    "Jürgen Weiß",
		"04-subject-latin1.eml":    "Françoise Lefèvre",
		"10-utf8-body-8bit.eml":    "Søren Kjær",
		"05-folded-subject.eml":    "Daniel O'Brien",
		"11-reply-thread.eml":      "Daniel O'Brien",
		"09-no-final-crlf.eml":     "Lena Hoffmann",
		"07-attachment.eml":        "Anita Patel",
		"03-subject-utf8-q-cc.eml": "Lena Hoffmann",
	}
	for i, m := range fx {
		name := names[i]
		if m.Folder != "INBOX" {
			t.Errorf("%s: folder %q", name, m.Folder)
		}
		if err := checkLineEndings(m.Raw); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if got := bytes.HasSuffix(m.Raw, []byte("\r\n")); got != (name != "09-no-final-crlf.eml") {
			t.Errorf("%s: ends with CRLF: %v", name, got)
		}
		msg, parts, err := walk(m.Raw)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		d, err := msg.Header.Date()
		if err != nil || !d.Equal(m.Date) {
			t.Errorf("%s: Date header %v (%v), Message.Date %v", name, d, err, m.Date)
		}
		subj, err := decoder.DecodeHeader(msg.Header.Get("Subject"))
		if err != nil {
			t.Errorf("%s: Subject: %v", name, err)
		}
		if want, ok := subjects[name]; ok && subj != want {
			t.Errorf("%s: Subject %q, want %q", name, subj, want)
		}
		ap := mail.AddressParser{WordDecoder: decoder}
		from, err := ap.Parse(msg.Header.Get("From"))
		if err != nil {
			t.Errorf("%s: From: %v", name, err)
		} else if want, ok := fromNames[name]; ok && from.Name != want {
			t.Errorf("%s: From name %q, want %q", name, from.Name, want)
		}
		if hasID := msg.Header.Get("Message-Id") != ""; hasID != (name != "08-no-message-id.eml") {
			t.Errorf("%s: has Message-ID: %v", name, hasID)
		}
		switch name {
		case "03-subject-utf8-q-cc.eml":
			cc, err := ap.ParseList(msg.Header.Get("Cc"))
			if err != nil || len(cc) != 4 || cc[1].Name != "Søren Kjær" || cc[2].Name != "Patel, Anita" {
				t.Errorf("%s: Cc %v, %v", name, cc, err)
			}
		case "06-alternative.eml":
			if len(parts) != 2 || parts[0].ctype != "text/plain" || parts[1].ctype != "text/html" ||
				!bytes.Contains(parts[1].body, []byte(`href="https://travel.example.com/bookings"`)) {
				t.Errorf("%s: parts %v", name, parts)
			}
		case "07-attachment.eml":
			if len(parts) != 2 || parts[1].filename != "expenses-2025-q3.csv" ||
				!bytes.HasPrefix(parts[1].body, []byte("date,employee,category")) ||
				len(parts[1].body) < 2*kB || len(parts[1].body) > 8*kB {
				t.Errorf("%s: attachment %q of %d bytes", name, parts[len(parts)-1].filename, len(parts[len(parts)-1].body))
			}
		case "10-utf8-body-8bit.eml":
			if msg.Header.Get("Content-Transfer-Encoding") != "8bit" || !utf8.Valid(parts[0].body) ||
				!bytes.Contains(parts[0].body, []byte("København")) {
				t.Errorf("%s: 8bit UTF-8 body not as expected", name)
			}
		case "09-no-final-crlf.eml", "11-reply-thread.eml":
			if msg.Header.Get("In-Reply-To") == "" {
				t.Errorf("%s: no In-Reply-To", name)
			}
		}
	}
	// Fixtures returns copies.
	fx[0].Raw[0] = 'X'
	if Fixtures()[0].Raw[0] == 'X' {
		t.Errorf("Fixtures returns shared buffers")
	}
}

func TestDemo(t *testing.T) {
	t.Parallel()
	msgs := Demo()
	again := Demo()
	if len(msgs) != len(again) {
		t.Fatalf("Demo returned %d, then %d messages", len(msgs), len(again))
	}
	for i := range msgs {
		if !bytes.Equal(msgs[i].Raw, again[i].Raw) || msgs[i].Folder != again[i].Folder ||
			!msgs[i].Date.Equal(again[i].Date) || !slices.Equal(msgs[i].Flags, again[i].Flags) {
			t.Fatalf("Demo message %d differs between two calls", i)
		}
	}
	want := map[string]int{"INBOX": 150, "Lists/golang": 80, "Lists/rust": 40, "Sent": 50, "Entwürfe": 8, "Archive/2025": 30}
	got := map[string]int{}
	var order []string
	fixtures := Fixtures()
	var foundFixtures int
	var big []int
	flags := map[string]map[string]int{}
	for i, m := range msgs {
		if len(order) == 0 || order[len(order)-1] != m.Folder {
			if slices.Contains(order, m.Folder) {
				t.Fatalf("folder %q is not contiguous", m.Folder)
			}
			order = append(order, m.Folder)
		} else if m.Date.Before(msgs[i-1].Date) {
			t.Errorf("message %d in %s is older than its predecessor", i, m.Folder)
		}
		got[m.Folder]++
		if flags[m.Folder] == nil {
			flags[m.Folder] = map[string]int{}
		}
		for _, f := range m.Flags {
			flags[m.Folder][f]++
		}
		if len(m.Raw) > 2*mB {
			big = append(big, i)
		} else if len(m.Raw) > 1*mB {
			t.Errorf("message %d has %d bytes", i, len(m.Raw))
		}
		isFixture := slices.ContainsFunc(fixtures, func(f Message) bool { return bytes.Equal(f.Raw, m.Raw) })
		if isFixture {
			foundFixtures++
			if m.Folder != "INBOX" {
				t.Errorf("fixture in %s", m.Folder)
			}
			continue
		}
		checkMessage(t, fmt.Sprintf("Demo()[%d]", i), m, Token(DemoSeed, i), len(m.Raw) < 256*kB)
		if m.Folder == "Archive/2025" && m.Date.Year() != 2025 {
			t.Errorf("message %d in Archive/2025 is from %v", i, m.Date)
		}
		if m.Folder == "Sent" || m.Folder == "Entwürfe" {
			msg, _ := mail.ReadMessage(bytes.NewReader(m.Raw))
			if from, _ := mail.ParseAddress(msg.Header.Get("From")); from == nil || from.Address != owner.email {
				t.Errorf("message %d in %s not from the owner", i, m.Folder)
			}
		}
	}
	if foundFixtures != len(fixtures) {
		t.Errorf("Demo holds %d of %d fixtures", foundFixtures, len(fixtures))
	}
	wantOrder := []string{"INBOX", "Lists/golang", "Lists/rust", "Sent", "Entwürfe", "Archive/2025"}
	if !slices.Equal(order, wantOrder) {
		t.Errorf("folders %q, want %q", order, wantOrder)
	}
	for f, n := range want {
		if got[f] != n {
			t.Errorf("%s holds %d messages, want %d", f, got[f], n)
		}
	}
	if flags["Entwürfe"][`\Draft`] != want["Entwürfe"] {
		t.Errorf("drafts: flags %v", flags["Entwürfe"])
	}
	if flags["INBOX"][`\Flagged`] == 0 || flags["INBOX"][`\Answered`] == 0 || flags["INBOX"][`\Seen`] < 100 ||
		flags["INBOX"][`\Seen`] == want["INBOX"] {
		t.Errorf("INBOX flags %v", flags["INBOX"])
	}
	if flags["Archive/2025"][`\Seen`] != want["Archive/2025"] || flags["Sent"][`\Seen`] != want["Sent"] {
		t.Errorf("Archive/2025 or Sent not all seen: %v", flags)
	}

	// The two big attachments.
	if len(big) != 2 {
		t.Fatalf("%d messages above 2 MB, want 2", len(big))
	}
	wantSizes := []int{3_000_000, 6_000_000}
	for k, i := range big {
		m := msgs[i]
		if m.Folder != "INBOX" {
			t.Errorf("big message %d in %s", i, m.Folder)
		}
		checkMessage(t, fmt.Sprintf("Demo()[%d]", i), m, Token(DemoSeed, i), true)
		_, parts, err := walk(m.Raw)
		if err != nil {
			t.Fatal(err)
		}
		att := parts[len(parts)-1]
		if len(att.body) != wantSizes[k] {
			t.Errorf("big message %d: attachment %s of %d bytes, want %d", i, att.filename, len(att.body), wantSizes[k])
		}
	}
	c, b := Total(msgs)
	t.Logf("Demo: %d messages, %d bytes, %v", c, b, got)
}

func BenchmarkGenerate(b *testing.B) {
	var total int64
	for b.Loop() {
		_, total = Total(Generate(1, 1000))
	}
	b.SetBytes(total)
}
