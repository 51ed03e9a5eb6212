package e2e_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/loom-gateway/loom/bench/mockupstream"
	"github.com/loom-gateway/loom/deploy/pgserver"
	"github.com/loom-gateway/loom/deploy/pgserver/pgtest"
	"github.com/loom-gateway/loom/proxy/cli"
	"github.com/loom-gateway/loom/proxy/config"
	"github.com/loom-gateway/loom/proxy/ledger"
	"github.com/loom-gateway/loom/proxy/logtest"
	"github.com/loom-gateway/loom/proxy/schema"
	"github.com/loom-gateway/loom/proxy/secret"
	"github.com/loom-gateway/loom/proxy/store"
	domain "github.com/loom-gateway/loom/proxy/tenancy"
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
	console   string            // the console's base URL
	keys      map[string]string // tenant -> key
	keyIDs    map[string]string
	secretKey string
	log       *logtest.Buffer
	col       *collector
	bodies    []string // every response body and header block a client saw
	// defaultPoll leaves store.poll at its default (10s) instead of 200ms,
	// so that only NOTIFY can bring a change in quickly.
	defaultPoll bool
}

// startTenancy starts it all; each of before runs once the tenants are in
// the store, before loom serve starts.
func startTenancy(t *testing.T, withCollector bool, before ...func(*tenancy)) *tenancy {
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
	// As an operator would: the store never migrates.
	if err := schema.Migrate(t.Context(), connect(t, ts.dbURL)); err != nil {
		t.Fatal(err)
	}
	if ts.store, err = store.Open(t.Context(), ts.dbURL, box); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ts.store.Close)
	// Changes are recorded in the admin audit log as this operator's.
	ctx := store.WithActor(t.Context(), store.Actor{Kind: store.ActorOperator, ID: "e2e-setup"})
	for id, own := range map[string]string{"acme": acmeUpstream, "globex": globexUpstream} {
		if err := ts.store.CreateTenant(ctx, store.TenantSpec{ID: id}); err != nil {
			t.Fatal(err)
		}
		if err := ts.store.SetModels(ctx, id, []domain.Model{{Name: models[id].public, Deployment: "mock", UpstreamModel: models[id].upstream}}); err != nil {
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
	for _, f := range before {
		f(ts)
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
	listen, consoleAddr := freeAddr(t), freeAddr(t)
	cfgPath := filepath.Join(t.TempDir(), "loom.yaml")
	poll := ", poll: 200ms"
	if ts.defaultPoll {
		poll = ""
	}
	yaml := fmt.Sprintf(`listen: %q
%sstore: {database_url_env: LOOM_TEST_DB, secret_key_env: LOOM_TEST_SECRET%s}
console: {listen: %q, database_url_env: LOOM_TEST_DB}
deployments:
  - {name: mock, provider: openai, base_url: "http://%s/v1", api_key: %s, forward_headers: ["x-mock-*"]}
`, listen, tracing, poll, consoleAddr, mln.Addr(), sharedUpstream)
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
	ts.console = "http://" + consoleAddr
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
			served <- err // for the cleanup, which waits on it
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
	revoker := store.WithActor(t.Context(), store.Actor{Kind: store.ActorOperator, ID: "e2e-revoker", RequestID: "revoke-acme-1"})
	if err := ts.store.RevokeKey(revoker, ts.keyIDs["acme"]); err != nil {
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
		err := schema.ReadAsTenant(t.Context(), db, tenant, 0, func(tx pgx.Tx) error {
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
	// The ledger's entries are bytea (canonical bytes), which row_to_json
	// shows as hex: each bytea column is also read as text (printable bytes
	// as they are), where a secret would show.
	// A client span and its entry are committed together; a tenant-bound
	// reader sees its own entries only.
	var clients int64
	if err := db.QueryRow(t.Context(), `select count(*) from loom.spans where kind = 'client' and tenant_id is not null`).Scan(&clients); err != nil || clients == 0 {
		t.Fatalf("%d client spans (%v)", clients, err)
	}
	waitRows(t, db, clients, 60*time.Second, `select count(*) from loom.ledger_entries where kind = 'call'`)
	for _, tenant := range []string{"acme", "globex"} {
		var mine, others int64
		err := schema.ReadAsTenant(t.Context(), db, tenant, 0, func(tx pgx.Tx) error {
			return tx.QueryRow(t.Context(), `select count(*) filter (where tenant_id = $1), count(*) filter (where tenant_id is distinct from $1) from loom.ledger_entries`, tenant).Scan(&mine, &others)
		})
		if err != nil || mine == 0 || others != 0 {
			t.Fatalf("%s reads %d own ledger entries and %d others' (err %v)", tenant, mine, others, err)
		}
	}
	for _, table := range tables {
		rows, err := db.Query(t.Context(), `select column_name from information_schema.columns
where table_schema = 'loom' and table_name = $1 and data_type = 'bytea'`, table)
		if err != nil {
			t.Fatal(err)
		}
		byteaCols, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		expr := "row_to_json(t)::text"
		for _, c := range byteaCols {
			expr += ` || ' ' || coalesce(encode(t.` + pgx.Identifier{c}.Sanitize() + `, 'escape'), '')`
		}
		var dump string
		if err := db.QueryRow(t.Context(), `select coalesce(string_agg(`+expr+`, E'\n'), '') from loom.`+pgx.Identifier{table}.Sanitize()+` t`).Scan(&dump); err != nil {
			t.Fatal(err)
		}
		places["table loom."+table] = dump
	}
	if places["table loom.spans"] == "" || places["table loom.api_keys"] == "" || places["table loom.tenant_credentials"] == "" ||
		places["table loom.ledger_entries"] == "" {
		t.Fatal("the scan read empty tables: it would prove nothing")
	}
	for where, text := range places {
		for what, s := range secrets {
			if strings.Contains(text, s) {
				t.Errorf("%s holds the %s", where, what)
			}
		}
	}
	checkAdminAudit(t, ts, db)
}

// checkAdminAudit checks that every admin change the suite made is in the
// system chain as its operator's, with the credentials redacted, and that
// each tenant reads its own tenant's entries and no other's.
func checkAdminAudit(t *testing.T, ts *tenancy, db *pgxpool.Pool) {
	t.Helper()
	entries, err := ts.store.Audit(t.Context(), store.AuditQuery{Limit: store.MaxAuditLimit})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]store.AuditEntry{}
	for _, e := range entries {
		got[e.Actor.Kind+":"+e.Actor.ID+" "+e.Action+" "+e.Target] = e
	}
	for _, id := range []string{"acme", "globex"} {
		for _, want := range []string{"operator:e2e-setup tenant.create " + id, "operator:e2e-setup models.set " + id + "/models",
			"operator:e2e-setup credential.set " + id + "/credentials/mock", "operator:e2e-setup key.create " + id + "/keys/" + ts.keyIDs[id]} {
			if _, ok := got[want]; !ok {
				t.Errorf("the audit log lacks %q; it has %v", want, slices.Collect(maps.Keys(got)))
			}
		}
		if e := got["operator:e2e-setup credential.set "+id+"/credentials/mock"]; string(e.After) != `{"deployment":"mock","set":true,"api_key":"[redacted]"}` {
			t.Errorf("%s's credential.set recorded after = %s", id, e.After)
		}
	}
	if e, ok := got["operator:e2e-revoker key.revoke acme/keys/"+ts.keyIDs["acme"]]; !ok || e.Actor.RequestID != "revoke-acme-1" {
		t.Errorf("the revocation is not in the audit log with its request id: %+v", e)
	}
	if rep, err := ledger.Verify(t.Context(), db, ledger.VerifyOptions{Chain: ledger.SystemChain}); err != nil || !rep.OK() || rep.Entries < 9 {
		t.Errorf("the system chain does not verify: %+v, %v", rep, err)
	}
	for _, tenant := range []string{"acme", "globex"} {
		var own []store.AuditEntry
		err := schema.ReadAsTenant(t.Context(), db, tenant, 0, func(tx pgx.Tx) error {
			var err error
			own, err = store.ReadAudit(t.Context(), tx, store.AuditQuery{})
			return err
		})
		if err != nil || len(own) < 4 {
			t.Fatalf("%s reads %d audit entries (err %v), want its own 4 or more", tenant, len(own), err)
		}
		for _, e := range own {
			if store.TargetTenant(e.Target) != tenant {
				t.Errorf("%s reads another tenant's audit entry: %s %s", tenant, e.Action, e.Target)
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

// untilStatus polls do until it answers want, failing after within.
func untilStatus(t *testing.T, within time.Duration, want int, do func() int) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		if do() == want {
			return time.Since(start)
		}
		if time.Since(start) > within {
			t.Fatalf("still not %d after %v", want, time.Since(start))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// An admin's typo written straight into the store (a model naming a
// deployment this gateway lacks) quarantines that tenant alone: the others'
// changes, revocations above all, still apply within a second, the tenant
// keeps its last good version, and /readyz names it rather than the store.
func TestStore_BadTenantRow_QuarantinesThatTenantAloneAndRevocationsStillApply(t *testing.T) {
	ts := startTenancy(t, false)
	db := connect(t, ts.dbURL)
	if _, err := db.Exec(t.Context(), `INSERT INTO loom.tenant_models (tenant_id, name, deployment) VALUES ('globex', 'typo', 'no-such-deployment')`); err != nil {
		t.Fatal(err)
	}
	waitReady(t, ts.url, `tenant globex quarantined: models[`)
	resp, err := http.Get(ts.url + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), `"status":"degraded"`) || !strings.Contains(string(b), `.deployment: no deployment named \"no-such-deployment\"`) ||
		strings.Contains(string(b), "store unreadable") {
		t.Errorf("/readyz = %s; want degraded, naming globex's bad model, not blaming the store", b)
	}
	if !strings.Contains(ts.log.String(), "tenants quarantined") {
		t.Errorf("the quarantine was not logged:\n%s", ts.log.String())
	}
	// globex serves its last good version meanwhile.
	if status, body := ts.call(t, "POST", "/v1/chat/completions", ts.keys["globex"], chatBody(models["globex"].public)); status != 200 {
		t.Fatalf("quarantined globex on its last good model: %d %s", status, body)
	}

	// Another tenant's revocation applies within a second.
	if err := ts.store.RevokeKey(t.Context(), ts.keyIDs["acme"]); err != nil {
		t.Fatal(err)
	}
	took := untilStatus(t, time.Second, http.StatusUnauthorized, func() int {
		status, _ := ts.call(t, "POST", "/v1/chat/completions", ts.keys["acme"], chatBody(models["acme"].public))
		return status
	})
	t.Logf("acme's revoked key refused %v after the revocation, with globex quarantined", took.Round(time.Millisecond))
	// And so does one of the quarantined tenant's own.
	if err := ts.store.RevokeKey(t.Context(), ts.keyIDs["globex"]); err != nil {
		t.Fatal(err)
	}
	untilStatus(t, time.Second, http.StatusUnauthorized, func() int {
		status, _ := ts.call(t, "POST", "/v1/chat/completions", ts.keys["globex"], chatBody(models["globex"].public))
		return status
	})

	// Fixed, the gateway is ready again.
	if _, err := db.Exec(t.Context(), `DELETE FROM loom.tenant_models WHERE tenant_id = 'globex' AND name = 'typo'`); err != nil {
		t.Fatal(err)
	}
	waitReady(t, ts.url, `"status":"ok"`)
}

// A bad row already there when loom serve starts does not stop it: the
// other tenants are served, the bad one is not, and /readyz says why.
func TestStore_BadTenantRowAtStart_LoomServesTheOthers(t *testing.T) {
	ts := startTenancy(t, false, func(ts *tenancy) {
		db := connect(t, ts.dbURL)
		if _, err := db.Exec(t.Context(), `INSERT INTO loom.tenant_models (tenant_id, name, deployment) VALUES ('globex', 'typo', 'no-such-deployment')`); err != nil {
			t.Fatal(err)
		}
	})
	waitReady(t, ts.url, `tenant globex quarantined: models[`)
	if status, body := ts.call(t, "POST", "/v1/chat/completions", ts.keys["acme"], chatBody(models["acme"].public)); status != 200 {
		t.Errorf("acme with globex quarantined at start: %d %s", status, body)
	}
	if status, _ := ts.call(t, "POST", "/v1/chat/completions", ts.keys["globex"], chatBody(models["globex"].public)); status != http.StatusUnauthorized {
		t.Errorf("globex, bad since before start (no good version to fall back on): %d, want 401", status)
	}
}

// A console session is only as good as the key that opened it: once the
// key is revoked, the next request with its cookie gets 401.
func TestConsole_RevokedKeysCookie_Gets401AtOnce(t *testing.T) {
	ts := startTenancy(t, false)
	jar := map[string]*http.Cookie{}
	hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	do := func(method, path string, form url.Values) (int, string) {
		t.Helper()
		var body io.Reader
		if form != nil {
			body = strings.NewReader(form.Encode())
		}
		req, err := http.NewRequest(method, ts.console+path, body)
		if err != nil {
			t.Fatal(err)
		}
		if form != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		for _, c := range jar {
			req.AddCookie(c)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		for _, c := range resp.Cookies() {
			jar[c.Name] = c
		}
		return resp.StatusCode, string(b)
	}
	_, page := do("GET", "/console/login", nil)
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no csrf token on the login page:\n%s", page)
	}
	if status, body := do("POST", "/console/login", url.Values{"key": {ts.keys["acme"]}, "csrf": {m[1]}}); status != http.StatusSeeOther {
		t.Fatalf("console login: %d %s", status, body)
	}
	session := *jar["loom_console"]
	if status, _ := do("GET", "/console/calls", nil); status != http.StatusOK {
		t.Fatalf("console with a live key: %d", status)
	}
	if err := ts.store.RevokeKey(t.Context(), ts.keyIDs["acme"]); err != nil {
		t.Fatal(err)
	}
	took := untilStatus(t, time.Second, http.StatusUnauthorized, func() int {
		jar["loom_console"] = &session // a kept copy, not a browser that obeys the clearing
		status, _ := do("GET", "/console/calls", nil)
		return status
	})
	t.Logf("the revoked key's console cookie refused %v after the revocation", took.Round(time.Millisecond))
}
