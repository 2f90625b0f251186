package main

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"mailfs/cache"
	"mailfs/internal/config"
	"mailfs/remote"
	"mailfs/remote/imap"
	"mailfs/remote/pop3"
)

// opened is an account ready to mount or sync: the server (nil offline)
// behind the cache.
type opened struct {
	name   string
	cfg    *config.Account
	inner  remote.Account // nil offline
	store  *cache.Store
	cached *cache.Account
	// spool holds files being written into folders until appended.
	spool string
}

func (o *opened) Close() {
	if o.inner != nil {
		o.inner.Close()
	}
	o.store.Close()
}

// openAccount opens the account's cache and, unless offline, logs in to
// its server. Every error is one line with an exit code.
func openAccount(ctx context.Context, path, name string, offline bool, log *slog.Logger) (*opened, error) {
	var err error
	if path == "" {
		if path, err = config.DefaultPath(); err != nil {
			return nil, fail(exitConfig, "%v", err)
		}
	}
	cfg, err := config.Load(path)
	if err != nil {
		return nil, fail(exitConfig, "%v", err)
	}
	acct, err := cfg.Account(name)
	if err != nil {
		return nil, fail(exitConfig, "%v", err)
	}
	key, err := acct.CacheKey(ctx)
	if err != nil {
		return nil, fail(exitConfig, "%v", err)
	}
	dir, err := cache.DefaultDir(name)
	if err != nil {
		return nil, fail(exitConfig, "%v", err)
	}
	o := &opened{name: name, cfg: acct, spool: filepath.Join(dir, "spool")}
	if !offline {
		if o.inner, err = dialAccount(ctx, acct, log); err != nil {
			return nil, err
		}
	}
	o.store, err = cache.Open(cache.Options{
		Dir:           dir,
		Account:       name,
		Protocol:      acct.Protocol,
		MaxSize:       acct.CacheMaxSize,
		EncryptionKey: key,
		Logger:        log,
	})
	if err != nil {
		if o.inner != nil {
			o.inner.Close()
		}
		if errors.Is(err, cache.ErrInUse) {
			return nil, fail(exitMount, "account %q: %v: unmount it first (mailfs umount), or stop the running sync", name, err)
		}
		return nil, fail(exitConfig, "account %q: %v", name, err)
	}
	o.cached = o.store.Wrap(o.inner)
	if err := os.MkdirAll(o.spool, 0o700); err != nil {
		o.Close()
		return nil, fail(exitConfig, "account %q: spool directory: %v", name, err)
	}
	return o, nil
}

// dialAccount logs in to the account's server.
func dialAccount(ctx context.Context, acct *config.Account, log *slog.Logger) (remote.Account, error) {
	password, err := acct.Password(ctx)
	if err != nil {
		return nil, fail(exitConfig, "%v", err)
	}
	tlsConfig, err := acct.TLSConfig()
	if err != nil {
		return nil, fail(exitConfig, "%v", err)
	}
	dialCtx, cancel := context.WithTimeout(ctx, acct.Timeout+5*time.Second)
	defer cancel()
	var a remote.Account
	switch acct.Protocol {
	case "imap":
		a, err = imap.Dial(dialCtx, imap.Config{
			Addr:        acct.Addr(),
			TLS:         imap.TLSMode(acct.TLS),
			TLSConfig:   tlsConfig,
			Username:    acct.Username,
			Password:    password,
			Auth:        acct.Auth,
			Connections: acct.Connections,
			Timeout:     acct.Timeout,
			Expunge:     acct.Expunge,
			Logger:      log,
		})
	case "pop3":
		a, err = pop3.Dial(dialCtx, pop3.Config{
			Addr:      acct.Addr(),
			TLS:       acct.TLS,
			TLSConfig: tlsConfig,
			Username:  acct.Username,
			Password:  password,
			Auth:      acct.Auth,
			Timeout:   acct.Timeout,
			Logger:    log,
		})
	default:
		return nil, fail(exitConfig, "account %q: unknown protocol %q", acct.Name, acct.Protocol)
	}
	if err != nil {
		return nil, remoteError(acct.Name, err)
	}
	return a, nil
}
