package harness

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
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
	return eachThread(pid, func(tid int) error {
		if err := syscall.Setpriority(syscall.PRIO_PROCESS, tid, nice); err != nil {
			return fmt.Errorf("renice %d: %w", tid, err)
		}
		return nil
	})
}

// idleTree moves pid, its threads and the processes below it to
// SCHED_IDLE: they run only on a CPU nothing else wants, where nice 19
// still takes about 1.5 % of a busy CPU's time in slices of its own. Like a
// niceness, the policy is inherited.
func idleTree(pid int) error {
	return eachThread(pid, func(tid int) error {
		if err := unix.SchedSetAttr(tid, &unix.SchedAttr{Policy: unix.SCHED_IDLE}, 0); err != nil {
			return fmt.Errorf("SCHED_IDLE %d: %w", tid, err)
		}
		return nil
	})
}

// demoteTree applies the pipeline's niceness and, with idle, SCHED_IDLE.
func demoteTree(pid, nice int, idle bool) error {
	if nice != 0 {
		if err := reniceTree(pid, nice); err != nil {
			return err
		}
	}
	if idle {
		return idleTree(pid)
	}
	return nil
}

// pinTree keeps pid, its threads and the processes below it on cpus. Like
// a niceness, an affinity belongs to a thread and is inherited by the
// threads and processes it creates.
//
// The long-streams phase measures Loom on one core of its own, the load
// generator and the mock on the others: without pinning, on a small
// machine the three take turns on the same cores and the scheduler's
// time slices (milliseconds) show up as Loom's latency.
func pinTree(pid int, cpus []int) error {
	var set unix.CPUSet
	for _, c := range cpus {
		set.Set(c)
	}
	return eachThread(pid, func(tid int) error {
		if err := unix.SchedSetaffinity(tid, &set); err != nil {
			return fmt.Errorf("pin %d to CPUs %v: %w", tid, cpus, err)
		}
		return nil
	})
}

// eachThread calls fn for every thread of pid and of every process below
// it. A thread that has exited since the listing (ESRCH) is no error.
func eachThread(pid int, fn func(tid int) error) error {
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
			if err := fn(tid); err != nil && !errors.Is(err, syscall.ESRCH) {
				errs = append(errs, err)
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

// pin puts the Looms on CPU loomCPU alone, and this process (the load
// generator) and every other process of the stack on the other CPUs.
func (st *stack) pin(loomCPU int) error {
	var rest []int
	for c := range runtime.NumCPU() {
		if c != loomCPU {
			rest = append(rest, c)
		}
	}
	// The whole tree first (this process and all it started), then the
	// Looms out of it.
	if err := pinTree(os.Getpid(), rest); err != nil {
		return err
	}
	for _, p := range []*proc{st.traced, st.untraced} {
		if p != nil {
			if err := pinTree(p.p.Pid(), []int{loomCPU}); err != nil {
				return err
			}
		}
	}
	return nil
}
