package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const (
	mountTimeout   = 60 * time.Second
	mountPoll      = 2 * time.Millisecond
	unmountTimeout = 30 * time.Second
)

// mountProc is one `mailfs mount` subprocess.
type mountProc struct {
	cmd     *exec.Cmd
	dir     string
	logPath string
	start   time.Time     // when the subprocess was started
	mounted time.Duration // from start until dir appeared in mountinfo
	done    chan struct{} // closed when the subprocess has been reaped
	waitErr error         // valid once done is closed
}

// mount starts `mailfs mount --config CFG bench MNT` (with --offline if
// offline) with XDG_CACHE_HOME=cacheHome and waits until MNT appears in
// /proc/self/mountinfo, polling every 2 ms.
func (b *bench) mount(ctx context.Context, cacheHome string, offline bool) (*mountProc, error) {
	b.mounts++
	m := &mountProc{
		dir:     b.mnt,
		logPath: filepath.Join(b.tmp, fmt.Sprintf("mailfs-%d.log", b.mounts)),
		done:    make(chan struct{}),
	}
	logf, err := os.Create(m.logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	args := []string{"mount", "--config", b.cfg}
	if offline {
		args = append(args, "--offline")
	}
	m.cmd = exec.Command(b.mailfs, append(args, accountName, b.mnt)...)
	m.cmd.Env = b.env(cacheHome)
	m.cmd.Stdout = logf
	m.cmd.Stderr = logf
	// Its own process group keeps a Ctrl-C in the terminal away from it:
	// the benchmark unmounts in order. Pdeathsig unmounts it if the
	// benchmark dies without cleaning up.
	m.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}

	m.start = time.Now()
	if err := m.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start mailfs mount: %w", err)
	}
	go func() {
		m.waitErr = m.cmd.Wait()
		close(m.done)
	}()

	tick := time.NewTicker(mountPoll)
	defer tick.Stop()
	timeout := time.NewTimer(mountTimeout)
	defer timeout.Stop()
	for {
		ok, err := isMounted(b.mnt)
		if err != nil {
			b.unmount(m)
			return nil, err
		}
		if ok {
			m.mounted = time.Since(m.start)
			return m, nil
		}
		select {
		case <-m.done:
			return nil, fmt.Errorf("mailfs mount exited before mounting (%v)%s", m.waitErr, m.logTail())
		case <-ctx.Done():
			b.unmount(m)
			return nil, ctx.Err()
		case <-timeout.C:
			err := fmt.Errorf("%s not mounted %v after starting mailfs%s", b.mnt, mountTimeout, m.logTail())
			return nil, errors.Join(err, b.unmount(m))
		case <-tick.C:
		}
	}
}

// unmount runs `mailfs umount MNT`, waits for the mount process to exit
// and checks that nothing is left mounted. It falls back to SIGINT, then
// SIGKILL and a lazy unmount. It does not depend on any context: it runs
// during cleanup too.
func (b *bench) unmount(m *mountProc) error {
	var errs []error
	start := time.Now()
	select {
	case <-m.done:
		// Exited already (it failed, or was signalled).
	default:
		ctx, cancel := context.WithTimeout(context.Background(), unmountTimeout)
		out, err := exec.CommandContext(ctx, b.mailfs, "umount", m.dir).CombinedOutput()
		cancel()
		if err != nil {
			errs = append(errs, fmt.Errorf("mailfs umount %s: %v: %s", m.dir, err, strings.TrimSpace(string(out))))
			m.cmd.Process.Signal(syscall.SIGINT)
		}
		select {
		case <-m.done:
		case <-time.After(unmountTimeout):
			errs = append(errs, fmt.Errorf("mailfs mount did not exit %v after unmounting; killed", unmountTimeout))
			m.cmd.Process.Kill()
			<-m.done
		}
		if len(errs) == 0 {
			b.record("mailfs_umount", time.Since(start))
		}
	}
	if mounted, err := isMounted(m.dir); err != nil || mounted {
		syscall.Unmount(m.dir, syscall.MNT_DETACH)
		errs = append(errs, fmt.Errorf("%s still mounted after mailfs exited; detached it", m.dir))
	}
	if m.waitErr != nil {
		errs = append(errs, fmt.Errorf("mailfs mount exited with %v%s", m.waitErr, m.logTail()))
	}
	return errors.Join(errs...)
}

// readBytes returns how many bytes the mount process has read so far
// (rchar of /proc/PID/io): the IMAP responses, plus the FUSE requests,
// plus its configuration file.
func (m *mountProc) readBytes() int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", m.cmd.Process.Pid))
	if err != nil {
		return -1
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "rchar: "); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return -1
			}
			return n
		}
	}
	return -1
}

// logTail returns the end of the mount process's output, for errors.
func (m *mountProc) logTail() string {
	data, err := os.ReadFile(m.logPath)
	if err != nil || len(data) == 0 {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > 20 {
		lines = lines[len(lines)-20:]
	}
	return "\nmailfs output:\n" + strings.Join(lines, "\n")
}

// isMounted reports whether dir (an absolute path without symlinks) is a
// mount point in /proc/self/mountinfo.
func isMounted(dir string) (bool, error) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false, err
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && unescapeMountinfo(f[4]) == dir {
			return true, nil
		}
	}
	return false, nil
}

var mountinfoUnescaper = strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`)

func unescapeMountinfo(s string) string { return mountinfoUnescaper.Replace(s) }
