// Package syncer fills an account's cache with every body it lacks: the
// work of `mailfs sync` and of a POP3 mount's background download.
//
// It is incremental and resumable by construction: it asks the cache what
// is missing, fetches only that, and every body is stored as it arrives, so
// an interrupted run (Ctrl-C, kill -9) loses at most the bodies in flight and
// the next run fetches exactly the rest.
//
// Memory stays bounded whatever the size of a message: a cache that can
// fetch bodies into itself without handing them over (Downloader:
// cache.Account, which streams POP3 bodies to disk chunk by chunk) is asked
// to, and the bodies never pass through here.
package syncer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"mailfs/remote"
)

// Cache is what syncer needs of the cache: an account that stores what it
// fetches, and says what it holds.
type Cache interface {
	remote.Account
	Cached(ref remote.Ref) bool
	Sync() error
}

// Downloader is implemented by caches that fetch bodies into themselves
// without handing them over, so that no body is held whole in memory
// (cache.Account.Download). fn is called once per body the cache then
// holds, with its size, never concurrently; a message the server no longer
// has is skipped.
type Downloader interface {
	Download(ctx context.Context, refs []remote.Ref, fn func(ref remote.Ref, size int64)) error
}

// Options tune a run. Zero values take the defaults.
type Options struct {
	// Folders to sync; nil means every selectable folder.
	Folders []string
	// Workers is the number of batches in flight (default 3).
	Workers int
	// BatchCount and BatchBytes bound one bulk fetch (defaults 100
	// messages, 16 MiB).
	BatchCount int
	BatchBytes int64
	// Planned is called once the work is known.
	Planned func(msgs int, bytes int64)
	// Fetched is called for every body stored, from any goroutine.
	Fetched func(ref remote.Ref, bytes int64)
	// DeleteFromServer, if set, is called with each batch once its bodies
	// are durably in the cache (POP3 delete_after_download).
	DeleteFromServer func(ctx context.Context, refs []remote.Ref) error
	Logger           *slog.Logger
}

// Result counts what a run did.
type Result struct {
	Messages, Skipped int // fetched now; already cached
	Bytes             int64
	Deleted           int // deleted from the server after download
	Elapsed           time.Duration
}

// Run fetches every body acct lacks in the chosen folders.
func Run(ctx context.Context, acct Cache, opts Options) (Result, error) {
	start := time.Now()
	if opts.Workers <= 0 {
		opts.Workers = 3
	}
	if opts.BatchCount <= 0 {
		opts.BatchCount = 100
	}
	if opts.BatchBytes <= 0 {
		opts.BatchBytes = 16 << 20
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	var res Result
	folders := opts.Folders
	if folders == nil {
		all, err := acct.Folders(ctx)
		if err != nil {
			return res, err
		}
		for _, f := range all {
			if !f.NoSelect {
				folders = append(folders, f.Name)
			}
		}
	}
	var batches [][]remote.Ref
	var done []remote.Ref // cached already, to delete from the server
	var totalBytes int64
	for _, folder := range folders {
		lst, err := acct.List(ctx, folder)
		if err != nil {
			return res, fmt.Errorf("sync: folder %q: %w", folder, err)
		}
		var batch []remote.Ref
		var batchBytes int64
		for _, m := range lst.Messages {
			ref := remote.Ref{Folder: folder, UIDValidity: lst.UIDValidity, UID: m.UID, Key: m.Key}
			if acct.Cached(ref) {
				res.Skipped++
				if opts.DeleteFromServer != nil {
					// Cached by an earlier run that stopped before its
					// DELE: delete it now (a no-op if the server no
					// longer has it).
					done = append(done, ref)
				}
				continue
			}
			if len(batch) > 0 && (len(batch) >= opts.BatchCount || batchBytes+m.Size > opts.BatchBytes) {
				batches = append(batches, batch)
				batch, batchBytes = nil, 0
			}
			batch = append(batch, ref)
			batchBytes += m.Size
			totalBytes += m.Size
		}
		if len(batch) > 0 {
			batches = append(batches, batch)
		}
	}
	msgs := 0
	for _, b := range batches {
		msgs += len(b)
	}
	if opts.Planned != nil {
		opts.Planned(msgs, totalBytes)
	}

	var (
		mu       sync.Mutex // protects res and firstErr
		firstErr error
		wg       sync.WaitGroup
	)
	work := make(chan []remote.Ref)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for range opts.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for batch := range work {
				n, bytes, err := fetchBatch(ctx, acct, batch, opts)
				// A message the server sends garbage for (ErrProtocol)
				// was skipped, and logged: the others of the batch, and
				// the batches after it, go on; the run reports it.
				skipped := err != nil && errors.Is(err, remote.ErrProtocol) && ctx.Err() == nil
				deleted := 0
				var derr error
				if (err == nil || skipped) && opts.DeleteFromServer != nil {
					deleted, derr = deleteBatch(ctx, acct, batch, opts)
				}
				mu.Lock()
				res.Messages += n
				res.Bytes += bytes
				res.Deleted += deleted
				for _, e := range []error{err, derr} {
					if e != nil && firstErr == nil {
						firstErr = e
					}
				}
				if (err != nil && !skipped) || derr != nil {
					cancel()
				}
				mu.Unlock()
			}
		}()
	}
feed:
	for _, b := range batches {
		select {
		case work <- b:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	if len(done) > 0 && ctx.Err() == nil {
		n, err := deleteBatch(ctx, acct, done, opts)
		res.Deleted += n
		if err != nil && firstErr == nil {
			firstErr = err
		}
	}
	res.Elapsed = time.Since(start)
	if err := acct.Sync(); err != nil && firstErr == nil {
		firstErr = err
	}
	if firstErr == nil && ctx.Err() != nil {
		firstErr = ctx.Err()
	}
	return res, firstErr
}

// fetchBatch has the cache download one batch (Downloader), else fetches
// it in one request where the account can, one by one otherwise; the cache
// stores each body as it arrives.
func fetchBatch(ctx context.Context, acct Cache, batch []remote.Ref, opts Options) (int, int64, error) {
	var n int
	var bytes int64
	stored := func(ref remote.Ref, size int64) {
		n++
		bytes += size
		if opts.Fetched != nil {
			opts.Fetched(ref, size)
		}
	}
	got := func(ref remote.Ref, body []byte) { stored(ref, int64(len(body))) }
	if d, ok := acct.(Downloader); ok {
		err := d.Download(ctx, batch, stored)
		return n, bytes, err
	}
	if bf, ok := acct.(remote.BulkFetcher); ok {
		err := bf.Bodies(ctx, batch, got)
		return n, bytes, err
	}
	for _, ref := range batch {
		body, err := acct.Body(ctx, ref)
		if errors.Is(err, remote.ErrNotFound) {
			continue // gone from the server since the listing
		}
		if err != nil {
			return n, bytes, err
		}
		got(ref, body)
	}
	return n, bytes, nil
}

// deleteBatch deletes from the server the messages of batch that are
// durably cached, and only those.
func deleteBatch(ctx context.Context, acct Cache, batch []remote.Ref, opts Options) (int, error) {
	if err := acct.Sync(); err != nil {
		return 0, fmt.Errorf("sync: cache not durable, nothing deleted: %w", err)
	}
	cached := slices.DeleteFunc(slices.Clone(batch), func(r remote.Ref) bool { return !acct.Cached(r) })
	if len(cached) == 0 {
		return 0, nil
	}
	if err := opts.DeleteFromServer(ctx, cached); err != nil && !errors.Is(err, remote.ErrNotFound) {
		return 0, err // (not found: deleted by an earlier run already)
	}
	opts.Logger.Debug("deleted from the server after download", "messages", len(cached))
	return len(cached), nil
}
