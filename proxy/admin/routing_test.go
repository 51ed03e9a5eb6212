package admin_test

import (
	"crypto/sha256"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/loom-gateway/loom/proxy/admin"
	"github.com/loom-gateway/loom/proxy/internal/json"
	"github.com/loom-gateway/loom/proxy/store"
	"github.com/loom-gateway/loom/proxy/tenancy"
)

// routedModelsJSON is a model list in the long form, with the configuration
// file's field names, exactly as the API writes it back.
const routedModelsJSON = `[` +
	`{"name":"gpt-4o","upstream_model":"gpt-4o-2024-08-06","deployments":[` +
	`{"name":"azure","upstream_model":"my-4o","weight":3},{"name":"openai","weight":1},{"name":"backup","priority":1}],` +
	`"fallbacks":["mini"],"routing":{"max_attempts":4,"budget":"30s"}},` +
	`{"name":"mini","deployment":"openai"}]`

func routedFixture(t *testing.T) *fixture {
	t.Helper()
	st, err := store.Open(t.Context(), migratedDatabase(t), nil, store.WithDeployments([]string{"openai", "azure", "backup"}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	f := &fixture{t: t, st: st, h: admin.New(st, sha256.Sum256([]byte(token)), slog.New(slog.DiscardHandler))}
	f.call("POST", "/admin/tenants", `{"id":"acme"}`, http.StatusCreated, nil)
	return f
}

// models is the "models" member of a tenant's JSON, as the API wrote it.
func models(t *testing.T, tenantJSON []byte) string {
	t.Helper()
	var m json.Members
	if !m.Reset(tenantJSON) {
		t.Fatalf("not an object: %s", tenantJSON)
	}
	for m.Next() {
		if string(m.Key()) == "models" {
			return string(m.Value())
		}
	}
	t.Fatalf("no models in %s", tenantJSON)
	return ""
}

func TestAdmin_PutModelsWithSeveralDeployments_ReadBackTheSameJSONAndStoredInFull(t *testing.T) {
	t.Parallel()
	f := routedFixture(t)
	put := f.call("PUT", "/admin/tenants/acme/models", `{"models":`+routedModelsJSON+`}`, http.StatusOK, nil)
	if got := models(t, put); got != routedModelsJSON {
		t.Errorf("PUT answered models\n%s\nwant\n%s", got, routedModelsJSON)
	}
	if got := models(t, f.call("GET", "/admin/tenants/acme", "", http.StatusOK, nil)); got != routedModelsJSON {
		t.Errorf("GET answered models\n%s\nwant\n%s", got, routedModelsJSON)
	}
	loaded, err := f.st.Load(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if err := tenancy.Validate(loaded, func(string) bool { return true }); err != nil || len(loaded) != 1 ||
		len(loaded[0].Models) != 2 || len(loaded[0].Models[0].Deployments) != 3 ||
		loaded[0].Models[0].Routing.MaxAttempts != 4 || loaded[0].Models[0].Fallbacks[0] != "mini" {
		t.Errorf("the gateway would load %+v (%v); want the three deployments, the fallback and the override", loaded, err)
	}
}

func TestAdmin_PutModelsInvalidRouting_400NamingTheFirstFieldAsParam(t *testing.T) {
	t.Parallel()
	f := routedFixture(t)
	for _, c := range []struct{ name, body, param, msg string }{
		{"negative weight", `{"models":[{"name":"m","deployments":[{"name":"openai","weight":-1}]}]}`,
			"models[0].deployments[0].weight", "must not be negative"},
		{"unknown deployment", `{"models":[{"name":"m","deployments":[{"name":"openai"},{"name":"opnai"}]}]}`,
			"models[0].deployments[1].name", `no deployment named \"opnai\"`},
		{"both forms", `{"models":[{"name":"m","deployment":"openai","deployments":[{"name":"azure"}]}]}`,
			"models[0]", "set deployment or deployments, not both"},
		{"unknown fallback", `{"models":[{"name":"m","deployment":"openai","fallbacks":["x"]}]}`,
			"models[0].fallbacks[0]", `\"x\" is not one of the tenant's models`},
		{"too many attempts", `{"models":[{"name":"m","deployment":"openai","routing":{"max_attempts":9}}]}`,
			"models[0].routing.max_attempts", "must be between 1 and 8"},
		{"budget not a duration", `{"models":[{"name":"m","deployment":"openai","routing":{"budget":"soon"}}]}`,
			"models[0].routing.budget", "is not a duration"},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := f.call("PUT", "/admin/tenants/acme/models", c.body, http.StatusBadRequest, nil)
			openAIError(t, b, "invalid_value")
			if !strings.Contains(string(b), `"param":"`+c.param+`"`) || !strings.Contains(string(b), c.msg) {
				t.Errorf("%s: %s; want param %s and %q", c.name, b, c.param, c.msg)
			}
		})
	}
	b := f.call("PUT", "/admin/tenants/acme/models", `{"models":[{"name":"m","deployments":[{"name":"openai","wieght":2}]}]}`,
		http.StatusBadRequest, nil)
	if !strings.Contains(string(b), `"param":"models[0].deployments[0].wieght"`) {
		t.Errorf("a misspelt deployment field: %s; want it refused by name", b)
	}
}
