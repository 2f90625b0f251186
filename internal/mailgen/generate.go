package mailgen

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
)

const (
	kB = 1024
	mB = 1024 * 1024
)

// sizeClass is one share of a size mix. Sizes are raw message sizes drawn
// between lo and hi on a logarithmic scale; skew > 1 favours small sizes.
type sizeClass struct {
	share  float64
	kind   kind
	lo, hi int
	skew   float64
}

func (c sizeClass) draw(r *rand.Rand) int {
	u := math.Pow(r.Float64(), c.skew)
	return int(float64(c.lo) * math.Pow(float64(c.hi)/float64(c.lo), u))
}

// benchMix is the size mix of Generate: ~71% short plain text of 1–8 KB,
// ~20% text+HTML of 8–60 KB, 8% with an attachment, 60 KB–1 MB, and 0.6%
// with a large attachment, 3–12 MB: about 55 KB a message on average, as in
// a real mailbox (10,000 messages are about half a gigabyte). The bounds leave room for the few
// hundred bytes by which a built message may miss its target size.
var benchMix = []sizeClass{
	{0.714, kindPlain, 1100, 7900, 1},
	{0.20, kindAlt, 8800, 57 * kB, 1},
	{0.08, kindAttach, 64 * kB, 1000 * kB, 3},
	{0.006, kindAttach, 3*mB + 64*kB, 11*mB + 900*kB, 3},
}

// deckSize is the number of messages over which a deck realizes its mix
// exactly.
const deckSize = 500

// deck draws size classes so that every deckSize consecutive draws follow
// the shares of the mix exactly, in random order; this keeps the mix, and
// with it the total size, close to the target even for small n.
type deck struct {
	mix   []sizeClass
	cards []int
}

func newDeck(mix []sizeClass) *deck { return &deck{mix: mix} }

func (d *deck) draw(r *rand.Rand) (kind, int) {
	if len(d.cards) == 0 {
		for i, c := range d.mix {
			for range int(math.Round(c.share * deckSize)) {
				d.cards = append(d.cards, i)
			}
		}
		r.Shuffle(len(d.cards), func(i, j int) { d.cards[i], d.cards[j] = d.cards[j], d.cards[i] })
	}
	c := d.mix[d.cards[len(d.cards)-1]]
	d.cards = d.cards[:len(d.cards)-1]
	return c.kind, c.draw(r)
}

const (
	invoiceRate = 0.05
	replyRate   = 0.22
)

// themeWeights are the relative frequencies of the themes of new
// (non-reply) messages.
type themeWeights [numThemes]int

var benchThemes = themeWeights{themeWork: 40, themeDev: 25, themePersonal: 10, themeNotice: 9, themeGo: 9, themeRust: 7}

func (w *themeWeights) pick(r *rand.Rand) theme {
	total := 0
	for _, x := range w {
		total += x
	}
	n := r.IntN(total)
	for t, x := range w {
		if n < x {
			return theme(t)
		}
		n -= x
	}
	return themeWork
}

// Generate returns n messages for the folder "INBOX", ordered by date,
// with dates spread over the two years before [ReferenceDate]. The result
// depends only on seed and n. Message i contains Token(seed, i) in its
// text body.
//
// The size mix is 71.4% short plain text messages (1–8 KB), 20%
// multipart/alternative text+HTML (8–60 KB), 8% multipart/mixed with one
// base64 attachment (60 KB–1 MB) and 0.6% with a large attachment
// (3–12 MB). The shares hold exactly for every 500 consecutive messages,
// starting with the first; within each class small sizes are more
// frequent. Generate(1, 10000) is about 524 MB. About 5% of
// the messages mention the word "invoice" and about a fifth are replies
// (In-Reply-To, References, quoted text) to an earlier message.
func Generate(seed int64, n int) []Message {
	if n <= 0 {
		return []Message{}
	}
	g := newPlanner(seed)
	ref := ReferenceDate()
	const span = 730 * 24 * 3600
	secs := make([]int64, n)
	for i := range secs {
		secs[i] = 1 + g.r.Int64N(span)
	}
	slices.Sort(secs)
	slices.Reverse(secs)
	plans := make([]plan, n)
	sizes := newDeck(benchMix)
	for i := range plans {
		p := &plans[i]
		date := ref.Add(-time.Duration(secs[i]) * time.Second)
		var parent *plan
		if i > 0 && g.r.Float64() < replyRate {
			parent = &plans[i-1-g.r.IntN(min(i, 40))]
		}
		g.received(p, date, parent, &benchThemes, sizes)
		p.token = Token(seed, i)
	}
	need := 0
	for i := range plans {
		need = max(need, plans[i].poolLines())
	}
	return buildAll(plans, g.pool(need))
}

// planner makes the decisions of plan from one random source.
type planner struct {
	seed  int64
	r     *rand.Rand
	e     expander
	count uint64
}

func newPlanner(seed int64) *planner {
	g := &planner{seed: seed, r: rand.New(rand.NewPCG(uint64(seed), 0x6d61696c67656e01))}
	g.e.r = g.r
	return g
}

// start initializes the fields every plan has.
func (g *planner) start(p *plan, folder string, date time.Time) {
	g.count++
	p.seed = [2]uint64{uint64(g.seed) ^ 0x9e3779b97f4a7c15, g.count}
	p.folder = folder
	p.date = date
	p.nameEnc = "BQ"[g.r.IntN(2)]
	p.mailer = pick(g.r, mailers)
	g.e.year = date.Year()
}

// received plans a message received by the owner: new, or a reply to
// parent if parent is not nil.
func (g *planner) received(p *plan, date time.Time, parent *plan, themes *themeWeights, sizes *deck) {
	r := g.r
	g.start(p, "INBOX", date)
	if parent != nil {
		g.reply(p, parent, pick(r, people))
		if p.list == nil {
			p.to = []person{owner}
			if parent.from != owner && parent.from != p.from && r.IntN(2) == 0 {
				p.cc = []person{parent.from}
			}
		}
		p.invoice = parent.invoice && r.IntN(2) == 0
	} else {
		p.theme = themes.pick(r)
		switch p.theme {
		case themeNotice:
			p.from = pick(r, robots)
			p.mailer = ""
		default:
			p.from = pick(r, people)
		}
		switch p.theme {
		case themeGo:
			p.list = listGo
		case themeRust:
			p.list = listRust
		}
		if p.list != nil {
			p.to = []person{{"", p.list.address, 0}}
		} else {
			p.to = []person{owner}
			if r.IntN(5) == 0 {
				p.to = append(p.to, g.others(1+r.IntN(2), p.from)...)
			}
			if p.theme != themeNotice && r.IntN(5) < 2 {
				p.cc = g.others(1+r.IntN(4), p.from)
			}
		}
		p.invoice = r.Float64() < invoiceRate
		g.subject(p)
	}
	p.msgID = g.messageID(p)
	p.kind, p.size = sizes.draw(r)
	if p.kind == kindAttach {
		g.attachment(p)
	}
	p.flags = g.flags(p)
}

// reply makes p a reply from sender to parent.
func (g *planner) reply(p, parent *plan, from person) {
	p.parent = parent
	p.from = from
	p.theme = parent.theme
	p.list = parent.list
	if p.list != nil {
		p.to = []person{{"", p.list.address, 0}}
	} else {
		p.to = []person{parent.from}
	}
	p.subject = "Re: " + strings.TrimPrefix(parent.subject, "Re: ")
	p.subjEnc = parent.subjEnc
	if parent.msgID != "" {
		refs := parent.refs
		if len(refs) > 9 {
			refs = refs[len(refs)-9:]
		}
		p.refs = append(slices.Clip(refs), parent.msgID)
	}
}

// others returns n distinct people other than not.
func (g *planner) others(n int, not person) []person {
	var out []person
	for len(out) < n {
		q := pick(g.r, people)
		if q != not && !slices.Contains(out, q) {
			out = append(out, q)
		}
	}
	return out
}

func (g *planner) subject(p *plan) {
	r := g.r
	switch {
	case p.invoice && r.IntN(5) < 2:
		p.subject = g.e.string(parseTemplate("Invoice {inv} for {project}"))
	case p.theme <= themePersonal && r.IntN(10) == 0:
		p.subject = g.e.string(pick(r, intlTmpl))
		p.subjEnc = "BQL"[r.IntN(3)]
	default:
		p.subject = g.e.string(pick(r, subjects[p.theme]))
	}
	if c := p.subject[0]; c >= 'a' && c <= 'z' {
		p.subject = string(c-'a'+'A') + p.subject[1:]
	}
}

func (g *planner) messageID(p *plan) string {
	r := g.r
	dom := domainOf(p.from.email)
	switch r.IntN(4) {
	case 0:
		return fmt.Sprintf("%s.%08x@mail.%s", p.date.Format("20060102150405"), r.Uint32(), dom)
	case 1:
		return fmt.Sprintf("%08x-%04x-4%03x-%04x-%012x@%s", r.Uint32(), r.IntN(1<<16), r.IntN(1<<12),
			0x8000|r.IntN(1<<14), r.Uint64()&0xffffffffffff, dom)
	case 2:
		const alpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"
		var b [36]byte
		for i := range b {
			b[i] = alpha[r.IntN(len(alpha))]
		}
		return "CA" + string(b[:]) + "@mail." + dom
	default:
		return fmt.Sprintf("%016x.%d@%s", r.Uint64(), r.IntN(100000), dom)
	}
}

func (g *planner) attachment(p *plan) {
	r := g.r
	ak := &attachKinds[r.IntN(len(attachKinds))]
	var name string
	if p.invoice {
		ak = &attachKinds[0]
		name = g.e.string(parseTemplate("invoice-{inv}"))
	} else {
		name = strings.ReplaceAll(g.e.string(parseTemplate(pick(r, ak.names))), " ", "-")
	}
	p.attach = ak
	p.attName = name + ak.ext
}

func (g *planner) flags(p *plan) []string {
	r := g.r
	switch {
	case p.draft:
		return []string{`\Seen`, `\Draft`}
	case p.sent:
		return []string{`\Seen`}
	}
	var f []string
	old := ReferenceDate().Sub(p.date) > 14*24*time.Hour
	if (old && r.IntN(100) < 97) || (!old && r.IntN(2) == 0) {
		f = append(f, `\Seen`)
		if p.list == nil && p.theme != themeNotice && r.IntN(100) < 18 {
			f = append(f, `\Answered`)
		}
	}
	if r.IntN(100) < 5 {
		f = append(f, `\Flagged`)
	}
	return f
}

// poolLines returns how many lines of the line pool the attachment of p
// uses.
func (p *plan) poolLines() int {
	if p.kind != kindAttach {
		return 0
	}
	d := p.decoded
	if d == 0 {
		d = decodedFor(p.size)
	}
	return poolLinesFor(d)
}

// pool returns a line pool for attachments that use up to need lines.
func (g *planner) pool(need int) *linePool {
	if need == 0 {
		return nil
	}
	return newLinePool(g.seed, min(max(need, minPoolLine), maxPoolLine))
}

// dates returns n random instants in [from, to), ascending, in UTC.
func (g *planner) dates(n int, from, to time.Time) []time.Time {
	span := int64(to.Sub(from) / time.Second)
	secs := make([]int64, n)
	for i := range secs {
		secs[i] = g.r.Int64N(span)
	}
	slices.Sort(secs)
	out := make([]time.Time, n)
	for i, s := range secs {
		out[i] = from.Add(time.Duration(s) * time.Second).UTC()
	}
	return out
}
