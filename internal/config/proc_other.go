//go:build !unix

package config

import "os/exec"

// setProcessGroup is a no-op where process groups are unavailable; context
// cancellation kills only the shell.
func setProcessGroup(cmd *exec.Cmd) {}
