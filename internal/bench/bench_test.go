package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"mailfs/internal/dovecottest"
	"mailfs/internal/mailgen"
	"mailfs/internal/testenv"
)

// TestQuick runs the whole benchmark on 200 messages, once, so that
// `make bench` keeps working: it starts Dovecot with POP3, builds mailfs,
// mounts it three times (once --offline) and runs mailfs sync twice (about
// 10 s; skipped with -short).
func TestQuick(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: starts Dovecot and mounts mailfs")
	}
	if _, err := dovecottest.Binary(); err != nil {
		testenv.SkipOrFail(t, "%v", err)
	}
	if os.Geteuid() != 0 {
		testenv.SkipOrFail(t, "the benchmark needs root (Dovecot, FUSE mounts)")
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		testenv.SkipOrFail(t, "no /dev/fuse: %v", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var out, progress bytes.Buffer
	const n = 200
	rep, err := run(ctx, options{n: n, reps: 1}, &out, &progress)
	if err != nil {
		t.Fatalf("run: %v\nprogress:\n%s", err, progress.String())
	}
	t.Logf("report:\n%s", out.String())

	if out.String() != rep.text {
		t.Errorf("printed report differs from report.text")
	}
	got := map[string]row{}
	for _, r := range rep.rows {
		got[r.name] = r
	}
	for _, rn := range rowNames {
		r, ok := got[rn.name]
		if !ok {
			t.Errorf("report has no row %s", rn.name)
			continue
		}
		if r.min <= 0 || r.min > r.median || r.median > r.max {
			t.Errorf("row %s: min %v, median %v, max %v", r.name, r.min, r.median, r.max)
		}
		if !strings.Contains(rep.text, "\n"+rn.name+" ") {
			t.Errorf("printed report lacks row %s", rn.name)
		}
	}
	if len(rep.ratios) != 7 {
		t.Errorf("%d ratios, want 7", len(rep.ratios))
	}
	for _, r := range rep.ratios {
		if !(r.value > 0) {
			t.Errorf("ratio %q is %v", r.name, r.value)
		}
		if !strings.Contains(rep.text, r.name) {
			t.Errorf("printed report lacks the ratio %q", r.name)
		}
	}
	// Every mailfs sync, into an empty cache, fetched every message.
	for _, account := range []string{accountName, popAccount} {
		got := rep.synced[account]
		if len(got) != 1 {
			t.Errorf("mailfs sync %s ran %d times, want once", account, len(got))
		}
		for _, fetched := range got {
			if fetched != n {
				t.Errorf("mailfs sync %s fetched %d messages, want %d", account, fetched, n)
			}
		}
	}
	for _, name := range []string{"floor_pop3_retr", "mailfs_sync_pop3", "mailfs_sync_imap"} {
		found := false
		for line := range strings.SplitSeq(rep.text, "\n") {
			if f := strings.Fields(line); len(f) > 0 && f[0] == name && strings.HasSuffix(line, "messages/s") {
				found = true
			}
		}
		if !found {
			t.Errorf("printed report lacks the download rate of %s", name)
		}
	}
	// The token of the last message; WriteMaildir numbers from UID 1.
	if rep.grepMatch != "200.eml" {
		t.Errorf("grep found %q, want 200.eml", rep.grepMatch)
	}
	if !strings.Contains(rep.text, mailgen.Token(seed, n-1)) {
		t.Errorf("report does not name the token %s", mailgen.Token(seed, n-1))
	}
	if _, err := os.Stat(rep.tmp); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temporary directory %s left behind (%v)", rep.tmp, err)
	}
}
