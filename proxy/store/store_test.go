package store_test

import (
	"encoding/hex"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/loom-gateway/loom/proxy/store"
	"github.com/loom-gateway/loom/proxy/tenancy"
	"github.com/loom-gateway/loom/proxy/tenant"
)

func ptr[T any](v T) *T { return &v }

func TestTenants_CRUDRoundTrip(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := t.Context()
	spec := store.TenantSpec{ID: "acme", Content: tenancy.ContentPolicy{Capture: true, MaxBytes: 4096},
		Limits: tenancy.Limits{RequestsPerMinute: 60, TokensPerMinute: 1000, ConcurrentStreams: 2}}
	if err := e.st.CreateTenant(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if err := e.st.CreateTenant(ctx, spec); !errors.Is(err, store.ErrExists) {
		t.Errorf("second create = %v, want ErrExists", err)
	}
	for _, bad := range []store.TenantSpec{{ID: ""}, {ID: "a/b"}, {ID: "x", Limits: tenancy.Limits{TokensPerMinute: -1}}} {
		if err := e.st.CreateTenant(ctx, bad); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("create %+v = %v, want ErrInvalid", bad, err)
		}
	}
	got, err := e.st.GetTenant(ctx, "acme")
	if err != nil || got.Content != spec.Content || got.Limits != spec.Limits || got.CreatedAt.IsZero() {
		t.Fatalf("get = %+v, %v; want %+v", got, err, spec)
	}

	upd, err := e.st.UpdateTenant(ctx, "acme", store.TenantPatch{Capture: ptr(false), TokensPerMinute: ptr(0)})
	want := tenancy.Limits{RequestsPerMinute: 60, ConcurrentStreams: 2}
	if err != nil || upd.Content.Capture || upd.Content.MaxBytes != 4096 || upd.Limits != want || !upd.UpdatedAt.After(got.UpdatedAt) {
		t.Errorf("update = %+v, %v; want capture off, tpm 0, the rest kept, updated_at later", upd, err)
	}
	if _, err := e.st.UpdateTenant(ctx, "nope", store.TenantPatch{}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("update missing = %v, want ErrNotFound", err)
	}

	models := []tenancy.Model{{Name: "gpt-4o", Deployment: "azure", UpstreamModel: "my-4o"}, {Name: "gpt-4o-mini", Deployment: "openai"}}
	if err := e.st.SetModels(ctx, "acme", models); err != nil {
		t.Fatal(err)
	}
	if err := e.st.SetModels(ctx, "acme", []tenancy.Model{{Name: "a", Deployment: "x"}, {Name: "a", Deployment: "y"}}); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("duplicate model = %v, want ErrInvalid", err)
	}
	if err := e.st.SetModels(ctx, "nope", models); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("models of missing tenant = %v, want ErrNotFound", err)
	}
	if err := e.st.SetCredential(ctx, "acme", "openai", "sk-upstream"); err != nil {
		t.Fatal(err)
	}
	if err := e.st.SetCredential(ctx, "nope", "openai", "sk-upstream"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("credential of missing tenant = %v, want ErrNotFound", err)
	}
	if err := e.st.CreateTenant(ctx, store.TenantSpec{ID: "globex"}); err != nil {
		t.Fatal(err)
	}
	list, err := e.st.ListTenants(ctx)
	if err != nil || len(list) != 2 || list[0].ID != "acme" || list[1].ID != "globex" {
		t.Fatalf("list = %+v, %v", list, err)
	}
	if !reflect.DeepEqual(list[0].Models, models) || !slices.Equal(list[0].Credentials, []string{"openai"}) || list[1].Models != nil {
		t.Errorf("acme models %+v credentials %v; globex models %+v", list[0].Models, list[0].Credentials, list[1].Models)
	}

	if err := e.st.DeleteCredential(ctx, "acme", "openai"); err != nil {
		t.Fatal(err)
	}
	if err := e.st.DeleteCredential(ctx, "acme", "openai"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second credential delete = %v, want ErrNotFound", err)
	}
	if _, err := e.st.CreateKey(ctx, "acme", store.KeySpec{ID: "acme-1"}); err != nil {
		t.Fatal(err)
	}
	if err := e.st.DeleteTenant(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	if err := e.st.DeleteTenant(ctx, "acme"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second delete = %v, want ErrNotFound", err)
	}
	var left int
	if err := e.db.QueryRow(ctx, `SELECT (SELECT count(*) FROM loom.api_keys) + (SELECT count(*) FROM loom.tenant_models)
 + (SELECT count(*) FROM loom.tenant_credentials)`).Scan(&left); err != nil || left != 0 {
		t.Errorf("%d rows of the deleted tenant left (err %v)", left, err)
	}
}

func TestKeys_CreateListRevoke(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := t.Context()
	if err := e.st.CreateTenant(ctx, store.TenantSpec{ID: "acme"}); err != nil {
		t.Fatal(err)
	}
	if err := e.st.SetModels(ctx, "acme", []tenancy.Model{{Name: "a", Deployment: "d"}, {Name: "b", Deployment: "d"}}); err != nil {
		t.Fatal(err)
	}
	expires := time.Now().Add(time.Hour).Truncate(time.Microsecond)
	limits := tenancy.Limits{RequestsPerMinute: 5, TokensPerMinute: 50, ConcurrentStreams: 1}
	key, err := e.st.CreateKey(ctx, "acme", store.KeySpec{ID: "acme-ci", Models: []string{"a"}, ExpiresAt: expires, Limits: limits})
	if err != nil || !strings.HasPrefix(key, tenant.KeyPrefix) {
		t.Fatalf("CreateKey = %q, %v", key, err)
	}
	plain, err := e.st.CreateKey(ctx, "acme", store.KeySpec{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.CreateKey(ctx, "acme", store.KeySpec{ID: "acme-ci"}); !errors.Is(err, store.ErrExists) {
		t.Errorf("same id again = %v, want ErrExists", err)
	}
	for name, spec := range map[string]store.KeySpec{
		"unknown model": {Models: []string{"c"}},
		"past expiry":   {ExpiresAt: time.Now().Add(-time.Second)},
		"bad id":        {ID: "has space"},
	} {
		if _, err := e.st.CreateKey(ctx, "acme", spec); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("%s: CreateKey = %v, want ErrInvalid", name, err)
		}
	}
	if _, err := e.st.CreateKey(ctx, "nope", store.KeySpec{}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("key of missing tenant = %v, want ErrNotFound", err)
	}

	keys, err := e.st.ListKeys(ctx, "acme")
	if err != nil || len(keys) != 2 {
		t.Fatalf("ListKeys = %+v, %v", keys, err)
	}
	byID := map[string]store.Key{}
	for _, k := range keys {
		byID[k.ID] = k
	}
	ci, def := byID["acme-ci"], byID[store.DefaultKeyID("acme", plain)]
	if ci.Prefix != key[:store.PrefixLen] || !ci.ExpiresAt.Equal(expires) || !slices.Equal(ci.Models, []string{"a"}) ||
		ci.Limits != limits || !ci.RevokedAt.IsZero() || ci.TenantID != "acme" {
		t.Errorf("acme-ci = %+v", ci)
	}
	if def.ID == "" || def.Models != nil || !def.ExpiresAt.IsZero() {
		t.Errorf("default key = %+v (all keys %+v)", def, keys)
	}
	var stored []byte
	if err := e.db.QueryRow(ctx, "SELECT sha256 FROM loom.api_keys WHERE id = 'acme-ci'").Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if hex.EncodeToString(stored) != tenant.Hash(key) {
		t.Errorf("stored hash %x, want the SHA-256 of the key", stored)
	}

	// A model a live key is restricted to cannot go; once the key is
	// revoked it can.
	if err := e.st.SetModels(ctx, "acme", []tenancy.Model{{Name: "b", Deployment: "d"}}); !errors.Is(err, store.ErrInUse) {
		t.Errorf("dropping a key's model = %v, want ErrInUse", err)
	}
	for range 2 {
		if err := e.st.RevokeKey(ctx, "acme-ci"); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.st.RevokeKey(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("revoke missing = %v, want ErrNotFound", err)
	}
	if err := e.st.SetModels(ctx, "acme", []tenancy.Model{{Name: "b", Deployment: "d"}}); err != nil {
		t.Errorf("dropping a revoked key's model: %v", err)
	}
	keys, _ = e.st.ListKeys(ctx, "acme")
	if i := slices.IndexFunc(keys, func(k store.Key) bool { return k.ID == "acme-ci" }); i < 0 || keys[i].RevokedAt.IsZero() {
		t.Errorf("after revoke: %+v", keys)
	}
	if _, err := e.st.ListKeys(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("keys of missing tenant = %v, want ErrNotFound", err)
	}
}
