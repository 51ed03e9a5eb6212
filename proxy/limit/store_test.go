package limit

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// testStore is the conformance suite every Store passes. newStore returns
// an empty store for one subtest.
func testStore(t *testing.T, newStore func(t *testing.T) Store) {
	ctx := context.Background()
	const w = 29_000_000 // a minute in 2025

	take := func(t *testing.T, s Store, key string, window, n, limit, wantCount int64, wantOK bool) {
		t.Helper()
		c, ok, err := s.Take(ctx, key, window, n, limit)
		if err != nil {
			t.Fatalf("Take(%s, %d, n=%d, limit=%d): %v", key, window, n, limit, err)
		}
		if c != wantCount || ok != wantOK {
			t.Fatalf("Take(%s, %d, n=%d, limit=%d) = %d, %v; want %d, %v", key, window, n, limit, c, ok, wantCount, wantOK)
		}
	}
	add := func(t *testing.T, s Store, key string, window, n int64) {
		t.Helper()
		if err := s.Add(ctx, key, window, n); err != nil {
			t.Fatalf("Add(%s, %d, %d): %v", key, window, n, err)
		}
	}
	acquire := func(t *testing.T, s Store, key string, limit, wantCount int64, wantOK bool) {
		t.Helper()
		c, ok, err := s.Acquire(ctx, key, limit)
		if err != nil {
			t.Fatalf("Acquire(%s, %d): %v", key, limit, err)
		}
		if c != wantCount || ok != wantOK {
			t.Fatalf("Acquire(%s, %d) = %d, %v; want %d, %v", key, limit, c, ok, wantCount, wantOK)
		}
	}
	release := func(t *testing.T, s Store, key string) {
		t.Helper()
		if err := s.Release(ctx, key); err != nil {
			t.Fatalf("Release(%s): %v", key, err)
		}
	}

	t.Run("Take_CountsUpToTheLimit_ThenRefusesWithTheCount", func(t *testing.T) {
		s := newStore(t)
		take(t, s, "a", w, 1, 3, 1, true)
		take(t, s, "a", w, 1, 3, 2, true)
		take(t, s, "a", w, 1, 3, 3, true)
		take(t, s, "a", w, 1, 3, 3, false)
		take(t, s, "a", w, 1, 3, 3, false)
	})
	t.Run("Take_MoreThanRemains_RefusedAndCountUnchanged", func(t *testing.T) {
		s := newStore(t)
		take(t, s, "a", w, 60, 100, 60, true)
		take(t, s, "a", w, 41, 100, 60, false)
		take(t, s, "a", w, 40, 100, 100, true)
		take(t, s, "a", w, 0, 100, 100, true)
		take(t, s, "b", w, 101, 100, 0, false)
	})
	t.Run("Take_KeysAndWindowsAreSeparate", func(t *testing.T) {
		s := newStore(t)
		take(t, s, "a", w, 2, 2, 2, true)
		take(t, s, "b", w, 1, 2, 1, true)
		take(t, s, "a", w+1, 1, 2, 1, true)
		take(t, s, "a", w, 1, 2, 2, false)
	})
	t.Run("Add_GivesBackAndGoesOverWithoutCheck", func(t *testing.T) {
		s := newStore(t)
		take(t, s, "a", w, 3, 3, 3, true)
		add(t, s, "a", w, -2)
		take(t, s, "a", w, 2, 3, 3, true)
		add(t, s, "a", w, 10)
		take(t, s, "a", w, 0, 3, 13, false)
	})
	t.Run("Add_NeverBelowZero", func(t *testing.T) {
		s := newStore(t)
		add(t, s, "a", w, -5)
		take(t, s, "a", w, 1, 1, 1, true)
		take(t, s, "a", w, 1, 1, 1, false)
	})
	t.Run("WindowRollover_NewWindowStartsAtZero_PreviousStillSettles", func(t *testing.T) {
		s := newStore(t)
		take(t, s, "a", w, 5, 5, 5, true)
		take(t, s, "a", w+1, 1, 5, 1, true)
		add(t, s, "a", w, -3) // a reservation of the previous minute settled late
		take(t, s, "a", w, 0, 5, 2, true)
		take(t, s, "a", w+1, 0, 5, 1, true)
		take(t, s, "a", w+2, 5, 5, 5, true)
	})
	t.Run("Acquire_UpToTheLimit_ReleaseFreesOne", func(t *testing.T) {
		s := newStore(t)
		acquire(t, s, "a", 2, 1, true)
		acquire(t, s, "a", 2, 2, true)
		acquire(t, s, "a", 2, 2, false)
		acquire(t, s, "b", 2, 1, true)
		release(t, s, "a")
		acquire(t, s, "a", 2, 2, true)
		acquire(t, s, "a", 3, 3, true)
	})
	t.Run("Release_MoreThanHeld_DoesNothing", func(t *testing.T) {
		s := newStore(t)
		release(t, s, "a")
		acquire(t, s, "a", 1, 1, true)
		release(t, s, "a")
		release(t, s, "a")
		acquire(t, s, "a", 1, 1, true)
		acquire(t, s, "a", 1, 1, false)
	})
	// The Limiter's settling on this store: the reservations of concurrent
	// calls never together pass the TPM, and what a call used beyond its
	// reservation counts in the minute it ended in, so calls that outlive
	// their minute cannot walk past the next one's limit.
	t.Run("Limiter_FiveConcurrentCallsAcrossAMinute_UseAtMostTheLimitPlusOneReservation", func(t *testing.T) {
		s := newStore(t)
		clk := newClock(50 * time.Second)
		l := New(s, clk.now)
		key := &Subject{ID: "k:five", Rule: Rule{TPM: 1000}}
		const reserve, use = 300, 450
		admitFive := func() []Ticket {
			var mu sync.Mutex
			var admitted []Ticket
			var wg sync.WaitGroup
			for range 5 {
				wg.Go(func() {
					if tk, d := l.Admit(ctx, key, nil, reserve, false); d.Err != nil {
						t.Error(d.Err)
					} else if d.OK {
						mu.Lock()
						admitted = append(admitted, tk)
						mu.Unlock()
					}
				})
			}
			wg.Wait()
			return admitted
		}
		first := admitFive()
		if len(first) != 3 {
			t.Fatalf("%d of five calls reserving %d admitted under a TPM of 1000, want 3", len(first), reserve)
		}
		// They end in the next minute, each having used more than it
		// reserved; then five more calls arrive in that minute.
		clk.advance(15 * time.Second)
		for _, tk := range first {
			l.Settle(ctx, tk, use)
		}
		second := admitFive()
		used := int64(len(first))*(use-reserve) + int64(len(second))*use
		if used > 1000+reserve {
			t.Fatalf("the second minute carried %d tokens (%d calls admitted in it), past the limit 1000 plus one reservation",
				used, len(second))
		}
		if got := count(t, s, "k:five:tokens", clk.now()); got != int64(len(first))*(use-reserve)+int64(len(second))*reserve {
			t.Fatalf("second minute's count %d", got)
		}
	})
	t.Run("Limiter_SettleInTheSameMinute_GivesBackWhatWasNotUsed", func(t *testing.T) {
		s := newStore(t)
		clk := newClock(10 * time.Second)
		l := New(s, clk.now)
		key := &Subject{ID: "k:back", Rule: Rule{TPM: 1000}}
		tk, d := l.Admit(ctx, key, nil, 800, false)
		if !d.OK {
			t.Fatalf("%+v", d)
		}
		l.Settle(ctx, tk, 100)
		if got := count(t, s, "k:back:tokens", clk.now()); got != 100 {
			t.Fatalf("count %d after settling 100 of 800, want 100", got)
		}
		// Settled after its minute, a call gives nothing back to a minute
		// that is over, and takes nothing from the current one.
		tk, _ = l.Admit(ctx, key, nil, 800, false)
		before := clk.now()
		clk.advance(time.Minute)
		l.Settle(ctx, tk, 100)
		if got := count(t, s, "k:back:tokens", before); got != 900 {
			t.Fatalf("ended minute's count %d, want 900", got)
		}
		if got := count(t, s, "k:back:tokens", clk.now()); got != 0 {
			t.Fatalf("current minute's count %d, want 0", got)
		}
	})
	t.Run("Concurrent_NeverPastTheLimit", func(t *testing.T) {
		s := newStore(t)
		const goroutines, each, limit = 16, 40, 100
		var took, acquired atomic.Int64
		var wg sync.WaitGroup
		for range goroutines {
			wg.Go(func() {
				for range each {
					if _, ok, err := s.Take(ctx, "a", w, 1, limit); err != nil {
						t.Error(err)
						return
					} else if ok {
						took.Add(1)
					}
				}
				if _, ok, err := s.Acquire(ctx, "a", 5); err != nil {
					t.Error(err)
				} else if ok {
					acquired.Add(1)
				}
			})
		}
		wg.Wait()
		if took.Load() != limit || acquired.Load() != 5 {
			t.Fatalf("took %d, acquired %d; want %d, 5", took.Load(), acquired.Load(), limit)
		}
		take(t, s, "a", w, 0, limit, limit, true)
	})
}

func TestMemory_Conformance(t *testing.T) {
	testStore(t, func(*testing.T) Store { return NewMemory() })
}

func TestFallback_HealthyPrimary_Conformance(t *testing.T) {
	testStore(t, func(*testing.T) Store { return Fallback(NewMemory(), NewMemory()) })
}

// fakeStore is a Store whose methods are functions; nil ones panic.
type fakeStore struct {
	TakeFunc    func(ctx context.Context, key string, window, n, limit int64) (int64, bool, error)
	AddFunc     func(ctx context.Context, key string, window, n int64) error
	AcquireFunc func(ctx context.Context, key string, limit int64) (int64, bool, error)
	ReleaseFunc func(ctx context.Context, key string) error
}

func (f *fakeStore) Take(ctx context.Context, key string, window, n, limit int64) (int64, bool, error) {
	return f.TakeFunc(ctx, key, window, n, limit)
}
func (f *fakeStore) Add(ctx context.Context, key string, window, n int64) error {
	return f.AddFunc(ctx, key, window, n)
}
func (f *fakeStore) Acquire(ctx context.Context, key string, limit int64) (int64, bool, error) {
	return f.AcquireFunc(ctx, key, limit)
}
func (f *fakeStore) Release(ctx context.Context, key string) error { return f.ReleaseFunc(ctx, key) }

// failingStore fails every call with err.
func failingStore(err error) *fakeStore {
	return &fakeStore{
		TakeFunc:    func(context.Context, string, int64, int64, int64) (int64, bool, error) { return 0, false, err },
		AddFunc:     func(context.Context, string, int64, int64) error { return err },
		AcquireFunc: func(context.Context, string, int64) (int64, bool, error) { return 0, false, err },
		ReleaseFunc: func(context.Context, string) error { return err },
	}
}
