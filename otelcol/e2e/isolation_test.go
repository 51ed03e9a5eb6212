package e2e_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"github.com/loom-gateway/loom/proxy/logtest"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/loom-gateway/loom/bench/mockupstream"
	"github.com/loom-gateway/loom/deploy/pgserver"
	"github.com/loom-gateway/loom/deploy/pgserver/pgtest"
	"github.com/loom-gateway/loom/proxy/cli"
	"github.com/loom-gateway/loom/proxy/config"
	"github.com/loom-gateway/loom/proxy/secret"
	"github.com/loom-gateway/loom/proxy/store"
)

// Secrets that must never show up anywhere but where they belong.
const (
	acmeUpstream   = "sk-acme-upstream-SECRET-1a2b"
	globexUpstream = "sk-globex-upstream-SECRET-3c4d"
	sharedUpstream = "sk-deployment-shared-SECRET-5e6f"
)

// tenancy is a real `loom serve` (in process, through the CLI) whose
// tenants live in the Postgres store, tracing into otelcol-loom.
type tenancy struct {
	pg        *pgserver.Server
	dbURL     string
	store     *store.Store
	mock      *mockupstream.Server
	url       string
	keys      map[string]string // tenant -> key
	keyIDs    map[string]string
	secretKey string
	log       *logtest.Buffer
	col       *collector
	bodies    []string // every response body and header block a client saw
}

func startTenancy(t *testing.T, withCollector bool) *tenancy {
	t.Helper()
	ts := &tenancy{keys: map[string]string{}, keyIDs: map[string]string{}, log: &logtest.Buffer{}}
	ts.pg = pgtest.Start(t)
	ts.dbURL = pgtest.Database(t, ts.pg)
	var k [32]byte
	_, _ = rand.Read(k[:])
	ts.secretKey = hex.EncodeToString(k[:])
	t.Setenv("LOOM_TEST_DB", ts.dbURL)
	t.Setenv("LOOM_TEST_SECRET", ts.secretKey)
	box, err := secret.Load(config.Store{SecretKeyEnv: "LOOM_TEST_SECRET"})
	if err != nil {
		t.Fatal(err)
	}
	if ts.store, err = store.Open(t.Context(), ts.dbURL, box); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ts.store.Close)
	ctx := t.Context()
	for id, own := range map[string]string{"acme": acmeUpstream, "globex": globexUpstream} {
		if err := ts.store.CreateTenant(ctx, store.TenantSpec{ID: id}); err != nil {
			t.Fatal(err)
		}
		if err := ts.store.SetModels(ctx, id, []config.Model{{Name: models[id].public, Deployment: "mock", UpstreamModel: models[id].upstream}}); err != nil {
			t.Fatal(err)
		}
		if err := ts.store.SetCredential(ctx, id, "mock", own); err != nil {
			t.Fatal(err)
		}
		ts.keyIDs[id] = id + "-key"
		if ts.keys[id], err = ts.store.CreateKey(ctx, id, store.KeySpec{ID: ts.keyIDs[id]}); err != nil {
			t.Fatal(err)
		}
	}
	ts.mock = mockupstream.New(mockupstream.Config{LogLimit: -1})
	mln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = ts.mock.Serve(mln) }()
	t.Cleanup(func() { _ = ts.mock.Shutdown(context.Background()) })
	tracing := ""
	if withCollector {
		ts.col = startCollector(t, ts.dbURL)
		tracing = "tracing: {endpoint: \"http://" + ts.col.grpc + "\"}\n"
	}
	listen := freeAddr(t)
	cfgPath := filepath.Join(t.TempDir(), "loom.yaml")
	yaml := fmt.Sprintf(`listen: %q
%sstore: {database_url_env: LOOM_TEST_DB, secret_key_env: LOOM_TEST_SECRET, poll: 200ms}
deployments:
  - {name: mock, provider: openai, base_url: "http://%s/v1", api_key: %s, forward_headers: ["x-mock-*"]}
`, listen, tracing, mln.Addr(), sharedUpstream)
	if err := os.WriteFile(cfgPath, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- cli.Main(sctx, []string{"serve", "-config", cfgPath}, io.Discard, ts.log) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("loom serve: %v", err)
		}
	})
	ts.url = "http://" + listen
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(ts.url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return ts
			}
		}
		select {
		case err := <-served:
			t.Fatalf("loom serve exited: %v\n%s", err, ts.log.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("loom not ready:\n%s", ts.log.String())
		}
	}
}

// call makes a request with key and returns status and body; what the
// client saw is kept for the leak scan.
func (ts *tenancy) call(t *testing.T, method, path, key, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, ts.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var hdr strings.Builder
	_ = resp.Header.Write(&hdr)
	ts.bodies = append(ts.bodies, hdr.String(), string(b))
	return resp.StatusCode, string(b)
}

func chatBody(model string) string {
	return `{"model":"` + model + `","messages":[{"role":"user","content":"hello"}]}`
}

// The isolation suite: each key reaches only its tenant's models and
// credentials, a revoked key is refused within a second, a tenant-bound
// reader sees only its tenant's spans, and no key or credential is stored,
// logged or returned anywhere.
func TestIsolation_TwoTenants(t *testing.T) {
	ts := startTenancy(t, true)
	calls := 0
	for tenant, other := range map[string]string{"acme": "globex", "globex": "acme"} {
		key := ts.keys[tenant]
		if status, body := ts.call(t, "POST", "/v1/chat/completions", key, chatBody(models[tenant].public)); status != 200 {
			t.Fatalf("%s on its own model: %d %s", tenant, status, body)
		}
		status, body := ts.call(t, "POST", "/v1/chat/completions", key, chatBody(models[other].public))
		if status != 404 || !strings.Contains(body, `"code":"model_not_found"`) {
			t.Fatalf("%s on %s's model: %d %s", tenant, other, status, body)
		}
		if status, body := ts.call(t, "GET", "/v1/models", key, ""); status != 200 ||
			!strings.Contains(body, models[tenant].public) || strings.Contains(body, models[other].public) {
			t.Fatalf("%s /v1/models: %d %s", tenant, status, body)
		}
		calls += 3
	}
	// Each call reached the upstream with its own tenant's credential.
	for _, r := range ts.mock.Requests() {
		want := map[string]string{models["acme"].upstream: "Bearer " + acmeUpstream, models["globex"].upstream: "Bearer " + globexUpstream}
		model := "gpt-4o-mini-2024-07-18"
		if strings.Contains(string(r.Body), `"gpt-4o"`) {
			model = "gpt-4o"
		}
		if got := r.Header["authorization"]; got != want[model] {
			t.Fatalf("a %s call reached the upstream with %q", model, got)
		}
	}
	if n := len(ts.mock.Requests()); n != 2 {
		t.Fatalf("%d calls reached the upstream, want 2", n)
	}

	// Revocation on a running proxy: refused within a second.
	if err := ts.store.RevokeKey(t.Context(), ts.keyIDs["acme"]); err != nil {
		t.Fatal(err)
	}
	revoked := time.Now()
	for {
		status, _ := ts.call(t, "POST", "/v1/chat/completions", ts.keys["acme"], chatBody(models["acme"].public))
		if status == http.StatusUnauthorized {
			// Refused without a tenant: counted in Loom's metrics, not
			// recorded as a call (no span).
			break
		}
		calls++
		if time.Since(revoked) > time.Second {
			t.Fatalf("a revoked key still worked %v later", time.Since(revoked))
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("revoked key refused %v after the revocation", time.Since(revoked).Round(time.Millisecond))

	// Every call of a valid key is a SERVER span; a tenant-bound reader sees
	// only its own.
	db := connect(t, ts.dbURL)
	waitRows(t, db, int64(calls), 60*time.Second, `select count(*) from loom.spans where kind = 'server'`)
	for _, tenant := range []string{"acme", "globex"} {
		var mine, others int64
		err := ts.store.ReadAsTenant(t.Context(), tenant, func(tx pgx.Tx) error {
			return tx.QueryRow(t.Context(), `select count(*) filter (where tenant_id = $1), count(*) filter (where tenant_id is distinct from $1) from loom.spans`, tenant).Scan(&mine, &others)
		})
		if err != nil || mine == 0 || others != 0 {
			t.Fatalf("%s reads %d own rows and %d others' (err %v)", tenant, mine, others, err)
		}
	}

	// The scan: every stored row of every table, every log line, every
	// response: no key, no upstream credential, not the encryption key.
	secrets := map[string]string{"acme key": ts.keys["acme"], "globex key": ts.keys["globex"], "acme credential": acmeUpstream,
		"globex credential": globexUpstream, "deployment credential": sharedUpstream, "encryption key": ts.secretKey}
	places := map[string]string{"loom's log": ts.log.String(), "the collector's log": ts.col.log(), "responses": strings.Join(ts.bodies, "\n")}
	rows, err := db.Query(t.Context(), `select table_name from information_schema.tables where table_schema = 'loom' and table_type = 'BASE TABLE'`)
	if err != nil {
		t.Fatal(err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || len(tables) < 6 {
		t.Fatalf("tables %v %v", tables, err)
	}
	for _, table := range tables {
		var dump string
		if err := db.QueryRow(t.Context(), `select coalesce(string_agg(row_to_json(t)::text, E'\n'), '') from loom.`+pgx.Identifier{table}.Sanitize()+` t`).Scan(&dump); err != nil {
			t.Fatal(err)
		}
		places["table loom."+table] = dump
	}
	if places["table loom.spans"] == "" || places["table loom.api_keys"] == "" || places["table loom.tenant_credentials"] == "" {
		t.Fatal("the scan read empty tables: it would prove nothing")
	}
	for where, text := range places {
		for what, s := range secrets {
			if strings.Contains(text, s) {
				t.Errorf("%s holds the %s", where, what)
			}
		}
	}
}

// With Postgres stopped the proxy goes on serving its last snapshot and
// says it is degraded; when Postgres returns, a change applies within a
// second.
func TestStore_PostgresDown_ServesLastSnapshotThenCatchesUp(t *testing.T) {
	ts := startTenancy(t, false)
	key := ts.keys["acme"]
	if status, _ := ts.call(t, "POST", "/v1/chat/completions", key, chatBody(models["acme"].public)); status != 200 {
		t.Fatal(status)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := ts.pg.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		if status, body := ts.call(t, "POST", "/v1/chat/completions", key, chatBody(models["acme"].public)); status != 200 {
			t.Fatalf("call %d with Postgres down: %d %s", i, status, body)
		}
		time.Sleep(25 * time.Millisecond)
	}
	waitReady(t, ts.url, `"status":"degraded"`)
	if err := ts.pg.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	waitReady(t, ts.url, `"status":"ok"`)
	// The test's own pool still holds connections the restart cut; the
	// first use of each fails and is discarded.
	var err error
	for range 5 {
		if err = ts.store.RevokeKey(t.Context(), ts.keyIDs["acme"]); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	changed := time.Now()
	for {
		if status, _ := ts.call(t, "POST", "/v1/chat/completions", key, chatBody(models["acme"].public)); status == 401 {
			break
		}
		if time.Since(changed) > time.Second {
			t.Fatalf("a change after Postgres returned took over %v", time.Since(changed))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func waitReady(t *testing.T, url, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(url + "/readyz")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if strings.Contains(string(b), want) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz never said %s", want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
