package vaulttest

import (
	"os/exec"
	"syscall"
)

// setProcAttr kills Vault when the test binary dies, so no server outlives a crashed test.
func setProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
