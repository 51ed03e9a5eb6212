package harness

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

// reniceTree gives pid, every thread of it and every process descended from
// it the niceness nice. On Linux a niceness belongs to a thread, and a new
// thread or a forked process inherits its creator's: once the existing ones
// are reniced, the Go runtime's later threads and Postgres's later backends
// run at the same niceness.
//
// The bench runs the span pipeline (otelcol-loom and Postgres) this way so
// that, on a machine it shares with Loom, the load generator and the mock,
// it works in the time they leave: the calls wait in Loom's durable spool,
// not in a run queue in front of the request path.
func reniceTree(pid, nice int) error {
	var errs []error
	for _, p := range append([]int{pid}, descendants(pid)...) {
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*", p))
		if len(tasks) == 0 {
			tasks = []string{strconv.Itoa(p)}
		}
		for _, t := range tasks {
			tid, err := strconv.Atoi(filepath.Base(t))
			if err != nil {
				continue
			}
			// A thread that has exited since the listing is no error.
			if err := syscall.Setpriority(syscall.PRIO_PROCESS, tid, nice); err != nil && !errors.Is(err, syscall.ESRCH) {
				errs = append(errs, fmt.Errorf("renice %d: %w", tid, err))
			}
		}
	}
	return errors.Join(errs...)
}

// descendants lists the processes below pid, from /proc/*/stat.
func descendants(pid int) []int {
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	children := map[int][]int{}
	for _, s := range stats {
		b, err := os.ReadFile(s)
		if err != nil {
			continue
		}
		if p, ppid, ok := parentOf(b); ok {
			children[ppid] = append(children[ppid], p)
		}
	}
	var out []int
	for queue := []int{pid}; len(queue) > 0; queue = queue[1:] {
		for _, c := range children[queue[0]] {
			out = append(out, c)
			queue = append(queue, c)
		}
	}
	return out
}

// parentOf reads "PID (COMM) STATE PPID ..." from a /proc/PID/stat line.
// COMM may hold spaces and parentheses, so the fields after it are found
// from its last ')'.
func parentOf(stat []byte) (pid, ppid int, ok bool) {
	open, end := bytes.IndexByte(stat, '('), bytes.LastIndexByte(stat, ')')
	if open < 1 || end < open {
		return 0, 0, false
	}
	pid, err := strconv.Atoi(string(bytes.TrimSpace(stat[:open])))
	if err != nil {
		return 0, 0, false
	}
	f := bytes.Fields(stat[end+1:])
	if len(f) < 2 {
		return 0, 0, false
	}
	ppid, err = strconv.Atoi(string(f[1]))
	return pid, ppid, err == nil
}

// postmasterPID is the pid on the first line of a cluster's postmaster.pid.
func postmasterPID(dataDir string) (int, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		return 0, err
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	return strconv.Atoi(string(bytes.TrimSpace(line)))
}
