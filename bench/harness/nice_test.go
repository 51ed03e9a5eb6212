package harness

import (
	"io"
	"os/exec"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

func TestParentOf_CommWithSpacesAndParens(t *testing.T) {
	pid, ppid, ok := parentOf([]byte("4242 (post gres: (x)) S 17 4242 4242 0 -1 4194560"))
	if !ok || pid != 4242 || ppid != 17 {
		t.Fatalf("parentOf = %d %d %v, want 4242 17 true", pid, ppid, ok)
	}
	if _, _, ok := parentOf([]byte("garbage")); ok {
		t.Fatal("parentOf read a line without (comm)")
	}
}

// A shell and the sleep it forks both end up at the niceness given, and so
// does a process the shell forks after the renice (inherited).
func TestReniceTree_ProcessAndChildrenAndLaterChildren(t *testing.T) {
	cmd, stdin, waitFor := startShell(t, "sleep 30 & read x; sleep 30 & wait")
	waitFor(1)
	if err := reniceTree(cmd.Process.Pid, 7); err != nil {
		t.Fatal(err)
	}
	stdin.Write([]byte("go\n"))
	kids := waitFor(2)
	for _, p := range append([]int{cmd.Process.Pid}, kids...) {
		prio, err := syscall.Getpriority(syscall.PRIO_PROCESS, p)
		if err != nil {
			t.Fatal(err)
		}
		// The raw syscall answers 20 - nice.
		if nice := 20 - prio; nice != 7 {
			t.Errorf("pid %d: nice %d, want 7", p, nice)
		}
	}
	for _, k := range kids {
		syscall.Kill(k, syscall.SIGKILL)
	}
}

// A process moved to SCHED_IDLE is there, and so is a child it forks after.
func TestIdleTree_ProcessAndLaterChildren(t *testing.T) {
	cmd, stdin, waitFor := startShell(t, "read x; sleep 30 & wait")
	if err := idleTree(cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	stdin.Write([]byte("go\n"))
	kids := waitFor(1)
	for _, p := range append([]int{cmd.Process.Pid}, kids...) {
		a, err := unix.SchedGetAttr(p, 0)
		if err != nil {
			t.Fatal(err)
		}
		if a.Policy != unix.SCHED_IDLE {
			t.Errorf("pid %d: policy %d, want SCHED_IDLE (%d)", p, a.Policy, unix.SCHED_IDLE)
		}
	}
	for _, k := range kids {
		syscall.Kill(k, syscall.SIGKILL)
	}
}

// startShell runs script in sh, killed at the end of the test; waitFor(n)
// waits until the shell has n processes below it and returns them.
func startShell(t *testing.T, script string) (*exec.Cmd, io.Writer, func(n int) []int) {
	t.Helper()
	cmd := exec.Command("/bin/sh", "-c", script)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	waitFor := func(n int) []int {
		t.Helper()
		for range 200 {
			if d := descendants(cmd.Process.Pid); len(d) >= n {
				return d
			}
			exec.Command("sleep", "0.01").Run()
		}
		t.Fatalf("the shell never had %d children", n)
		return nil
	}
	return cmd, stdin, waitFor
}
