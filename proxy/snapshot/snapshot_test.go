package snapshot

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/loom-gateway/loom/proxy/config"
)

// source hands out whatever load returns, and calls changed each time a
// test pokes it.
type source struct {
	load  func() ([]config.Tenant, error)
	pokes chan struct{}
}

func (s *source) Load(context.Context) ([]config.Tenant, error) { return s.load() }
func (s *source) Watch(ctx context.Context, _ time.Duration, changed func()) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.pokes:
			changed()
		}
	}
}

type target struct {
	mu       sync.Mutex
	tenants  []config.Tenant
	degraded string
	done     chan struct{}
}

func (t *target) SetTenants(ts []config.Tenant) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(ts) > 0 && ts[0].ID == "invalid" {
		return errors.New("tenants[0]: invalid")
	}
	t.tenants = ts
	return nil
}

func (t *target) SetDegraded(reason string) {
	t.mu.Lock()
	t.degraded = reason
	t.mu.Unlock()
	t.done <- struct{}{}
}

func TestFollow_KeepsLastGoodSnapshotAndSaysDegraded(t *testing.T) {
	var mu sync.Mutex
	next := []config.Tenant{{ID: "a"}}
	var fail error
	src := &source{pokes: make(chan struct{}), load: func() ([]config.Tenant, error) {
		mu.Lock()
		defer mu.Unlock()
		return next, fail
	}}
	dst := &target{done: make(chan struct{}, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go Follow(ctx, src, dst, time.Second, slog.New(slog.DiscardHandler))
	step := func(tenants []config.Tenant, err error) (string, []config.Tenant) {
		mu.Lock()
		next, fail = tenants, err
		mu.Unlock()
		src.pokes <- struct{}{}
		<-dst.done
		dst.mu.Lock()
		defer dst.mu.Unlock()
		return dst.degraded, dst.tenants
	}
	if d, ts := step([]config.Tenant{{ID: "a"}}, nil); d != "" || ts[0].ID != "a" {
		t.Fatalf("good load: degraded %q tenants %v", d, ts)
	}
	if d, ts := step(nil, errors.New("connection refused")); !strings.Contains(d, "tenant store unreadable") || ts[0].ID != "a" {
		t.Fatalf("store down: degraded %q tenants %v", d, ts)
	}
	if d, ts := step([]config.Tenant{{ID: "invalid"}}, nil); d == "" || ts[0].ID != "a" {
		t.Fatalf("invalid snapshot must be refused whole: degraded %q tenants %v", d, ts)
	}
	if d, ts := step([]config.Tenant{{ID: "b"}}, nil); d != "" || ts[0].ID != "b" {
		t.Fatalf("store back: degraded %q tenants %v", d, ts)
	}
}
