package mockupstream

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"math"
	"strings"
	"testing"
)

func TestCompletions_Legacy(t *testing.T) {
	m := startMock(t, Config{})
	r := m.mustDo(t, "POST", "/v1/completions", `{"model":"gpt-3.5-turbo-instruct","prompt":"Say this is a test","n":2}`)
	var got textCompletion
	if err := json.Unmarshal(r.body, &got); err != nil {
		t.Fatal(err)
	}
	if got.Object != "text_completion" || len(got.Choices) != 2 || got.Choices[1].Index != 1 ||
		got.Choices[0].Text != "tok1 tok2 tok3 tok4 tok5 " || got.Usage != (Usage{4, 10, 14}) {
		t.Errorf("completion %+v", got)
	}

	r = m.mustDo(t, "POST", "/v1/completions", `{"model":"gpt-3.5-turbo-instruct","prompt":[1,2,3],"stream":true,`+
		`"stream_options":{"include_usage":true}}`, HeaderChunks, "2")
	evs := events(t, r.body)
	if len(evs) != 5 || evs[4] != "[DONE]" {
		t.Fatalf("events %q", evs)
	}
	text := ""
	for _, ev := range evs[:3] {
		ch := decode(t, ev)["choices"].([]any)[0].(map[string]any)
		text += ch["text"].(string)
	}
	if text != "tok1 tok2 " || !strings.Contains(evs[2], `"finish_reason":"stop"`) {
		t.Errorf("streamed text %q, last %s", text, evs[2])
	}
	usage := decode(t, evs[3])["usage"].(map[string]any)
	if usage["prompt_tokens"] != 3.0 || usage["completion_tokens"] != 2.0 {
		t.Errorf("usage %v", usage)
	}
}

func TestEmbeddings_Inputs(t *testing.T) {
	m := startMock(t, Config{})
	tests := []struct {
		name       string
		input      string
		dims       int
		wantCount  int
		wantTokens int
	}{
		{name: "string", input: `"The food was delicious"`, wantCount: 1, wantTokens: 5},
		{name: "strings", input: `["a","bbbbbbbb"]`, dims: 16, wantCount: 2, wantTokens: 3},
		{name: "tokens", input: `[1,2,3,4]`, wantCount: 1, wantTokens: 4},
		{name: "token arrays", input: `[[1,2],[3]]`, dims: 3, wantCount: 2, wantTokens: 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dims := ""
			wantDims := defaultDimensions
			if tc.dims > 0 {
				dims = `,"dimensions":` + itoa(tc.dims)
				wantDims = tc.dims
			}
			req := `{"model":"text-embedding-3-small","input":` + tc.input + dims
			var floats, b64 struct {
				Object string
				Model  string
				Data   []struct {
					Object    string
					Index     int
					Embedding json.RawMessage
				}
				Usage struct {
					PromptTokens int `json:"prompt_tokens"`
					TotalTokens  int `json:"total_tokens"`
				}
			}
			if err := json.Unmarshal(m.mustDo(t, "POST", "/v1/embeddings", req+`}`).body, &floats); err != nil {
				t.Fatal(err)
			}
			r := m.mustDo(t, "POST", "/v1/embeddings", req+`,"encoding_format":"base64"}`)
			if err := json.Unmarshal(r.body, &b64); err != nil {
				t.Fatal(err)
			}
			if floats.Object != "list" || len(floats.Data) != tc.wantCount || len(b64.Data) != tc.wantCount ||
				floats.Usage.PromptTokens != tc.wantTokens || floats.Usage.TotalTokens != tc.wantTokens {
				t.Fatalf("response %+v", floats)
			}
			for i := range floats.Data {
				var vec []float32
				var s string
				if err := json.Unmarshal(floats.Data[i].Embedding, &vec); err != nil {
					t.Fatal(err)
				}
				if err := json.Unmarshal(b64.Data[i].Embedding, &s); err != nil {
					t.Fatal(err)
				}
				raw, err := base64.StdEncoding.DecodeString(s)
				if err != nil || len(raw) != 4*wantDims || len(vec) != wantDims {
					t.Fatalf("dims: %d floats, %d base64 bytes, %v", len(vec), len(raw), err)
				}
				var norm float64
				for k := range vec {
					got := math.Float32frombits(binary.LittleEndian.Uint32(raw[4*k:]))
					if got != vec[k] {
						t.Errorf("component %d: base64 %v, float %v", k, got, vec[k])
					}
					norm += float64(vec[k]) * float64(vec[k])
				}
				if math.Abs(norm-1) > 1e-5 {
					t.Errorf("norm %v, want a unit vector", norm)
				}
			}
			rec, _ := m.srv.Last()
			if rec.UsageSent == nil || rec.UsageSent.PromptTokens != tc.wantTokens {
				t.Errorf("recorded usage %+v", rec.UsageSent)
			}
		})
	}
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

func TestModels_ListAndGet(t *testing.T) {
	m := startMock(t, Config{})
	var list struct {
		Object string
		Data   []model
	}
	if err := json.Unmarshal(m.mustDo(t, "GET", "/v1/models", "").body, &list); err != nil {
		t.Fatal(err)
	}
	if list.Object != "list" || len(list.Data) == 0 || list.Data[0].Object != "model" || list.Data[0].OwnedBy == "" {
		t.Fatalf("list %+v", list)
	}
	var one model
	r := m.mustDo(t, "GET", "/v1/models/"+list.Data[0].ID, "")
	if err := json.Unmarshal(r.body, &one); err != nil || one != list.Data[0] {
		t.Errorf("get %s: %+v %v", list.Data[0].ID, one, err)
	}
}

func TestAzure_ChatUsesDeploymentAsModel(t *testing.T) {
	m := startMock(t, Config{APIKey: "k"})
	r := m.mustDo(t, "POST", azureChat, `{"messages":[{"role":"user","content":"hi"}]}`, "api-key", "k")
	if r.status != 200 {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	if got := decode(t, string(r.body)); got["model"] != "gpt-4o" || got["object"] != "chat.completion" {
		t.Errorf("model %v object %v", got["model"], got["object"])
	}
	if r.header["apim-request-id"] == "" {
		t.Errorf("no apim-request-id")
	}
	r = m.mustDo(t, "POST", "/openai/deployments/emb/embeddings?api-version=2024-10-21",
		`{"input":"hello"}`, "api-key", "k")
	if got := decode(t, string(r.body)); r.status != 200 || got["model"] != "emb" {
		t.Errorf("embeddings %d %s", r.status, r.body)
	}
}

func TestRequests_RecordsWhatArrived(t *testing.T) {
	m := startMock(t, Config{})
	body := `{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":true}}`
	m.mustDo(t, "POST", azureChat, body, "X-Custom-Thing", "v1", "api-key", "secret")
	m.mustDo(t, "POST", "/v1/chat/completions", chatBody, HeaderStatus, "500")

	reqs := m.srv.Requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests", len(reqs))
	}
	first := reqs[0]
	if first.Seq != 1 || first.Method != "POST" || first.Path != "/openai/deployments/gpt-4o/chat/completions" ||
		first.Query != "api-version=2024-10-21" || string(first.Body) != body || !first.Stream || !first.IncludeUsage {
		t.Errorf("first %+v", first)
	}
	if first.Header["x-custom-thing"] != "v1" || first.Header["api-key"] != "secret" ||
		first.Header["content-type"] != "application/json" {
		t.Errorf("headers %v", first.Header)
	}
	if first.UsageSent == nil || first.UsageSent.CompletionTokens != 5 || len(first.ChunkSentAt) != 9 {
		t.Errorf("usage %+v after %d events", first.UsageSent, len(first.ChunkSentAt))
	}
	if reqs[1].Seq != 2 || reqs[1].UsageSent != nil || reqs[1].Done.IsZero() {
		t.Errorf("second %+v", reqs[1])
	}

	// Non-Go tools read the same log over HTTP; reading it is not itself logged.
	var wire []map[string]any
	if err := json.Unmarshal(m.mustDo(t, "GET", "/_mock/requests", "").body, &wire); err != nil {
		t.Fatal(err)
	}
	if len(wire) != 2 || wire[0]["body"] != body || wire[0]["seq"] != 1.0 || wire[0]["include_usage"] != true {
		t.Errorf("GET /_mock/requests: %v", wire)
	}
	if r := m.mustDo(t, "DELETE", "/_mock/requests", ""); r.status != 204 {
		t.Errorf("DELETE status %d", r.status)
	}
	if _, ok := m.srv.Last(); ok {
		t.Errorf("log not cleared")
	}
	m.mustDo(t, "POST", "/v1/chat/completions", chatBody)
	if last, _ := m.srv.Last(); last.Seq != 3 {
		t.Errorf("seq after reset %d, want 3 (ids stay unique)", last.Seq)
	}
}

func TestRequests_LogLimitKeepsNewest(t *testing.T) {
	m := startMock(t, Config{LogLimit: 3})
	for range 10 {
		m.mustDo(t, "GET", "/v1/models", "")
	}
	reqs := m.srv.Requests()
	if len(reqs) != 3 || reqs[0].Seq != 8 || reqs[2].Seq != 10 {
		t.Errorf("kept %d, first seq %d", len(reqs), reqs[0].Seq)
	}
}

func TestChat_ReasoningTokens_InsideCompletionTokens(t *testing.T) {
	m := startMock(t, Config{})
	r := m.mustDo(t, "POST", "/v1/chat/completions", chatBody, HeaderReasoningTokens, "30")
	u := decode(t, string(r.body))["usage"].(map[string]any)
	// 5 generated tokens (the default chunks) and 30 of reasoning.
	if u["completion_tokens"] != 35.0 || u["completion_tokens_details"].(map[string]any)["reasoning_tokens"] != 30.0 ||
		u["total_tokens"] != u["prompt_tokens"].(float64)+35 {
		t.Errorf("usage %v", u)
	}
	r = m.mustDo(t, "POST", "/v1/chat/completions", `{"model":"m","messages":[{"role":"user","content":"hi"}],`+
		`"stream":true,"stream_options":{"include_usage":true}}`, HeaderReasoningTokens, "30")
	evs := events(t, r.body)
	u = decode(t, evs[len(evs)-2])["usage"].(map[string]any)
	if u["completion_tokens"] != 35.0 || u["completion_tokens_details"].(map[string]any)["reasoning_tokens"] != 30.0 {
		t.Errorf("stream usage %v", u)
	}
}

func TestResponses_ReasoningTokensHeader_SetsReasoningInOutput(t *testing.T) {
	m := startMock(t, Config{})
	r := m.mustDo(t, "POST", "/v1/responses", `{"model":"m","input":"hi"}`, HeaderReasoningTokens, "12")
	u := decode(t, string(r.body))["usage"].(map[string]any)
	if u["output_tokens"] != 17.0 || u["output_tokens_details"].(map[string]any)["reasoning_tokens"] != 12.0 {
		t.Errorf("usage %v", u)
	}
}

func TestChat_CacheReadTokens_InsidePromptTokens(t *testing.T) {
	m := startMock(t, Config{})
	r := m.mustDo(t, "POST", "/v1/chat/completions", chatBody, HeaderCacheReadTokens, "64")
	u := decode(t, string(r.body))["usage"].(map[string]any)
	if u["prompt_tokens"] != 71.0 || u["prompt_tokens_details"].(map[string]any)["cached_tokens"] != 64.0 {
		t.Errorf("usage %v", u)
	}
	r = m.mustDo(t, "POST", "/v1/chat/completions", `{"model":"m","messages":[{"role":"user","content":"What is the `+
		`weather in Paris?"}],"stream":true,"stream_options":{"include_usage":true}}`, HeaderCacheReadTokens, "64")
	evs := events(t, r.body)
	u = decode(t, evs[len(evs)-2])["usage"].(map[string]any)
	if u["prompt_tokens"] != 71.0 || u["prompt_tokens_details"].(map[string]any)["cached_tokens"] != 64.0 {
		t.Errorf("stream usage %v", u)
	}
}
