package store_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/loom-gateway/loom/proxy/store"
	"github.com/loom-gateway/loom/proxy/tenancy"
)

func TestBudgets_SetOnTenantAndKey_ReadBackAndLoaded_InvalidRefusedByField(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := t.Context()
	if err := e.st.CreateTenant(ctx, store.TenantSpec{ID: "acme"}); err != nil {
		t.Fatal(err)
	}
	if err := e.st.SetModels(ctx, "acme", []tenancy.Model{{Name: "m", Deployment: "openai"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.CreateKey(ctx, "acme", store.KeySpec{ID: "acme-ci"}); err != nil {
		t.Fatal(err)
	}
	tb := []tenancy.Budget{{Period: "day", Limit: "25.00", AlertAt: 0.9}, {Period: "month", Limit: "500"}}
	kb := []tenancy.Budget{{Period: "day", Limit: "2.50"}}
	if err := e.st.SetTenantBudgets(ctx, "acme", tb); err != nil {
		t.Fatal(err)
	}
	if err := e.st.SetKeyBudgets(ctx, "acme-ci", kb); err != nil {
		t.Fatal(err)
	}
	got, err := e.st.GetTenant(ctx, "acme")
	if err != nil || !slices.Equal(got.Budgets, tb) {
		t.Fatalf("tenant budgets = %+v, %v; want %+v", got.Budgets, err, tb)
	}
	keys, err := e.st.ListKeys(ctx, "acme")
	if err != nil || len(keys) != 1 || !slices.Equal(keys[0].Budgets, kb) {
		t.Fatalf("key budgets = %+v, %v; want %+v", keys, err, kb)
	}
	loaded, err := e.st.Load(ctx)
	if err != nil || len(loaded) != 1 || !slices.Equal(loaded[0].Budgets, tb) || !slices.Equal(loaded[0].Keys[0].Budgets, kb) {
		t.Fatalf("Load = %+v, %v", loaded, err)
	}

	err = e.st.SetTenantBudgets(ctx, "acme", []tenancy.Budget{{Period: "week", Limit: "1"}, {Period: "day", Limit: "1e3"}})
	var fe *store.FieldError
	if !errors.Is(err, store.ErrInvalid) || !errors.As(err, &fe) || fe.Field != "budgets[0].period" {
		t.Fatalf("invalid budgets = %v; want ErrInvalid naming budgets[0].period", err)
	}
	if err := e.st.SetTenantBudgets(ctx, "nope", tb); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("budgets of a missing tenant = %v, want ErrNotFound", err)
	}
	if err := e.st.SetKeyBudgets(ctx, "nope", kb); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("budgets of a missing key = %v, want ErrNotFound", err)
	}
	if err := e.st.SetTenantBudgets(ctx, "acme", nil); err != nil {
		t.Fatal(err)
	}
	if got, _ := e.st.GetTenant(ctx, "acme"); got.Budgets != nil {
		t.Fatalf("after removing them, budgets = %+v", got.Budgets)
	}
}
