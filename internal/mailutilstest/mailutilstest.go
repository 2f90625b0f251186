// Package mailutilstest runs GNU Mailutils' imap4d for tests: a real IMAP
// server with real quirks. It applies a UID STORE, COPY or FETCH naming a
// UID above the folder's highest to the folder's last message, and answers
// BAD for an absent UID below it; it has neither UIDPLUS nor MOVE.
//
// Every connection accepted on 127.0.0.1 gets its own
// `imap4d --inetd --preauth` process (the session starts logged in as the
// user running the tests), on a private mbox INBOX and folder directory.
package mailutilstest

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"mailfs/internal/testenv"
)

// Server is a running imap4d.
type Server struct {
	Addr string // 127.0.0.1:port
	Dir  string // INBOX (an mbox file), imap4d.conf, mail/ (other folders)

	bin  string
	ln   net.Listener
	mu   sync.Mutex // protects procs
	proc []*exec.Cmd
	wg   sync.WaitGroup
}

// Binary returns the path of imap4d, or "" if it is not installed.
func Binary() string {
	for _, p := range []string{"imap4d", "/usr/sbin/imap4d"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	return ""
}

// Start serves inbox (messages, CRLF or LF) from a fresh mbox. It skips the
// test when imap4d is missing (fails it under CI).
func Start(t testing.TB, inbox [][]byte) *Server {
	t.Helper()
	bin := Binary()
	if bin == "" {
		testenv.SkipOrFail(t, "mailutilstest: imap4d not found (apt-get install mailutils-imap4d)")
	}
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "mail"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "INBOX"), mbox(inbox), 0o600); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf(`mailbox {
  mailbox-pattern %q;
  mailbox-type mbox;
};
namespace personal {
  prefix "" {
    directory %q;
    delimiter "/";
  };
};
logging { syslog no; };
`, filepath.Join(dir, "INBOX"), filepath.Join(dir, "mail"))
	if err := os.WriteFile(filepath.Join(dir, "imap4d.conf"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Addr: ln.Addr().String(), Dir: dir, bin: bin, ln: ln}
	s.wg.Add(1)
	go s.serve()
	t.Cleanup(s.Close)
	if len(inbox) > 0 {
		// imap4d writes the folder's UIDVALIDITY into the mbox only when
		// a session changes something; until then each session makes up
		// its own from the clock. A change undone, written at EXPUNGE,
		// fixes it before the test's sessions start.
		s.Run(t, "SELECT INBOX", `STORE 1 +FLAGS (\Seen)`, `STORE 1 -FLAGS (\Seen)`, "EXPUNGE")
	}
	return s
}

func (s *Server) serve() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		f, err := c.(*net.TCPConn).File()
		c.Close()
		if err != nil {
			continue
		}
		cmd := exec.Command(s.bin, "--inetd", "--preauth", "--config-file="+filepath.Join(s.Dir, "imap4d.conf"))
		cmd.Stdin, cmd.Stdout, cmd.Stderr = f, f, io.Discard
		cmd.Dir = s.Dir
		err = cmd.Start()
		f.Close()
		if err != nil {
			continue
		}
		s.mu.Lock()
		s.proc = append(s.proc, cmd)
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			cmd.Wait()
		}()
	}
}

// Close stops accepting and ends every imap4d.
func (s *Server) Close() {
	s.ln.Close()
	s.mu.Lock()
	for _, p := range s.proc {
		p.Process.Kill()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// Run opens a session, sends each command (without its tag) in turn,
// waiting for its completion, and returns everything the server said. A
// command answered NO or BAD fails the test.
func (s *Server) Run(t testing.TB, cmds ...string) string {
	t.Helper()
	out, err := s.run(cmds...)
	if err != nil {
		t.Fatalf("mailutilstest: %v\n%s", err, out)
	}
	return out
}

func (s *Server) run(cmds ...string) (string, error) {
	c, err := net.DialTimeout("tcp", s.Addr, 5*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReader(c)
	var out strings.Builder
	line, err := r.ReadString('\n')
	out.WriteString(line)
	if err != nil {
		return out.String(), err
	}
	for i, cmd := range append(cmds, "LOGOUT") {
		tag := fmt.Sprintf("t%d", i)
		if _, err := fmt.Fprintf(c, "%s %s\r\n", tag, cmd); err != nil {
			return out.String(), err
		}
		for {
			line, err := r.ReadString('\n')
			out.WriteString(line)
			if err != nil {
				return out.String(), fmt.Errorf("%s: %v", cmd, err)
			}
			if rest, ok := strings.CutPrefix(line, tag+" "); ok {
				if !strings.HasPrefix(rest, "OK") {
					return out.String(), fmt.Errorf("%s: %s", cmd, strings.TrimSpace(rest))
				}
				break
			}
		}
	}
	return out.String(), nil
}

// mbox writes messages as an mbox file: a "From " line before each, LF
// line endings, body lines starting with "From " quoted with ">".
func mbox(msgs [][]byte) []byte {
	var b bytes.Buffer
	for _, m := range msgs {
		b.WriteString("From mailfs@localhost Mon Jan  1 00:00:00 2024\n")
		text := strings.ReplaceAll(string(m), "\r\n", "\n")
		for _, line := range strings.SplitAfter(text, "\n") {
			if strings.HasPrefix(line, "From ") {
				b.WriteByte('>')
			}
			b.WriteString(line)
		}
		if !strings.HasSuffix(text, "\n") {
			b.WriteByte('\n')
		}
		b.WriteByte('\n')
	}
	return b.Bytes()
}
