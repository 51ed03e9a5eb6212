package upstream

import (
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/loom-gateway/loom/proxy/config"
)

func newTestDeployment(t *testing.T) *Deployment {
	t.Helper()
	d, err := New(config.Deployment{Name: "d", Provider: config.ProviderOpenAI, BaseURL: "http://127.0.0.1:1/v1"}, config.DefaultTimeouts, nil)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestBreaker_OpensAfterConsecutiveFailures_ProbeClosesIt(t *testing.T) {
	d := newTestDeployment(t)
	now := time.Unix(1000, 0)
	const failures, cooldown = 3, 10 * time.Second
	for i := range failures {
		if probe, skip, _ := d.Admit(now, cooldown); probe || skip != NotSkipped {
			t.Fatalf("failure %d: closed circuit refused a call", i)
		}
		if opened := d.Report(false, false, failures, cooldown, now); opened != (i == failures-1) {
			t.Fatalf("failure %d: opened %v", i+1, opened)
		}
	}
	if _, skip, until := d.Admit(now.Add(time.Second), cooldown); skip != SkipOpen || !until.Equal(now.Add(cooldown)) {
		t.Fatalf("open circuit: skip %v until %v", skip, until)
	}
	later := now.Add(cooldown)
	probe, skip, _ := d.Admit(later, cooldown)
	if !probe || skip != NotSkipped {
		t.Fatalf("after the cooldown: probe %v skip %v, want one probe", probe, skip)
	}
	if _, skip, _ := d.Admit(later, cooldown); skip != SkipOpen {
		t.Fatal("a second call went through while the probe is under way")
	}
	d.Report(true, true, failures, cooldown, later)
	if d.CircuitOpen() {
		t.Fatal("a good probe left the circuit open")
	}
	// The count starts again: one failure does not reopen it.
	if d.Report(false, false, failures, cooldown, later) || d.CircuitOpen() {
		t.Fatal("one failure after closing reopened the circuit")
	}
}

func TestBreaker_FailedProbeReopens_SilentProbeIsReplaced(t *testing.T) {
	d := newTestDeployment(t)
	now := time.Unix(1000, 0)
	d.Report(false, false, 1, time.Second, now)
	probe, _, _ := d.Admit(now.Add(time.Second), time.Second)
	if !probe {
		t.Fatal("no probe after the cooldown")
	}
	if !d.Report(false, true, 1, time.Second, now.Add(time.Second)) {
		t.Fatal("a failed probe did not reopen the circuit")
	}
	if _, skip, _ := d.Admit(now.Add(1500*time.Millisecond), time.Second); skip != SkipOpen {
		t.Fatal("reopened circuit let a call through")
	}
	at := now.Add(2 * time.Second)
	if probe, _, _ := d.Admit(at, time.Second); !probe {
		t.Fatal("no second probe")
	}
	// That probe never reports: after a cooldown another may go.
	if probe, _, _ := d.Admit(at.Add(2*time.Second), time.Second); !probe {
		t.Fatal("a silent probe blocks the deployment for ever")
	}
}

func TestCoolUntil_SkipsTheDeploymentUntilThen(t *testing.T) {
	d := newTestDeployment(t)
	now := time.Unix(1000, 0)
	d.CoolUntil(now.Add(2 * time.Second))
	d.CoolUntil(now.Add(time.Second)) // an earlier end does not shorten it
	if _, skip, until := d.Admit(now, time.Second); skip != SkipCooling || !until.Equal(now.Add(2*time.Second)) {
		t.Fatalf("skip %v until %v", skip, until)
	}
	if _, skip, _ := d.Admit(now.Add(2*time.Second), time.Second); skip != NotSkipped {
		t.Fatal("still skipped after the pause")
	}
}

func TestRetryAfter_SecondsMillisecondsAndDates(t *testing.T) {
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name, header, value string
		want                time.Duration
	}{
		{"seconds", "Retry-After", "2", 2 * time.Second},
		{"milliseconds win", "retry-after-ms", "250", 250 * time.Millisecond},
		{"date", "Retry-After", "Sat, 05 Dec 2026 12:00:07 GMT", 7 * time.Second},
		{"capped", "Retry-After", "99999", time.Minute},
		{"nonsense", "Retry-After", "soon", 0},
		{"negative", "Retry-After", "-5", 0},
		{"absent", "X-Other", "1", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var h fasthttp.ResponseHeader
			h.Set(tc.header, tc.value)
			if got := RetryAfter(&h, now, time.Minute); got != tc.want {
				t.Fatalf("RetryAfter(%s: %s) = %v, want %v", tc.header, tc.value, got, tc.want)
			}
		})
	}
}
