package memserver

import (
	"crypto/tls"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
)

// Quirks make the server misbehave the way real servers have, for tests of
// what mailfs does about it. The zero value is a well-behaved server.
type Quirks struct {
	// StoreAlsoLast applies every STORE to the folder's last message too,
	// as GNU Mailutils does with a UID it does not have.
	StoreAlsoLast bool
	// CopyAlsoLast copies (or moves) the folder's last message along with
	// every COPY or MOVE, and says so in COPYUID.
	CopyAlsoLast bool
	// NoMove leaves MOVE (and IMAP4rev2, which implies it) out of the
	// capabilities: moves are COPY, STORE and UID EXPUNGE.
	NoMove bool
	// AppendRefusedWhenExamined answers NO to an APPEND into the folder the
	// session has open read-only (EXAMINE), as Courier-IMAP does.
	AppendRefusedWhenExamined bool
	// RefuseSelect names a folder whose SELECT and EXAMINE are answered NO
	// (with RefuseCode, if set); "" for none.
	RefuseSelect string
	RefuseCode   imap.ResponseCode
	// TLS, if set, offers STARTTLS with this configuration (not a quirk:
	// a server setting).
	TLS *tls.Config
}

// quirkSession is a session of the in-memory server with Quirks.
type quirkSession struct {
	imapserver.SessionIMAP4rev2
	q Quirks

	selected string // the folder open, "" for none
	readOnly bool
}

func (s *quirkSession) Select(name string, options *imap.SelectOptions) (*imap.SelectData, error) {
	if s.q.RefuseSelect != "" && strings.EqualFold(name, s.q.RefuseSelect) {
		return nil, &imap.Error{Type: imap.StatusResponseTypeNo, Code: s.q.RefuseCode, Text: "Cannot open this mailbox"}
	}
	data, err := s.SessionIMAP4rev2.Select(name, options)
	if err == nil {
		s.selected, s.readOnly = name, options != nil && options.ReadOnly
	}
	return data, err
}

func (s *quirkSession) Unselect() error {
	s.selected = ""
	return s.SessionIMAP4rev2.Unselect()
}

func (s *quirkSession) Append(mailbox string, r imap.LiteralReader, options *imap.AppendOptions) (*imap.AppendData, error) {
	if s.q.AppendRefusedWhenExamined && s.readOnly && strings.EqualFold(mailbox, s.selected) {
		return nil, &imap.Error{Type: imap.StatusResponseTypeNo, Text: "Current box is selected READ-ONLY."}
	}
	return s.SessionIMAP4rev2.Append(mailbox, r, options)
}

// withLast adds the folder's last message to a UID set.
func (s *quirkSession) withLast(numSet imap.NumSet) imap.NumSet {
	set, ok := numSet.(imap.UIDSet)
	if !ok {
		return numSet
	}
	data, err := s.SessionIMAP4rev2.Search(imapserver.NumKindUID, &imap.SearchCriteria{}, &imap.SearchOptions{})
	if err != nil || data.Max == 0 {
		return numSet
	}
	out := append(imap.UIDSet(nil), set...)
	out.AddNum(imap.UID(data.Max))
	return out
}

func (s *quirkSession) Store(w *imapserver.FetchWriter, numSet imap.NumSet, flags *imap.StoreFlags, options *imap.StoreOptions) error {
	if s.q.StoreAlsoLast {
		numSet = s.withLast(numSet)
	}
	return s.SessionIMAP4rev2.Store(w, numSet, flags, options)
}

func (s *quirkSession) Copy(numSet imap.NumSet, dest string) (*imap.CopyData, error) {
	if s.q.CopyAlsoLast {
		numSet = s.withLast(numSet)
	}
	return s.SessionIMAP4rev2.Copy(numSet, dest)
}

func (s *quirkSession) Move(w *imapserver.MoveWriter, numSet imap.NumSet, dest string) error {
	if s.q.CopyAlsoLast {
		numSet = s.withLast(numSet)
	}
	return s.SessionIMAP4rev2.Move(w, numSet, dest)
}
