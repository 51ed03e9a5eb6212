package server_test

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/loom-gateway/loom/proxy/call"
	"github.com/loom-gateway/loom/proxy/logtest"
)

// serveOps serves st's ops handler on a listener of its own, as `loom
// serve` does for ops.listen, and returns its URL.
func serveOps(t *testing.T, st *stack) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &fasthttp.Server{Handler: st.loom.OpsHandler()}
	go func() { _ = hs.Serve(ln) }()
	t.Cleanup(func() { _ = hs.Shutdown() })
	return "http://" + ln.Addr().String()
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// metric reads one sample of a Prometheus text exposition; -1 if absent.
func metric(exposition, sample string) int64 {
	for line := range strings.Lines(exposition) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), sample+" "); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return -1
			}
			return n
		}
	}
	return -1
}

// Requests refused before any tenant is known are not calls: they reach no
// sink (no span, no loom.seq), they are counted by reason on the ops
// listener's /metrics, and they are logged at most once per reason per
// interval, never with the key.
func TestServer_UnauthenticatedRejects_CountedByReason_NotRecorded(t *testing.T) {
	var logs logtest.Buffer
	st := startStack(t, stackOptions{maxBody: 64 << 10, logger: slog.New(slog.NewTextHandler(&logs, nil))})
	ops := serveOps(t, st)
	host := strings.TrimPrefix(st.url, "http://")
	started := time.Now()
	const wrongKey = "sk-loom-wrong-key-never-logged"
	chatBody := `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`
	for range 20 {
		status, _, body := st.do("POST", "/v1/chat/completions", wrongKey, chatBody, nil)
		assertError(t, status, body, 401, "invalid_api_key")
	}
	status, _, body := st.do("POST", "/v1/chat/completions", "", chatBody, nil)
	assertError(t, status, body, 401, "missing_api_key")
	status, _, body = st.do("POST", "/v1/nope", "", chatBody, nil)
	assertError(t, status, body, 404, "unknown_url")
	status, _, body = st.do("GET", "/v1/chat/completions", "", "", nil)
	assertError(t, status, body, 405, "method_not_allowed")
	if status, _ := rawExchange(t, host, "POST /%FF HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n"); status != 413 {
		t.Fatalf("announced huge body: %d, want 413", status)
	}
	if status, _ := rawExchange(t, host, "POST\r\n\r\n"); status != 400 {
		t.Fatalf("malformed request line: %d, want 400", status)
	}
	// The gateway no longer serves /metrics: it is an unknown URL there.
	status, _, body = st.do("GET", "/metrics", "", "", nil)
	assertError(t, status, body, 404, "unknown_url")

	// One real call: by the time its record arrives, any record of the
	// refused requests (finished before their answers went out) would have.
	if status, _, body := st.do("POST", "/v1/chat/completions", st.keyA, chatBody, nil); status != 200 {
		t.Fatalf("status %d: %s", status, body)
	}
	recs := st.waitRecords(1)
	if len(recs) != 1 || recs[0].TenantID != "acme" || recs[0].Outcome != call.OutcomeOK {
		for _, r := range recs {
			t.Errorf("record: tenant %q status %d %s", r.TenantID, r.Status, r.ErrorType)
		}
		t.Fatalf("%d records, want only the authenticated call's", len(recs))
	}

	status, m := get(t, ops+"/metrics")
	if status != 200 {
		t.Fatalf("ops /metrics: %d %s", status, m)
	}
	for reason, want := range map[string]int64{"invalid_api_key": 20, "missing_api_key": 1, "unknown_url": 2,
		"method_not_allowed": 1, "request_too_large": 1, "malformed_request": 1, "headers_too_large": 0, "request_timeout": 0, "other": 0} {
		if got := metric(m, `loom_rejected_unauthenticated_total{reason="`+reason+`"}`); got != want {
			t.Errorf("reason %s counted %d, want %d", reason, got, want)
		}
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		if status, body := get(t, ops+path); status != 200 || !strings.Contains(body, `"status":"ok"`) {
			t.Errorf("ops %s: %d %s", path, status, body)
		}
	}

	out := logs.String()
	if strings.Contains(out, wrongKey) {
		t.Fatalf("the log holds a client's key:\n%s", out)
	}
	// Twenty refusals in well under the interval: one line, not twenty.
	lines := strings.Count(out, "reason=invalid_api_key")
	if maxLines := 1 + int(time.Since(started)/(10*time.Second)); lines < 1 || lines > maxLines {
		t.Fatalf("%d log lines for invalid_api_key, want 1 to %d:\n%s", lines, maxLines, out)
	}
}

// A key holder's own mistakes (a wrong URL, a wrong method) stay in its
// record, as before: only requests without a valid key are just counted.
func TestServer_RefusedWithAValidKey_StillRecordedForTheTenant(t *testing.T) {
	st := startStack(t, stackOptions{})
	ops := serveOps(t, st)
	status, _, body := st.do("POST", "/v1/nope", st.keyA, "{}", nil)
	assertError(t, status, body, 404, "unknown_url")
	status, _, body = st.do("GET", "/v1/chat/completions", st.keyA, "", nil)
	assertError(t, status, body, 405, "method_not_allowed")
	recs := st.waitRecords(2)
	for i, want := range []string{"unknown_url", "method_not_allowed"} {
		if r := recs[i]; r.TenantID != "acme" || r.KeyID != "acme-key-1" || r.ErrorType != want || r.Outcome != call.OutcomeRejected {
			t.Errorf("record %d: tenant %q key %q error %q outcome %q; want acme's %s", i, r.TenantID, r.KeyID, r.ErrorType, r.Outcome, want)
		}
	}
	_, m := get(t, ops+"/metrics")
	for _, reason := range []string{"unknown_url", "method_not_allowed"} {
		if got := metric(m, `loom_rejected_unauthenticated_total{reason="`+reason+`"}`); got != 0 {
			t.Errorf("a key holder's %s counted as unauthenticated (%d)", reason, got)
		}
	}
}

// The soak watches Loom's goroutines through the ops listener: a count
// that climbs under steady load is a leak.
func TestServer_OpsMetrics_ReportGoroutines(t *testing.T) {
	st := startStack(t, stackOptions{})
	status, body := get(t, serveOps(t, st)+"/metrics")
	if n := metric(body, "go_goroutines"); status != 200 || n <= 0 {
		t.Fatalf("status %d, go_goroutines %d; want a positive count:\n%s", status, n, body)
	}
}
