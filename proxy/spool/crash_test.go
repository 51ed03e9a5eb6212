package spool

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const crashChildEnv = "LOOM_SPOOL_CRASH_CHILD_DIR"

// crashChild is the writer that the crash test SIGKILLs: it appends numbered
// records as fast as it can, commits now and then, reads and acks in
// parallel, and reports on stdout what Commit and Ack said was done.
func crashChild(dir string) {
	s, err := Open(Options{Dir: dir, SegmentBytes: 64 << 10, CommitInterval: time.Millisecond, Logger: quiet()})
	if err != nil {
		fmt.Println("E", err)
		os.Exit(2)
	}
	out := bufio.NewWriterSize(os.Stdout, 0) // unbuffered: a line printed is a line the parent sees
	go func() {
		for {
			b, err := s.Read(context.Background(), 16<<10, 100)
			if err != nil {
				return
			}
			last := seqFromRecord(b.Records[len(b.Records)-1])
			if err := s.Ack(b); err != nil {
				fmt.Fprintln(out, "E", err)
				os.Exit(2)
			}
			fmt.Fprintln(out, "A", last)
		}
	}()
	var seq uint64
	for {
		for range 200 {
			if s.Append(rec(seq, 50+int(seq%300))) == nil {
				seq++
			}
		}
		if err := s.Commit(context.Background()); err != nil {
			fmt.Fprintln(out, "E", err)
			os.Exit(2)
		}
		fmt.Fprintln(out, "C", seq) // records 0..seq-1 are durable
	}
}

func seqFromRecord(b []byte) uint64 {
	var v uint64
	for i := 7; i >= 0; i-- {
		v = v<<8 | uint64(b[i])
	}
	return v
}

func TestCrash_WriterSIGKILLedMidCommit_NoTornRecordEveryCommittedOneThere(t *testing.T) {
	if dir := os.Getenv(crashChildEnv); dir != "" {
		crashChild(dir)
		return
	}
	if testing.Short() {
		t.Skip("re-executes the test binary")
	}
	for run := range 4 {
		t.Run(strconv.Itoa(run), func(t *testing.T) {
			dir := t.TempDir()
			cmd := exec.Command(os.Args[0], "-test.run=^TestCrash_WriterSIGKILLedMidCommit_NoTornRecordEveryCommittedOneThere$")
			cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			// Kill after a varying number of commits, so the kill lands at
			// different points of the write/fdatasync cycle.
			killAfter := 20 + run*37
			var committed, acked uint64
			var hasAck bool
			sc := bufio.NewScanner(stdout)
			commits := 0
			deadline := time.AfterFunc(60*time.Second, func() { cmd.Process.Kill() })
			defer deadline.Stop()
			for sc.Scan() {
				f := strings.Fields(sc.Text())
				if len(f) != 2 {
					continue
				}
				switch f[0] {
				case "E":
					t.Fatalf("child: %s", sc.Text())
				case "C":
					committed, _ = strconv.ParseUint(f[1], 10, 64)
					commits++
				case "A":
					acked, _ = strconv.ParseUint(f[1], 10, 64)
					hasAck = true
				}
				if commits == killAfter {
					cmd.Process.Signal(syscall.SIGKILL)
					break
				}
			}
			cmd.Wait()
			if commits < killAfter {
				t.Fatalf("child stopped after %d commits", commits)
			}

			s := open(t, Options{Dir: dir})
			defer s.Close()
			got := drain(t, s, false) // drain checks every record's contents
			first := uint64(0)
			if hasAck {
				first = acked + 1
			}
			t.Logf("Commit reported 0..%d durable, Ack reported ..%d; after the kill %d records back, torn bytes cut %d",
				committed, acked, len(got), s.Stats().TornBytesCut)
			if len(got) == 0 {
				// Everything was acked, beyond what the last "A" line said.
				return
			}
			if got[0] < first {
				t.Fatalf("record %d returned again after Ack reported up to %d", got[0], acked)
			}
			for i := 1; i < len(got); i++ {
				if got[i] != got[i-1]+1 {
					t.Fatalf("gap or disorder after the crash: %d then %d", got[i-1], got[i])
				}
			}
			if last := got[len(got)-1]; last+1 < committed {
				t.Fatalf("last record after the crash is %d; Commit had reported 0..%d durable", last, committed-1)
			}
		})
	}
}
