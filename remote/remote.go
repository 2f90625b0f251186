package remote

import (
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"time"
)

// Sentinel errors. Implementations wrap them with %w and a reason.
var (
	// ErrNotFound: the folder or message does not exist (any more).
	ErrNotFound = errors.New("not found")
	// ErrAuth: the server refused the credentials.
	ErrAuth = errors.New("authentication failed")
	// ErrUIDValidity: a reference names a UIDVALIDITY the folder no longer has.
	ErrUIDValidity = errors.New("uidvalidity changed")
	// ErrReadOnly: a change was asked of a read-only account or mount.
	ErrReadOnly = errors.New("read-only")
	// ErrUnavailable: the server cannot be reached or the connection broke.
	ErrUnavailable = errors.New("server unavailable")
	// ErrTLS: the TLS handshake or STARTTLS negotiation failed.
	ErrTLS = errors.New("tls")
	// ErrProtocol: the server sent something that cannot be used.
	ErrProtocol = errors.New("protocol error")
	// ErrInvalid: a request names something that cannot be sent, such
	// as a flag that is not an IMAP atom.
	ErrInvalid = errors.New("invalid argument")
	// ErrTooLarge: a message exceeds what the server accepts or what
	// mailfs handles.
	ErrTooLarge = errors.New("too large")
)

// Folder describes one folder of an account.
type Folder struct {
	// Name is the folder's name as the server knows it, decoded to UTF-8
	// (modified UTF-7 already undone), e.g. "Lists.golang".
	Name string
	// Path is Name split at the server's hierarchy delimiter.
	Path []string
	// NoSelect is set for a folder that only holds other folders.
	NoSelect bool
	// Delim is the server's hierarchy delimiter ("" for a flat server).
	Delim string
}

// MessageInfo is one row of a folder listing: what `ls -l` needs, no more.
type MessageInfo struct {
	// UID is the IMAP UID; zero for POP3.
	UID uint32
	// Key names the message inside its folder and UIDVALIDITY: the decimal
	// UID for IMAP, the UIDL for POP3.
	Key string
	// Size is the size the server announced (RFC822.SIZE, POP3 LIST). It is
	// a hint: the body may turn out to have another length.
	Size int64
	// Date is the IMAP INTERNALDATE (POP3: Date header or download time).
	Date time.Time
	// Flags are the IMAP flags, e.g. `\Seen`.
	Flags []string
}

// Listing is the content of a folder at one moment.
type Listing struct {
	UIDValidity uint32
	// Messages in display order: ascending UID for IMAP.
	Messages []MessageInfo
}

// Ref names one message for a fetch. UIDValidity guards against serving a
// message under a UID that the server has since reassigned.
type Ref struct {
	Folder      string
	UIDValidity uint32
	UID         uint32
	Key         string
}

// HeaderFields are the header fields fetched for extended attributes.
var HeaderFields = []string{"Subject", "From", "To", "Cc", "Date", "Message-Id"}

// Account is a mail account: its folders, their listings and messages.
// Every method may be called from many goroutines at once.
type Account interface {
	// Folders lists every folder, selectable or not.
	Folders(ctx context.Context) ([]Folder, error)
	// List returns the current listing of a folder.
	List(ctx context.Context, folder string) (*Listing, error)
	// Header returns the raw header fields named in HeaderFields (as
	// "Name: value\r\n" lines, folded as on the server).
	Header(ctx context.Context, ref Ref) ([]byte, error)
	// Body returns the whole message, byte for byte as the server holds it.
	Body(ctx context.Context, ref Ref) ([]byte, error)
	// Close releases connections.
	Close() error
}

// RangeReader is implemented by accounts that can fetch part of a message.
type RangeReader interface {
	// BodyRange returns up to n bytes of the message from offset off. Fewer
	// bytes mean the message ends there.
	BodyRange(ctx context.Context, ref Ref, off, n int64) ([]byte, error)
}

// RangeStreamer is implemented by accounts that can stream a range of a
// message in one request: fn gets consecutive pieces of at most piece
// bytes, in order, as they arrive. It returns the bytes delivered; fewer
// than n mean the message ends there.
type RangeStreamer interface {
	StreamRange(ctx context.Context, ref Ref, off, n, piece int64, fn func(b []byte)) (int64, error)
}

// Deleter is implemented by accounts that can delete messages: POP3 DELE
// (committed with QUIT), IMAP \Deleted. Every ref is deleted by its key as
// the server knows it now, never by a position from an earlier listing.
// Refs the server no longer has are skipped; the others are deleted, and
// then the error wraps ErrNotFound.
type Deleter interface {
	Delete(ctx context.Context, refs []Ref) error
}

// ErrUnsupported: the server lacks what an operation needs.
var ErrUnsupported = errors.New("not supported by the server")

// ErrNotEmpty: a folder to delete still holds messages or folders.
var ErrNotEmpty = errors.New("folder not empty")

// ErrExists: a folder to create or rename to exists already.
var ErrExists = errors.New("already exists")

// Mover is implemented by accounts that move messages between folders
// (IMAP UID MOVE, or COPY + \Deleted + UID EXPUNGE of exactly those UIDs).
// All refs are in one folder under one UIDVALIDITY. A ref the source no
// longer has is skipped.
type Mover interface {
	Move(ctx context.Context, refs []Ref, dest string) error
}

// OneMover is implemented by movers that can say where a moved message
// landed (IMAP UIDPLUS). to.UID is 0 when the server did not say.
type OneMover interface {
	MoveOne(ctx context.Context, ref Ref, dest string) (to Ref, err error)
}

// Appender is implemented by accounts that add messages (IMAP APPEND). The
// message is the size bytes of body from offset 0; it is read as it is sent
// (and may be read more than once), never held whole in memory. Append
// returns the new message's UID and the folder's UIDVALIDITY (0, 0 when the
// server does not say: no UIDPLUS).
type Appender interface {
	Append(ctx context.Context, folder string, body io.ReaderAt, size int64, date time.Time, flags []string) (uid, validity uint32, err error)
}

// AppendLimiter is implemented by appenders that know the largest message
// the server accepts (IMAP APPENDLIMIT, RFC 7889); 0 means none is known.
type AppendLimiter interface {
	AppendLimit() int64
}

// FlagSetter is implemented by accounts whose messages carry flags (IMAP
// UID STORE FLAGS): it replaces the message's flags.
type FlagSetter interface {
	SetFlags(ctx context.Context, ref Ref, flags []string) error
}

// FolderEditor is implemented by accounts whose folders can be created,
// deleted (empty ones only: ErrNotEmpty) and renamed. Names are the
// server's, with its delimiter.
type FolderEditor interface {
	CreateFolder(ctx context.Context, name string) error
	DeleteFolder(ctx context.Context, name string) error
	RenameFolder(ctx context.Context, oldName, newName string) error
}

// BulkFetcher is implemented by accounts that fetch many bodies in one
// request. fn is called once per message as it arrives, in any order; a
// message that does not exist any more is skipped.
type BulkFetcher interface {
	Bodies(ctx context.Context, refs []Ref, fn func(ref Ref, body []byte)) error
}

// systemFlagOrder is the order flags are shown in: the system flags as RFC
// 9051 lists them, then keywords alphabetically.
var systemFlagOrder = map[string]int{`\seen`: 1, `\answered`: 2, `\flagged`: 3, `\deleted`: 4, `\draft`: 5, `\recent`: 6}

// SortFlags puts flags in a stable order, whatever order the server sent
// them in: `\Seen \Flagged`, never sometimes `\Flagged \Seen`.
func SortFlags(flags []string) {
	slices.SortStableFunc(flags, func(a, b string) int {
		ra, rb := systemFlagOrder[strings.ToLower(a)], systemFlagOrder[strings.ToLower(b)]
		switch {
		case ra != 0 && rb != 0:
			return ra - rb
		case ra != 0:
			return -1
		case rb != 0:
			return 1
		}
		return strings.Compare(a, b)
	})
}
