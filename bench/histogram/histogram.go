// Package histogram is a fixed-size, log-linear latency histogram in the style of HdrHistogram, for
// Loom's benchmarks.
//
// Every value from 1 µs to well past 10 minutes lands in a bucket no wider than 1/128 of its lower
// bound, and Quantile answers with the bucket's midpoint, so a reported quantile is within 0.4% of a
// value that was recorded at that rank. Count, Min, Max and Mean are exact.
//
// Record must stay cheap enough to sit on a load generator's hot path: no allocation, no lock, a
// handful of instructions. A Histogram is therefore not safe for concurrent use; give each goroutine
// its own and Merge them when the run is over.
package histogram

import (
	"math"
	"math/bits"
	"time"
)

const (
	// unitShift sets the resolution floor: values are counted in units of 8 ns. At 1 µs a unit is 0.8%
	// of the value, so the 1% promise holds from there up; below 1 µs it is still 8 ns absolute.
	unitShift = 3

	// subBits gives 2^subBits = 128 linear sub-buckets per power of two.
	subBits  = 7
	subCount = 1 << subBits

	// maxShift bounds the range: the top octave starts at 2^(maxShift+subBits) units, so tracked values
	// reach 2^(maxShift+subBits+1+unitShift) ns ≈ 18.3 minutes. Anything longer counts in the top
	// bucket (Max still reports it exactly).
	maxShift = 29

	// numBuckets covers the linear region [0, 2*subCount) units and then subCount buckets per octave.
	numBuckets = (maxShift + 2) * subCount

	maxUnits = 1<<(maxShift+subBits+1) - 1
)

// MaxTracked is the longest duration that gets its own bucket; longer ones share the top bucket.
const MaxTracked = time.Duration(maxUnits<<unitShift | (1<<unitShift - 1))

// Histogram counts durations in log-linear buckets. Its memory is fixed (about 31 KiB) whatever it
// records. The zero value is an empty histogram ready to use.
//
// A Histogram is not safe for concurrent use.
type Histogram struct {
	counts   [numBuckets]int64
	count    int64
	sum      int64 // nanoseconds; overflows only past ~2.9 centuries of recorded time
	min, max time.Duration
}

// New returns an empty histogram.
func New() *Histogram { return new(Histogram) }

// Record counts d. A negative d counts as 0; a d longer than MaxTracked counts in the top bucket.
func (h *Histogram) Record(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.counts[bucketOf(d)]++
	if h.count == 0 || d < h.min {
		h.min = d
	}
	if d > h.max {
		h.max = d
	}
	h.count++
	h.sum += int64(d)
}

// bucketOf is the HdrHistogram index: values below 2*subCount units map linearly (shift 0); above
// that, each octave keeps its top subBits+1 bits, so the bucket width doubles with each octave and
// stays within 1/subCount of the value.
func bucketOf(d time.Duration) int {
	u := uint64(d) >> unitShift
	if u > maxUnits {
		return numBuckets - 1
	}
	shift := bits.Len64(u) - (subBits + 1)
	if shift < 0 {
		shift = 0
	}
	return shift<<subBits + int(u>>uint(shift))
}

// bucketRange is the inverse of bucketOf: the bucket's lowest value and its width, in nanoseconds.
func bucketRange(i int) (lo, width time.Duration) {
	shift := 0
	sub := i
	if i >= 2*subCount {
		shift = i>>subBits - 1
		sub = i&(subCount-1) + subCount
	}
	return time.Duration(uint64(sub) << uint(shift) << unitShift), time.Duration(uint64(1) << uint(shift) << unitShift)
}

// Count is the number of recorded values.
func (h *Histogram) Count() int64 { return h.count }

// Min is the smallest recorded value, exactly; 0 when empty.
func (h *Histogram) Min() time.Duration { return h.min }

// Max is the largest recorded value, exactly, even beyond MaxTracked; 0 when empty.
func (h *Histogram) Max() time.Duration { return h.max }

// Mean is the exact arithmetic mean (to the nanosecond); 0 when empty.
func (h *Histogram) Mean() time.Duration {
	if h.count == 0 {
		return 0
	}
	return time.Duration(h.sum / h.count)
}

// Quantile returns the value at quantile q in [0, 1] (0.5 is the median, 0.999 is p99.9) by the
// nearest-rank definition: the smallest bucket holding at least ceil(q*Count) values, answered with
// its midpoint clamped to [Min, Max]. Quantile(0) is Min and Quantile(1) is Max, exactly. q outside
// [0, 1] is clamped; an empty histogram answers 0.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.count == 0 {
		return 0
	}
	if q <= 0 || math.IsNaN(q) {
		return h.min
	}
	if q >= 1 {
		return h.max
	}
	// The epsilon keeps q*count that should be whole (0.99*100) from rounding up to the next rank.
	rank := int64(math.Ceil(q*float64(h.count) - 1e-9))
	if rank < 1 {
		rank = 1
	}
	var seen int64
	for i := range h.counts {
		seen += h.counts[i]
		if seen >= rank {
			lo, width := bucketRange(i)
			return min(max(lo+width/2, h.min), h.max)
		}
	}
	return h.max // unreachable while counts and count agree
}

// Merge adds everything other recorded to h. other is not changed; a nil other is a no-op.
func (h *Histogram) Merge(other *Histogram) {
	if other == nil || other.count == 0 {
		return
	}
	for i, c := range other.counts {
		h.counts[i] += c
	}
	if h.count == 0 || other.min < h.min {
		h.min = other.min
	}
	if other.max > h.max {
		h.max = other.max
	}
	h.count += other.count
	h.sum += other.sum
}

// Reset empties h, keeping its memory.
func (h *Histogram) Reset() { *h = Histogram{} }
