package limit

import (
	"context"
	"hash/maphash"
	"sync"
)

// Memory keeps counts in this process: the Store for a single replica, and
// the local side of a Fallback. It keeps each key's current and previous
// window (an Add may name a window that ended a moment ago) and forgets
// older ones: at the first Take or Add of a new
// window a shard drops the keys idle since before the previous window, and
// slot counts back at zero. In steady state an operation allocates nothing.
type Memory struct {
	seed   maphash.Seed
	shards [memShards]memShard
}

var _ Store = (*Memory)(nil)

// memShards spreads keys over locks, so that replicas' many cores do not
// queue on one mutex.
const memShards = 64

type memShard struct {
	mu      sync.Mutex
	windows map[string]windowCount
	slots   map[string]int64
	swept   int64 // the window of the last sweep
	_       [64]byte
}

// windowCount is a key's count in window and in the window before it.
type windowCount struct{ window, count, prev int64 }

// NewMemory returns an empty Memory store.
func NewMemory() *Memory {
	m := &Memory{seed: maphash.MakeSeed()}
	for i := range m.shards {
		m.shards[i].windows = make(map[string]windowCount)
		m.shards[i].slots = make(map[string]int64)
	}
	return m
}

func (m *Memory) shard(key string) *memShard {
	return &m.shards[maphash.String(m.seed, key)%memShards]
}

// at returns the count of window in e, first moving e forward if window is
// newer; nil if window is older than the previous one (forgotten).
func (e *windowCount) at(window int64) *int64 {
	switch {
	case window == e.window:
		return &e.count
	case window > e.window:
		e.prev = 0
		if window == e.window+1 {
			e.prev = e.count
		}
		e.window, e.count = window, 0
		return &e.count
	case window == e.window-1:
		return &e.prev
	default:
		return nil
	}
}

// sweep drops, once per window, what no operation can need any more:
// counts of keys idle since before the previous window, and zero slot
// counts. It runs under sh.mu.
func (sh *memShard) sweep(window int64) {
	if window <= sh.swept {
		return
	}
	sh.swept = window
	for k, e := range sh.windows {
		if e.window < window-1 {
			delete(sh.windows, k)
		}
	}
	for k, n := range sh.slots {
		if n <= 0 {
			delete(sh.slots, k)
		}
	}
}

// Take implements Store. A window older than the previous one counts from
// zero and records nothing.
func (m *Memory) Take(_ context.Context, key string, window int64, n, limit int64) (int64, bool, error) {
	sh := m.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sh.sweep(window)
	e := sh.windows[key]
	c := e.at(window)
	if c == nil {
		return n, n <= limit, nil
	}
	if *c+n > limit {
		count := *c
		sh.windows[key] = e
		return count, false, nil
	}
	*c += n
	sh.windows[key] = e
	return *c, true, nil
}

// Add implements Store. An Add to a window older than the previous one is
// dropped.
func (m *Memory) Add(_ context.Context, key string, window int64, n int64) error {
	sh := m.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sh.sweep(window)
	e := sh.windows[key]
	if c := e.at(window); c != nil {
		*c = max(*c+n, 0)
		sh.windows[key] = e
	}
	return nil
}

// Acquire implements Store.
func (m *Memory) Acquire(_ context.Context, key string, limit int64) (int64, bool, error) {
	sh := m.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	n := sh.slots[key]
	if n >= limit {
		return n, false, nil
	}
	n++
	sh.slots[key] = n
	return n, true, nil
}

// Release implements Store. Releasing a slot not held does nothing.
func (m *Memory) Release(_ context.Context, key string) error {
	sh := m.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if n := sh.slots[key]; n > 0 {
		sh.slots[key] = n - 1
	}
	return nil
}

// len counts the keys kept, for tests.
func (m *Memory) len() (windows, slots int) {
	for i := range m.shards {
		sh := &m.shards[i]
		sh.mu.Lock()
		windows += len(sh.windows)
		slots += len(sh.slots)
		sh.mu.Unlock()
	}
	return windows, slots
}
