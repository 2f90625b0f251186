package mailgen

import (
	"bytes"
	"fmt"
	"io/fs"
	"net/mail"
	"slices"
	"time"

	"mailfs/testdata"
)

// Message is one message of a mailbox.
type Message struct {
	Folder string    // folder path with "/" as separator, e.g. "INBOX", "Lists/golang", "Entwürfe"
	Date   time.Time // also used as INTERNALDATE; always in UTC
	Flags  []string  // e.g. `\Seen`, `\Flagged`, `\Answered`; nil when there are none
	Raw    []byte    // full RFC 5322 message, CRLF line endings
}

// DemoSeed is the seed of the messages built by [Demo]: the generated
// message at index i of Demo() contains Token(DemoSeed, i).
const DemoSeed = 0

// ReferenceDate returns the fixed "now" of the generator,
// 2026-11-01 00:00 UTC. All generated dates lie before it.
func ReferenceDate() time.Time {
	return time.Date(2026, time.November, 1, 0, 0, 0, 0, time.UTC)
}

// Token returns the unique token that the body of message index of
// Generate(seed, n) contains, e.g. "mailgen-1-000042". The index is padded
// to six digits, so no token of a mailbox of up to a million messages is a
// prefix of another.
func Token(seed int64, index int) string {
	return fmt.Sprintf("mailgen-%d-%06d", seed, index)
}

// Total returns the number of messages and the sum of their sizes.
func Total(msgs []Message) (count int, bytes int64) {
	for _, m := range msgs {
		bytes += int64(len(m.Raw))
	}
	return len(msgs), bytes
}

// FixtureNames returns the file names of the hand-written fixtures in
// testdata/mail, sorted; Fixtures()[i] is the message of FixtureNames()[i].
func FixtureNames() []string {
	ents, err := fs.ReadDir(testdata.Mail, "mail")
	if err != nil {
		panic("mailgen: embedded fixtures: " + err.Error())
	}
	names := make([]string, 0, len(ents))
	for _, e := range ents {
		names = append(names, e.Name())
	}
	slices.Sort(names)
	return names
}

// Fixtures returns the hand-written messages of testdata/mail, in the
// order of [FixtureNames], as INBOX messages. Raw is a fresh copy of the
// file, byte for byte; Date is the message's Date header.
func Fixtures() []Message {
	names := FixtureNames()
	msgs := make([]Message, 0, len(names))
	for i, name := range names {
		raw, err := fs.ReadFile(testdata.Mail, "mail/"+name)
		if err != nil {
			panic("mailgen: embedded fixtures: " + err.Error())
		}
		m, err := mail.ReadMessage(bytes.NewReader(raw))
		if err != nil {
			panic("mailgen: fixture " + name + ": " + err.Error())
		}
		date, err := m.Header.Date()
		if err != nil {
			panic("mailgen: fixture " + name + ": " + err.Error())
		}
		var flags []string
		switch i % 4 {
		case 0, 1:
			flags = []string{`\Seen`}
		case 2:
			flags = []string{`\Seen`, `\Flagged`}
		}
		msgs = append(msgs, Message{Folder: "INBOX", Date: date.UTC(), Flags: flags, Raw: raw})
	}
	return msgs
}
