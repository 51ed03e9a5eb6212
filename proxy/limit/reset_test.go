package limit

import (
	"math/rand/v2"
	"testing"
	"time"
)

func TestAppendReset(t *testing.T) {
	tests := []struct {
		name string
		d    time.Duration
		want string
	}{
		{"zero", 0, "0s"},
		{"negative", -time.Second, "0s"},
		{"under a millisecond rounds up", 300 * time.Microsecond, "1ms"},
		{"milliseconds", 20 * time.Millisecond, "20ms"},
		{"a second", time.Second, "1s"},
		{"seconds and a fraction", 8640 * time.Millisecond, "8.64s"},
		{"rounds up to the millisecond", 1500*time.Millisecond + 1, "1.501s"},
		{"just under a minute", 59999 * time.Millisecond, "59.999s"},
		{"minutes", 6 * time.Minute, "6m0s"},
		{"minutes and seconds", 86400 * time.Millisecond, "1m26.4s"},
		{"hours", time.Hour + 30*time.Second, "1h0m30s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(AppendReset([]byte("x="), tt.d)); got != "x="+tt.want {
				t.Errorf("AppendReset(%v) = %q, want %q", tt.d, got, "x="+tt.want)
			}
		})
	}
}

func TestAppendReset_MatchesDurationStringAtMilliseconds(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 10_000 {
		d := time.Duration(r.Int64N(int64(3*time.Hour)/int64(time.Millisecond))+1) * time.Millisecond
		if got, want := string(AppendReset(nil, d)), d.String(); got != want {
			t.Fatalf("AppendReset(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestAppendReset_AllocatesNothing(t *testing.T) {
	buf := make([]byte, 0, 32)
	if n := testing.AllocsPerRun(100, func() { buf = AppendReset(buf[:0], 86400*time.Millisecond) }); n != 0 {
		t.Fatalf("%v allocations, want 0", n)
	}
}
