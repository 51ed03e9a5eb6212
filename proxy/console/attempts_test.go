package console_test

import (
	"net/http"
	"strings"
	"testing"
)

// A call that moved to a second deployment has two CLIENT rows: it is
// still one call on the calls page, shown with the attempt that served.
func TestCalls_FailedOverCall_ListedOnce(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := t.Context()
	multi, single := f.TracesA[1], f.TracesA[0]
	_, err := f.pool.Exec(ctx, `UPDATE loom.spans SET upstream_attempt = 2 WHERE trace_id = $1 AND kind = 'client'`, multi)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.pool.Exec(ctx, `
INSERT INTO loom.spans (trace_id, span_id, parent_span_id, start_time, end_time, duration_ms, name, kind, status_code,
    service_name, tenant_id, api_key_id, provider, operation, request_model, stream, http_status, deployment,
    upstream_attempt, error_type, attributes)
SELECT trace_id, 'aaaaaaaaaaaaaaaa', span_id, start_time, start_time, 0, 'chat ' || request_model, 'client', 'error',
    'loom', tenant_id, api_key_id, 'openai', 'chat', request_model, stream, 503, 'east', 1, '503', '{}'
FROM loom.spans WHERE trace_id = $1 AND kind = 'server'`, multi)
	if err != nil {
		t.Fatal(err)
	}
	c := newClient(t, f.URL)
	if code := c.login(keyA); code != http.StatusSeeOther {
		t.Fatalf("login: %d", code)
	}
	code, body, _ := c.do("GET", "/console/calls", nil)
	if code != 200 {
		t.Fatalf("calls: %d", code)
	}
	if n, want := strings.Count(body, multi), strings.Count(body, single); n != want || n == 0 {
		t.Fatalf("the failed-over call appears %d times, a single-attempt one %d", n, want)
	}
	if !strings.Contains(body, "512") {
		t.Error("the serving attempt's tokens are not shown")
	}
}
