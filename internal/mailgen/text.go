package mailgen

import (
	"math/rand/v2"
	"strconv"
	"strings"
)

// theme selects the vocabulary of subjects and bodies.
type theme int

const (
	themeWork theme = iota
	themeDev
	themePersonal
	themeNotice
	themeGo
	themeRust
	themeGerman
	numThemes
)

// person is a sender or recipient. zone is the offset from UTC in minutes
// used for the Date header of the messages they send.
type person struct {
	name  string
	email string
	zone  int
}

func (p person) first() string {
	if i := strings.IndexByte(p.name, ' '); i > 0 {
		return p.name[:i]
	}
	return p.name
}

var owner = person{"Mara Lindqvist", "mara.lindqvist@example.org", 60}

var people = []person{
	{"Tom Becker", "tom.becker@example.com", 60},
	{"Lena Hoffmann", "lena.hoffmann@example.com", 60},
	{"Jürgen Weiß", "juergen.weiss@example.net", 60},
	{"Søren Kjær", "soren.kjaer@example.net", 60},
	{"Anita Patel", "anita.patel@example.org", 0},
	{"Françoise Lefèvre", "francoise.lefevre@example.net", 60},
	{"Daniel O'Brien", "daniel.obrien@example.com", -300},
	{"Zoë Martín", "zoe.martin@example.org", 60},
	{"Łukasz Nowak", "lukasz.nowak@example.net", 60},
	{"Åsa Lind", "asa.lind@example.com", 60},
	{"Priya Raman", "priya.raman@example.com", 330},
	{"Kenji Watanabe", "kenji.watanabe@example.net", 540},
	{"Maria Gonçalves", "maria.goncalves@example.org", -180},
	{"Ahmed Karimi", "ahmed.karimi@example.com", 60},
	{"Olivia Chen", "olivia.chen@example.com", -480},
	{"Noah Williams", "noah.williams@example.net", -300},
	{"Emma Schulz", "emma.schulz@example.org", 60},
	{"Lucas Moreau", "lucas.moreau@example.net", 60},
	{"Sofia Rossi", "sofia.rossi@example.com", 60},
	{"Mateo García", "mateo.garcia@example.org", 60},
	{"Hannah Müller", "hannah.mueller@example.com", 60},
	{"Jonas Berg", "jonas.berg@example.net", 60},
	{"Chloé Bernard", "chloe.bernard@example.com", 60},
	{"Ravi Shankar", "ravi.shankar@example.org", 330},
	{"Grace Okafor", "grace.okafor@example.net", 60},
	{"Ethan Brooks", "ethan.brooks@example.com", -420},
	{"Mia Kowalski", "mia.kowalski@example.org", 60},
	{"Liam Murphy", "liam.murphy@example.net", 0},
	{"Yuki Tanaka", "yuki.tanaka@example.com", 540},
	{"Sarah Cohen", "sarah.cohen@example.org", 120},
	{"Björn Andersson", "bjorn.andersson@example.net", 60},
	{"Isabel Fernández", "isabel.fernandez@example.com", 60},
	{"Pieter de Vries", "pieter.devries@example.org", 60},
	{"Aisha Bello", "aisha.bello@example.net", 60},
	{"Carlos Mendes", "carlos.mendes@example.com", -180},
	{"Nora Halvorsen", "nora.halvorsen@example.org", 60},
}

var robots = []person{
	{"CI", "ci@build.example.net", 0},
	{"Example Billing", "billing@example.com", 0},
	{"Calendar", "calendar@example.org", 0},
	{"Example Cloud Status", "status@example.net", 0},
	{"Weekly Digest", "digest@news.example.com", 0},
}

// words is the slot vocabulary of the sentence templates, indexed by slot.
var words = [...][]string{
	slotNoun: {"report", "proposal", "roadmap", "budget", "schedule", "contract",
		"draft", "checklist", "migration plan", "dashboard", "spreadsheet",
		"presentation", "agenda", "retrospective", "forecast", "estimate",
		"summary", "timeline", "handbook", "survey", "offsite", "workshop",
		"onboarding guide", "hiring plan", "risk register", "security review",
		"vendor list", "press release", "style guide", "postmortem",
		"capacity plan", "training plan", "travel request", "floor plan",
		"customer interview", "quarterly review", "release notes", "newsletter"},
	slotNouns: {"numbers", "slides", "minutes", "figures", "comments",
		"action items", "requirements", "milestones", "estimates", "notes",
		"receipts", "metrics", "screenshots", "logs", "contracts", "mockups",
		"interviews", "priorities", "dependencies", "open questions"},
	slotAdj: {"updated", "final", "revised", "preliminary", "detailed",
		"rough", "shared", "internal", "annual", "quarterly", "new", "short",
		"complete", "simplified", "approved", "second"},
	slotProject: {"Aurora", "Falcon", "Nimbus", "Juniper", "Orion", "Tundra",
		"Kestrel", "Meridian", "Halcyon", "Basalt", "Lighthouse", "Saffron",
		"Quartz", "Pelican", "Driftwood", "Cobalt"},
	slotTeam: {"platform team", "design team", "support team", "sales team",
		"finance team", "data team", "mobile team", "legal team",
		"security team", "marketing team", "infrastructure team", "QA team"},
	slotDay: {"Monday", "Tuesday", "Wednesday", "Thursday", "Friday",
		"Friday noon", "Monday morning", "Thursday afternoon"},
	slotTag: {"Montag", "Dienstag", "Mittwoch", "Donnerstag", "Freitag"},
	slotTime: {"09:00", "09:30", "10:00", "11:15", "13:00", "14:30", "15:00",
		"16:45", "17:30"},
	slotFirst: nil, // filled from people in init
	slotPlace: {"Berlin", "Zürich", "Malmö", "Lyon", "Porto", "Kraków",
		"São Paulo", "Dublin", "Vienna", "Gothenburg", "Montréal", "Reykjavík",
		"Lisbon", "Toronto", "Osaka", "Edinburgh", "Tallinn", "Bologna"},
	slotNum: nil, // numbers, see fill
	slotPct: nil,
	slotURL: nil,
	slotTech: {"build cache", "deploy pipeline", "staging cluster",
		"load balancer", "database replica", "search index", "message queue",
		"CDN configuration", "DNS records", "backup job", "feature flag",
		"test suite", "API gateway", "monitoring stack", "TLS certificates",
		"container registry", "nightly build", "release branch",
		"object storage", "rate limiter", "cron scheduler", "VPN tunnel"},
	slotVerb: {"review", "update", "approve", "check", "share", "finalize",
		"double-check", "summarize", "circulate", "sign off on", "look over",
		"comment on", "clean up", "prepare"},
	slotMonth: {"January", "February", "March", "April", "May", "June", "July",
		"August", "September", "October", "November", "December"},
	slotGo: {"goroutines", "channels", "generics", "the scheduler",
		"escape analysis", "the race detector", "go vet", "module proxies",
		"the garbage collector", "sync.Pool", "context cancellation",
		"io.Reader", "embedded interfaces", "the net/http client",
		"range-over-func iterators", "struct tags", "cgo", "build constraints",
		"fuzzing", "pprof profiles", "slog handlers", "errors.Join",
		"the testing package", "workspace mode", "unsafe.Pointer",
		"method values", "type inference", "go:embed", "gofmt"},
	slotRust: {"the borrow checker", "lifetimes", "trait objects",
		"async runtimes", "Cargo workspaces", "unsafe blocks",
		"procedural macros", "the Pin API", "serde", "clippy lints",
		"const generics", "the orphan rule", "Box<dyn Error>", "rustfmt",
		"associated types", "Send and Sync", "zero-cost abstractions",
		"the 2024 edition", "pattern matching", "interior mutability",
		"RefCell", "tokio tasks", "feature flags in Cargo.toml"},
	slotFood: {"pizza", "ramen", "tapas", "a barbecue", "pancakes", "sushi",
		"cinnamon buns", "dumplings", "a picnic", "fondue"},
	slotActivity: {"hiking", "sailing", "climbing", "a concert", "the cinema",
		"a board game night", "the flea market", "a bike tour", "skiing",
		"the museum", "a cooking class", "the lake"},
	slotInv:   nil,
	slotSmall: nil,
	slotFile:  nil, // expander.file
}

const (
	slotNoun = iota
	slotNouns
	slotAdj
	slotProject
	slotTeam
	slotDay
	slotTime
	slotFirst
	slotPlace
	slotNum
	slotPct
	slotURL
	slotTech
	slotVerb
	slotMonth
	slotGo
	slotRust
	slotFood
	slotActivity
	slotInv
	slotSmall
	slotTag
	slotFile
	numSlots
)

var slotNames = [numSlots]string{
	slotNoun: "noun", slotNouns: "nouns", slotAdj: "adj", slotProject: "project",
	slotTeam: "team", slotDay: "day", slotTime: "time", slotFirst: "first",
	slotPlace: "place", slotNum: "num", slotPct: "pct", slotURL: "url",
	slotTech: "tech", slotVerb: "verb", slotMonth: "month", slotGo: "go",
	slotRust: "rust", slotFood: "food", slotActivity: "activity", slotInv: "inv",
	slotSmall: "small", slotTag: "tag", slotFile: "file",
}

// Sentence templates per theme. {name} is a slot, see slotNames.
var sentenceSrc = [numThemes][]string{
	themeWork: {
		"Could you {verb} the {noun} for {project} before {day}?",
		"I attached my notes on the {adj} {noun} below.",
		"The {team} asked whether we can move the {noun} to {day}.",
		"We are still waiting for the {nouns} from the {team}.",
		"Let's meet at {time} on {day} to go through the {nouns}.",
		"The {adj} {noun} is in the shared folder at {url} now.",
		"I think the {noun} looks good, but the {nouns} in section {small} need another pass.",
		"{first} will present the {noun} to the {team} on {day}.",
		"Costs for {project} went up by {pct} percent compared to {month}.",
		"Please {verb} the {nouns} and let me know if anything is missing.",
		"The {noun} for the {place} office is almost done.",
		"I moved the deadline for the {noun} to the end of {month}.",
		"Thanks for the quick turnaround on the {nouns}.",
		"Do we have a decision on the {noun} yet?",
		"I booked the big meeting room for {day} at {time}.",
		"{first} and I went through the {nouns} yesterday and found {num} open issues.",
		"The {team} would like to see the {adj} {noun} before we commit to a date.",
		"Can you add the {nouns} from {place} to the {noun}?",
		"For context, {project} is now owned by the {team}.",
		"I'll be in {place} from {day} until the end of the week, so expect slow replies.",
		"We agreed to freeze the {noun} until {first} is back.",
		"Headcount for {project} stays at {small} until {month}.",
		"The {adj} {noun} has {num} pages, mostly {nouns}.",
		"If nobody objects, I will send the {noun} to the {team} on {day}.",
		"Sorry for the delay, the {nouns} took longer than expected.",
		"Attendance at the {noun} was about {pct} percent of the {team}.",
		"Here is the link to the {noun}: {url}",
		"My main concern is the timeline, not the {nouns}.",
		"Let me know which slot works best for you.",
		"We should loop in {first} from the {team} before we decide.",
		"The customer in {place} signed the {noun} last {day}.",
		"Travel to {place} is approved for {small} people.",
	},
	themeDev: {
		"The {tech} failed again last night, see {url} for the logs.",
		"I bumped the timeout of the {tech} from {num} to {num} seconds.",
		"{first} is rolling out the new {tech} to staging on {day}.",
		"Latency on the {tech} dropped by {pct} percent after the change.",
		"Could you review my pull request for the {tech} when you have a minute?",
		"We need to rotate the {tech} credentials before {day}.",
		"The flaky test in the {tech} is fixed on the release branch.",
		"I opened ticket {project}-{num} to track the {tech} issue.",
		"The root cause was a misconfigured {tech} in the {place} region.",
		"Disk usage on the {tech} is at {pct} percent and growing.",
		"Rollback is possible, the previous {tech} is still deployed.",
		"Please do not merge anything into main until the {tech} is green.",
		"Benchmarks show a {pct} percent improvement for large inputs.",
		"I wrote down the migration steps for the {tech} at {url}.",
		"The on-call rotation for {month} is in the {noun}.",
		"We could cache the results of the {tech} for {num} minutes.",
		"{first} found a race condition in the {tech} retry logic.",
		"Version {small}.{small}.{small} of the {tech} is now the default.",
		"The alert fired {num} times this week, mostly at night.",
		"I would rather delete the {tech} than keep patching it.",
		"Error rate is back to normal since {time} UTC.",
		"The incident review for {project} is scheduled for {day} at {time}.",
		"Can someone with admin access restart the {tech}?",
		"Upgrading the {tech} requires a short maintenance window.",
		"All {num} services passed the smoke tests.",
	},
	themePersonal: {
		"Are you free on {day} for {activity}?",
		"We were thinking of {food} afterwards, if you're in.",
		"The weather in {place} was lovely, I'll send photos soon.",
		"{first} says hello and asks when you visit {place} again.",
		"I finally finished the book you recommended.",
		"The train to {place} leaves at {time}, let's meet at the platform.",
		"Happy birthday from all of us!",
		"We still have {small} tickets for {activity} on {day}.",
		"Thanks again for {food} last week, it was great.",
		"My flight from {place} is delayed by {num} minutes.",
		"How did {activity} go on {day}?",
		"The kids loved {activity}, we should do it again in {month}.",
		"Let me know if you want to join us for {food} on {day}.",
		"I borrowed {first}'s camera for the trip to {place}.",
	},
	themeNotice: {
		"This is an automated message, please do not reply.",
		"Build {num} of {project} finished with {num} warnings.",
		"Your subscription renews on {day}.",
		"Scheduled maintenance of the {tech} starts at {time} UTC.",
		"{num} new comments were added to the {noun}.",
		"The status page at {url} has more details.",
		"You are receiving this because you watch {project}.",
		"Usage this month is at {pct} percent of your quota.",
		"A new sign-in to your account was detected from {place}.",
		"The event {noun} starts on {day} at {time}.",
	},
	themeGo: {
		"Is there a way to avoid allocations when using {go} here?",
		"I ran into a deadlock with {go} and {go} in the same loop.",
		"The documentation for {go} at {url} explains this quite well.",
		"Have you looked at {go}? It solves exactly this problem.",
		"This works with {go}, but only since Go 1.{small}.",
		"My benchmark shows {pct} percent fewer allocations with {go}.",
		"I would not use {go} for this, a plain slice is simpler.",
		"The proposal to change {go} was accepted last {month}.",
		"What does the race detector say if you run it with -race?",
		"You can reproduce it on the playground: {url}",
		"Generics make this easier, but {go} still has rough edges.",
		"The escape analysis output shows the buffer moves to the heap.",
		"Try wrapping the error with fmt.Errorf and %w.",
		"In our service {go} accounts for {pct} percent of CPU time.",
		"We maintain a small library around {go} at {url}.",
		"{first} gave a talk about {go} at the meetup in {place}.",
		"Closing the channel twice will panic, so guard it with sync.Once.",
		"The behaviour of {go} is specified, not an implementation detail.",
		"Could you share a minimal program that shows the issue?",
		"That sounds like a bug, please file an issue with the output of go version.",
		"For what it's worth, {go} never caused problems for us in production.",
		"With {small} workers the throughput stops scaling, probably lock contention.",
	},
	themeRust: {
		"I keep fighting {rust} when I store references in a struct.",
		"Is {rust} really necessary here, or would an Arc do?",
		"The compiler error mentions {rust}, but the fix was elsewhere.",
		"We replaced {rust} with {rust} and compile times dropped by {pct} percent.",
		"There is a good chapter about {rust} at {url}.",
		"This compiles on nightly but not on stable 1.{num}.",
		"{first} wrote a crate that wraps {rust} nicely.",
		"You probably want {rust} instead of cloning everything.",
		"The RFC for {rust} was merged last {month}.",
		"Can you post the full error message from cargo build?",
		"Our service handles {num} thousand requests per second with {rust}.",
		"Clippy suggests a different approach, but {rust} is fine here.",
		"I gave a short talk about {rust} at the meetup in {place}.",
		"Have you tried running it under Miri?",
		"The borrow checker is right: the iterator outlives the vector.",
		"Pinning is only needed if the future is self-referential.",
		"Match ergonomics changed a bit in the new edition.",
		"That crate has not been updated since {month}, I would avoid it.",
	},
	themeGerman: germanSrc,
}

var germanSrc = []string{
	"Vielen Dank für die schnelle Rückmeldung zum {noun}.",
	"Könnten wir den Termin auf {tag} um {time} verschieben?",
	"Die Unterlagen für {project} schicke ich bis Ende {month}.",
	"Anbei noch ein paar Gedanken zum Workshop in {place}.",
	"Ich bin ab nächster Woche wieder im Büro.",
	"Die Kosten liegen etwa {pct} Prozent über der Schätzung.",
	"Bitte gib mir kurz Bescheid, ob das für dich passt.",
	"Für die Weihnachtsfeier haben sich bisher {num} Leute angemeldet.",
	"Das Angebot gilt noch bis zum Monatsende.",
	"Ich würde vorschlagen, dass {first} die Präsentation übernimmt.",
	"Leider habe ich die Zahlen aus {place} noch nicht bekommen.",
	"Können wir das nächste Woche in Ruhe besprechen?",
}

var attachedSrc = []string{
	"I attached {file}.",
	"Please find {file} attached.",
	"Attached is {file}, as promised.",
	"See the attachment ({file}).",
	"Here is {file} from {day}.",
}

var invoiceSrc = []string{
	"The invoice {inv} for the {noun} is attached.",
	"Could you check invoice {inv} before we pay it on {day}?",
	"Finance needs the approved invoice for {project} by {day}.",
	"I forwarded the invoice from the {place} office to accounting.",
	"The invoice total is {num} hundred euros, as agreed.",
	"Please send the corrected invoice {inv} to billing@example.com.",
}

var subjectSrc = [numThemes][]string{
	themeWork: {
		"{project} status update", "Meeting notes: {noun}",
		"Question about the {noun}", "{adj} {noun} for {month}",
		"{noun} for the {team}", "Reminder: {noun} due {day}",
		"Quick sync on {project}?", "Feedback on the {adj} {noun}",
		"{project}: {nouns} for review", "Trip to {place}",
		"Agenda for {day}", "Re-scheduling the {noun}",
		"{team} offsite in {place}", "Draft {noun}, please comment",
		"Heads-up: {project} timeline", "{nouns} from the {team}",
	},
	themeDev: {
		"{tech} outage postmortem", "Deploy of {project} on {day}",
		"PR: refactor the {tech}", "Flaky tests in the {tech}",
		"{project}-{num}: {tech} timeouts", "Upgrading the {tech}",
		"On-call handover for {month}", "Benchmark results for {project}",
		"Incident {num}: {tech} in {place}", "Proposal: retire the {tech}",
	},
	themePersonal: {
		"{activity} on {day}?", "Photos from {place}", "Dinner plans",
		"Tickets for {activity}", "Visiting {place} in {month}",
		"Reunion in {place}", "{food} on {day}",
	},
	themeNotice: {
		"[CI] build {num} failed on main", "Your weekly digest",
		"Scheduled maintenance: {tech}", "New sign-in from {place}",
		"Reminder: {noun} on {day}", "Usage report for {month}",
	},
	themeGo: {
		"[golang-nuts] question about {go}", "[golang-nuts] {go} and performance",
		"[golang-nuts] Proposal: simplify {go}", "[golang-nuts] unexpected behaviour of {go}",
		"[golang-nuts] best practice for {go}?", "[golang-nuts] {go} in Go 1.{small}",
		"[golang-nuts] ANN: new library for {go}",
	},
	themeGerman: {
		"Angebot für {project}", "Urlaubsantrag {month}", "Antwort an {first}",
		"Notizen zum Workshop in {place}", "Einladung zur Weihnachtsfeier",
		"Rückfrage zur Reisekostenabrechnung", "Übergabe {project}",
		"Kündigung Fitnessstudio", "Termin mit {first} in {place}",
	},
	themeRust: {
		"[rust-users] help with {rust}", "[rust-users] {rust} vs {rust}",
		"[rust-users] confusing error about {rust}", "[rust-users] ANN: crate for {rust}",
		"[rust-users] {rust} best practices?",
	},
}

// Subjects with non-ASCII characters; they are sent as RFC 2047 encoded words.
var intlSubjects = []string{
	"Grüße aus München", "Réunion de lundi : compte rendu",
	"Café-Treffen am Freitag", "Zürich offsite – agenda",
	"Résumé for the data engineer position", "Smörgåsbord on Friday?",
	"Änderungen am Vertrag für {project}", "Überstunden im {month}",
	"Año nuevo, presupuesto nuevo", "Déjà vu: the {tech} again",
	"日本出張の件", "Отчёт за {month}", "Señal débil en la oficina de {place}",
	"Fika på fredag ☕", "Straße gesperrt – Anfahrt zum Büro",
	"Crème brûlée recipe", "Naïve question about {project}",
}

var greetings = []string{"Hi {first},", "Hello {first},", "Dear {first},", "{first},",
	"Hey {first},", "Good morning {first},", "Hi all,", "Hallo {first},"}
var listGreetings = []string{"Hi all,", "Hello everyone,", "Hi,", "Hey folks,", ""}
var closings = []string{"Best,", "Thanks,", "Cheers,", "Kind regards,", "Best regards,",
	"Viele Grüße,", "Thanks in advance,", "See you,", "Bien à vous,", "Regards,"}

// template is a parsed sentence: literal text with slots in between.
// parts[i] is literal text when slots[i] < 0.
type template struct {
	lits  []string
	slots []int
}

func parseTemplate(s string) template {
	var t template
	for {
		i := strings.IndexByte(s, '{')
		if i < 0 {
			break
		}
		j := strings.IndexByte(s[i:], '}')
		if j < 0 {
			panic("mailgen: unterminated slot in " + s)
		}
		name := s[i+1 : i+j]
		slot := -1
		for k, n := range slotNames {
			if n == name {
				slot = k
			}
		}
		if slot < 0 {
			panic("mailgen: unknown slot {" + name + "}")
		}
		t.lits = append(t.lits, s[:i])
		t.slots = append(t.slots, slot)
		s = s[i+j+1:]
	}
	t.lits = append(t.lits, s)
	return t
}

func parseAll(src []string) []template {
	out := make([]template, len(src))
	for i, s := range src {
		out[i] = parseTemplate(s)
	}
	return out
}

var (
	sentences    [numThemes][]template
	subjects     [numThemes][]template
	invoiceTmpl  []template
	attachedTmpl []template
	intlTmpl     []template
	greetingTmpl []template
	listGreet    []template
)

var urlPaths = []string{"wiki", "docs", "tickets", "drive", "status", "go", "notes", "share"}
var urlHosts = []string{"wiki.example.org", "docs.example.com", "tracker.example.net",
	"files.example.org", "status.example.net", "play.example.org"}

func init() {
	for _, p := range people {
		words[slotFirst] = append(words[slotFirst], p.first())
	}
	for t := range numThemes {
		sentences[t] = parseAll(sentenceSrc[t])
		subjects[t] = parseAll(subjectSrc[t])
	}
	invoiceTmpl = parseAll(invoiceSrc)
	attachedTmpl = parseAll(attachedSrc)
	intlTmpl = parseAll(intlSubjects)
	greetingTmpl = parseAll(greetings)
	listGreet = parseAll(listGreetings)
}

// expander fills templates. first overrides the {first} slot when set (the
// recipient's first name in greetings).
type expander struct {
	r     *rand.Rand
	first string
	file  string // {file}: the name of the attachment
	year  int
}

func pick[T any](r *rand.Rand, s []T) T { return s[r.IntN(len(s))] }

// slot appends a value for slot k to b and, if h, the same value as HTML
// to html.
func (e *expander) slot(b, html []byte, k int, h bool) ([]byte, []byte) {
	var v string
	switch k {
	case slotNum:
		v = strconv.Itoa(2 + e.r.IntN(e.r.IntN(300)+1))
	case slotSmall:
		v = strconv.Itoa(2 + e.r.IntN(24))
	case slotFile:
		v = e.file
	case slotPct:
		v = strconv.Itoa(3 + e.r.IntN(43))
	case slotInv:
		v = "INV-" + strconv.Itoa(e.year) + "-" + pad4(e.r.IntN(10000))
	case slotURL:
		v = "https://" + pick(e.r, urlHosts) + "/" + pick(e.r, urlPaths) + "/" +
			strings.ToLower(pick(e.r, words[slotProject])) + "-" + strconv.Itoa(100+e.r.IntN(9900))
		b = append(b, v...)
		if h {
			html = append(html, `<a href="`...)
			html = append(html, v...)
			html = append(html, `">`...)
			html = append(html, v...)
			html = append(html, "</a>"...)
		}
		return b, html
	case slotFirst:
		if e.first != "" {
			v = e.first
		} else {
			v = pick(e.r, words[slotFirst])
		}
	default:
		v = pick(e.r, words[k])
	}
	b = append(b, v...)
	if h {
		html = appendEscaped(html, v)
	}
	return b, html
}

// expand appends the expansion of t to b and, if h, as HTML to html.
func (e *expander) expand(b, html []byte, t template, h bool) ([]byte, []byte) {
	for i, s := range t.slots {
		b = append(b, t.lits[i]...)
		if h {
			html = appendEscaped(html, t.lits[i])
		}
		b, html = e.slot(b, html, s, h)
	}
	last := t.lits[len(t.lits)-1]
	b = append(b, last...)
	if h {
		html = appendEscaped(html, last)
	}
	return b, html
}

func (e *expander) string(t template) string {
	b, _ := e.expand(nil, nil, t, false)
	return string(b)
}

func pad4(n int) string {
	s := strconv.Itoa(n)
	return strings.Repeat("0", 4-len(s)) + s
}

func appendEscaped(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '<':
			b = append(b, "&lt;"...)
		case '>':
			b = append(b, "&gt;"...)
		case '&':
			b = append(b, "&amp;"...)
		case '"':
			b = append(b, "&quot;"...)
		default:
			b = append(b, c)
		}
	}
	return b
}

// isASCII reports whether s has only 7-bit characters.
func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
