package imap

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"

	"mailfs/remote"
)

// startTLS speaks the plain-text part of a STARTTLS session itself (the
// greeting, CAPABILITY, STARTTLS) and returns the TLS connection, which
// starts with a greeting of its own for imapclient: imapclient's STARTTLS
// would put its TLS layer below the guard, which must read decrypted text.
// STARTTLS missing or refused is remote.ErrTLS, never plain text.
func (a *Account) startTLS(ctx context.Context, conn net.Conn) (net.Conn, error) {
	addr := a.cfg.Addr
	br := bufio.NewReaderSize(conn, 4096)
	readLine := func() (string, error) {
		line, err := br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			return "", fmt.Errorf("imap: %s: a line of more than 4 KiB before TLS: %w", addr, remote.ErrProtocol)
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return "", fmt.Errorf("imap: %s: before TLS: %w: %v", addr, remote.ErrUnavailable, err)
		}
		return strings.TrimRight(string(line), "\r\n"), nil
	}
	greeting, err := readLine()
	if err != nil {
		return nil, err
	}
	switch g := strings.ToUpper(greeting); {
	case strings.HasPrefix(g, "* OK"):
	case strings.HasPrefix(g, "* PREAUTH"):
		return nil, fmt.Errorf("imap: %s logged the session in before TLS (PREAUTH), so it cannot be protected: %w", addr, remote.ErrTLS)
	default:
		return nil, fmt.Errorf("imap: %s: greeting %q: %w", addr, a.serverText(greeting), remote.ErrUnavailable)
	}
	// command sends one command and returns its untagged lines and its
	// completion.
	command := func(tag, cmd string) ([]string, string, error) {
		if _, err := io.WriteString(conn, tag+" "+cmd+"\r\n"); err != nil {
			return nil, "", fmt.Errorf("imap: %s: %w: %v", addr, remote.ErrUnavailable, err)
		}
		var untagged []string
		for n := 0; n < 100; n++ {
			line, err := readLine()
			if err != nil {
				return nil, "", err
			}
			if rest, ok := strings.CutPrefix(line, tag+" "); ok {
				return untagged, rest, nil
			}
			untagged = append(untagged, line)
		}
		return nil, "", fmt.Errorf("imap: %s: no end to %s: %w", addr, cmd, remote.ErrProtocol)
	}
	caps := greeting
	if !strings.Contains(strings.ToUpper(greeting), "[CAPABILITY ") {
		lines, done, err := command("S1", "CAPABILITY")
		if err != nil {
			return nil, err
		}
		if !strings.HasPrefix(strings.ToUpper(done), "OK") {
			return nil, fmt.Errorf("imap: %s: CAPABILITY: %s: %w", addr, a.serverText(done), remote.ErrProtocol)
		}
		caps = strings.Join(lines, " ")
	}
	if !hasWord(caps, "STARTTLS") {
		return nil, fmt.Errorf("imap: %s does not offer STARTTLS: %w: not falling back to plain text", addr, remote.ErrTLS)
	}
	_, done, err := command("S2", "STARTTLS")
	if err != nil {
		return nil, err
	}
	if !strings.HasPrefix(strings.ToUpper(done), "OK") {
		return nil, fmt.Errorf("imap: %s refused STARTTLS (%s): %w: not falling back to plain text", addr, a.serverText(done), remote.ErrTLS)
	}
	if br.Buffered() > 0 {
		// Bytes sent before the handshake would be taken as protected
		// (the STARTTLS injection attack).
		return nil, fmt.Errorf("imap: %s: %w: the server sent data after accepting STARTTLS", addr, remote.ErrTLS)
	}
	cfg := a.cfg.TLSConfig
	if cfg == nil {
		cfg = &tls.Config{}
	}
	if cfg.ServerName == "" && !cfg.InsecureSkipVerify {
		cfg = cfg.Clone()
		cfg.ServerName, _, _ = net.SplitHostPort(addr)
	}
	tc := tls.Client(conn, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, fmt.Errorf("imap: %s: %w: %v", addr, remote.ErrTLS, err)
	}
	return &greeted{Conn: tc, greeting: strings.NewReader("* OK TLS established\r\n")}, nil
}

// hasWord reports whether the space-separated words of s include w (in
// any case).
func hasWord(s, w string) bool {
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == '[' || r == ']' }) {
		if strings.EqualFold(f, w) {
			return true
		}
	}
	return false
}

// greeted is a connection that reads a greeting of its own before what
// the server sends.
type greeted struct {
	net.Conn
	greeting *strings.Reader
}

func (g *greeted) Read(p []byte) (int, error) {
	if g.greeting.Len() > 0 {
		return g.greeting.Read(p)
	}
	return g.Conn.Read(p)
}
