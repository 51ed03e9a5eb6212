package snapshot

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/loom-gateway/loom/proxy/logtest"
	"github.com/loom-gateway/loom/proxy/tenancy"
)

// source hands out whatever load returns, and calls changed each time a
// test pokes it.
type source struct {
	load  func() ([]tenancy.Tenant, error)
	pokes chan struct{}
}

func (s *source) Load(context.Context) ([]tenancy.Tenant, error) { return s.load() }
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
	tenants  []tenancy.Tenant
	degraded string
	done     chan struct{}
}

func (t *target) SetTenants(ts []tenancy.Tenant) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	// Like the gateway: a bad tenant is quarantined, the rest applied.
	var good []tenancy.Tenant
	var errs []error
	for _, tc := range ts {
		if tc.ID == "invalid" {
			errs = append(errs, errors.New(`tenant invalid quarantined: models[0].deployment: no deployment named "x"`))
			continue
		}
		good = append(good, tc)
	}
	t.tenants = good
	return errors.Join(errs...)
}

func (t *target) SetDegraded(reason string) {
	t.mu.Lock()
	t.degraded = reason
	t.mu.Unlock()
	t.done <- struct{}{}
}

func TestFollow_StoreDown_KeepsLastGoodSnapshotAndSaysDegraded(t *testing.T) {
	var mu sync.Mutex
	next := []tenancy.Tenant{{ID: "a"}}
	var fail error
	src := &source{pokes: make(chan struct{}), load: func() ([]tenancy.Tenant, error) {
		mu.Lock()
		defer mu.Unlock()
		return next, fail
	}}
	dst := &target{done: make(chan struct{}, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go Follow(ctx, src, dst, time.Second, slog.New(slog.DiscardHandler), nil)
	step := func(tenants []tenancy.Tenant, err error) (string, []tenancy.Tenant) {
		mu.Lock()
		next, fail = tenants, err
		mu.Unlock()
		src.pokes <- struct{}{}
		<-dst.done
		dst.mu.Lock()
		defer dst.mu.Unlock()
		return dst.degraded, dst.tenants
	}
	if d, ts := step([]tenancy.Tenant{{ID: "a"}}, nil); d != "" || ts[0].ID != "a" {
		t.Fatalf("good load: degraded %q tenants %v", d, ts)
	}
	if d, ts := step(nil, errors.New("connection refused")); !strings.Contains(d, "tenant store unreadable") || ts[0].ID != "a" {
		t.Fatalf("store down: degraded %q tenants %v", d, ts)
	}
	if d, ts := step([]tenancy.Tenant{{ID: "b"}}, nil); d != "" || ts[0].ID != "b" {
		t.Fatalf("store back: degraded %q tenants %v", d, ts)
	}
}

func TestFollow_BadTenant_OthersAppliedAndReadyzNamesTheTenantNotTheStore(t *testing.T) {
	var mu sync.Mutex
	var next []tenancy.Tenant
	var fail error
	src := &source{pokes: make(chan struct{}), load: func() ([]tenancy.Tenant, error) {
		mu.Lock()
		defer mu.Unlock()
		return next, fail
	}}
	dst := &target{done: make(chan struct{}, 1)}
	log := &logtest.Buffer{}
	go Follow(t.Context(), src, dst, time.Second, slog.New(slog.NewTextHandler(log, nil)), nil)
	step := func(tenants []tenancy.Tenant, err error) (string, []tenancy.Tenant) {
		mu.Lock()
		next, fail = tenants, err
		mu.Unlock()
		src.pokes <- struct{}{}
		<-dst.done
		dst.mu.Lock()
		defer dst.mu.Unlock()
		return dst.degraded, dst.tenants
	}
	const want = `tenant invalid quarantined: models[0].deployment: no deployment named "x"`
	d, ts := step([]tenancy.Tenant{{ID: "a"}, {ID: "invalid"}, {ID: "b"}}, nil)
	if d != want || len(ts) != 2 || ts[1].ID != "b" {
		t.Fatalf("bad tenant: degraded %q, tenants %v; want %q and a, b served", d, ts, want)
	}
	step([]tenancy.Tenant{{ID: "a"}, {ID: "invalid"}}, nil)
	if n := strings.Count(log.String(), "tenants quarantined"); n != 1 {
		t.Errorf("the same quarantine logged %d times; want once:\n%s", n, log.String())
	}
	if d, _ := step(nil, errors.New("connection refused")); !strings.Contains(d, "tenant store unreadable") || !strings.Contains(d, want) {
		t.Errorf("store down with a tenant quarantined: degraded %q; want both said", d)
	}
	if d, ts := step([]tenancy.Tenant{{ID: "a"}}, nil); d != "" || len(ts) != 1 {
		t.Errorf("fixed: degraded %q tenants %v", d, ts)
	}
}
