package mailgen

import (
	"slices"
	"time"
)

// The folders of Demo, in the order Demo returns them, with the number of
// messages each holds.
var demoFolders = []struct {
	name string
	n    int
}{
	{"INBOX", 150},
	{"Lists/golang", 80},
	{"Lists/rust", 40},
	{"Sent", 50},
	{"Entwürfe", 8},
	{"Archive/2025", 30},
}

var (
	demoThemes = themeWeights{themeWork: 50, themeDev: 25, themePersonal: 15, themeNotice: 10}
	demoMix    = []sizeClass{
		{0.72, kindPlain, 1100, 7900, 1},
		{0.20, kindAlt, 8800, 57 * kB, 1},
		{0.08, kindAttach, 64 * kB, 700 * kB, 2},
	}
	listMix = []sizeClass{
		{0.85, kindPlain, 1100, 7900, 1.5},
		{0.15, kindAlt, 8800, 40 * kB, 1.5},
	}
	sentMix = []sizeClass{
		{0.80, kindPlain, 1100, 6 * kB, 1.5},
		{0.15, kindAlt, 8800, 30 * kB, 1},
		{0.05, kindAttach, 64 * kB, 400 * kB, 2},
	}
)

// Demo returns the demo mailbox: about 360 messages in the folders
// "INBOX" (150, including all [Fixtures]), "Lists/golang" (80),
// "Lists/rust" (40), "Sent" (50), "Entwürfe" (8 drafts) and
// "Archive/2025" (30). Messages are grouped by folder, in that order, and
// sorted by date within a folder. "Lists" holds no messages itself; it
// exists only as the parent of its two subfolders. Exactly two messages,
// both in INBOX, carry multi-megabyte attachments: a JPEG of 3,000,000
// bytes and a PDF of 6,000,000 bytes (about 4.1 MB and 8.2 MB as base64
// messages); all others are below 1 MB. The generated message at index i
// contains Token(DemoSeed, i). Demo is deterministic.
func Demo() []Message {
	g := newPlanner(DemoSeed)
	r := g.r
	ref := ReferenceDate()
	fixtures := Fixtures()
	folders := make(map[string][]*plan)
	need := 0
	inboxSizes := newDeck(demoMix)

	// INBOX: new mail and replies from other people.
	nInbox := demoFolders[0].n - 2 - len(fixtures)
	var inbox []*plan
	for i, d := range g.dates(nInbox, ref.AddDate(0, -10, 0), ref) {
		p := new(plan)
		var parent *plan
		if i > 0 && r.Float64() < replyRate {
			parent = inbox[i-1-r.IntN(min(i, 25))]
		}
		g.received(p, d, parent, &demoThemes, inboxSizes)
		inbox = append(inbox, p)
	}
	inbox = append(inbox,
		g.bigAttachment(ref.Add(-12*24*time.Hour-5*time.Hour), &attachKinds[1], "IMG_2041.jpg",
			"Photos from the offsite in Porto", 3_000_000),
		g.bigAttachment(ref.Add(-5*24*time.Hour-9*time.Hour), &attachKinds[0], "Board-deck-Q3-2026.pdf",
			"Board deck Q3 (final version)", 6_000_000))
	folders["INBOX"] = inbox

	// Mailing lists: many threads.
	list := func(n int, th theme) []*plan {
		var out []*plan
		sizes := newDeck(listMix)
		var w themeWeights
		w[th] = 1
		for i, d := range g.dates(n, ref.AddDate(0, -6, 0), ref) {
			p := new(plan)
			var parent *plan
			if i > 0 && r.IntN(2) == 0 {
				parent = out[i-1-r.IntN(min(i, 15))]
			}
			g.received(p, d, parent, &w, sizes)
			out = append(out, p)
		}
		return out
	}
	folders["Lists/golang"] = list(demoFolders[1].n, themeGo)
	folders["Lists/rust"] = list(demoFolders[2].n, themeRust)

	// Sent: the owner's messages, some of them replies to INBOX mail.
	var sent []*plan
	sentSizes := newDeck(sentMix)
	for range demoFolders[3].n {
		p := new(plan)
		parent := inbox[r.IntN(nInbox)]
		if r.IntN(100) < 45 && parent.theme != themeNotice && parent.list == nil {
			date := parent.date.Add(time.Duration(600+r.IntN(30*3600)) * time.Second)
			if !date.Before(ref) {
				date = ref.Add(-time.Duration(1+r.IntN(3600)) * time.Second)
			}
			g.start(p, "Sent", date)
			g.reply(p, parent, owner)
			p.cc = parent.cc
			if !slices.Contains(parent.flags, `\Answered`) {
				parent.flags = append(parent.flags, `\Answered`)
			}
		} else {
			g.start(p, "Sent", g.dates(1, ref.AddDate(-1, 0, 0), ref)[0])
			p.from = owner
			p.theme = (&themeWeights{themeWork: 6, themeDev: 3, themePersonal: 2}).pick(r)
			p.to = g.others(1+r.IntN(2), owner)
			if r.IntN(3) == 0 {
				p.cc = g.others(1+r.IntN(3), owner)
			}
			p.invoice = r.Float64() < invoiceRate
			g.subject(p)
		}
		g.finish(p, true, sentSizes)
		sent = append(sent, p)
	}
	folders["Sent"] = sent

	// Drafts, in German.
	var drafts []*plan
	draftSizes := newDeck([]sizeClass{{0.75, kindPlain, 1100, 4 * kB, 1}, {0.25, kindAlt, 8800, 16 * kB, 1}})
	for _, d := range g.dates(demoFolders[4].n, ref.AddDate(0, 0, -30), ref) {
		p := new(plan)
		g.start(p, "Entwürfe", d)
		p.from = owner
		p.draft = true
		p.theme = themeGerman
		p.to = g.others(1, owner)
		g.subject(p)
		g.finish(p, false, draftSizes)
		drafts = append(drafts, p)
	}
	folders["Entwürfe"] = drafts

	// Archive/2025: like INBOX, but from 2025 and all read.
	var archive []*plan
	from := time.Date(2025, time.January, 1, 0, 0, 0, 0, time.UTC)
	for i, d := range g.dates(demoFolders[5].n, from, from.AddDate(1, 0, 0)) {
		p := new(plan)
		var parent *plan
		if i > 0 && r.Float64() < replyRate {
			parent = archive[i-1-r.IntN(min(i, 10))]
		}
		g.received(p, d, parent, &demoThemes, inboxSizes)
		p.folder = "Archive/2025"
		if !slices.Contains(p.flags, `\Seen`) {
			p.flags = append([]string{`\Seen`}, p.flags...)
		}
		archive = append(archive, p)
	}
	folders["Archive/2025"] = archive

	// Order the messages, give them their tokens and build them.
	type entry struct {
		p *plan
		m *Message
	}
	var order []entry
	for _, f := range demoFolders {
		var es []entry
		for _, p := range folders[f.name] {
			p.folder = f.name
			es = append(es, entry{p: p})
			need = max(need, p.poolLines())
		}
		if f.name == "INBOX" {
			for i := range fixtures {
				es = append(es, entry{m: &fixtures[i]})
			}
		}
		date := func(e entry) time.Time {
			if e.p != nil {
				return e.p.date
			}
			return e.m.Date
		}
		slices.SortStableFunc(es, func(a, b entry) int { return date(a).Compare(date(b)) })
		order = append(order, es...)
	}
	var plans []plan
	var where []int
	for i, e := range order {
		if e.p != nil {
			e.p.token = Token(DemoSeed, i)
			plans = append(plans, *e.p)
			where = append(where, i)
		}
	}
	built := buildAll(plans, g.pool(need))
	msgs := make([]Message, len(order))
	for i, e := range order {
		if e.m != nil {
			msgs[i] = *e.m
		}
	}
	for k, i := range where {
		msgs[i] = built[k]
	}
	return msgs
}

// bigAttachment plans an INBOX message with an attachment of decoded bytes.
func (g *planner) bigAttachment(date time.Time, ak *attachKind, name, subject string, decoded int) *plan {
	p := new(plan)
	g.start(p, "INBOX", date)
	p.theme = themeWork
	p.from = pick(g.r, people)
	p.to = []person{owner}
	p.subject = subject
	p.msgID = g.messageID(p)
	p.kind = kindAttach
	p.attach = ak
	p.attName = name
	p.decoded = decoded
	p.size = encodedSize(decoded) + 4*kB
	p.flags = g.flags(p)
	return p
}

// finish completes a plan written by the owner.
func (g *planner) finish(p *plan, sent bool, sizes *deck) {
	p.sent = sent
	p.msgID = g.messageID(p)
	p.kind, p.size = sizes.draw(g.r)
	if p.kind == kindAttach {
		g.attachment(p)
	}
	p.flags = g.flags(p)
}
