package histogram

import (
	"math"
	"math/rand/v2"
	"sort"
	"testing"
	"time"
)

// exactQuantile is the nearest-rank quantile of sorted, the definition Quantile approximates.
func exactQuantile(sorted []time.Duration, q float64) time.Duration {
	rank := int(math.Ceil(q*float64(len(sorted)) - 1e-9))
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

func within(got, want time.Duration, rel float64) bool {
	return math.Abs(float64(got-want)) <= rel*float64(want)
}

var quantiles = []float64{0.001, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999, 0.9999}

func TestHistogram_KnownDistributions_QuantilesWithinOnePercent(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	cases := []struct {
		name   string
		values func() []time.Duration
	}{
		{name: "uniform 1..10000µs", values: func() []time.Duration {
			v := make([]time.Duration, 0, 10000)
			for us := 1; us <= 10000; us++ {
				v = append(v, time.Duration(us)*time.Microsecond)
			}
			return v
		}},
		{name: "constant 1.234ms", values: func() []time.Duration {
			v := make([]time.Duration, 5000)
			for i := range v {
				v[i] = 1234567 * time.Nanosecond
			}
			return v
		}},
		{name: "bimodal 300µs and 80ms", values: func() []time.Duration {
			v := make([]time.Duration, 0, 20000)
			for range 19000 {
				v = append(v, 300*time.Microsecond+time.Duration(rng.IntN(20000)))
			}
			for range 1000 {
				v = append(v, 80*time.Millisecond+time.Duration(rng.IntN(5e6)))
			}
			return v
		}},
		{name: "log-uniform 1µs..10min", values: func() []time.Duration {
			v := make([]time.Duration, 100000)
			lo, hi := math.Log(1e3), math.Log(600e9)
			for i := range v {
				v[i] = time.Duration(math.Exp(lo + rng.Float64()*(hi-lo)))
			}
			return v
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			values := tc.values()
			h := New()
			var sum int64
			for _, v := range values {
				h.Record(v)
				sum += int64(v)
			}
			sort.Slice(values, func(i, j int) bool { return values[i] < values[j] })
			for _, q := range quantiles {
				want := exactQuantile(values, q)
				if got := h.Quantile(q); !within(got, want, 0.01) {
					t.Errorf("Quantile(%v) = %v, want %v ±1%%", q, got, want)
				}
			}
			if h.Count() != int64(len(values)) {
				t.Errorf("Count = %d, want %d", h.Count(), len(values))
			}
			if h.Min() != values[0] || h.Max() != values[len(values)-1] {
				t.Errorf("Min, Max = %v, %v, want %v, %v", h.Min(), h.Max(), values[0], values[len(values)-1])
			}
			if want := time.Duration(sum / int64(len(values))); h.Mean() != want {
				t.Errorf("Mean = %v, want %v", h.Mean(), want)
			}
		})
	}
}

// TestHistogram_EveryBucket_ErrorBelowOnePercent walks values across the whole tracked range,
// including both edges of buckets, where the midpoint is furthest from the value.
func TestHistogram_EveryBucket_ErrorBelowOnePercent(t *testing.T) {
	for v := time.Microsecond; v <= MaxTracked; v += v/997 + 1 {
		for _, d := range []time.Duration{v, v + 1, v - 1} {
			lo, width := bucketRange(bucketOf(d))
			if d < lo || d >= lo+width {
				t.Fatalf("%v lands in [%v, %v)", d, lo, lo+width)
			}
			if mid := lo + width/2; !within(mid, d, 0.01) {
				t.Fatalf("%v answered as %v, more than 1%% off", d, mid)
			}
		}
	}
}

func TestHistogram_BucketsAreContiguous(t *testing.T) {
	var next time.Duration
	for i := range numBuckets {
		lo, width := bucketRange(i)
		if lo != next {
			t.Fatalf("bucket %d starts at %v, want %v", i, lo, next)
		}
		if bucketOf(lo) != i || bucketOf(lo+width-1) != i {
			t.Fatalf("bucket %d [%v, %v) does not map back to itself", i, lo, lo+width)
		}
		next = lo + width
	}
	if next-1 != MaxTracked {
		t.Fatalf("top bucket ends at %v, want MaxTracked %v", next-1, MaxTracked)
	}
	if MaxTracked < 10*time.Minute {
		t.Fatalf("MaxTracked %v is under 10 minutes", MaxTracked)
	}
}

func TestHistogram_Merge_EqualsRecordingAll(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	all, parts := New(), []*Histogram{New(), New(), New()}
	for i := range 30000 {
		d := time.Duration(rng.ExpFloat64() * float64(2*time.Millisecond))
		all.Record(d)
		parts[i%len(parts)].Record(d)
	}
	merged := New()
	merged.Merge(New()) // an empty one must not disturb Min
	for _, p := range parts {
		merged.Merge(p)
	}
	merged.Merge(nil)
	if *merged != *all {
		t.Fatalf("merged differs: count %d/%d min %v/%v max %v/%v mean %v/%v",
			merged.Count(), all.Count(), merged.Min(), all.Min(), merged.Max(), all.Max(), merged.Mean(), all.Mean())
	}
}

func TestHistogram_Extremes(t *testing.T) {
	t.Run("empty answers zero", func(t *testing.T) {
		h := New()
		if h.Count() != 0 || h.Min() != 0 || h.Max() != 0 || h.Mean() != 0 || h.Quantile(0.5) != 0 {
			t.Fatal("empty histogram answered non-zero")
		}
	})
	t.Run("below 1µs and negative", func(t *testing.T) {
		h := New()
		h.Record(-5)
		h.Record(0)
		h.Record(700 * time.Nanosecond)
		if h.Min() != 0 || h.Max() != 700*time.Nanosecond {
			t.Fatalf("Min, Max = %v, %v", h.Min(), h.Max())
		}
		if got := h.Quantile(1.0 / 3); got > 8*time.Nanosecond {
			t.Fatalf("p33 = %v, want within one 8ns unit of 0", got)
		}
		if got := h.Quantile(0.9); got < 692*time.Nanosecond || got > 700*time.Nanosecond {
			t.Fatalf("p90 = %v, want within one 8ns unit of 700ns", got)
		}
	})
	t.Run("above the top keeps the true max", func(t *testing.T) {
		h := New()
		h.Record(time.Millisecond)
		h.Record(3 * time.Hour)
		if h.Max() != 3*time.Hour || h.Quantile(1) != 3*time.Hour {
			t.Fatalf("Max, p100 = %v, %v, want 3h", h.Max(), h.Quantile(1))
		}
		if got := h.Quantile(0.99); got < MaxTracked/2 || got > 3*time.Hour {
			t.Fatalf("p99 = %v, want the top bucket", got)
		}
		if !within(h.Quantile(0.5), time.Millisecond, 0.005) || h.Quantile(0) != time.Millisecond {
			t.Fatalf("p50, p0 = %v, %v, want 1ms", h.Quantile(0.5), h.Quantile(0))
		}
	})
	t.Run("q outside [0,1] is clamped", func(t *testing.T) {
		h := New()
		h.Record(2 * time.Millisecond)
		h.Record(5 * time.Millisecond)
		if h.Quantile(-1) != 2*time.Millisecond || h.Quantile(2) != 5*time.Millisecond || h.Quantile(math.NaN()) != 2*time.Millisecond {
			t.Fatal("out-of-range q not clamped")
		}
	})
	t.Run("reset empties", func(t *testing.T) {
		h := New()
		h.Record(time.Second)
		h.Reset()
		h.Record(time.Millisecond)
		if h.Count() != 1 || h.Min() != time.Millisecond || h.Max() != time.Millisecond || h.Quantile(0.5) != time.Millisecond {
			t.Fatalf("after Reset: count %d min %v max %v", h.Count(), h.Min(), h.Max())
		}
	})
}

func TestHistogram_Record_DoesNotAllocate(t *testing.T) {
	h := New()
	d := 3 * time.Millisecond
	if n := testing.AllocsPerRun(1000, func() { h.Record(d); d += 7919 }); n != 0 {
		t.Fatalf("Record allocates %v times per call, want 0", n)
	}
}

func BenchmarkRecord(b *testing.B) {
	values := make([]time.Duration, 1024)
	rng := rand.New(rand.NewPCG(5, 6))
	for i := range values {
		values[i] = time.Duration(rng.ExpFloat64() * float64(time.Millisecond))
	}
	h := New()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		h.Record(values[i&1023])
		i++
	}
}

func BenchmarkQuantile(b *testing.B) {
	h := New()
	for i := range 100000 {
		h.Record(time.Duration(i) * time.Microsecond)
	}
	b.ReportAllocs()
	for b.Loop() {
		h.Quantile(0.999)
	}
}
