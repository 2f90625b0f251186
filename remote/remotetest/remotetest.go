// Package remotetest is the conformance suite every remote.Account runs:
// the IMAP account against go-imap's in-process server and against Dovecot,
// and later the POP3 account and the cache. A suite run gets a populated
// account and the messages it must find there.
package remotetest

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"mailfs/internal/header"
	"mailfs/remote"
)

// Want is what one folder must hold: its messages' bytes, in display order.
// Bytes are what the server serves (for Dovecot: bare LF turned into CRLF).
type Want struct {
	Folder   string
	Messages [][]byte
}

// Run checks acct against want.
func Run(t *testing.T, acct remote.Account, want []Want) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	t.Run("Folders", func(t *testing.T) {
		folders, err := acct.Folders(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range want {
			i := slices.IndexFunc(folders, func(f remote.Folder) bool { return f.Name == w.Folder })
			if i < 0 {
				t.Fatalf("folder %q not listed; got %v", w.Folder, folders)
			}
			if folders[i].NoSelect {
				t.Errorf("folder %q is \\Noselect", w.Folder)
			}
			if strings.Join(folders[i].Path, "") == "" {
				t.Errorf("folder %q has an empty path", w.Folder)
			}
		}
	})

	listings := map[string]*remote.Listing{}
	t.Run("List", func(t *testing.T) {
		for _, w := range want {
			l, err := acct.List(ctx, w.Folder)
			if err != nil {
				t.Fatal(err)
			}
			if len(l.Messages) != len(w.Messages) {
				t.Fatalf("%s: got %d messages, want %d", w.Folder, len(l.Messages), len(w.Messages))
			}
			keys := map[string]bool{}
			for i, m := range l.Messages {
				if m.Size != int64(len(w.Messages[i])) {
					t.Errorf("%s/%s: announced size %d, want %d", w.Folder, m.Key, m.Size, len(w.Messages[i]))
				}
				if i > 0 && m.UID != 0 && m.UID <= l.Messages[i-1].UID {
					t.Errorf("%s: UIDs not ascending at %d", w.Folder, i)
				}
				if keys[m.Key] || m.Key == "" {
					t.Errorf("%s: key %q empty or repeated", w.Folder, m.Key)
				}
				keys[m.Key] = true
				if m.Date.IsZero() && m.UID != 0 {
					// IMAP has INTERNALDATE; POP3 knows no date before
					// the message is downloaded.
					t.Errorf("%s/%s: no date", w.Folder, m.Key)
				}
			}
			listings[w.Folder] = l
		}
	})

	ref := func(folder string, i int) remote.Ref {
		l := listings[folder]
		m := l.Messages[i]
		return remote.Ref{Folder: folder, UIDValidity: l.UIDValidity, UID: m.UID, Key: m.Key}
	}

	t.Run("Body", func(t *testing.T) {
		for _, w := range want {
			if listings[w.Folder] == nil {
				t.Skip("no listing")
			}
			for i, raw := range w.Messages {
				got, err := acct.Body(ctx, ref(w.Folder, i))
				if err != nil {
					t.Fatalf("%s #%d: %v", w.Folder, i, err)
				}
				if !bytes.Equal(got, raw) {
					t.Errorf("%s #%d: body differs (%d bytes, want %d)", w.Folder, i, len(got), len(raw))
				}
			}
		}
	})

	t.Run("Header", func(t *testing.T) {
		for _, w := range want {
			if listings[w.Folder] == nil {
				t.Skip("no listing")
			}
			for i, raw := range w.Messages {
				got, err := acct.Header(ctx, ref(w.Folder, i))
				if err != nil {
					t.Fatalf("%s #%d: %v", w.Folder, i, err)
				}
				gotF, wantF := header.Fields(got), header.Fields(raw)
				for _, name := range []string{"subject", "from", "to", "cc", "date", "message-id"} {
					if gotF[name] != wantF[name] {
						t.Errorf("%s #%d %s: got %q, want %q", w.Folder, i, name, gotF[name], wantF[name])
					}
				}
			}
		}
	})

	t.Run("BodyRange", func(t *testing.T) {
		rr, ok := acct.(remote.RangeReader)
		if !ok {
			t.Skip("not a RangeReader")
		}
		for _, w := range want {
			if listings[w.Folder] == nil {
				t.Skip("no listing")
			}
			for i, raw := range w.Messages {
				n := int64(len(raw))
				for _, r := range [][2]int64{{0, 100}, {n / 2, 4096}, {n - 1, 2}, {n, 10}, {0, n + 10}} {
					if r[0] < 0 {
						continue
					}
					got, err := rr.BodyRange(ctx, ref(w.Folder, i), r[0], r[1])
					if err != nil {
						t.Fatalf("%s #%d <%d.%d>: %v", w.Folder, i, r[0], r[1], err)
					}
					lo := min(r[0], n)
					hi := min(r[0]+r[1], n)
					if !bytes.Equal(got, raw[lo:hi]) {
						t.Errorf("%s #%d <%d.%d>: got %d bytes, want %d", w.Folder, i, r[0], r[1], len(got), hi-lo)
					}
				}
			}
		}
	})

	t.Run("StreamRange", func(t *testing.T) {
		rs, ok := acct.(remote.RangeStreamer)
		if !ok {
			t.Skip("not a RangeStreamer")
		}
		for _, w := range want {
			if listings[w.Folder] == nil {
				t.Skip("no listing")
			}
			for i, raw := range w.Messages {
				n := int64(len(raw))
				for _, r := range [][2]int64{{0, n}, {n / 3, n}, {n, 10}} {
					var got []byte
					pieces := 0
					total, err := rs.StreamRange(ctx, ref(w.Folder, i), r[0], r[1], 97, func(b []byte) {
						if len(b) > 97 || len(b) == 0 {
							t.Errorf("piece of %d bytes, want 1..97", len(b))
						}
						got = append(got, b...)
						pieces++
					})
					if err != nil {
						t.Fatalf("%s #%d <%d.%d>: %v", w.Folder, i, r[0], r[1], err)
					}
					lo, hi := min(r[0], n), min(r[0]+r[1], n)
					if !bytes.Equal(got, raw[lo:hi]) || total != hi-lo {
						t.Errorf("%s #%d <%d.%d>: got %d bytes (reported %d), want %d", w.Folder, i, r[0], r[1], len(got), total, hi-lo)
					}
				}
			}
		}
	})

	t.Run("Bodies", func(t *testing.T) {
		bf, ok := acct.(remote.BulkFetcher)
		if !ok {
			t.Skip("not a BulkFetcher")
		}
		for _, w := range want {
			if listings[w.Folder] == nil {
				t.Skip("no listing")
			}
			var refs []remote.Ref
			for i := range w.Messages {
				refs = append(refs, ref(w.Folder, i))
			}
			got := map[string][]byte{}
			err := bf.Bodies(ctx, refs, func(r remote.Ref, b []byte) {
				if _, dup := got[r.Key]; dup {
					t.Errorf("%s/%s delivered twice", w.Folder, r.Key)
				}
				got[r.Key] = b
			})
			if err != nil {
				t.Fatal(err)
			}
			for i, raw := range w.Messages {
				if !bytes.Equal(got[refs[i].Key], raw) {
					t.Errorf("%s #%d: bulk body differs", w.Folder, i)
				}
			}
		}
	})

	t.Run("NotFound", func(t *testing.T) {
		w := want[0]
		l := listings[w.Folder]
		if l == nil {
			t.Skip("no listing")
		}
		r := remote.Ref{Folder: w.Folder, UIDValidity: l.UIDValidity, UID: 4000000000, Key: "4000000000"}
		if _, err := acct.Body(ctx, r); !errors.Is(err, remote.ErrNotFound) {
			t.Errorf("missing message: got %v, want ErrNotFound", err)
		}
		if _, err := acct.List(ctx, "No such folder"); !errors.Is(err, remote.ErrNotFound) {
			t.Errorf("missing folder: got %v, want ErrNotFound", err)
		}
		if l.UIDValidity != 0 && len(l.Messages) > 0 {
			r := ref(w.Folder, 0)
			r.UIDValidity++
			if _, err := acct.Body(ctx, r); !errors.Is(err, remote.ErrUIDValidity) {
				t.Errorf("stale UIDVALIDITY: got %v, want ErrUIDValidity", err)
			}
		}
	})

	t.Run("Parallel", func(t *testing.T) {
		var wg sync.WaitGroup
		errs := make(chan error, 64)
		for _, w := range want {
			if listings[w.Folder] == nil {
				t.Skip("no listing")
			}
			for i, raw := range w.Messages {
				wg.Add(1)
				go func() {
					defer wg.Done()
					got, err := acct.Body(ctx, ref(w.Folder, i))
					if err == nil && !bytes.Equal(got, raw) {
						err = errors.New(w.Folder + ": parallel body differs")
					}
					if err != nil {
						select {
						case errs <- err:
						default:
						}
					}
				}()
			}
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})

	t.Run("Cancelled", func(t *testing.T) {
		w := want[0]
		if listings[w.Folder] == nil || len(w.Messages) == 0 {
			t.Skip("no listing")
		}
		cctx, ccancel := context.WithCancel(ctx)
		ccancel()
		start := time.Now()
		_, err := acct.Body(cctx, ref(w.Folder, 0))
		if err == nil {
			t.Errorf("cancelled context: got no error")
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("cancelled fetch took %v", d)
		}
		// The account still works afterwards.
		if _, err := acct.Body(ctx, ref(w.Folder, 0)); err != nil {
			t.Errorf("after a cancelled fetch: %v", err)
		}
	})
}
