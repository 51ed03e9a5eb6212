package replicas_test

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// The test's own judgements run without the stack (also where it skips): a
// mistake in them would pass or fail the test for the wrong reason.

func TestMix_LimitedTenantOverItsLimitHoweverAMinuteSplitsIt_BothReplicasAlike(t *testing.T) {
	var perReplica [2]map[string]int
	kinds := map[kind]int{}
	limited := 0
	for n := range calls {
		if perReplica[replicaOf(n)] == nil {
			perReplica[replicaOf(n)] = map[string]int{}
		}
		perReplica[replicaOf(n)][tenantOf(n)]++
		kinds[kindOf(n)]++
		if tenantOf(n) == limitedTenant {
			limited++
			if kindOf(n) == upstream400 {
				t.Errorf("call %d: the limited tenant gets an upstream refusal, which would blur its count", n)
			}
		}
	}
	// Split across two windows, one of them still holds half: more than
	// the limit, so the limit must refuse.
	if limited/2 <= limitRPM {
		t.Errorf("%d calls of %s: half of them (%d) do not pass its limit %d", limited, limitedTenant, limited/2, limitRPM)
	}
	if limited > calls/2 {
		t.Errorf("%d of %d calls are the limited tenant's: the limit would be most of the run", limited, calls)
	}
	if perReplica[0][limitedTenant] != perReplica[1][limitedTenant] || perReplica[0]["acme"] != perReplica[1]["acme"] {
		t.Errorf("replicas get %v and %v, want the same of each tenant", perReplica[0], perReplica[1])
	}
	for k := range kindNames {
		if kinds[kind(k)] == 0 {
			t.Errorf("no %v call in the mix", kind(k))
		}
	}
	if kinds[unary] < calls/3 || kinds[stream]+kinds[streamUsage] < calls/3 {
		t.Errorf("mix %v: want unary and streamed calls about half and half", kinds)
	}
}

func TestCallOf_ReadsBackTheTraceIDOfACall_RefusesOthers(t *testing.T) {
	for _, n := range []int{0, 1, calls - 1} {
		if got, ok := callOf(traceID(n)); !ok || got != n {
			t.Errorf("callOf(traceID(%d)) = %d, %v", n, got, ok)
		}
	}
	for _, id := range []string{"4bf92f3577b34da6a3ce929d0e0e4736", "5ca1ed", traceID(calls), "5ca1ed00000000000000000000000000", strings.Repeat("f", 32)} {
		if n, ok := callOf(id); ok {
			t.Errorf("callOf(%q) = %d, true; want not a call of the test", id, n)
		}
	}
}

func TestWindowOf_ArrivalPlusResetEndsTheWindowTheDecisionCountedIn(t *testing.T) {
	minute := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	w := minute.Unix() / 60
	for _, tc := range []struct {
		name     string
		received time.Time
		reset    string
		want     int64
	}{
		{"mid-window", minute.Add(30 * time.Second), "30s", w},
		{"decided at the window's end, arrived after it", minute.Add(60*time.Second + 4*time.Millisecond), "3ms", w},
		{"decided at the next window's start", minute.Add(60*time.Second + 4*time.Millisecond), "59.998s", w + 1},
		{"a slow answer", minute.Add(10 * time.Second), "49.5s", w},
	} {
		got, err := windowOf(tc.received, tc.reset)
		if err != nil || got != tc.want {
			t.Errorf("%s: windowOf = %d, %v; want %d", tc.name, got, err, tc.want)
		}
	}
	for _, reset := range []string{"", "soon", "-1s", "2m"} {
		if _, err := windowOf(minute, reset); err == nil {
			t.Errorf("reset %q accepted", reset)
		}
	}
}

// limitedRun makes the limited tenant's outcomes of a run, all in one
// window, as a limiter would decide them: count(r) is the counter that
// call n on replica r takes.
func limitedRun(count func(replica int) int64) []outcome {
	out := make([]outcome, calls)
	for n := range out {
		if tenantOf(n) != limitedTenant {
			continue
		}
		c := count(replicaOf(n))
		o := outcome{status: http.StatusOK, window: 7, remaining: limitRPM - c}
		if c > limitRPM {
			o.status, o.remaining = http.StatusTooManyRequests, 0
		}
		out[n] = o
	}
	return out
}

func TestJudgeLimit_OneSharedCounterHolds_TwoCountingApartOrNeverLimitedDoNot(t *testing.T) {
	var shared int64
	var apart [2]int64
	for _, tc := range []struct {
		name string
		run  []outcome
		want []string // what the problems must say; none for a limit that held
	}{
		{"one counter shared by both replicas", limitedRun(func(int) int64 { shared++; return shared }), nil},
		{"each replica counting alone", limitedRun(func(r int) int64 { apart[r]++; return apart[r] }),
			[]string{"over the limit", "a remaining count another was told too"}},
		{"never reached", limitedRun(func(int) int64 { return 1 }), []string{"proved nothing", "another was told too"}},
		{"refused early", func() []outcome {
			run := limitedRun(func(int) int64 { return limitRPM + 1 })
			run[1] = outcome{status: http.StatusOK, window: 7, remaining: 5}
			return run
		}(), []string{"yet 1 admitted"}},
		{"no headers", func() []outcome {
			var c int64
			run := limitedRun(func(int) int64 { c++; return c })
			run[3].window = -1
			return run
		}(), []string{"call 3 (unary, status 200) has no x-ratelimit"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, bad := judgeLimit(tc.run)
			got := strings.Join(bad, "\n")
			if len(tc.want) == 0 && len(bad) > 0 {
				t.Fatalf("problems with a limit that held:\n%s", got)
			}
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("problems do not say %q:\n%s", w, got)
				}
			}
		})
	}
}

func TestSumSamples_AddsEveryLabelSetOfTheOneMetric(t *testing.T) {
	const text = `# HELP loom_calls_total Calls.
# TYPE loom_calls_total counter
loom_calls_total 3
loom_calls_total{tenant="acme",status_class="2xx"} 4 1733400000000
loom_calls_total{tenant="globex"} 5 # {trace_id="0af7651916cd43dd8448eb211c80319c"} 1
loom_calls_totally_else 100
loom_calls_shipped_total 1000
`
	got, err := sumSamples(strings.NewReader(text), "loom_calls_total")
	if err != nil || got != 12 {
		t.Fatalf("sum = %v, %v; want 12", got, err)
	}
	if _, err := sumSamples(strings.NewReader(text), "loom_requests_total"); err == nil {
		t.Error("a metric not exposed summed to 0 without an error")
	}
}
