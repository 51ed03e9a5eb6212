package limit

import (
	"context"
	"strconv"
	"testing"
)

// sameShard returns a key other than key that m keeps in key's shard.
func sameShard(m *Memory, key string) string {
	for i := 0; ; i++ {
		k := "other-" + strconv.Itoa(i)
		if m.shard(k) == m.shard(key) {
			return k
		}
	}
}

func TestMemory_ForgetsWindowsOlderThanThePrevious(t *testing.T) {
	ctx := context.Background()
	m := NewMemory()
	other := sameShard(m, "old")
	mustTake := func(key string, window int64) {
		t.Helper()
		if _, ok, err := m.Take(ctx, key, window, 1, 10); !ok || err != nil {
			t.Fatalf("Take(%s, %d) refused: %v", key, window, err)
		}
	}
	mustTake("old", 10)
	if _, _, err := m.Acquire(ctx, "old", 1); err != nil {
		t.Fatal(err)
	}
	if err := m.Release(ctx, "old"); err != nil {
		t.Fatal(err)
	}
	mustTake(other, 11)
	if windows, _ := m.len(); windows != 2 {
		t.Fatalf("kept %d keys in window 11, want 2 (window 10 is the previous)", windows)
	}
	mustTake(other, 12)
	if windows, slots := m.len(); windows != 1 || slots != 0 {
		t.Fatalf("kept %d keys and %d slot counts in window 12, want 1 and 0", windows, slots)
	}
	// An Add for a forgotten window is dropped; a Take counts from zero.
	if err := m.Add(ctx, other, 9, 5); err != nil {
		t.Fatal(err)
	}
	if c, ok, _ := m.Take(ctx, other, 9, 1, 1); c != 1 || !ok {
		t.Fatalf("Take in a forgotten window = %d, %v; want 1, true", c, ok)
	}
	if c, _, _ := m.Take(ctx, other, 12, 0, 10); c != 1 {
		t.Fatalf("window 12 count = %d after work on window 9, want 1", c)
	}
}

func TestMemory_SteadyState_AllocatesNothing(t *testing.T) {
	ctx := context.Background()
	m := NewMemory()
	window := int64(100)
	allocs := testing.AllocsPerRun(1000, func() {
		window++ // every window new: rollover and sweeps included
		m.Take(ctx, "k:1:requests", window, 1, 10)
		m.Take(ctx, "k:1:tokens", window, 100, 1000)
		m.Add(ctx, "k:1:tokens", window, -40)
		m.Acquire(ctx, "k:1:streams", 2)
		m.Release(ctx, "k:1:streams")
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per round of Take, Add, Acquire, Release; want 0", allocs)
	}
}
