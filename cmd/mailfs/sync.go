package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"mailfs/internal/syncer"
	"mailfs/remote"
)

func cmdSync(args []string, stdout, stderr io.Writer) error {
	fl := flag.NewFlagSet("sync", flag.ContinueOnError)
	configPath := fl.String("config", "", "configuration file (default $XDG_CONFIG_HOME/mailfs/config.toml)")
	verbose := fl.Bool("v", false, "log debug messages")
	rest, err := parseFlags(fl, args, 1, 1<<20, stderr)
	if err != nil {
		return err
	}
	name := rest[0]
	var folders []string
	if len(rest) > 1 {
		folders = rest[1:]
	}
	log := newLogger(stderr, *verbose)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	acct, err := openAccount(ctx, *configPath, name, false, log)
	if err != nil {
		return err
	}
	defer acct.Close()

	p := newProgress(stderr, name)
	opts := syncer.Options{
		Folders: folders,
		Logger:  log,
		Planned: p.planned,
		Fetched: p.fetched,
	}
	if acct.cfg.Protocol == "pop3" {
		opts.Workers = 1 // one POP3 session at a time
		if acct.cfg.DeleteAfterDownload {
			if d, ok := acct.inner.(remote.Deleter); ok {
				opts.DeleteFromServer = d.Delete
			}
		}
	}
	res, err := syncer.Run(ctx, acct.cached, opts)
	p.finish()
	summary := fmt.Sprintf("%s: %d messages (%s) fetched in %s, %d already cached",
		name, res.Messages, humanBytes(res.Bytes), res.Elapsed.Round(10*time.Millisecond), res.Skipped)
	if res.Deleted > 0 {
		summary += fmt.Sprintf(", %d deleted from the server", res.Deleted)
	}
	if errors.Is(err, context.Canceled) {
		fmt.Fprintf(stderr, "%s; interrupted: run mailfs sync %s again to fetch the rest\n", summary, name)
		return &exitError{code: exitFailure, err: errors.New("sync interrupted")}
	}
	if err != nil {
		fmt.Fprintln(stderr, summary)
		return fail(exitFailure, "sync %s: %v", name, err)
	}
	fmt.Fprintln(stdout, summary)
	return nil
}

// progress shows a bar on a terminal (messages, bytes, rate, time left) and
// a plain log line every few seconds elsewhere.
type progress struct {
	w       io.Writer
	name    string
	tty     bool
	bar     *progressbar.ProgressBar
	msgs    atomic.Int64
	bytes   atomic.Int64
	total   int
	totalB  int64
	start   time.Time
	mu      sync.Mutex // protects lastLog and the bar's description
	lastLog time.Time
}

func newProgress(w io.Writer, name string) *progress {
	p := &progress{w: w, name: name, start: time.Now()}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p.tty = true
	}
	return p
}

func (p *progress) planned(msgs int, bytes int64) {
	p.total, p.totalB = msgs, bytes
	if msgs == 0 {
		return
	}
	if p.tty {
		p.bar = progressbar.NewOptions64(bytes,
			progressbar.OptionSetWriter(p.w),
			progressbar.OptionShowBytes(true),
			progressbar.OptionShowTotalBytes(true),
			progressbar.OptionShowCount(),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionSetElapsedTime(true),
			progressbar.OptionSetWidth(30),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionSetDescription(p.describe()),
			progressbar.OptionClearOnFinish(),
		)
		return
	}
	fmt.Fprintf(p.w, "sync %s: %d messages (%s) to fetch\n", p.name, msgs, humanBytes(bytes))
}

func (p *progress) describe() string {
	return fmt.Sprintf("%d/%d messages", p.msgs.Load(), p.total)
}

func (p *progress) fetched(ref remote.Ref, bytes int64) {
	p.msgs.Add(1)
	p.bytes.Add(bytes)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bar != nil {
		p.bar.Describe(p.describe())
		p.bar.Add64(bytes)
		return
	}
	if time.Since(p.lastLog) >= 5*time.Second {
		p.lastLog = time.Now()
		p.logLine()
	}
}

func (p *progress) logLine() {
	el := time.Since(p.start).Seconds()
	rate := float64(p.bytes.Load()) / max(el, 0.001)
	left := "?"
	if rate > 0 && p.totalB > p.bytes.Load() {
		left = (time.Duration(float64(p.totalB-p.bytes.Load())/rate) * time.Second).Round(time.Second).String()
	}
	fmt.Fprintf(p.w, "sync %s: %d/%d messages, %s/%s, %s/s, %s left\n", p.name, p.msgs.Load(), p.total,
		humanBytes(p.bytes.Load()), humanBytes(p.totalB), humanBytes(int64(rate)), left)
}

func (p *progress) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bar != nil {
		p.bar.Finish()
	}
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
