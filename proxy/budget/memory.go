package budget

import (
	"context"
	"hash/maphash"
	"sync"
	"time"
)

// Memory keeps counters in this process: the Store for a single replica,
// and the local side of a Fallback. A tenant's counters share one lock, so
// an operation over a tenant's and its key's budgets is atomic. A counter
// is forgotten an hour after its period ended (a sweep at most once an
// hour per shard), so a call still running then settles into nothing. In
// steady state an operation allocates nothing.
type Memory struct {
	seed   maphash.Seed
	now    func() time.Time
	shards [memShards]memShard
}

var _ Store = (*Memory)(nil)

// memShards spreads tenants over locks, so that many cores do not queue on
// one mutex.
const memShards = 64

// forgetAfter is how long after its period a counter is kept: long enough
// for the calls of the period's last moments to settle.
const forgetAfter = time.Hour

type memShard struct {
	mu    sync.Mutex
	m     map[counterID]usage
	swept int64 // Unix seconds of the last sweep
	_     [64]byte
}

type counterID struct {
	subject string
	period  Period
	start   int64
}

type usage struct {
	spent, reserved int64
	end             int64
	alerted         bool
}

// NewMemory returns an empty Memory store.
func NewMemory() *Memory { return newMemory(time.Now) }

func newMemory(now func() time.Time) *Memory {
	m := &Memory{seed: maphash.MakeSeed(), now: now}
	for i := range m.shards {
		m.shards[i].m = make(map[counterID]usage)
	}
	return m
}

func (m *Memory) lock(tenant string) *memShard {
	sh := &m.shards[maphash.String(m.seed, tenant)%memShards]
	sh.mu.Lock()
	if now := m.now().Unix(); now-sh.swept >= int64(forgetAfter/time.Second) {
		sh.swept = now
		for id, u := range sh.m {
			if u.end+int64(forgetAfter/time.Second) < now {
				delete(sh.m, id)
			}
		}
	}
	return sh
}

// Reserve implements Store.
func (m *Memory) Reserve(_ context.Context, cs Counters, estimate int64) (Result, error) {
	res := Result{Refused: -1}
	sh := m.lock(cs.Tenant)
	defer sh.mu.Unlock()
	var us [MaxCounters]usage
	for i := range cs.N {
		c := &cs.C[i]
		us[i] = sh.m[counterID{c.Subject, c.Period, c.Start}]
		if res.Refused < 0 && estimate > c.Limit-us[i].spent-us[i].reserved {
			res.Refused = i
		}
	}
	for i := range cs.N {
		c, u := &cs.C[i], &us[i]
		if res.Refused < 0 {
			u.reserved += estimate
			u.end = c.End
			res.Alerted[i] = u.cross(c.AlertAt)
			sh.m[counterID{c.Subject, c.Period, c.Start}] = *u
		}
		res.Spent[i], res.Reserved[i] = u.spent, u.reserved
	}
	return res, nil
}

// Settle implements Store.
func (m *Memory) Settle(_ context.Context, cs Counters, reserved, actual int64) (Result, error) {
	res := Result{Refused: -1}
	sh := m.lock(cs.Tenant)
	defer sh.mu.Unlock()
	for i := range cs.N {
		c := &cs.C[i]
		id := counterID{c.Subject, c.Period, c.Start}
		u, ok := sh.m[id]
		if !ok {
			continue // forgotten, or reserved in another store
		}
		u.reserved = max(u.reserved-reserved, 0)
		u.spent += actual
		res.Alerted[i] = u.cross(c.AlertAt)
		sh.m[id] = u
		res.Spent[i], res.Reserved[i] = u.spent, u.reserved
	}
	return res, nil
}

// cross marks u alerted and reports true the first time its spend plus
// reservations reach at.
func (u *usage) cross(at int64) bool {
	if at <= 0 || u.alerted || u.spent+u.reserved < at {
		return false
	}
	u.alerted = true
	return true
}

// len counts the counters kept, for tests.
func (m *Memory) len() int {
	n := 0
	for i := range m.shards {
		sh := &m.shards[i]
		sh.mu.Lock()
		n += len(sh.m)
		sh.mu.Unlock()
	}
	return n
}
