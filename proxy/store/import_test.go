package store_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/loom-gateway/loom/proxy/store"
	"github.com/loom-gateway/loom/proxy/tenancy"
	"github.com/loom-gateway/loom/proxy/tenant"
)

func TestImportKey_RegistersAnExistingKeyOnce_RefusesAnotherTenants(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	setup := store.Actor{Kind: store.ActorOperator, ID: "devstack"}
	ctx := store.WithActor(t.Context(), setup)
	for _, id := range []string{"demo", "other"} {
		if err := e.st.CreateTenant(ctx, store.TenantSpec{ID: id}); err != nil {
			t.Fatal(err)
		}
		if err := e.st.SetModels(ctx, id, []tenancy.Model{{Name: "m", Deployment: "d"}}); err != nil {
			t.Fatal(err)
		}
	}
	key, hash, err := tenant.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	added, err := e.st.ImportKey(ctx, "demo", key, store.KeySpec{ID: "demo-key"})
	if err != nil || !added {
		t.Fatalf("first import = %v, %v; want added", added, err)
	}
	// Every start imports again: nothing changes, and nothing is recorded.
	added, err = e.st.ImportKey(ctx, "demo", key, store.KeySpec{ID: "demo-key"})
	if err != nil || added {
		t.Fatalf("second import = %v, %v; want a no-op", added, err)
	}
	if _, err := e.st.ImportKey(ctx, "other", key, store.KeySpec{ID: "other-key"}); !errors.Is(err, store.ErrKeyElsewhere) {
		t.Errorf("importing demo's key for other = %v, want ErrKeyElsewhere", err)
	}
	if _, err := e.st.ImportKey(ctx, "demo", "not-a-loom-key-at-all", store.KeySpec{}); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("importing a non-key = %v, want ErrInvalid", err)
	}

	// The key authenticates as the demo tenant's: the gateway's snapshot
	// holds its hash (and only that).
	tenants, err := e.st.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var holders []string
	for _, tn := range tenants {
		for _, k := range tn.Keys {
			if k.SHA256 == hash {
				holders = append(holders, tn.ID+"/"+k.ID)
				if k.Prefix != key[:store.PrefixLen] {
					t.Errorf("prefix %q, want %q", k.Prefix, key[:store.PrefixLen])
				}
			}
		}
	}
	if strings.Join(holders, ",") != "demo/demo-key" {
		t.Errorf("the key's hash is held by %v, want demo/demo-key alone", holders)
	}

	entries, err := e.st.Audit(ctx, store.AuditQuery{Tenant: "demo"})
	if err != nil {
		t.Fatal(err)
	}
	var creates int
	for _, en := range entries {
		if en.Action != store.ActionKeyCreate {
			continue
		}
		creates++
		if en.Target != "demo/keys/demo-key" || en.Actor.Kind != setup.Kind || en.Actor.ID != setup.ID {
			t.Errorf("entry %+v, want demo/keys/demo-key by the setup", en)
		}
		if s := string(en.After); strings.Contains(s, key) || strings.Contains(s, key[store.PrefixLen:]) || strings.Contains(s, hash) {
			t.Errorf("the entry holds the key or its hash: %s", s)
		}
	}
	if creates != 1 {
		t.Errorf("%d key.create entries for two imports, want 1", creates)
	}
	var plain int
	if err := e.db.QueryRow(ctx, "SELECT count(*) FROM loom.api_keys WHERE prefix = $1", key[:store.PrefixLen]).Scan(&plain); err != nil || plain != 1 {
		t.Errorf("rows with the key's prefix = %d, %v; want 1", plain, err)
	}
}
