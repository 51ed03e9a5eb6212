package console_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"github.com/loom-gateway/loom/proxy/logtest"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/loom-gateway/loom/proxy/console"
	"github.com/loom-gateway/loom/proxy/schema/schematest"
)

// The fixture's secrets: two tenant keys and the admin token.
const (
	keyA       = "sk-loom-tenantA-0123456789abcdef"
	keyB       = "sk-loom-tenantB-fedcba9876543210"
	keyA2      = "sk-loom-tenantA-second-key-0000"
	adminToken = "loom-admin-token-0123456789"
	modelA     = "gpt-4o-mini"
	modelB     = "tenant-b-private-model"
)

// fixture is a console over a real Postgres holding calls of tenants
// "acme" (A) and "globex" (B).
type fixture struct {
	URL            string
	h              http.Handler
	pool           *pgxpool.Pool
	live           *liveKeys
	TracesA        []string // newest first; TracesA[0] has captured content
	TracesB        []string
	log            *logtest.Buffer
	ContentTraceID string
}

// liveKeys is the gateway's snapshot as the console sees it: key id to
// tenant, for keys that still work.
type liveKeys struct {
	mu   sync.Mutex
	keys map[string]string
}

func (l *liveKeys) tenant(keyID string) (string, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	t, ok := l.keys[keyID]
	return t, ok
}

// revoke takes a key out of the snapshot, as a revocation does.
func (l *liveKeys) revoke(keyID string) {
	l.mu.Lock()
	delete(l.keys, keyID)
	l.mu.Unlock()
}

func hexID(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// call is one recorded call: a SERVER span and the CLIENT span under it.
type call struct {
	tenant, key, model    string
	stream, failed        bool
	in, out               int64
	durMs, ttfcMs, overMs float64
	content               bool
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := t.Context()
	now := time.Now().UTC()
	pool := schematest.DB(t, now.Add(-48*time.Hour), now.Add(24*time.Hour))
	f := &fixture{log: &logtest.Buffer{}, pool: pool}
	calls := []call{
		{tenant: "acme", key: "acme-key", model: modelA, in: 120, out: 48, durMs: 840, overMs: 0.9, content: true},
		{tenant: "acme", key: "acme-key", model: modelA, stream: true, in: 300, out: 512, durMs: 2100, ttfcMs: 180, overMs: 1.2},
		{tenant: "acme", key: "acme-key", model: "gpt-4o", failed: true, durMs: 95, overMs: 0.7},
		{tenant: "globex", key: "globex-key", model: modelB, in: 999, out: 777, durMs: 1300, overMs: 1.1},
		{tenant: "globex", key: "globex-key", model: modelB, stream: true, in: 50, out: 60, durMs: 400, ttfcMs: 90, overMs: 1},
	}
	for i, c := range calls {
		start := now.Add(-time.Duration(i+1) * 3 * time.Minute)
		trace := insertCall(ctx, t, pool, c, start)
		if c.tenant == "acme" {
			f.TracesA = append(f.TracesA, trace)
		} else {
			f.TracesB = append(f.TracesB, trace)
		}
		if c.content {
			f.ContentTraceID = trace
		}
	}
	f.live = &liveKeys{keys: map[string]string{"acme-key": "acme", "acme-key-2": "acme", "globex-key": "globex"}}
	auth := func(key string) (string, string, bool) {
		id := map[string]string{keyA: "acme-key", keyA2: "acme-key-2", keyB: "globex-key"}[key]
		t, ok := f.live.tenant(id)
		return t, id, ok
	}
	f.h = console.New(console.Options{
		DB: pool, Authenticate: auth, AdminTokenSHA256: sha256.Sum256([]byte(adminToken)),
		KeyLive: func(tenantID, keyID string) bool {
			t, ok := f.live.tenant(keyID)
			return ok && t == tenantID
		},
		SessionKey: []byte(hexID(32)), Log: slog.New(slog.NewTextHandler(f.log, nil)),
		// Generous: the tests log in often from one address.
		LoginsPerIP: 1000,
	})
	srv := httptest.NewServer(f.h)
	t.Cleanup(srv.Close)
	f.URL = srv.URL
	return f
}

func insertCall(ctx context.Context, t *testing.T, pool *pgxpool.Pool, c call, start time.Time) string {
	t.Helper()
	trace, server, client := hexID(16), hexID(8), hexID(8)
	end := start.Add(time.Duration(c.durMs * float64(time.Millisecond)))
	status, httpStatus, errType := "unset", 200, any(nil)
	if c.failed {
		status, httpStatus, errType = "error", 502, "upstream_error"
	}
	var in, out, ttfc any
	if !c.failed {
		in, out = c.in, c.out
	}
	if c.ttfcMs > 0 {
		ttfc = c.ttfcMs
	}
	_, err := pool.Exec(ctx, `
INSERT INTO loom.spans (trace_id, span_id, parent_span_id, start_time, end_time, duration_ms, name, kind, status_code,
    service_name, tenant_id, api_key_id, request_model, stream, http_status, overhead_ms, error_type, attributes)
VALUES ($1, $2, NULL, $3, $4, $5, 'POST /v1/chat/completions', 'server', $6, 'loom', $7, $8, $9, $10, $11, $12, $13,
    '{"http.route": "/v1/chat/completions", "loom.outcome": "ok"}');
`, trace, server, start, end, c.durMs, status, c.tenant, c.key, c.model, c.stream, httpStatus, c.overMs, errType)
	if err != nil {
		t.Fatal(err)
	}
	cstart := start.Add(time.Millisecond)
	cend := end.Add(-time.Millisecond)
	_, err = pool.Exec(ctx, `
INSERT INTO loom.spans (trace_id, span_id, parent_span_id, start_time, end_time, duration_ms, name, kind, status_code,
    service_name, tenant_id, api_key_id, provider, operation, request_model, response_model, input_tokens, output_tokens,
    total_tokens, stream, time_to_first_chunk_ms, overhead_ms, http_status, deployment, server_address, attributes)
VALUES ($1, $2, $3, $4, $5, $6, 'chat ' || $9, 'client', $7, 'loom', $8, $10, 'openai', 'chat', $9, $9, $11, $12,
    $11::bigint + $12::bigint, $13, $14, $15, $16, 'mock', '127.0.0.1', '{"server.port": 9090}');
`, trace, client, server, cstart, cend, c.durMs-2, status, c.tenant, c.model, c.key, in, out, c.stream, ttfc, c.overMs,
		httpStatus)
	if err != nil {
		t.Fatal(err)
	}
	if c.content {
		_, err = pool.Exec(ctx, `INSERT INTO loom.span_content (trace_id, span_id, start_time, tenant_id, input_messages, output_messages)
VALUES ($1, $2, $3, $4, '[{"role":"user","parts":[{"type":"text","content":"What is a loom?"}]}]',
    '[{"role":"assistant","parts":[{"type":"text","content":"A device for weaving cloth."}]}]')`,
			trace, client, cstart, c.tenant)
		if err != nil {
			t.Fatal(err)
		}
	}
	return trace
}
