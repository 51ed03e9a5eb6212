package store_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/loom-gateway/loom/proxy/ledger"
	"github.com/loom-gateway/loom/proxy/price"
	"github.com/loom-gateway/loom/proxy/store"
	"github.com/loom-gateway/loom/proxy/tenancy"
	"github.com/loom-gateway/loom/proxy/tenant"
)

// observed collects the changes a store records.
type observed struct {
	mu      sync.Mutex
	changes []store.Change
}

func observe(st *store.Store) *observed {
	o := &observed{}
	store.Observe(st, func(c store.Change) {
		o.mu.Lock()
		defer o.mu.Unlock()
		o.changes = append(o.changes, c)
	})
	return o
}

func (o *observed) take() []store.Change {
	o.mu.Lock()
	defer o.mu.Unlock()
	c := o.changes
	o.changes = nil
	return c
}

// Every kind of change, each recorded once with its actor, action and
// target, its states before and after, and no secret anywhere.
func TestStore_EveryChange_RecordedWithActorActionTargetAndRedactedStates(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	o := observe(e.st)
	var actor store.Actor
	var ctx context.Context
	const credential = "sk-upstream-credential-never-recorded"

	type want struct{ action, target, before, after string }
	var key string
	steps := []struct {
		do   func() error
		want want
	}{
		{func() error {
			return e.st.CreateTenant(ctx, store.TenantSpec{ID: "acme", Limits: tenancy.Limits{RequestsPerMinute: 60}})
		}, want{store.ActionTenantCreate, "acme", "", `{"id":"acme","content":{"capture":false,"max_bytes":0},"limits":{"requests_per_minute":60,`}},
		{func() error {
			tpm := 1000
			_, err := e.st.UpdateTenant(ctx, "acme", store.TenantPatch{TokensPerMinute: &tpm})
			return err
		}, want{store.ActionTenantUpdate, "acme", `"tokens_per_minute":0`, `"requests_per_minute":60,"tokens_per_minute":1000`}},
		{func() error {
			return e.st.SetModels(ctx, "acme", []tenancy.Model{{Name: "mini", Deployment: "openai", UpstreamModel: "gpt-4o-mini"}})
		}, want{store.ActionModelsSet, "acme/models", `{"tenant":"acme","models":[]}`, `"models":[{"name":"mini","deployment":"openai","upstream_model":"gpt-4o-mini"}]`}},
		{func() error { return e.st.SetCredential(ctx, "acme", "openai", credential) },
			want{store.ActionCredentialSet, "acme/credentials/openai", `{"deployment":"openai","set":false}`, `{"deployment":"openai","set":true,"api_key":"[redacted]"}`}},
		{func() error { return e.st.SetCredential(ctx, "acme", "openai", credential+"-rotated") },
			want{store.ActionCredentialSet, "acme/credentials/openai", `"set":true,"api_key":"[redacted]"`, `"set":true,"api_key":"[redacted]"`}},
		{func() (err error) {
			key, err = e.st.CreateKey(ctx, "acme", store.KeySpec{ID: "acme-ci", Models: []string{"mini"}})
			return err
		}, want{store.ActionKeyCreate, "acme/keys/acme-ci", "", `"id":"acme-ci","tenant_id":"acme","prefix":"sk-loom-`}},
		{func() error {
			return e.st.SetTenantBudgets(ctx, "acme", []tenancy.Budget{{Period: tenancy.PeriodDay, Limit: "25.00"}})
		}, want{store.ActionBudgetsSet, "acme/budgets", `{"budgets":[]}`, `{"budgets":[{"period":"day","limit":"25.00"}]}`}},
		{func() error {
			return e.st.SetKeyBudgets(ctx, "acme-ci", []tenancy.Budget{{Period: tenancy.PeriodMonth, Limit: "5", AlertAt: 0.5}})
		}, want{store.ActionBudgetsSet, "acme/keys/acme-ci/budgets", `{"budgets":[]}`, `{"budgets":[{"period":"month","limit":"5","alert_at":0.5}]}`}},
		{func() error { return e.st.RevokeKey(ctx, "acme-ci") },
			want{store.ActionKeyRevoke, "acme/keys/acme-ci", `"revoked_at":null`, `"revoked_at":"20`}},
		{func() error { return e.st.DeleteCredential(ctx, "acme", "openai") },
			want{store.ActionCredentialDelete, "acme/credentials/openai", `"set":true`, `{"deployment":"openai","set":false}`}},
		{func() error { return e.st.SetCredential(ctx, "acme", "azure", credential) },
			want{store.ActionCredentialSet, "acme/credentials/azure", `"set":false`, `"set":true`}},
		{func() error { return e.st.DeleteTenant(ctx, "acme") },
			want{store.ActionTenantDelete, "acme", `"models":[{"name":"mini","deployment":"openai","upstream_model":"gpt-4o-mini"}],"credentials":[{"deployment":"azure","set":true,"api_key":"[redacted]"}],"keys":[{"id":"acme-ci"`, ""}},
		{func() error {
			_, err := e.st.AddPrice(ctx, price.Entry{ID: "mini-2099", Model: "mini", Currency: "USD",
				EffectiveFrom: time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC), Input: 150_000, Output: 600_000})
			return err
		}, want{store.ActionPriceAdd, "/prices/mini-2099", "", `"id":"mini-2099","model":"mini","currency":"USD","effective_from":"2099-01-01T00:00:00Z","input":"0.15"`}},
		{func() error { return e.st.DeletePrice(ctx, "mini-2099") },
			want{store.ActionPriceDelete, "/prices/mini-2099", `"output":"0.6"`, ""}},
	}
	for i, s := range steps {
		// One request id per change, as the admin API and the CLI make.
		actor = store.Actor{Kind: store.ActorOperator, ID: "alice", RequestID: fmt.Sprintf("req-%d", i)}
		ctx = store.WithActor(t.Context(), actor)
		if err := s.do(); err != nil {
			t.Fatalf("step %d (%s): %v", i, s.want.action, err)
		}
		got := o.take()
		if len(got) != 1 {
			t.Fatalf("step %d (%s): %d changes recorded, want 1", i, s.want.action, len(got))
		}
		c := got[0]
		if c.Actor != actor || c.Action != s.want.action || c.Target != s.want.target || c.Time.IsZero() {
			t.Errorf("step %d: recorded %+v %s %s at %v, want %+v %s %s", i, c.Actor, c.Action, c.Target, c.Time, actor, s.want.action, s.want.target)
		}
		if (s.want.before == "") != (c.Before == nil) || (s.want.after == "") != (c.After == nil) ||
			!strings.Contains(string(c.Before), s.want.before) || !strings.Contains(string(c.After), s.want.after) {
			t.Errorf("step %d (%s):\nbefore %s\n want %s\nafter  %s\n want %s", i, c.Action, c.Before, s.want.before, c.After, s.want.after)
		}
		for what, secret := range map[string]string{"credential": credential, "key": key, "key hash": tenant.Hash(key)} {
			if secret != "" && strings.Contains(string(c.Before)+string(c.After)+c.Target, secret) {
				t.Errorf("step %d (%s) records the %s", i, c.Action, what)
			}
		}
	}

	// Each is an entry of the system chain, in order, and the chain
	// verifies.
	entries, err := e.st.Audit(t.Context(), store.AuditQuery{})
	if err != nil || len(entries) != len(steps) {
		t.Fatalf("Audit = %d entries, %v; want %d", len(entries), err, len(steps))
	}
	for i, en := range entries {
		s := steps[len(steps)-1-i]
		if en.Action != s.want.action || en.Target != s.want.target || en.Actor.RequestID != fmt.Sprintf("req-%d", len(steps)-1-i) {
			t.Errorf("entry %d (seq %d): %s %s %+v, want %s %s", i, en.Seq, en.Action, en.Target, en.Actor, s.want.action, s.want.target)
		}
	}
	rep, err := ledger.Verify(t.Context(), e.db, ledger.VerifyOptions{Chain: ledger.SystemChain})
	if err != nil || !rep.OK() || rep.Entries != int64(len(steps)) {
		t.Errorf("ledger.Verify(system chain) = %+v, %v", rep, err)
	}
}

// A change that does not happen (not found, already there, revoking a
// revoked key) is not recorded: its transaction never reaches the entry.
func TestStore_ChangeThatDoesNotHappen_RecordsNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := t.Context()
	if err := e.st.CreateTenant(ctx, store.TenantSpec{ID: "acme"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.CreateKey(ctx, "acme", store.KeySpec{ID: "k"}); err != nil {
		t.Fatal(err)
	}
	if err := e.st.RevokeKey(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	o := observe(e.st)
	before, err := e.st.Audit(ctx, store.AuditQuery{})
	if err != nil || len(before) != 3 {
		t.Fatalf("Audit = %d entries, %v; want the 3 changes made", len(before), err)
	}
	_ = e.st.CreateTenant(ctx, store.TenantSpec{ID: "acme"})
	_, _ = e.st.UpdateTenant(ctx, "nope", store.TenantPatch{})
	_ = e.st.DeleteTenant(ctx, "nope")
	_ = e.st.DeleteCredential(ctx, "acme", "openai")
	_ = e.st.RevokeKey(ctx, "nope")
	if err := e.st.RevokeKey(ctx, "k"); err != nil {
		t.Fatalf("revoking a revoked key: %v", err)
	}
	_, _ = e.st.CreateKey(ctx, "acme", store.KeySpec{Models: []string{"no-such-model"}})
	if got := o.take(); len(got) != 0 {
		t.Errorf("recorded %d changes that did not happen: %+v", len(got), got)
	}
	if after, err := e.st.Audit(ctx, store.AuditQuery{}); err != nil || len(after) != len(before) {
		t.Errorf("the system chain grew from %d to %d entries (%v)", len(before), len(after), err)
	}
}

// Without an actor in the context, a change is recorded all the same, as
// nobody's.
func TestStore_NoActor_RecordedAsUnattributed(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	o := observe(e.st)
	if err := e.st.CreateTenant(t.Context(), store.TenantSpec{ID: "acme"}); err != nil {
		t.Fatal(err)
	}
	got := o.take()
	if len(got) != 1 || got[0].Actor.Kind != store.ActorUnattributed {
		t.Errorf("recorded %+v, want one change by %q", got, store.ActorUnattributed)
	}
}

// More entries than one page of the read, of two tenants: the newest come
// first, a tenant's alone when asked, and a window keeps From and drops To.
func TestAudit_ManyEntries_NewestFirstByTenantAndWindow(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	base := time.Now().UTC().Truncate(time.Millisecond)
	var entries []ledger.Entry
	for i := range 1200 {
		tenant := "acme"
		if i%2 == 1 {
			tenant = "globex"
		}
		entries = append(entries, ledger.Entry{Chain: ledger.SystemChain, Kind: ledger.KindAdmin, Admin: ledger.Admin{
			RequestID: fmt.Sprintf("r%d", i), Time: base.Add(time.Duration(i) * time.Millisecond), Actor: "operator:bulk",
			Action: store.ActionTenantUpdate, Tenant: tenant, Target: tenant, After: []byte(fmt.Sprintf(`{"n":%d}`, i)),
		}})
	}
	tx, err := e.db.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if err := ledger.Append(t.Context(), tx, entries...); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}

	all, err := e.st.Audit(t.Context(), store.AuditQuery{Limit: store.MaxAuditLimit})
	if err != nil || len(all) != store.MaxAuditLimit || all[0].Seq != 1200 || all[len(all)-1].Seq != 201 {
		t.Fatalf("Audit(limit %d) = %d entries from seq %d, %v; want 1200 down to 201", store.MaxAuditLimit, len(all), all[0].Seq, err)
	}
	if a := all[0]; a.Actor != (store.Actor{Kind: store.ActorOperator, ID: "bulk", RequestID: "r1199"}) || string(a.After) != `{"n":1199}` ||
		!a.Time.Equal(base.Add(1199*time.Millisecond)) || a.Before != nil {
		t.Errorf("the newest entry read back as %+v", a)
	}
	acme, err := e.st.Audit(t.Context(), store.AuditQuery{Tenant: "acme", Limit: store.MaxAuditLimit})
	if err != nil || len(acme) != 600 {
		t.Fatalf("acme's entries: %d, %v; want 600", len(acme), err)
	}
	for _, a := range acme {
		if a.Target != "acme" {
			t.Fatalf("acme's entries hold %s", a.Target)
		}
	}
	window, err := e.st.Audit(t.Context(), store.AuditQuery{From: base.Add(100 * time.Millisecond), To: base.Add(200 * time.Millisecond)})
	if err != nil || len(window) != 100 || window[0].Seq != 200 || window[99].Seq != 101 {
		t.Errorf("the window [100ms, 200ms): %d entries, %v; want seqs 200 down to 101", len(window), err)
	}
	if def, err := e.st.Audit(t.Context(), store.AuditQuery{}); err != nil || len(def) != store.DefaultAuditLimit {
		t.Errorf("the default limit: %d entries, %v; want %d", len(def), err, store.DefaultAuditLimit)
	}
}
