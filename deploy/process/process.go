// Package process supervises the programs a local stack or a test runs
// (Loom, the mock upstream, otelcol-loom): it starts one in its own process
// group, reports its exit, and stops it with SIGTERM, then a kill once a
// grace period has passed. devstack, the bench harness and the end-to-end
// tests all stop their programs this way, with the same grace.
//
// It must never signal a process group it did not start, nor leave a
// program running after Stop returns.
package process

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"time"
)

// Grace is how long Stop waits after SIGTERM before it kills: long enough
// for otelcol-loom to flush its queue to Postgres and for Loom to drain, the
// slowest clean exits the stacks have.
const Grace = 20 * time.Second

// Process is one started program.
type Process struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error // cmd.Wait's result, set before done closes
}

// Start starts cmd in its own process group, so a Ctrl-C in the terminal
// reaches the supervisor only and it stops its programs in order; on Linux
// the kernel also sends the program SIGTERM if the supervisor dies. cmd's
// SysProcAttr is replaced.
func Start(cmd *exec.Cmd) (*Process, error) {
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &Process{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// Pid is the program's process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Done is closed once the program has exited and its output (if cmd copies
// it) is all written.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exited reports whether Done is closed.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Wait waits for the program to exit and returns cmd.Wait's result.
func (p *Process) Wait() error {
	<-p.done
	return p.err
}

// ErrKilled reports that a program was still running Grace (or the grace
// given to Stop) after SIGTERM, and was killed.
var ErrKilled = errors.New("killed")

// Stop sends SIGTERM, waits up to grace for the program to exit, then kills
// it, and returns once it has exited. The error wraps ErrKilled if it had
// to kill; it is nil if the program had already exited.
func (p *Process) Stop(grace time.Duration) error {
	if p.Exited() {
		return nil
	}
	var sigErr error
	if err := terminate(p.cmd.Process); err != nil && !errors.Is(err, os.ErrProcessDone) {
		sigErr = fmt.Errorf("SIGTERM: %w", err)
	}
	select {
	case <-p.done:
		return sigErr
	case <-time.After(grace):
	}
	p.Kill()
	return errors.Join(sigErr, fmt.Errorf("still running %s after SIGTERM, so %w", grace, ErrKilled))
}

// Kill ends the program the hard way (no flush, no goodbye) and waits for
// it to exit.
func (p *Process) Kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}
