package limit

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
)

// subjectKeys are the store keys of one subject, built once so that Admit
// does not concatenate strings per request.
type subjectKeys struct {
	requests, tokens, streams string
	used                      atomic.Int64 // the last window it was looked up in
}

// keyCache maps subject IDs to their store keys. Entries unused for two
// windows are dropped, so IDs that left the config do not pile up.
type keyCache struct {
	seed   maphash.Seed
	shards [keyShards]keyShard
}

const keyShards = 16

type keyShard struct {
	mu    sync.RWMutex
	m     map[string]*subjectKeys
	swept int64 // the window of the last sweep
	_     [64]byte
}

func (c *keyCache) init() {
	c.seed = maphash.MakeSeed()
	for i := range c.shards {
		c.shards[i].m = make(map[string]*subjectKeys)
	}
}

// get returns id's keys, marking them used in window. After the first
// lookup in a window it takes only a read lock.
func (c *keyCache) get(id string, window int64) *subjectKeys {
	sh := &c.shards[maphash.String(c.seed, id)%keyShards]
	sh.mu.RLock()
	k := sh.m[id]
	sh.mu.RUnlock()
	if k != nil && k.used.Load() >= window {
		return k
	}
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if window > sh.swept {
		for id, k := range sh.m {
			if k.used.Load() < window-1 {
				delete(sh.m, id)
			}
		}
		sh.swept = window
	}
	k = sh.m[id]
	if k == nil {
		k = &subjectKeys{requests: id + ":requests", tokens: id + ":tokens", streams: id + ":streams"}
		sh.m[id] = k
	}
	if window > k.used.Load() {
		k.used.Store(window)
	}
	return k
}
