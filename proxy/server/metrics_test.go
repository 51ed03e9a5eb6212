package server_test

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// scrape GETs the ops listener's /metrics asking for accept and returns
// the body and its content type.
func scrape(t *testing.T, ops, accept string) (string, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", ops+"/metrics", nil)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("/metrics: %d %s", resp.StatusCode, b)
	}
	return string(b), resp.Header.Get("Content-Type")
}

// families parses a text exposition (the classic format) strictly.
func families(t *testing.T, body string) map[string]*dto.MetricFamily {
	t.Helper()
	dec := expfmt.NewDecoder(strings.NewReader(body), expfmt.NewFormat(expfmt.TypeTextPlain))
	fams := map[string]*dto.MetricFamily{}
	for {
		mf := &dto.MetricFamily{}
		if err := dec.Decode(mf); err != nil {
			if errors.Is(err, io.EOF) {
				return fams
			}
			t.Fatalf("parse /metrics: %v\n%s", err, body)
		}
		fams[mf.GetName()] = mf
	}
}

// sampleValue is the value of name's sample whose labels include want
// (all of them); found says one matched. A histogram's value is its count.
func sampleValue(fams map[string]*dto.MetricFamily, name string, want map[string]string) (v float64, found bool) {
	mf := fams[name]
	if mf == nil {
		return 0, false
	}
metrics:
	for _, m := range mf.GetMetric() {
		have := map[string]string{}
		for _, lp := range m.GetLabel() {
			have[lp.GetName()] = lp.GetValue()
		}
		for k, w := range want {
			if have[k] != w {
				continue metrics
			}
		}
		found = true
		switch {
		case m.Counter != nil:
			v += m.GetCounter().GetValue()
		case m.Gauge != nil:
			v += m.GetGauge().GetValue()
		case m.Histogram != nil:
			v += float64(m.GetHistogram().GetSampleCount())
		}
	}
	return v, found
}

// waitSample polls /metrics until name's samples matching want sum to
// value (the metrics see a call right after the sink does).
func waitSample(t *testing.T, ops, name string, want map[string]string, value float64) map[string]*dto.MetricFamily {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		body, _ := scrape(t, ops, "")
		fams := families(t, body)
		got, _ := sampleValue(fams, name, want)
		if got == value {
			return fams
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s%v = %v, want %v\n%s", name, want, got, value, body)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Every call a tenant owns counts once in loom_requests_total, labelled by
// tenant, model, deployment, provider, operation and status class; a
// model the configuration does not name is "other", so a client cannot
// add series; a stream the client abandons counts as client_closed, one
// the upstream breaks off as what the client got; and requests without a
// valid key are not calls and do not count.
func TestMetrics_RequestsTotal_EveryRecordedCallOnce_BoundedLabels(t *testing.T) {
	st := startStack(t, stackOptions{drain: 300 * time.Millisecond})
	ops := serveOps(t, st)
	chat := `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`
	for range 3 {
		if status, _, body := st.do("POST", "/v1/chat/completions", st.keyA, chat, nil); status != 200 {
			t.Fatalf("chat: %d %s", status, body)
		}
	}
	if status, _, _ := st.do("POST", "/v1/chat/completions", st.keyB,
		`{"model":"globex-model","messages":[{"role":"user","content":"hi"}]}`, nil); status != 200 {
		t.Fatal("globex chat failed")
	}
	for _, model := range []string{"no-such-model-1", "no-such-model-2"} {
		if status, _, _ := st.do("POST", "/v1/chat/completions", st.keyA,
			`{"model":"`+model+`","messages":[{"role":"user","content":"hi"}]}`, nil); status != 404 {
			t.Fatalf("unknown model: %d", status)
		}
	}
	if status, _, _ := st.do("POST", "/v1/chat/completions", "sk-not-a-key", chat, nil); status != 401 {
		t.Fatal("a wrong key was accepted")
	}
	if status, _, _ := st.do("POST", "/v1/chat/completions", st.keyA, chat,
		map[string]string{"x-mock-status": "503"}); status/100 != 5 {
		t.Fatalf("an upstream 503 answered %d", status)
	}
	// A stream the client leaves after its first events.
	resp := openStream(t, st, `{"model":"gpt-4o","messages":[{"role":"user","content":"x"}],"stream":true}`,
		map[string]string{"x-mock-chunks": "200", "x-mock-chunk-delay-ms": "20"})
	r := bufio.NewReader(resp.Body)
	for range 3 {
		if _, err := r.ReadBytes('\n'); err != nil {
			t.Fatal(err)
		}
	}
	resp.Body.Close()
	st.client.CloseIdleConnections()

	// A stream the upstream breaks off mid-way: the client got a 200.
	if status, _, _ := st.do("POST", "/v1/chat/completions", st.keyA,
		`{"model":"gpt-4o","messages":[{"role":"user","content":"x"}],"stream":true}`,
		map[string]string{"x-mock-chunks": "10", "x-mock-reset-after": "4"}); status != 200 {
		t.Fatalf("reset stream: %d", status)
	}

	recs := st.waitRecords(9)
	fams := waitSample(t, ops, "loom_requests_total", nil, float64(len(recs)))
	for _, c := range []struct {
		labels map[string]string
		want   float64
	}{
		{map[string]string{"tenant": "acme", "model": "gpt-4o-mini", "deployment": "mock-openai", "provider": "openai",
			"operation": "chat", "status_class": "2xx"}, 3},
		{map[string]string{"tenant": "globex", "model": "globex-model", "status_class": "2xx"}, 1},
		{map[string]string{"tenant": "acme", "model": "other", "operation": "chat", "status_class": "4xx"}, 2},
		{map[string]string{"tenant": "acme", "model": "gpt-4o-mini", "status_class": "5xx"}, 1},
		{map[string]string{"tenant": "acme", "model": "gpt-4o", "status_class": "client_closed"}, 1},
		{map[string]string{"tenant": "acme", "model": "gpt-4o", "status_class": "2xx"}, 1},
	} {
		if got, _ := sampleValue(fams, "loom_requests_total", c.labels); got != c.want {
			t.Errorf("loom_requests_total%v = %v, want %v", c.labels, got, c.want)
		}
	}
	for _, m := range fams["loom_requests_total"].GetMetric() {
		for _, lp := range m.GetLabel() {
			if strings.HasPrefix(lp.GetValue(), "no-such-model") {
				t.Errorf("a model the configuration does not name became a label: %v", m.GetLabel())
			}
		}
	}
	// The existing counters are still there, in the same exposition.
	if v, ok := sampleValue(fams, "loom_rejected_unauthenticated_total", map[string]string{"reason": "invalid_api_key"}); !ok || v != 1 {
		t.Errorf("loom_rejected_unauthenticated_total{reason=invalid_api_key} = %v (found %v), want 1", v, ok)
	}
}

// A scraper that asks for OpenMetrics gets it (the format exemplars need),
// ending in # EOF; one that asks for nothing gets the classic text format.
func TestMetrics_Exposition_NegotiatesOpenMetricsOrText(t *testing.T) {
	st := startStack(t, stackOptions{})
	ops := serveOps(t, st)
	body, ctype := scrape(t, ops, "application/openmetrics-text; version=1.0.0; charset=utf-8")
	if !strings.HasPrefix(ctype, "application/openmetrics-text") || !strings.HasSuffix(body, "# EOF\n") {
		t.Fatalf("OpenMetrics asked, got %q:\n%s", ctype, body)
	}
	body, ctype = scrape(t, ops, "")
	if !strings.HasPrefix(ctype, "text/plain") || bytes.Contains([]byte(body), []byte("# EOF")) {
		t.Fatalf("no Accept, got %q:\n%s", ctype, body)
	}
	families(t, body)
}

// What each call's record says lands in the matching series: tokens by
// kind, the latency histograms, a refusal by the limit that refused it
// (and as an error of its error.type); the pool and stream gauges are
// there, back at zero once the calls are done.
func TestMetrics_TokensLatencyAndRefusals_FromEachCallsRecord(t *testing.T) {
	st := startStack(t, stackOptions{keyLimits: "{requests_per_minute: 2}"})
	ops := serveOps(t, st)
	chat := `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`
	want := []int{200, 200, 429}
	for i, w := range want {
		if status, _, body := st.do("POST", "/v1/chat/completions", st.keyA, chat, nil); status != w {
			t.Fatalf("call %d: %d %s, want %d", i, status, body, w)
		}
	}
	recs := st.waitRecords(len(want))
	fams := waitSample(t, ops, "loom_requests_total", nil, float64(len(recs)))
	var input, output, relayed float64
	for _, r := range recs {
		if r.UsageSource != "" {
			input += float64(r.Usage.InputTokens)
			output += float64(r.Usage.OutputTokens)
		}
		if r.Overhead > 0 {
			relayed++
		}
	}
	acme := map[string]string{"tenant": "acme", "model": "gpt-4o-mini"}
	with := func(kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range acme {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"loom_tokens_total", with("kind", "input"), input},
		{"loom_tokens_total", with("kind", "output"), output},
		{"loom_request_duration_seconds", with("operation", "chat"), 3},
		{"loom_overhead_seconds", map[string]string{"operation": "chat"}, relayed},
		{"loom_limit_refusals_total", map[string]string{"tenant": "acme", "limit": "requests"}, 1},
		{"loom_request_errors_total", with("error_type", "rate_limit_exceeded"), 1},
		{"loom_requests_total", with("status_class", "4xx"), 1},
		{"loom_streams_active", nil, 0},
		{"loom_upstream_connections_in_use", map[string]string{"deployment": "mock-openai"}, 0},
		{"loom_upstream_connections_waiting", map[string]string{"deployment": "mock-openai"}, 0},
	} {
		got, found := sampleValue(fams, c.name, c.labels)
		if !found || got != c.want {
			t.Errorf("%s%v = %v (found %v), want %v", c.name, c.labels, got, found, c.want)
		}
	}
	if input == 0 || output == 0 || relayed != 2 {
		t.Fatalf("the mock's usage or overhead went missing: input %v output %v relayed %v", input, output, relayed)
	}
}

// An exemplar of the latency histograms carries the trace id of a call's
// spans (here the caller's, from its traceparent), in OpenMetrics.
func TestMetrics_Exemplars_CarryTheCallsTraceID(t *testing.T) {
	tr, _ := newMemoryTracer(t)
	st := startStack(t, stackOptions{sink: tr})
	ops := serveOps(t, st)
	const traceID = "0af7651916cd43dd8448eb211c80319c"
	if status, _, body := st.do("POST", "/v1/chat/completions", st.keyA,
		`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`,
		map[string]string{"traceparent": "00-" + traceID + "-b7ad6b7169203331-01"}); status != 200 {
		t.Fatalf("chat: %d %s", status, body)
	}
	st.waitRecords(1)
	waitSample(t, ops, "loom_requests_total", nil, 1)
	body, _ := scrape(t, ops, "application/openmetrics-text; version=1.0.0")
	for _, name := range []string{"loom_request_duration_seconds_bucket{", "loom_overhead_seconds_bucket{"} {
		found := false
		for line := range strings.Lines(body) {
			if strings.HasPrefix(line, name) && strings.Contains(line, `# {trace_id="`+traceID+`"}`) {
				found = true
			}
		}
		if !found {
			t.Errorf("no %s exemplar with trace_id %s:\n%s", name, traceID, body)
		}
	}
}
