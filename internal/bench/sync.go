package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// popFloor takes one sample of the POP3 floor and checks that it read as
// many bytes as the warm-up did.
func (b *bench) popFloor(ctx context.Context) error {
	got, err := floorPOP3(ctx, b.srv, b.o.n)
	if err != nil {
		return err
	}
	if got != b.popBytes {
		return fmt.Errorf("floor_pop3_retr: read %d bytes, the warm-up %d", got, b.popBytes)
	}
	return nil
}

// syncPOP3 measures `mailfs sync` of the POP3 account into an empty cache.
func (b *bench) syncPOP3(ctx context.Context) (err error) {
	cacheHome, err := b.newCacheHome()
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, os.RemoveAll(cacheHome)) }()
	d, err := b.sync(ctx, popAccount, cacheHome)
	if err != nil {
		return err
	}
	b.record("mailfs_sync_pop3", d)
	return nil
}

// offlineGrep syncs the IMAP account into an empty cache, then mounts that
// cache with --offline in a fresh process and measures grep -r on it: the
// bodies come from the cache on disk, the mount's page cache is cold. The
// listing is checked afterwards, untimed.
func (b *bench) offlineGrep(ctx context.Context) (err error) {
	cacheHome, err := b.newCacheHome()
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, os.RemoveAll(cacheHome)) }()
	d, err := b.sync(ctx, accountName, cacheHome)
	if err != nil {
		return err
	}
	b.record("mailfs_sync_imap", d)

	m, err := b.mount(ctx, cacheHome, true)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, b.unmount(m)) }()
	b.record("mailfs_mount_offline", m.mounted)
	inbox := filepath.Join(b.mnt, "INBOX")
	if err := b.timed("mailfs_grep_offline", func() error { return b.grep(ctx, inbox) }); err != nil {
		return err
	}
	if err := b.checkListing(inbox); err != nil {
		return fmt.Errorf("offline mount: %w", err)
	}
	return nil
}

// sync runs `mailfs sync --config CFG ACCOUNT` with XDG_CACHE_HOME set to
// cacheHome, which it expects to be empty: it checks that the summary on
// stdout says every message was fetched and none was cached already. It
// returns how long the process ran, from start to exit.
func (b *bench) sync(ctx context.Context, account, cacheHome string) (time.Duration, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, b.mailfs, "sync", "--config", b.cfg, account)
	cmd.Env = b.env(cacheHome)
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr // progress lines; a pipe is not a terminal
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	start := time.Now()
	err := cmd.Run()
	d := time.Since(start)
	if err != nil {
		return 0, fmt.Errorf("mailfs sync %s: %v\nstdout: %s\nstderr: %s", account, err,
			strings.TrimSpace(stdout.String()), tail(stderr.String(), 20))
	}
	fetched, cached, err := parseSyncSummary(account, stdout.String())
	if err != nil {
		return 0, fmt.Errorf("mailfs sync %s: %v\nstderr: %s", account, err, tail(stderr.String(), 20))
	}
	b.synced[account] = append(b.synced[account], fetched)
	if b.o.verbose {
		b.logf("  %s", strings.TrimSpace(stdout.String()))
	}
	if fetched != b.o.n || cached != 0 {
		return 0, fmt.Errorf("mailfs sync %s into an empty cache: %d messages fetched and %d already cached, want %d and 0: %s",
			account, fetched, cached, b.o.n, strings.TrimSpace(stdout.String()))
	}
	return d, nil
}

// parseSyncSummary reads the summary line that mailfs sync prints to
// stdout: "ACCOUNT: N messages (SIZE) fetched in TIME, M already cached".
func parseSyncSummary(account, stdout string) (fetched, cached int, err error) {
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(account) + `: (\d+) messages \([^)]*\) fetched in \S+, (\d+) already cached`)
	sm := re.FindStringSubmatch(stdout)
	if sm == nil {
		return 0, 0, fmt.Errorf("no summary line in its output %q", stdout)
	}
	if fetched, err = strconv.Atoi(sm[1]); err != nil {
		return 0, 0, err
	}
	if cached, err = strconv.Atoi(sm[2]); err != nil {
		return 0, 0, err
	}
	return fetched, cached, nil
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
