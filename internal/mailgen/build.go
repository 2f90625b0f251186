package mailgen

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"mime"
	"mime/quotedprintable"
	"net/mail"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// kind is the body structure of a generated message.
type kind uint8

const (
	kindPlain  kind = iota // text/plain
	kindAlt                // multipart/alternative, text + HTML
	kindAttach             // multipart/mixed with one attachment
)

// mailingList describes the list a message was sent through.
type mailingList struct {
	name    string // e.g. "golang-nuts"
	title   string
	address string
}

var (
	listGo   = &mailingList{"golang-nuts", "Go programming discussion", "golang-nuts@lists.example.org"}
	listRust = &mailingList{"rust-users", "Rust users forum digest", "rust-users@lists.example.org"}
)

// plan is everything about a message that is decided before its body is
// built. Bodies are built from a random source of their own (seed), so
// they can be built in parallel and still be deterministic.
type plan struct {
	seed    [2]uint64
	token   string // "" = no token
	folder  string
	date    time.Time // UTC
	from    person
	to      []person
	cc      []person
	subject string
	subjEnc byte // for non-ASCII subjects: 'B', 'Q' (UTF-8) or 'L' (ISO-8859-1 Q)
	nameEnc byte // for non-ASCII display names: 'B' or 'Q'
	msgID   string
	refs    []string // References, the last one is In-Reply-To
	parent  *plan    // quoted in replies
	kind    kind
	size    int // target size of Raw
	attach  *attachKind
	attName string
	decoded int // decoded size of the attachment; 0 = derive from size
	invoice bool
	theme   theme
	list    *mailingList
	flags   []string
	draft   bool // no Received headers, \Draft
	sent    bool // written by the owner: no Received headers
	mailer  string
}

var mailers = []string{"", "", "User-Agent: Mozilla Thunderbird", "X-Mailer: Apple Mail (2.3826.400.131)",
	"X-Mailer: Microsoft Outlook 16.0", "User-Agent: Mutt/2.2.13 (2024-03-09)", "User-Agent: aerc 0.18.2",
	"User-Agent: Roundcube Webmail/1.6.9", "X-Mailer: Evolution 3.52.3"}

// buildAll builds the messages of plans in parallel.
func buildAll(plans []plan, pool *linePool) []Message {
	msgs := make([]Message, len(plans))
	var next atomic.Int64
	var wg sync.WaitGroup
	workers := min(runtime.GOMAXPROCS(0), 8, max(1, len(plans)/16))
	for range workers {
		wg.Go(func() {
			var b builder
			for {
				i := int(next.Add(1) - 1)
				if i >= len(plans) {
					return
				}
				p := &plans[i]
				msgs[i] = Message{Folder: p.folder, Date: p.date, Flags: p.flags, Raw: b.build(p, pool)}
			}
		})
	}
	wg.Wait()
	return msgs
}

// builder holds scratch buffers reused across messages.
type builder struct {
	r     *rand.Rand
	pcg   rand.PCG
	e     expander
	para  []byte
	hpara []byte
	qp    bytes.Buffer
}

func (b *builder) build(p *plan, pool *linePool) []byte {
	b.pcg.Seed(p.seed[0], p.seed[1])
	if b.r == nil {
		b.r = rand.New(&b.pcg)
	}
	r := b.r
	b.e = expander{r: r, year: p.date.Year()}

	hdr := b.headers(p)
	boundary := makeBoundary(r)

	switch p.kind {
	case kindPlain:
		plain, _ := b.body(p, p.size-len(hdr)-90, false, 0)
		out := make([]byte, 0, len(hdr)+len(plain)+128)
		out = append(out, hdr...)
		out = b.textPart(out, plain)
		return out
	case kindAlt:
		qp := r.IntN(3) > 0
		plain, html := b.body(p, p.size-len(hdr)-400, true, htmlFactor(qp))
		out := make([]byte, 0, len(hdr)+len(plain)+len(html)*11/10+1024)
		out = append(out, hdr...)
		out = b.alternative(out, boundary, plain, html, qp)
		return out
	default:
		out := make([]byte, 0, p.size+4096)
		out = append(out, hdr...)
		out = fmt.Appendf(out, "Content-Type: multipart/mixed;\r\n boundary=\"%s\"\r\n\r\n", boundary)
		if r.IntN(2) == 0 {
			out = append(out, "This is a multi-part message in MIME format.\r\n"...)
		}
		out = append(out, "\r\n--"...)
		out = append(out, boundary...)
		out = append(out, "\r\n"...)
		textTarget := 300 + r.IntN(1500)
		if r.IntN(3) == 0 {
			qp := r.IntN(2) == 0
			plain, html := b.body(p, textTarget, true, htmlFactor(qp))
			out = b.alternative(out, makeBoundary(r), plain, html, qp)
		} else {
			plain, _ := b.body(p, textTarget, false, 0)
			out = b.textPart(out, plain)
		}
		out = append(out, "\r\n--"...)
		out = append(out, boundary...)
		out = append(out, "\r\n"...)
		out = b.attachmentHeader(out, p)
		decoded := p.decoded
		if decoded == 0 {
			decoded = decodedFor(p.size - len(out) - len(boundary) - 8)
		}
		out = appendBase64(out, r, pool, p.attach.magic, max(decoded, 1))
		out = append(out, "--"...)
		out = append(out, boundary...)
		out = append(out, "--\r\n"...)
		return out
	}
}

func htmlFactor(qp bool) float64 {
	if qp {
		return 1.07
	}
	return 1.03
}

func makeBoundary(r *rand.Rand) string {
	switch r.IntN(4) {
	case 0:
		return fmt.Sprintf("----=_Part_%d_%d.%d", r.IntN(1000000), r.Uint32(), 1700000000000+r.Int64N(90000000000))
	case 1:
		return fmt.Sprintf("000000000000%012x", r.Uint64()&0xffffffffffff)
	case 2:
		return fmt.Sprintf("=_%016x", r.Uint64())
	default:
		return fmt.Sprintf("------------%016X%08X", r.Uint64(), r.Uint32())
	}
}

const dateLayout = "Mon, 02 Jan 2006 15:04:05 -0700"

func zoned(t time.Time, minutes int) time.Time {
	return t.In(time.FixedZone("", minutes*60))
}

// headers returns the header block up to, not including, Content-Type.
func (b *builder) headers(p *plan) []byte {
	r := b.r
	h := make([]byte, 0, 1536)
	if !p.sent && !p.draft {
		h = append(h, "Return-Path: <"...)
		h = append(h, p.from.email...)
		h = append(h, ">\r\n"...)
		dom := domainOf(p.from.email)
		recv := zoned(p.date.Add(time.Duration(2+r.IntN(40))*time.Second), owner.zone)
		h = fmt.Appendf(h, "Received: from mail.%s (mail.%s [%s])\r\n\tby mx.example.org (Postfix) with ESMTPS id %s\r\n\tfor <%s>; %s\r\n",
			dom, dom, docIP(r), queueID(r), owner.email, recv.Format(dateLayout))
		if r.IntN(2) == 0 {
			h = fmt.Appendf(h, "Received: from [%s] (unknown [%s])\r\n\tby mail.%s with ESMTPSA id %s;\r\n\t%s\r\n",
				privIP(r), docIP(r), dom, queueID(r), zoned(p.date.Add(time.Second), p.from.zone).Format(dateLayout))
		}
	}
	h = append(h, "Date: "...)
	h = append(h, zoned(p.date, p.from.zone).Format(dateLayout)...)
	h = append(h, "\r\n"...)
	h = foldList(h, "From", []string{b.address(p.from, p.nameEnc)})
	if len(p.to) > 0 {
		h = foldList(h, "To", b.addresses(p.to, p.nameEnc))
	}
	if len(p.cc) > 0 {
		h = foldList(h, "Cc", b.addresses(p.cc, p.nameEnc))
	}
	h = foldWords(h, "Subject", encodeSubject(p.subject, p.subjEnc))
	if p.msgID != "" {
		h = append(h, "Message-ID: <"...)
		h = append(h, p.msgID...)
		h = append(h, ">\r\n"...)
	}
	if n := len(p.refs); n > 0 {
		h = append(h, "In-Reply-To: <"...)
		h = append(h, p.refs[n-1]...)
		h = append(h, ">\r\n"...)
		ids := make([]string, n)
		for i, id := range p.refs {
			ids[i] = "<" + id + ">"
		}
		h = foldWords(h, "References", strings.Join(ids, " "))
	}
	if l := p.list; l != nil {
		h = fmt.Appendf(h, "List-Id: %s <%s.lists.example.org>\r\n", l.title, l.name)
		h = fmt.Appendf(h, "List-Unsubscribe: <mailto:%s+unsubscribe@lists.example.org>,\r\n <https://lists.example.org/%s/unsubscribe>\r\n", l.name, l.name)
		h = fmt.Appendf(h, "List-Post: <mailto:%s>\r\nPrecedence: list\r\n", l.address)
	}
	if p.mailer != "" {
		h = append(h, p.mailer...)
		h = append(h, "\r\n"...)
	}
	h = append(h, "MIME-Version: 1.0\r\n"...)
	return h
}

func domainOf(email string) string {
	return email[strings.LastIndexByte(email, '@')+1:]
}

func docIP(r *rand.Rand) string {
	nets := [...]string{"192.0.2.", "198.51.100.", "203.0.113."}
	return nets[r.IntN(3)] + strconv.Itoa(1+r.IntN(254))
}

func privIP(r *rand.Rand) string {
	return "10." + strconv.Itoa(r.IntN(256)) + "." + strconv.Itoa(r.IntN(256)) + "." + strconv.Itoa(1+r.IntN(254))
}

func queueID(r *rand.Rand) string {
	const alpha = "0123456789BCDFGHJKLMNPQRSTVWXYZbcdfghjklmnpqrstvwxyz"
	var b [14]byte
	for i := range b {
		b[i] = alpha[r.IntN(len(alpha))]
	}
	return string(b[:])
}

func (b *builder) address(p person, enc byte) string {
	if p.name == "" {
		return "<" + p.email + ">"
	}
	if isASCII(p.name) {
		if isPhrase(p.name) && b.r.IntN(3) > 0 {
			return p.name + " <" + p.email + ">"
		}
		return (&mail.Address{Name: p.name, Address: p.email}).String()
	}
	if enc == 'B' {
		return mime.BEncoding.Encode("UTF-8", p.name) + " <" + p.email + ">"
	}
	return mime.QEncoding.Encode("UTF-8", p.name) + " <" + p.email + ">"
}

func (b *builder) addresses(ps []person, enc byte) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = b.address(p, enc)
	}
	return out
}

// isPhrase reports whether s can be written as an RFC 5322 phrase without
// quoting: atoms separated by single spaces.
func isPhrase(s string) bool {
	if s == "" || s[0] == ' ' || s[len(s)-1] == ' ' || strings.Contains(s, "  ") {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == ' ':
		case strings.IndexByte("!#$%&'*+-/=?^_`{|}~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// foldList writes an address header, folding after commas.
func foldList(h []byte, name string, items []string) []byte {
	h = append(h, name...)
	h = append(h, ':')
	col := len(name) + 1
	for i, it := range items {
		if i > 0 {
			h = append(h, ',')
			col++
			if col+1+len(it) > 76 {
				h = append(h, "\r\n"...)
				col = 0
			}
		}
		h = append(h, ' ')
		h = append(h, it...)
		col += 1 + len(it)
	}
	return append(h, "\r\n"...)
}

// foldWords writes an unstructured header, folding at spaces so that lines
// stay within 78 characters where the words allow.
func foldWords(h []byte, name, value string) []byte {
	h = append(h, name...)
	h = append(h, ':')
	col := len(name) + 1
	first := true
	for w := range strings.SplitSeq(value, " ") {
		if !first && col+1+len(w) > 78 {
			h = append(h, "\r\n"...)
			col = 0
		}
		h = append(h, ' ')
		h = append(h, w...)
		col += 1 + len(w)
		first = false
	}
	return append(h, "\r\n"...)
}

// encodeSubject returns s as RFC 2047 encoded words if it is not ASCII.
func encodeSubject(s string, enc byte) string {
	if isASCII(s) {
		return s
	}
	switch enc {
	case 'B':
		return mime.BEncoding.Encode("UTF-8", s)
	case 'L':
		if l, ok := toLatin1(s); ok {
			return encodeLatin1(l)
		}
	}
	return mime.QEncoding.Encode("UTF-8", s)
}

func toLatin1(s string) ([]byte, bool) {
	out := make([]byte, 0, len(s))
	for _, c := range s {
		if c > 0xff {
			return nil, false
		}
		out = append(out, byte(c))
	}
	return out, true
}

// encodeLatin1 Q-encodes ISO-8859-1 text as encoded words of at most 75
// characters each (mime.WordEncoder does not split non-UTF-8 text).
func encodeLatin1(l []byte) string {
	const upper = "0123456789ABCDEF"
	const prefix, suffix = "=?ISO-8859-1?Q?", "?="
	var words []string
	var cur []byte
	flush := func() {
		if len(cur) > 0 {
			words = append(words, prefix+string(cur)+suffix)
			cur = cur[:0]
		}
	}
	for _, c := range l {
		var enc []byte
		switch {
		case c == ' ':
			enc = []byte{'_'}
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '!', c == '*', c == '+', c == '/':
			enc = []byte{c}
		default:
			enc = []byte{'=', upper[c>>4], upper[c&15]}
		}
		if len(prefix)+len(cur)+len(enc)+len(suffix) > 75 {
			flush()
		}
		cur = append(cur, enc...)
	}
	flush()
	return strings.Join(words, " ")
}

// textPart writes the Content-Type of a text/plain body and the body.
func (b *builder) textPart(out, plain []byte) []byte {
	r := b.r
	switch {
	case isASCII(string(plain)):
		if r.IntN(2) == 0 {
			out = append(out, "Content-Type: text/plain; charset=us-ascii\r\nContent-Transfer-Encoding: 7bit\r\n\r\n"...)
		} else {
			out = append(out, "Content-Type: text/plain; charset=\"UTF-8\"\r\nContent-Transfer-Encoding: 7bit\r\n\r\n"...)
		}
		return append(out, plain...)
	case r.IntN(4) == 0:
		out = append(out, "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"...)
		return append(out, b.quotedPrintable(plain)...)
	default:
		out = append(out, "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"...)
		return append(out, plain...)
	}
}

// alternative writes a multipart/alternative entity (header and body).
func (b *builder) alternative(out []byte, boundary string, plain, html []byte, qp bool) []byte {
	out = fmt.Appendf(out, "Content-Type: multipart/alternative;\r\n boundary=\"%s\"\r\n\r\n--%s\r\n", boundary, boundary)
	out = b.textPart(out, plain)
	out = fmt.Appendf(out, "\r\n--%s\r\n", boundary)
	if qp {
		out = append(out, "Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"...)
		out = append(out, b.quotedPrintable(html)...)
	} else {
		cte := "7bit"
		if !isASCII(string(html)) {
			cte = "8bit"
		}
		out = fmt.Appendf(out, "Content-Type: text/html; charset=\"UTF-8\"\r\nContent-Transfer-Encoding: %s\r\n\r\n", cte)
		for line := range bytes.SplitSeq(html, []byte{'\n'}) {
			if len(line) > 0 {
				out = appendWrapped(out, line, 76, "")
			}
		}
	}
	out = fmt.Appendf(out, "\r\n--%s--\r\n", boundary)
	return out
}

func (b *builder) quotedPrintable(s []byte) []byte {
	b.qp.Reset()
	w := quotedprintable.NewWriter(&b.qp)
	_, _ = w.Write(s)
	_ = w.Close()
	out := b.qp.Bytes()
	if len(out) > 0 && out[len(out)-1] != '\n' {
		out = append(out, "=\r\n"...)
	}
	return out
}

func (b *builder) attachmentHeader(out []byte, p *plan) []byte {
	name := p.attName
	if isASCII(name) {
		return fmt.Appendf(out, "Content-Type: %s; name=\"%s\"\r\nContent-Disposition: attachment; filename=\"%s\"\r\nContent-Transfer-Encoding: base64\r\n\r\n",
			p.attach.ctype, name, name)
	}
	esc := strings.ReplaceAll(url.PathEscape(name), "+", "%2B")
	return fmt.Appendf(out, "Content-Type: %s;\r\n name=\"%s\"\r\nContent-Disposition: attachment;\r\n filename*=UTF-8''%s\r\nContent-Transfer-Encoding: base64\r\n\r\n",
		p.attach.ctype, mime.QEncoding.Encode("UTF-8", name), esc)
}

// appendWrapped appends text word-wrapped at width columns, each line
// starting with prefix and ending with CRLF.
func appendWrapped(dst, text []byte, width int, prefix string) []byte {
	for len(text) > 0 {
		dst = append(dst, prefix...)
		room := width - len(prefix)
		if len(text) <= room {
			dst = append(dst, text...)
			dst = append(dst, "\r\n"...)
			break
		}
		cut := bytes.LastIndexByte(text[:room+1], ' ')
		if cut <= 0 {
			cut = bytes.IndexByte(text, ' ')
			if cut < 0 {
				cut = len(text)
			}
		}
		dst = append(dst, text[:cut]...)
		dst = append(dst, "\r\n"...)
		text = bytes.TrimLeft(text[cut:], " ")
	}
	return dst
}

var companies = map[string]string{"example.com": "Example Corp", "example.net": "Example Networks", "example.org": "Example Foundation"}

func company(email string) string {
	d := domainOf(email)
	if c, ok := companies[d]; ok {
		return c
	}
	return "Example"
}

// body builds the text (and, if html, the HTML) body. Paragraphs are added
// until the plain text plus htmlFactor times the HTML reach target bytes.
func (b *builder) body(p *plan, target int, html bool, htmlFactor float64) (plain, hbody []byte) {
	r, e := b.r, &b.e
	var ht []byte
	if html {
		ht = make([]byte, 0, 256)
		ht = append(ht, "<html><head><meta http-equiv=\"Content-Type\" content=\"text/html; charset=utf-8\"></head>\n<body>\n<div style=\"font-family: Arial, sans-serif; font-size: 14px;\">\n"...)
	}
	plain = make([]byte, 0, max(target, 256)+256)
	appendHTML := func(s ...string) {
		if html {
			for _, x := range s {
				ht = append(ht, x...)
			}
		}
	}

	// Greeting.
	if p.theme != themeNotice {
		var g template
		switch {
		case p.list != nil:
			g = pick(r, listGreet)
		case len(p.to) > 0:
			e.first = p.to[0].first()
			g = pick(r, greetingTmpl)
		default:
			g = pick(r, greetingTmpl)
		}
		b.para, b.hpara = e.expand(b.para[:0], b.hpara[:0], g, html)
		e.first = ""
		if len(b.para) > 0 {
			plain = append(plain, b.para...)
			plain = append(plain, "\r\n\r\n"...)
			appendHTML("<p>", string(b.hpara), "</p>\n")
		}
	}

	// Tail: closing, name, token, signature, list footer, quote.
	var tail, htail []byte
	if p.theme != themeNotice {
		closing := pick(r, closings)
		tail = fmt.Appendf(tail, "%s\r\n%s\r\n", closing, p.from.first())
		htail = fmt.Appendf(htail, "<p>%s<br>\n%s</p>\n", closing, appendEscaped(nil, p.from.first()))
	}
	if p.token != "" {
		tail = fmt.Appendf(tail, "\r\nRef: %s\r\n", p.token)
		htail = fmt.Appendf(htail, "<p style=\"color:#888888; font-size: 11px;\">Ref: %s</p>\n", p.token)
	}
	if p.theme != themeNotice && r.IntN(3) > 0 {
		title := words[slotTeam][len(p.from.email)*7%len(words[slotTeam])]
		title = strings.ToUpper(title[:1]) + title[1:]
		tail = fmt.Appendf(tail, "\r\n-- \r\n%s\r\n%s, %s\r\n", p.from.name, title, company(p.from.email))
		htail = fmt.Appendf(htail, "<div class=\"signature\">-- <br>\n%s<br>\n%s, %s</div>\n", appendEscaped(nil, p.from.name), title, company(p.from.email))
	}
	if l := p.list; l != nil {
		tail = fmt.Appendf(tail, "\r\n-- \r\nYou received this message because you are subscribed to the %s list.\r\nTo unsubscribe, send an email to %s+unsubscribe@lists.example.org.\r\n", l.name, l.name)
		htail = fmt.Appendf(htail, "<p>-- <br>\nYou received this message because you are subscribed to the %s list.</p>\n", l.name)
	}
	if q := p.parent; q != nil {
		who := q.from.name
		tail = fmt.Appendf(tail, "\r\nOn %s, %s wrote:\r\n", zoned(q.date, p.from.zone).Format("Mon, Jan 2, 2006 at 15:04"), who)
		htail = fmt.Appendf(htail, "<div>On %s, %s wrote:</div>\n<blockquote style=\"margin:0 0 0 .8ex; border-left:1px solid #ccc; padding-left:1ex\">\n", zoned(q.date, p.from.zone).Format("Mon, Jan 2, 2006 at 15:04"), appendEscaped(nil, who))
		for range 1 + r.IntN(3) {
			b.para, b.hpara = b.paragraph(b.para[:0], b.hpara[:0], q.theme, 1+r.IntN(3), html)
			tail = appendWrapped(tail, b.para, 72, "> ")
			tail = append(tail, ">\r\n"...)
			htail = fmt.Appendf(htail, "<p>%s</p>\n", b.hpara)
		}
		htail = append(htail, "</blockquote>\n"...)
	}
	if html {
		htail = append(htail, "</div>\n</body>\n</html>\n"...)
	}

	// Paragraphs, sentence by sentence until the estimate reaches target.
	est := func() int {
		n := len(plain) + len(tail) + len(b.para)*51/50 + 2
		if html {
			n += int(float64(len(ht)+len(htail)+len(b.hpara)+8) * htmlFactor)
		}
		return n
	}
	first := true
	for done := false; !done; {
		n := 1 + r.IntN(5)
		if p.theme == themeNotice {
			n = 1 + r.IntN(2)
		}
		b.para, b.hpara = b.para[:0], b.hpara[:0]
		if first && p.invoice {
			b.para, b.hpara = e.expand(b.para, b.hpara, pick(r, invoiceTmpl), html)
		}
		if first && p.attach != nil {
			e.file = p.attName
			b.para, b.hpara = b.sentenceFrom(b.para, b.hpara, pick(r, attachedTmpl), html)
		}
		first = false
		for range n {
			b.para, b.hpara = b.sentence(b.para, b.hpara, p.theme, html)
			if est() >= target {
				done = true
				break
			}
		}
		plain = appendWrapped(plain, b.para, 72, "")
		plain = append(plain, "\r\n"...)
		appendHTML("<p>", string(b.hpara), "</p>\n")
		b.para, b.hpara = b.para[:0], b.hpara[:0]
	}
	plain = append(plain, tail...)
	if html {
		ht = append(ht, htail...)
	}
	return plain, ht
}

// paragraph appends n sentences of theme t to dst and, if html, to hdst.
func (b *builder) paragraph(dst, hdst []byte, t theme, n int, html bool) ([]byte, []byte) {
	for range n {
		dst, hdst = b.sentence(dst, hdst, t, html)
	}
	return dst, hdst
}

// sentence appends a sentence of theme t to dst and, if html, to hdst,
// separated by a space from what is there.
func (b *builder) sentence(dst, hdst []byte, t theme, html bool) ([]byte, []byte) {
	r := b.r
	if len(dst) > 0 {
		dst = append(dst, ' ')
		if html {
			hdst = append(hdst, ' ')
		}
	}
	tt := t
	if t <= themePersonal && r.IntN(8) == 0 {
		tt = theme(r.IntN(int(themePersonal) + 1))
	}
	return b.e.expand(dst, hdst, pick(r, sentences[tt]), html)
}

// sentenceFrom is like sentence, for template t.
func (b *builder) sentenceFrom(dst, hdst []byte, t template, html bool) ([]byte, []byte) {
	if len(dst) > 0 {
		dst = append(dst, ' ')
		if html {
			hdst = append(hdst, ' ')
		}
	}
	return b.e.expand(dst, hdst, t, html)
}
