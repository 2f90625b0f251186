// Package memserver runs go-imap's in-process imapmemserver on 127.0.0.1,
// filled with sample mail: the IMAP server of `mailfs demo` and of the fast
// tests. Its hierarchy delimiter is "/".
package memserver

import (
	"bytes"
	"errors"
	"fmt"
	"log"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
)

// Message is one message to serve.
type Message struct {
	Folder string // "/"-separated folder path
	Date   time.Time
	Flags  []string
	Raw    []byte
}

// Server is a running in-process IMAP server with one user.
type Server struct {
	Addr     string // 127.0.0.1:port
	Username string
	Password string

	srv  *imapserver.Server
	user *imapmemserver.User
	ln   net.Listener
	done chan struct{}
}

// Start serves msgs for user "demo" (password "demo") on a free port.
func Start(msgs []Message) (*Server, error) {
	return StartWith(msgs, Quirks{})
}

// StartWith is Start with a server that misbehaves as q says.
func StartWith(msgs []Message, q Quirks) (*Server, error) {
	s := &Server{Username: "demo", Password: "demo", done: make(chan struct{})}
	mem := imapmemserver.New()
	s.user = imapmemserver.NewUser(s.Username, s.Password)
	mem.AddUser(s.user)
	if err := s.user.Create("INBOX", nil); err != nil && !strings.Contains(err.Error(), "exists") {
		return nil, fmt.Errorf("memserver: create INBOX: %w", err)
	}
	if err := s.Append(msgs); err != nil {
		return nil, err
	}
	caps := imap.CapSet{
		imap.CapIMAP4rev1: {}, imap.CapIMAP4rev2: {},
		imap.CapUIDPlus: {}, imap.CapMove: {}, imap.CapNamespace: {},
	}
	if q.NoMove {
		// IMAP4rev2 implies MOVE.
		caps = imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapUIDPlus: {}, imap.CapNamespace: {}}
	}
	s.srv = imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			if q == (Quirks{TLS: q.TLS}) {
				return mem.NewSession(), nil, nil
			}
			return &quirkSession{SessionIMAP4rev2: mem.NewSession().(imapserver.SessionIMAP4rev2), q: q}, nil, nil
		},
		Caps:         caps,
		TLSConfig:    q.TLS,
		InsecureAuth: true,
		Logger:       log.New(discard{}, "", 0),
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("memserver: listen: %w", err)
	}
	s.ln = ln
	s.Addr = ln.Addr().String()
	go func() {
		defer close(s.done)
		s.srv.Serve(ln)
	}()
	return s, nil
}

// Append adds messages, creating their folders (and parents) as needed.
func (s *Server) Append(msgs []Message) error {
	created := map[string]bool{"INBOX": true}
	for _, m := range msgs {
		folder := m.Folder
		if folder == "" {
			folder = "INBOX"
		}
		if !created[folder] {
			parts := strings.Split(folder, "/")
			for i := range parts {
				name := strings.Join(parts[:i+1], "/")
				if created[name] {
					continue
				}
				if err := s.user.Create(name, nil); err != nil && !strings.Contains(strings.ToLower(err.Error()), "exist") {
					return fmt.Errorf("memserver: create %q: %w", name, err)
				}
				created[name] = true
			}
		}
		flags := make([]imap.Flag, len(m.Flags))
		for i, f := range m.Flags {
			flags[i] = imap.Flag(f)
		}
		_, err := s.user.Append(folder, literal{bytes.NewReader(m.Raw), int64(len(m.Raw))}, &imap.AppendOptions{
			Flags: slices.Clip(flags),
			Time:  m.Date,
		})
		if err != nil {
			return fmt.Errorf("memserver: append to %q: %w", folder, err)
		}
	}
	return nil
}

// User is the server's only user, for tests that change mail behind the
// mount's back.
func (s *Server) User() *imapmemserver.User { return s.user }

// Close stops the server and waits for it.
func (s *Server) Close() error {
	err := s.srv.Close()
	<-s.done
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

type literal struct {
	*bytes.Reader
	size int64
}

func (l literal) Size() int64 { return l.size }

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
