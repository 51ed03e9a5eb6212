package store_test

import (
	"errors"
	"testing"
	"time"

	"github.com/loom-gateway/loom/proxy/price"
	"github.com/loom-gateway/loom/proxy/store"
)

func TestPrices_AddedEntriesLoadBackExactly(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := t.Context()
	from := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	got, err := e.st.AddPrice(ctx, price.Entry{Model: "gpt-4o", EffectiveFrom: from, Input: 2_500_000, CachedInput: 1_250_000, Output: 10_000_000})
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != "gpt-4o:2025-01-01T00:00:00Z" || got.Currency != "USD" {
		t.Fatalf("stored entry = %+v", got)
	}
	if _, err := e.st.AddPrice(ctx, price.Entry{ID: "o3-east", Model: "o3", Deployment: "east", Currency: "EUR",
		EffectiveFrom: from, Input: 37_500, CacheWrite: 3_750_000, Output: 8_000_000, Reasoning: 12_000_001}); err != nil {
		t.Fatal(err)
	}
	all, err := e.st.Prices(ctx)
	if err != nil || len(all) != 2 {
		t.Fatalf("Prices = %v, %v", all, err)
	}
	o3 := all[1]
	if o3.ID != "o3-east" || o3.Deployment != "east" || o3.Currency != "EUR" || !o3.EffectiveFrom.Equal(from) ||
		o3.Input != 37_500 || o3.CachedInput != 0 || o3.CacheWrite != 3_750_000 || o3.Output != 8_000_000 || o3.Reasoning != 12_000_001 {
		t.Fatalf("o3 entry = %+v", o3)
	}
	if _, err := price.New(all); err != nil {
		t.Fatalf("the store's entries do not make a catalog: %v", err)
	}
}

func TestAddPrice_RefusesInvalidAndDuplicateEntries(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := t.Context()
	from := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	var fe *store.FieldError
	if _, err := e.st.AddPrice(ctx, price.Entry{Model: "m", Currency: "usd", EffectiveFrom: from}); !errors.As(err, &fe) || fe.Field != "currency" {
		t.Fatalf("bad currency: %v", err)
	}
	if _, err := e.st.AddPrice(ctx, price.Entry{Model: "m", EffectiveFrom: from, Input: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.AddPrice(ctx, price.Entry{ID: "other", Model: "m", EffectiveFrom: from, Input: 2}); !errors.Is(err, store.ErrExists) {
		t.Fatalf("same model and date: %v, want ErrExists", err)
	}
}

// Entries are immutable: once in force, an entry may have priced calls,
// and stays; one not in force yet may be withdrawn.
func TestPrices_InForceEntryCannotBeChangedOrDeleted(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := t.Context()
	past, err := e.st.AddPrice(ctx, price.Entry{Model: "m", EffectiveFrom: time.Now().Add(-time.Hour), Input: 1, Output: 1})
	if err != nil {
		t.Fatal(err)
	}
	future, err := e.st.AddPrice(ctx, price.Entry{Model: "m", EffectiveFrom: time.Now().Add(time.Hour), Input: 2, Output: 2})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.st.DeletePrice(ctx, past.ID); !errors.Is(err, store.ErrPriceInForce) {
		t.Fatalf("delete an entry in force: %v, want ErrPriceInForce", err)
	}
	if _, err := e.db.Exec(ctx, "UPDATE loom.prices SET input = 0 WHERE id = $1", future.ID); err == nil {
		t.Fatal("an entry was updated in place")
	}
	if _, err := e.db.Exec(ctx, "TRUNCATE loom.prices"); err == nil {
		t.Fatal("the prices were truncated")
	}
	if err := e.st.DeletePrice(ctx, future.ID); err != nil {
		t.Fatalf("withdraw an entry not yet in force: %v", err)
	}
	if err := e.st.DeletePrice(ctx, future.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("delete twice: %v, want ErrNotFound", err)
	}
	all, err := e.st.Prices(ctx)
	if err != nil || len(all) != 1 || all[0].ID != past.ID {
		t.Fatalf("Prices = %v, %v", all, err)
	}
}

func TestWatch_PriceChangeIsReported(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	calls := watch(t, e.st, time.Hour)
	if !within(calls, 5*time.Second) {
		t.Fatal("no call once listening")
	}
	settle(calls)
	if _, err := e.st.AddPrice(t.Context(), price.Entry{Model: "m", EffectiveFrom: time.Now(), Input: 1, Output: 1}); err != nil {
		t.Fatal(err)
	}
	if !within(calls, time.Second) {
		t.Fatal("a new price was not reported within 1s")
	}
}
