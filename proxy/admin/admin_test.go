package admin_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"github.com/loom-gateway/loom/proxy/logtest"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/loom-gateway/loom/deploy/pgserver/pgtest"
	"github.com/loom-gateway/loom/proxy/admin"
	"github.com/loom-gateway/loom/proxy/internal/json"
	"github.com/loom-gateway/loom/proxy/schema"
	"github.com/loom-gateway/loom/proxy/secret"
	"github.com/loom-gateway/loom/proxy/store"
)

const token = "loom-admin-token-do-not-log"

// fixture is the admin API over a store on a fresh database, with every
// response body and log line kept for the secret scan.
type fixture struct {
	t      *testing.T
	url    string // the database's
	st     *store.Store
	h      http.Handler
	logs   *logtest.Buffer
	bodies bytes.Buffer
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	key := make([]byte, secret.KeySize)
	rand.Read(key)
	box, err := secret.New(key)
	if err != nil {
		t.Fatal(err)
	}
	url := migratedDatabase(t)
	st, err := store.Open(t.Context(), url, box)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	logs := &logtest.Buffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return &fixture{t: t, url: url, st: st, h: admin.New(st, sha256.Sum256([]byte(token)), log), logs: logs}
}

// ledgerBytes is every ledger table's rows as JSON, and the canonical
// bytes of every entry raw (row_to_json writes bytea as hex, which a scan
// for a plaintext would read past).
func (f *fixture) ledgerBytes() string {
	f.t.Helper()
	conn, err := pgx.Connect(f.t.Context(), f.url)
	if err != nil {
		f.t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var b strings.Builder
	rows, _ := conn.Query(f.t.Context(), `SELECT table_name FROM information_schema.tables WHERE table_schema = 'loom' AND table_name LIKE 'ledger%'`)
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || len(tables) == 0 {
		f.t.Fatalf("ledger tables %v: %v", tables, err)
	}
	for _, table := range tables {
		var dump string
		if err := conn.QueryRow(f.t.Context(), `SELECT coalesce(string_agg(row_to_json(t)::text, E'\n'), '') FROM loom.`+pgx.Identifier{table}.Sanitize()+` t`).Scan(&dump); err != nil {
			f.t.Fatal(err)
		}
		b.WriteString(dump)
	}
	rows, _ = conn.Query(f.t.Context(), `SELECT canonical FROM loom.ledger_entries`)
	canon, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	if err != nil {
		f.t.Fatal(err)
	}
	for _, c := range canon {
		b.Write(c)
	}
	return b.String()
}

// migratedDatabase is the URL of a fresh database with the schema (the
// store never migrates).
func migratedDatabase(t *testing.T) string {
	t.Helper()
	url := pgtest.Database(t, pgtest.Start(t))
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if err := schema.Migrate(t.Context(), conn); err != nil {
		t.Fatal(err)
	}
	return url
}

// do sends a request with the admin token (auth "" sends none) and
// returns the status and body.
func (f *fixture) do(auth, method, path, body string) (int, []byte) {
	f.t.Helper()
	r := httptest.NewRequestWithContext(f.t.Context(), method, path, strings.NewReader(body))
	if auth != "" {
		r.Header.Set("Authorization", auth)
	}
	w := httptest.NewRecorder()
	f.h.ServeHTTP(w, r)
	b, _ := io.ReadAll(w.Result().Body)
	f.bodies.Write(b)
	return w.Code, b
}

// call is do with the right token, expecting status want; it decodes the
// body into out when out is not nil.
func (f *fixture) call(method, path, body string, want int, out any) []byte {
	f.t.Helper()
	code, b := f.do("Bearer "+token, method, path, body)
	if code != want {
		f.t.Fatalf("%s %s = %d %s, want %d", method, path, code, b, want)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			f.t.Fatalf("%s %s: %v in %s", method, path, err, b)
		}
	}
	return b
}

type errorBody struct {
	Error struct {
		Message, Type string
		Param, Code   *string
	} `json:"error"`
}

// openAIError checks that b is OpenAI's error shape with code.
func openAIError(t *testing.T, b []byte, code string) {
	t.Helper()
	var e errorBody
	if err := json.Unmarshal(b, &e); err != nil || e.Error.Message == "" || e.Error.Type == "" || e.Error.Code == nil || *e.Error.Code != code {
		t.Errorf("error body %s: want OpenAI's shape with code %q (%v)", b, code, err)
	}
}

func TestAdmin_WithoutTheToken_401(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	for _, auth := range []string{"", "Bearer wrong", "Bearer " + token + "x", "Basic " + token, token} {
		code, b := f.do(auth, "GET", "/admin/tenants", "")
		if code != http.StatusUnauthorized {
			t.Errorf("Authorization %q: %d, want 401", auth, code)
		}
		openAIError(t, b, "invalid_api_key")
	}
	// Refused before routing: an unknown path says nothing either.
	if code, _ := f.do("", "GET", "/admin/nope", ""); code != http.StatusUnauthorized {
		t.Errorf("unknown path without token: %d, want 401", code)
	}
	if s := f.logs.String(); strings.Contains(s, token) {
		t.Errorf("the log shows the token:\n%s", s)
	}
}

func TestAdmin_ModelOrCredentialNamingUnknownDeployment_400NamingTheField(t *testing.T) {
	t.Parallel()
	key := make([]byte, secret.KeySize)
	rand.Read(key)
	box, _ := secret.New(key)
	st, err := store.Open(t.Context(), migratedDatabase(t), box, store.WithDeployments([]string{"openai"}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	f := &fixture{t: t, st: st, h: admin.New(st, sha256.Sum256([]byte(token)), slog.New(slog.DiscardHandler)), logs: &logtest.Buffer{}}
	f.call("POST", "/admin/tenants", `{"id":"acme"}`, http.StatusCreated, nil)
	b := f.call("PUT", "/admin/tenants/acme/models", `{"models":[{"name":"a","deployment":"openai"},{"name":"b","deployment":"opnai"}]}`,
		http.StatusBadRequest, nil)
	openAIError(t, b, "invalid_value")
	if !strings.Contains(string(b), `"param":"models[1].deployment"`) || !strings.Contains(string(b), `no deployment named \"opnai\"`) {
		t.Errorf("a model naming an unknown deployment: %s; want param models[1].deployment and the name", b)
	}
	b = f.call("PUT", "/admin/tenants/acme/credentials/opnai", `{"api_key":"sk-x"}`, http.StatusBadRequest, nil)
	if !strings.Contains(string(b), `"param":"deployment"`) {
		t.Errorf("a credential for an unknown deployment: %s; want param deployment", b)
	}
	f.call("PUT", "/admin/tenants/acme/models", `{"models":[{"name":"a","deployment":"openai"}]}`, http.StatusOK, nil)
}
