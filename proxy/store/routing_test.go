package store_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/loom-gateway/loom/proxy/store"
	"github.com/loom-gateway/loom/proxy/tenancy"
)

// routedModels are the long form of a tenant's models as a configuration
// file writes them: several deployments, fallbacks, a routing override.
var routedModels = []tenancy.Model{
	{Name: "gpt-4o", UpstreamModel: "gpt-4o-2024-08-06",
		Deployments: []tenancy.Target{
			{Deployment: "azure", UpstreamModel: "my-4o", Weight: 3},
			{Deployment: "openai", Weight: 1},
			{Deployment: "backup", Priority: 1},
		},
		Fallbacks: []string{"gpt-4o-mini"},
		Routing:   tenancy.Routing{MaxAttempts: 4, Budget: 30 * time.Second}},
	{Name: "gpt-4o-mini", Deployment: "openai"},
}

func TestSetModels_SeveralDeploymentsFallbacksRouting_RoundTripThroughGetAndLoad(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := t.Context()
	st := open(t, e.url, e.box, store.WithDeployments([]string{"openai", "azure", "backup"}))
	if err := st.CreateTenant(ctx, store.TenantSpec{ID: "acme"}); err != nil {
		t.Fatal(err)
	}
	if err := st.SetModels(ctx, "acme", routedModels); err != nil {
		t.Fatal(err)
	}
	got, err := st.GetTenant(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Models, routedModels) {
		t.Errorf("GetTenant models =\n%+v\nwant\n%+v", got.Models, routedModels)
	}
	loaded, err := st.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(loaded) != 1 || !reflect.DeepEqual(loaded[0].Models, routedModels) {
		t.Fatalf("Load =\n%+v\nwant the models\n%+v", loaded, routedModels)
	}
	if err := tenancy.Validate(loaded, func(string) bool { return true }); err != nil {
		t.Errorf("the loaded snapshot does not validate: %v", err)
	}

	// Setting the short form again drops the deployments' rows with the
	// model's.
	short := []tenancy.Model{{Name: "gpt-4o", Deployment: "azure"}}
	if err := st.SetModels(ctx, "acme", short); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := e.db.QueryRow(ctx, "SELECT count(*) FROM loom.tenant_model_deployments").Scan(&n); err != nil || n != 0 {
		t.Errorf("after the short form: %d deployment rows (%v); want 0", n, err)
	}
	if got, _ := st.GetTenant(ctx, "acme"); !reflect.DeepEqual(got.Models, short) {
		t.Errorf("after the short form: %+v; want %+v", got.Models, short)
	}
}

func TestSetModels_InvalidRouting_RefusedWithTheConfigFilesFieldNames(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := t.Context()
	st := open(t, e.url, e.box, store.WithDeployments([]string{"openai", "azure"}))
	if err := st.CreateTenant(ctx, store.TenantSpec{ID: "acme"}); err != nil {
		t.Fatal(err)
	}
	bad := []tenancy.Model{
		{Name: "a", Deployment: "openai", Deployments: []tenancy.Target{{Deployment: "azure"}}},
		{Name: "b", Deployments: []tenancy.Target{{Deployment: "azure", Weight: -1}, {Deployment: "azure"}, {Deployment: "opnai", Priority: -2}},
			Fallbacks: []string{"b", "nope"}, Routing: tenancy.Routing{MaxAttempts: 9, Budget: -time.Second}},
		{Name: "c", Deployment: "openai", Routing: tenancy.Routing{Budget: time.Microsecond + 1}},
	}
	err := st.SetModels(ctx, "acme", bad)
	want := []string{
		"models[0]: set deployment or deployments, not both",
		"models[1].deployments[0].weight: must not be negative, got -1",
		`models[1].deployments[1].name: "azure" is listed twice`,
		`models[1].deployments[2].name: no deployment named "opnai" (the deployments are: azure, openai)`,
		"models[1].deployments[2].priority: must not be negative, got -2",
		"models[1].fallbacks[0]: a model cannot fall back to itself",
		`models[1].fallbacks[1]: "nope" is not one of the tenant's models`,
		"models[1].routing.max_attempts: must be between 1 and 8, got 9",
		"models[1].routing.budget: must not be negative",
		"models[2].routing.budget: must be a whole number of microseconds",
	}
	var fe *store.FieldError
	if !errors.Is(err, store.ErrInvalid) || !errors.As(err, &fe) || fe.Field != "models[0]" {
		t.Fatalf("SetModels = %v; want ErrInvalid with FieldErrors", err)
	}
	if !strings.Contains(err.Error(), strings.Join(want, "\n")) {
		t.Errorf("SetModels error =\n%v\nwant, in this order,\n%s", err, strings.Join(want, "\n"))
	}
	if got, _ := st.GetTenant(ctx, "acme"); len(got.Models) != 0 {
		t.Errorf("a refused model list was stored: %+v", got.Models)
	}
}

// Rows written before the routing columns existed (one deployment, no
// fallbacks, no override) read as the short form they were written in.
func TestLoad_ModelRowWithOneDeploymentOnly_ReadsAsTheShortForm(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := t.Context()
	if err := e.st.CreateTenant(ctx, store.TenantSpec{ID: "acme"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.Exec(ctx, `INSERT INTO loom.tenant_models (tenant_id, name, deployment, upstream_model)
VALUES ('acme', 'gpt-4o', 'azure', 'my-4o'), ('acme', 'mini', 'openai', NULL)`); err != nil {
		t.Fatal(err)
	}
	loaded, err := e.st.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []tenancy.Model{{Name: "gpt-4o", Deployment: "azure", UpstreamModel: "my-4o"}, {Name: "mini", Deployment: "openai"}}
	if len(loaded) != 1 || !reflect.DeepEqual(loaded[0].Models, want) {
		t.Fatalf("Load = %+v; want the models %+v", loaded, want)
	}
}
