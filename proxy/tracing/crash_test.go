package tracing

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	sa "github.com/loom-gateway/loom/proxy/spanattr"
)

const crashDirEnv = "LOOM_TRACING_CRASH_DIR"

// A Loom killed with SIGKILL while the collector is away: the next start of
// the same spool ships every call the dead run had committed, under the
// same instance id, and the dead run has a start marker and no stop marker
// (it crashed), while the new run starts one of its own.
func TestCrash_SIGKILLWithCollectorAway_NextStartShipsTheRunWithoutAStopMarker(t *testing.T) {
	if dir := os.Getenv(crashDirEnv); dir != "" {
		crashChild(dir)
		return
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrash_SIGKILLWithCollectorAway", "-test.count=1")
	cmd.Env = append(os.Environ(), crashDirEnv+"="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var instance, run string
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if _, err := fmt.Sscanf(sc.Text(), "committed %s %s", &instance, &run); err == nil {
			break
		}
	}
	if run == "" {
		t.Fatalf("the child never committed: %v", sc.Err())
	}
	// The child goes on recording: kill it mid-stream.
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()

	col := newMemory()
	cfg := testConfig()
	cfg.InstanceID, cfg.Spool.Dir = "", dir
	tr := newTestTracer(t, col.Send, cfg, nil)
	defer tr.Shutdown(context.Background())
	flushWithin(t, tr, 10*time.Second)
	if tr.InstanceID() != instance {
		t.Errorf("instance %s after the crash, %s before", tr.InstanceID(), instance)
	}
	seqs := map[int64]int{}
	var max int64
	for _, s := range col.GetSpans() {
		a := attrs(s)
		if a[sa.RunID].AsString() == run && a[sa.InstanceID].AsString() == instance && s.SpanKind == trace.SpanKindServer {
			q := a[sa.Seq].AsInt64()
			seqs[q]++
			max = maxInt(max, q)
		}
	}
	if len(seqs) < 100 {
		t.Fatalf("the crashed run's committed calls did not ship: %d of at least 100", len(seqs))
	}
	for q := int64(1); q <= max; q++ {
		if seqs[q] != 1 {
			t.Fatalf("seq %d of the crashed run shipped %d times (of 1..%d)", q, seqs[q], max)
		}
	}
	events := markerEvents(col.Markers())
	if !events[run+"/start"] || events[run+"/stop"] || !events[tr.RunID()+"/start"] {
		t.Fatalf("markers %v: want the crashed run's start and no stop, and the new run's start", events)
	}
}

func maxInt(a, b int64) int64 {
	if a > b {
		return a
	}
	return b
}

func markerEvents(ms tracetest.SpanStubs) map[string]bool {
	out := map[string]bool{}
	for _, m := range ms {
		a := attrs(m)
		out[a[sa.RunID].AsString()+"/"+a[sa.RunEvent].AsString()] = true
	}
	return out
}

// crashChild records calls for ever with the collector away, and says once
// that the first 100 are committed.
func crashChild(dir string) {
	cfg := testConfig()
	cfg.InstanceID, cfg.Spool.Dir = "", dir
	away := func(ctx context.Context, _ []byte) (int64, error) { <-ctx.Done(); return 0, ctx.Err() }
	tr, err := New(context.Background(), cfg, Options{Send: away})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(2)
	}
	for range 100 {
		tr.Record(streamedChat())
	}
	if err := tr.spool.Commit(context.Background()); err != nil {
		fmt.Println("error", err)
		os.Exit(2)
	}
	fmt.Println(strings.Join([]string{"committed", tr.InstanceID(), tr.RunID()}, " "))
	for {
		tr.Record(streamedChat())
		time.Sleep(100 * time.Microsecond)
	}
}

// A run opens with a marker that states what a crash of it could lose, and
// a clean stop closes it with the run's last number.
func TestRun_MarkersStateTheLossBoundAndTheLastSeq(t *testing.T) {
	col := newMemory()
	cfg := testConfig()
	cfg.QueueSize, cfg.Spool.CommitInterval = 4096, 7*time.Millisecond
	tr := newTestTracer(t, col.Send, cfg, nil)
	for range 3 {
		tr.Record(streamedChat())
	}
	if err := tr.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	ms := col.Markers()
	if len(ms) != 2 {
		t.Fatalf("%d markers, want start and stop", len(ms))
	}
	start, stop := attrs(ms[0]), attrs(ms[1])
	if start[sa.RunEvent].AsString() != sa.RunStart || start[sa.RunID].AsString() != tr.RunID() ||
		start[sa.InstanceID].AsString() != "inst-1" || start[sa.RunLossBound].AsInt64() != 4096 ||
		start[sa.RunCommitInterval].AsFloat64() != 0.007 {
		t.Errorf("start marker %v", start)
	}
	if stop[sa.RunEvent].AsString() != sa.RunStop || stop[sa.RunLastSeq].AsInt64() != 3 || stop[sa.RunID].AsString() != tr.RunID() {
		t.Errorf("stop marker %v", stop)
	}
}
