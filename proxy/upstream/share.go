package upstream

import (
	"errors"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// Why a call got no place in a deployment's pool, for errors.Is.
var (
	// ErrShareExceeded: the tenant holds its share of the deployment's
	// connections, and none came free in time.
	ErrShareExceeded = errors.New("upstream: tenant holds its share of the deployment's connections")
	// ErrSaturated: every connection of the deployment is in use, and none
	// came free in time.
	ErrSaturated = errors.New("upstream: every connection of the deployment is in use")
)

// share divides a deployment's connections between tenants: at most
// perTenant in use by one tenant, at most total by all. Places are tokens in
// buffered channels, so taking one is a non-blocking send and waiting for
// one is a select with a deadline. A tenant that floods a deployment then
// waits on its own share (and is answered 429) while the others are served;
// before, it took every pooled connection and the others failed at once
// with fasthttp's ErrNoFreeConns.
type share struct {
	total     chan struct{}
	perTenant int
	// waiting counts the calls blocked in Acquire now (the pool's queue,
	// for loom_upstream_connections_waiting).
	waiting atomic.Int64

	mu      sync.RWMutex
	tenants map[string]chan struct{}
}

func newShare(maxConns int, tenantShare float64) *share {
	if maxConns <= 0 {
		maxConns = 512 // fasthttp's default per host
	}
	if tenantShare <= 0 || tenantShare > 1 {
		tenantShare = 1
	}
	per := max(1, int(math.Ceil(tenantShare*float64(maxConns))))
	return &share{total: make(chan struct{}, maxConns), perTenant: min(per, maxConns), tenants: map[string]chan struct{}{}}
}

func (s *share) tenant(id string) chan struct{} {
	s.mu.RLock()
	ch, ok := s.tenants[id]
	s.mu.RUnlock()
	if ok {
		return ch
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if ch, ok = s.tenants[id]; !ok {
		ch = make(chan struct{}, s.perTenant)
		s.tenants[id] = ch
	}
	return ch
}

// Slot is one held place in a deployment's pool. The zero Slot holds
// nothing.
type Slot struct {
	tenant, total chan struct{}
}

// Release gives the place back. It is safe to call more than once: only the
// first call releases.
func (s *Slot) Release() {
	if s.total == nil {
		return
	}
	<-s.total
	<-s.tenant
	s.tenant, s.total = nil, nil
}

// Acquire takes a place in the deployment's pool for tenantID, waiting at
// most wait for one: first within the tenant's share, then within the whole
// pool. The errors wrap ErrShareExceeded or ErrSaturated. Without waiting
// it allocates nothing.
func (d *Deployment) Acquire(tenantID string, wait time.Duration) (Slot, error) {
	sh := d.share
	t := sh.tenant(tenantID)
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	// Both waits share one deadline: a call waits at most wait in all.
	expired := func() <-chan time.Time {
		if timer == nil {
			timer = time.NewTimer(wait)
		}
		return timer.C
	}
	select {
	case t <- struct{}{}:
	default:
		sh.waiting.Add(1)
		select {
		case t <- struct{}{}:
			sh.waiting.Add(-1)
		case <-expired():
			sh.waiting.Add(-1)
			return Slot{}, ErrShareExceeded
		}
	}
	select {
	case sh.total <- struct{}{}:
	default:
		sh.waiting.Add(1)
		select {
		case sh.total <- struct{}{}:
			sh.waiting.Add(-1)
		case <-expired():
			sh.waiting.Add(-1)
			<-t
			return Slot{}, ErrSaturated
		}
	}
	return Slot{tenant: t, total: sh.total}, nil
}

// Pool reports the deployment's places in use (calls holding a
// connection of its pool) and the calls waiting for one now.
func (d *Deployment) Pool() (inUse, waiting int) {
	return len(d.share.total), int(d.share.waiting.Load())
}

// InUse reports how many places tenantID holds in the deployment's pool.
func (d *Deployment) InUse(tenantID string) int { return len(d.share.tenant(tenantID)) }

// TenantShare is the most places one tenant may hold at once.
func (d *Deployment) TenantShare() int { return d.share.perTenant }

func (s *share) capacity() int { return cap(s.total) }
