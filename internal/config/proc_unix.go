//go:build unix

package config

import (
	"os/exec"
	"syscall"
)

// setProcessGroup runs cmd in its own process group and makes context
// cancellation kill the whole group, so that "sh -c" pipelines do not
// outlive it.
func setProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		if cmd.Process == nil {
			return nil
		}
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
}
