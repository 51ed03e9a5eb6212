package server_test

import (
	"bytes"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/loom-gateway/loom/proxy/config"
	"github.com/loom-gateway/loom/proxy/server"
	"github.com/loom-gateway/loom/proxy/tenancy"
	"github.com/loom-gateway/loom/proxy/tenant"
)

// reloaded is st's configuration edited as an operator would edit the
// file: tenant globex removed, tenant initech added with a new key, a new
// deployment, and acme's gpt-4o-mini routed to it. It returns initech's key.
func reloaded(t *testing.T, st *stack) (*config.Config, string) {
	t.Helper()
	next := *st.cfg
	next.Deployments = slices.Clone(st.cfg.Deployments)
	second := next.Deployments[0]
	second.Name = "mock-openai-2"
	next.Deployments = append(next.Deployments, second)
	key, hash, err := tenant.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	acme := st.cfg.Tenants[0]
	acme.Models = slices.Clone(acme.Models)
	for i := range acme.Models {
		if acme.Models[i].Name == "gpt-4o-mini" {
			acme.Models[i].Deployment = "mock-openai-2"
		}
	}
	next.Tenants = []config.Tenant{acme, {
		ID:     "initech",
		Keys:   []tenancy.Key{{ID: "initech-key-1", SHA256: hash}},
		Models: []tenancy.Model{{Name: "gpt-4o", Deployment: "mock-openai-2"}},
	}}
	if err := next.Validate(); err != nil {
		t.Fatal(err)
	}
	return &next, key
}

// A stream in flight when the configuration is reloaded finishes byte for
// byte on the deployment it started with; the calls after the reload get
// the new configuration: a removed tenant's key is refused, a new tenant's
// key works, a model goes to the deployment it was moved to.
func TestReload_StreamInFlight_FinishesUnchanged_NextCallsUseTheNewConfig(t *testing.T) {
	reached, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	gate := func(i int) {
		if i == 3 {
			once.Do(func() {
				close(reached)
				<-release
			})
		}
	}
	st := startStack(t, stackOptions{eventGate: gate})
	const name = "openai/chat-stream-text-include-usage.sse"
	recorded := recordedStreams(t)[name]
	seen := st.count()
	resp := openStream(t, st,
		`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":true}}`,
		map[string]string{"x-mock-replay": name})
	defer resp.Body.Close()
	select {
	case <-reached:
	case <-time.After(10 * time.Second):
		t.Fatal("the stream never reached its fourth event")
	}

	next, newKey := reloaded(t, st)
	if err := st.loom.Reload(next, true); err != nil {
		t.Fatal(err)
	}
	if status, _, body := st.do("POST", "/v1/chat/completions", st.keyB,
		`{"model":"globex-model","messages":[{"role":"user","content":"hi"}]}`, nil); status != 401 {
		t.Fatalf("removed tenant's key: status %d %s, want 401", status, body)
	}
	if status, _, body := st.do("POST", "/v1/chat/completions", newKey,
		`{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`, nil); status != 200 {
		t.Fatalf("new tenant's key: status %d %s, want 200", status, body)
	}
	if status, _, body := st.do("POST", "/v1/chat/completions", st.keyA,
		`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`, nil); status != 200 {
		t.Fatalf("acme after reload: status %d %s", status, body)
	}

	close(release)
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || !bytes.Equal(got, recorded) {
		t.Fatalf("status %d; the stream across the reload differs from the recording:\n got: %q\nwant: %q", resp.StatusCode, got, recorded)
	}
	byDeployment := map[string][]string{}
	// Three calls: the 401 had no tenant, so it is counted, not recorded.
	for _, r := range st.waitRecords(seen + 3)[seen:] {
		byDeployment[r.Deployment] = append(byDeployment[r.Deployment], r.TenantID+"/"+r.Model+"/"+string(rune('0'+r.Status/100)))
	}
	// The stream (started before) stays on mock-openai; after the reload,
	// acme's gpt-4o-mini and initech's gpt-4o go to mock-openai-2.
	if len(byDeployment["mock-openai"]) != 1 || byDeployment["mock-openai"][0] != "acme/gpt-4o-mini/2" ||
		len(byDeployment["mock-openai-2"]) != 2 {
		t.Fatalf("calls by deployment: %v", byDeployment)
	}
}

// A reload whose tenants cannot be built on its deployments changes
// nothing: the old tenants keep working.
func TestReload_Refused_KeepsServingTheOldConfig(t *testing.T) {
	st := startStack(t, stackOptions{})
	next, newKey := reloaded(t, st)
	next.Deployments = next.Deployments[:2] // mock-openai-2 gone, still named by two models
	if err := st.loom.Reload(next, true); err == nil {
		t.Fatal("a configuration naming a missing deployment was applied")
	}
	if _, _, ok := st.loom.Authenticate([]byte(newKey)); ok {
		t.Fatal("the refused configuration's key authenticates")
	}
	if status, _, body := st.do("POST", "/v1/chat/completions", st.keyB,
		`{"model":"globex-model","messages":[{"role":"user","content":"hi"}]}`, nil); status != 200 {
		t.Fatalf("old tenant after a refused reload: status %d %s", status, body)
	}
}

func TestNeedsRestart_NamesWhatReloadCannotApply(t *testing.T) {
	a := &config.Config{Listen: "127.0.0.1:1", Timeouts: config.DefaultTimeouts}
	b := *a
	b.Listen = "127.0.0.1:2"
	b.Timeouts.Drain = time.Hour // live: not named
	b.Timeouts.ClientRead = time.Hour
	b.Tracing.Endpoint = "http://collector:4318"
	if got := server.NeedsRestart(a, &b); !slices.Equal(got, []string{"listen", "timeouts.client_read", "tracing"}) {
		t.Fatalf("NeedsRestart = %v", got)
	}
}

// With the store as the tenants' source, a reload applies the file's
// deployments and leaves the tenants to the store: the file's own tenants
// are ignored, and a file that drops a deployment a store tenant still
// routes to is refused whole.
func TestReload_StoreTenants_KeptAndCheckedAgainstTheNewDeployments(t *testing.T) {
	st := startStack(t, stackOptions{})
	if err := st.loom.SetTenants(st.cfg.ResolveTenants()); err != nil { // as the store's snapshot
		t.Fatal(err)
	}
	next, newKey := reloaded(t, st) // its tenants: not the store's, so not served
	if err := st.loom.Reload(next, false); err != nil {
		t.Fatal(err)
	}
	if _, _, ok := st.loom.Authenticate([]byte(newKey)); ok {
		t.Fatal("the file's tenant is served in store mode")
	}
	if status, _, body := st.do("POST", "/v1/chat/completions", st.keyB,
		`{"model":"globex-model","messages":[{"role":"user","content":"hi"}]}`, nil); status != 200 {
		t.Fatalf("store tenant after the reload: status %d %s", status, body)
	}

	dropped := *next
	dropped.Deployments = []config.Deployment{next.Deployments[0], next.Deployments[2]} // mock-azure gone
	err := st.loom.Reload(&dropped, false)
	if err == nil || !strings.Contains(err.Error(), "tenant acme (from the store)") || !strings.Contains(err.Error(), "mock-azure") {
		t.Fatalf("dropping a deployment a store tenant routes to: %v", err)
	}
	if status, _, body := st.do("POST", "/v1/chat/completions", st.keyA,
		`{"model":"azure-gpt","messages":[{"role":"user","content":"hi"}]}`, nil); status != 200 {
		t.Fatalf("the store tenant's azure model after the refused reload: status %d %s", status, body)
	}
}
