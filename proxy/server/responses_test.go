package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"

	"github.com/loom-gateway/loom/proxy/call"
	"github.com/loom-gateway/loom/proxy/config"
	"github.com/loom-gateway/loom/proxy/server"
	"github.com/loom-gateway/loom/proxy/tenant"
)

// responsesUpstream answers the Responses API from the recordings in
// bench/fixtures/wire/openai-responses, byte for byte: POST .../responses
// replays the file named by x-mock-replay (.sse as an event stream, one
// write and flush per event; .json as a body), and lookups of a response
// answer small stored-response bodies. It keeps every request it got.
type responsesUpstream struct {
	t    testing.TB
	url  string
	mu   sync.Mutex
	seen []upstreamRequest
}

type upstreamRequest struct {
	Method, Path, Query string
	Header              http.Header
	Body                []byte
}

func responsesFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(fixtures, "openai-responses", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func startResponsesUpstream(t testing.TB) *responsesUpstream {
	u := &responsesUpstream{t: t}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: u}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	u.url = "http://" + ln.Addr().String()
	return u
}

func (u *responsesUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	u.mu.Lock()
	u.seen = append(u.seen, upstreamRequest{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Clone(), body})
	u.mu.Unlock()
	if r.Header.Get("Authorization") != "Bearer "+upstreamSecret && r.Header.Get("Api-Key") != upstreamSecret {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	path := r.URL.Path
	if strings.HasSuffix(path, "/responses") && r.Method == http.MethodPost {
		name := r.Header.Get("X-Mock-Replay")
		b := responsesFixture(u.t, name)
		w.Header().Set("X-Request-Id", "req_replay")
		if !strings.HasSuffix(name, ".sse") {
			w.Header().Set("Content-Type", "application/json")
			status := http.StatusOK
			if strings.HasPrefix(name, "error-401") {
				status = http.StatusBadRequest // a 401 would be Loom's credential problem
			}
			w.WriteHeader(status)
			_, _ = w.Write(b)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
		w.WriteHeader(http.StatusOK)
		for ev := range bytes.SplitAfterSeq(b, []byte("\n\n")) {
			_, _ = w.Write(ev)
			w.(http.Flusher).Flush()
		}
		return
	}
	_, id, _ := strings.Cut(path, "/responses/")
	w.Header().Set("Content-Type", "application/json")
	switch {
	case strings.HasSuffix(id, "/input_items"):
		_, _ = fmt.Fprintf(w, `{"object":"list","data":[],"has_more":false}`)
	case strings.HasSuffix(id, "/cancel"):
		_, _ = fmt.Fprintf(w, `{"id":%q,"object":"response","status":"cancelled"}`, strings.TrimSuffix(id, "/cancel"))
	case r.Method == http.MethodDelete:
		_, _ = fmt.Fprintf(w, `{"id":%q,"object":"response","deleted":true}`, id)
	default:
		// A stored response repeats its usage: a lookup must not count it again.
		_, _ = fmt.Fprintf(w, `{"id":%q,"object":"response","status":"completed","model":"gpt-4o","usage":{"input_tokens":5,"output_tokens":7,"total_tokens":12}}`, id)
	}
}

func (u *responsesUpstream) requests() []upstreamRequest {
	u.mu.Lock()
	defer u.mu.Unlock()
	return slices.Clone(u.seen)
}

func (u *responsesUpstream) last() upstreamRequest {
	u.t.Helper()
	r := u.requests()
	if len(r) == 0 {
		u.t.Fatal("the upstream got no request")
	}
	return r[len(r)-1]
}

// startResponsesStack serves Loom in front of a responsesUpstream, as an
// OpenAI deployment (models gpt-4o-mini, renamed upstream, and gpt-4o)
// and as an Azure one (azure-gpt, deployment gpt4o-deploy); tenant globex
// shares the OpenAI deployment and the gateway's credential.
func startResponsesStack(t testing.TB) (*stack, *responsesUpstream) {
	t.Helper()
	up := startResponsesUpstream(t)
	keyA, hashA, _ := tenant.NewKey()
	keyB, hashB, _ := tenant.NewKey()
	yaml := fmt.Sprintf(`
listen: 127.0.0.1:0
timeouts: {connect: 1s, first_byte: 10s, stream_idle: 10s, drain: 2s, shutdown: 5s}
deployments:
  - {name: replay-openai, provider: openai, base_url: %[1]s/v1, api_key: %[2]s, forward_headers: ["x-mock-*"]}
  - {name: replay-azure, provider: azure_openai, base_url: %[1]s, api_key: %[2]s, api_version: "2024-10-21", forward_headers: ["x-mock-*"]}
tenants:
  - id: acme
    keys: [{id: acme-key-1, sha256: %[3]s}]
    content: {capture: true, max_bytes: 4096}
    models:
      - {name: gpt-4o-mini, deployment: replay-openai, upstream_model: gpt-4o-mini-2024-07-18}
      - {name: gpt-4o, deployment: replay-openai}
      - {name: azure-gpt, deployment: replay-azure, upstream_model: gpt4o-deploy}
  - id: globex
    keys: [{id: globex-key-1, sha256: %[4]s}]
    models:
      - {name: gpt-4o, deployment: replay-openai}
`, up.url, upstreamSecret, hashA, hashB)
	cfg, err := config.Parse([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	st := &stack{t: t, cfg: cfg, keyA: keyA, keyB: keyB, notify: make(chan struct{}, 1)}
	st.serve(server.Options{Sink: call.SinkFunc(st.record)})
	return st, up
}

func replay(name string) option.RequestOption { return option.WithHeader("x-mock-replay", name) }

func responseParams(model string) responses.ResponseNewParams {
	return responses.ResponseNewParams{
		Model: model,
		Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("Say hello")},
	}
}

func TestResponses_SDKNonStreaming_UsageAndIDOnTheRecord(t *testing.T) {
	st, up := startResponsesStack(t)
	c := sdkClient(st, st.keyA)
	for _, tt := range []struct {
		file                       string
		in, cached, out, reasoning int64
		reason                     string
	}{
		{"nonstream-cached-tokens.json", 1515, 1390, 8, 0, "stop"},
		{"nonstream-reasoning-tokens.json", 54, 0, 164, 128, "stop"},
		{"nonstream-incomplete-cache-write-tokens.json", 1220, 0, 100, 54, "length"},
	} {
		t.Run(tt.file, func(t *testing.T) {
			status, _, got := st.do("POST", "/v1/responses", st.keyA, `{"model":"gpt-4o","input":"hi"}`, map[string]string{"x-mock-replay": tt.file})
			if status != 200 || !bytes.Equal(got, responsesFixture(t, tt.file)) {
				t.Fatalf("status %d: the body reached the client changed", status)
			}
			seen := st.count()
			resp, err := c.Responses.New(context.Background(), responseParams("gpt-4o-mini"), replay(tt.file))
			if err != nil {
				t.Fatal(err)
			}
			sent := up.last()
			var body struct{ Model string }
			_ = json.Unmarshal(sent.Body, &body)
			if sent.Path != "/v1/responses" || body.Model != "gpt-4o-mini-2024-07-18" || sent.Header.Get("Authorization") != "Bearer "+upstreamSecret {
				t.Fatalf("upstream got %s model %q auth %q", sent.Path, body.Model, sent.Header.Get("Authorization"))
			}
			if resp.Usage.InputTokens != tt.in || resp.Usage.OutputTokens != tt.out {
				t.Fatalf("client usage %+v", resp.Usage)
			}
			rec := st.lastRecord(seen)
			u := rec.Usage
			if u.InputTokens != tt.in || u.CachedInputTokens != tt.cached || u.OutputTokens != tt.out || u.ReasoningTokens != tt.reasoning ||
				rec.UsageSource != call.UsageProvider {
				t.Fatalf("record usage %+v (%s)", u, rec.UsageSource)
			}
			if string(rec.ResponseID) != resp.ID || string(rec.ResponseModel) != resp.Model || !slices.Equal(rec.FinishReasons, []string{tt.reason}) {
				t.Fatalf("record id %q model %q reasons %v", rec.ResponseID, rec.ResponseModel, rec.FinishReasons)
			}
			if rec.Operation != call.OpChat || rec.HTTPRoute != "/v1/responses" || rec.Deployment != "replay-openai" ||
				rec.UpstreamModel != "gpt-4o-mini-2024-07-18" || rec.Stream {
				t.Fatalf("record %s %s %s %s stream=%v", rec.Operation, rec.HTTPRoute, rec.Deployment, rec.UpstreamModel, rec.Stream)
			}
		})
	}
}

// Every recorded Responses stream reaches the client byte for byte, and
// the record's usage is that of its terminal event.
func TestResponses_StreamsRelayedByteForByte_UsageFromTerminalEvent(t *testing.T) {
	st, _ := startResponsesStack(t)
	for _, tt := range []struct {
		file               string
		in, cached, out, r int64
		reason             string
	}{
		{"stream-text.sse", 9, 0, 12, 0, "stop"},
		{"stream-text-cached-tokens.sse", 1515, 1390, 8, 0, "stop"},
		{"stream-text-obfuscation.sse", 14, 0, 9, 0, "stop"},
		{"stream-function-call.sse", 75, 0, 23, 0, "tool_calls"},
		{"stream-reasoning-summary.sse", 20, 0, 166, 128, "stop"},
		{"stream-incomplete-max-output-tokens.sse", 0, 0, 0, 0, "length"},
	} {
		t.Run(tt.file, func(t *testing.T) {
			seen := st.count()
			status, h, got := st.do("POST", "/v1/responses", st.keyA, `{"model":"gpt-4o","input":"hi","stream":true}`,
				map[string]string{"x-mock-replay": tt.file})
			want := responsesFixture(t, tt.file)
			if status != 200 || !strings.HasPrefix(h.Get("Content-Type"), "text/event-stream") || !bytes.Equal(got, want) {
				t.Fatalf("status %d type %q, %d bytes (want %d identical)", status, h.Get("Content-Type"), len(got), len(want))
			}
			rec := st.lastRecord(seen)
			u := rec.Usage
			if u.InputTokens != tt.in || u.CachedInputTokens != tt.cached || u.OutputTokens != tt.out || u.ReasoningTokens != tt.r ||
				rec.UsageSource != call.UsageProvider || !slices.Equal(rec.FinishReasons, []string{tt.reason}) {
				t.Fatalf("record usage %+v (%s) reasons %v", u, rec.UsageSource, rec.FinishReasons)
			}
			events := bytes.Count(want, []byte("\n\n"))
			if !rec.Stream || rec.Chunks != events || rec.ChunksSent != events || rec.ClientBytes != int64(len(want)) || rec.Outcome != call.OutcomeOK {
				t.Fatalf("record stream=%v chunks %d/%d bytes %d outcome %s", rec.Stream, rec.Chunks, rec.ChunksSent, rec.ClientBytes, rec.Outcome)
			}
		})
	}
}

func TestResponses_SDKStreaming_EventsAndUsageMatchTheRecord(t *testing.T) {
	st, up := startResponsesStack(t)
	c := sdkClient(st, st.keyA)
	seen := st.count()
	stream := c.Responses.NewStreaming(context.Background(), responseParams("gpt-4o-mini"), replay("stream-function-call.sse"))
	var completed responses.Response
	args := ""
	for stream.Next() {
		ev := stream.Current()
		switch ev.Type {
		case "response.function_call_arguments.delta":
			args += ev.Delta
		case "response.completed":
			completed = ev.Response
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	var parsed map[string]any
	if err := json.Unmarshal([]byte(args), &parsed); err != nil {
		t.Fatalf("arguments %q: %v", args, err)
	}
	var body map[string]any
	_ = json.Unmarshal(up.last().Body, &body)
	if _, ok := body["stream_options"]; ok || body["stream"] != true {
		t.Fatalf("upstream body %v: Loom must add nothing to a Responses stream", body)
	}
	rec := st.lastRecord(seen)
	if rec.Usage.InputTokens != completed.Usage.InputTokens || rec.Usage.OutputTokens != completed.Usage.OutputTokens ||
		string(rec.ResponseID) != completed.ID || completed.ID == "" {
		t.Fatalf("record usage %+v id %q; response.completed %+v id %q", rec.Usage, rec.ResponseID, completed.Usage, completed.ID)
	}
}

func TestResponses_StreamCapturesOutputText(t *testing.T) {
	st, _ := startResponsesStack(t)
	seen := st.count()
	status, _, _ := st.do("POST", "/v1/responses", st.keyA, `{"model":"gpt-4o","input":"hi","stream":true}`,
		map[string]string{"x-mock-replay": "stream-text.sse"})
	rec := st.lastRecord(seen)
	if status != 200 || len(rec.Content.Choices) != 1 || string(rec.Content.Choices[0]) != "Hello! 🌍 How can I assist you today?" {
		t.Fatalf("status %d captured %q", status, rec.Content.Choices)
	}
}

func TestResponses_LookupsGoToTheCreatingDeployment_NeverAnotherTenant(t *testing.T) {
	st, up := startResponsesStack(t)
	c := sdkClient(st, st.keyA)
	resp, err := c.Responses.New(context.Background(), responseParams("gpt-4o"), replay("nonstream-cached-tokens.json"))
	if err != nil {
		t.Fatal(err)
	}
	id := resp.ID

	seen := st.count()
	got, err := c.Responses.Get(context.Background(), id, responses.ResponseGetParams{})
	if err != nil || got.ID != id {
		t.Fatalf("get: %v %+v", err, got)
	}
	sent := up.last()
	if sent.Method != "GET" || sent.Path != "/v1/responses/"+id || sent.Header.Get("Authorization") != "Bearer "+upstreamSecret {
		t.Fatalf("upstream got %s %s", sent.Method, sent.Path)
	}
	rec := st.lastRecord(seen)
	if rec.Operation != call.OpRetrieveResponse || rec.HTTPRoute != "/v1/responses/{response_id}" || rec.Deployment != "replay-openai" ||
		string(rec.ResponseID) != id || rec.UsageSource != call.UsageNone || rec.Usage.TotalTokens != 0 || rec.Status != 200 {
		t.Fatalf("lookup record %+v", rec)
	}

	if _, err := c.Responses.InputItems.List(context.Background(), id, responses.InputItemListParams{Limit: openai.Int(5)}); err != nil {
		t.Fatal(err)
	}
	if sent = up.last(); sent.Path != "/v1/responses/"+id+"/input_items" || sent.Query != "limit=5" {
		t.Fatalf("input items went to %s?%s", sent.Path, sent.Query)
	}

	// Tenant globex serves the same model on the same deployment with the
	// same credential: the id must still be unknown to it.
	n := len(up.requests())
	other := sdkClient(st, st.keyB)
	_, err = other.Responses.Get(context.Background(), id, responses.ResponseGetParams{})
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 404 || !strings.Contains(apiErr.Message, id) {
		t.Fatalf("another tenant's lookup: %v", err)
	}
	if err := other.Responses.Delete(context.Background(), id); err == nil {
		t.Fatal("another tenant deleted the response")
	}
	if _, err := c.Responses.Get(context.Background(), "resp_never_made", responses.ResponseGetParams{}); !errors.As(err, &apiErr) || apiErr.StatusCode != 404 {
		t.Fatalf("unknown id: %v", err)
	}
	if len(up.requests()) != n {
		t.Fatal("a refused lookup reached the upstream")
	}

	if err := c.Responses.Delete(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	if sent = up.last(); sent.Method != "DELETE" || sent.Path != "/v1/responses/"+id {
		t.Fatalf("delete went as %s %s", sent.Method, sent.Path)
	}
	if _, err := c.Responses.Get(context.Background(), id, responses.ResponseGetParams{}); !errors.As(err, &apiErr) || apiErr.StatusCode != 404 {
		t.Fatalf("lookup after delete: %v", err)
	}
}

func TestResponses_LookupMethodsAndPaths(t *testing.T) {
	st, _ := startResponsesStack(t)
	for _, tt := range []struct {
		method, path string
		status       int
	}{
		{"PUT", "/v1/responses/resp_1", 405},
		{"POST", "/v1/responses/resp_1/input_items", 405},
		{"GET", "/v1/responses/resp_1/cancel", 405},
		{"GET", "/v1/responses/resp_1/other", 404},
		{"GET", "/v1/responses/", 404},
		{"GET", "/v1/responses/resp_1", 404},
	} {
		if status, _, body := st.do(tt.method, tt.path, st.keyA, "", nil); status != tt.status {
			t.Errorf("%s %s: %d %s, want %d", tt.method, tt.path, status, body, tt.status)
		}
	}
}

func TestResponses_AzureDeployment_V1PathDeploymentAsModel(t *testing.T) {
	st, up := startResponsesStack(t)
	seen := st.count()
	status, _, got := st.do("POST", "/v1/responses", st.keyA, `{"model":"azure-gpt","input":"hi","stream":true}`,
		map[string]string{"x-mock-replay": "stream-text.sse"})
	if status != 200 || !bytes.Equal(got, responsesFixture(t, "stream-text.sse")) {
		t.Fatalf("status %d, %d bytes", status, len(got))
	}
	sent := up.last()
	var body struct{ Model string }
	_ = json.Unmarshal(sent.Body, &body)
	if sent.Path != "/openai/v1/responses" || sent.Query != "" || body.Model != "gpt4o-deploy" ||
		sent.Header.Get("Api-Key") != upstreamSecret || sent.Header.Get("Authorization") != "" {
		t.Fatalf("azure upstream got %s?%s model %q", sent.Path, sent.Query, body.Model)
	}
	rec := st.lastRecord(seen)
	if rec.Provider != "azure.ai.openai" || rec.Usage.TotalTokens != 21 {
		t.Fatalf("record provider %s usage %+v", rec.Provider, rec.Usage)
	}
	id := string(rec.ResponseID)
	status, _, _ = st.do("GET", "/v1/responses/"+id, st.keyA, "", nil)
	if sent = up.last(); status != 200 || sent.Path != "/openai/v1/responses/"+id {
		t.Fatalf("azure lookup: %d via %s", status, sent.Path)
	}
}

func TestResponses_UpstreamErrorRelayedAndRecorded(t *testing.T) {
	st, _ := startResponsesStack(t)
	seen := st.count()
	status, _, got := st.do("POST", "/v1/responses", st.keyA, `{"model":"gpt-4o","input":"hi"}`,
		map[string]string{"x-mock-replay": "error-insufficient-quota.json"})
	if status != 200 || !bytes.Equal(got, responsesFixture(t, "error-insufficient-quota.json")) {
		t.Fatalf("status %d body %s", status, got)
	}
	if rec := st.lastRecord(seen); rec.ErrorType != "insufficient_quota" {
		t.Fatalf("error type %q", rec.ErrorType)
	}
	status, _, got = st.do("POST", "/v1/responses", st.keyA, `{"input":"hi"}`, nil)
	if status != 400 || !strings.Contains(string(got), `"param":"model"`) {
		t.Fatalf("no model: %d %s", status, got)
	}
}
