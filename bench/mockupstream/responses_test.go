package mockupstream

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"
	"github.com/openai/openai-go/v3/shared"
)

const responsesBody = `{"model":"gpt-4.1","input":"What is the weather in Paris?"}`

func (m *testMock) openAIClient(t *testing.T, opts ...option.RequestOption) openai.Client {
	t.Helper()
	return openai.NewClient(append([]option.RequestOption{option.WithBaseURL("http://mock/v1/"),
		option.WithAPIKey("sk-mock"), option.WithHTTPClient(m.httpClient(t)), option.WithMaxRetries(0)}, opts...)...)
}

func respInput(s string) responses.ResponseNewParamsInputUnion {
	return responses.ResponseNewParamsInputUnion{OfString: openai.String(s)}
}

func TestResponses_SDK_NonStream_GetInputItemsDelete(t *testing.T) {
	m := startMock(t, Config{})
	client := m.openAIClient(t)
	ctx := context.Background()
	resp, err := client.Responses.New(ctx, responses.ResponseNewParams{Model: "gpt-4.1",
		Input: respInput("What is the weather in Paris?")}, option.WithHeader(HeaderChunks, "3"),
		option.WithHeader(HeaderCacheReadTokens, "100"))
	if err != nil {
		t.Fatal(err)
	}
	// 29 bytes: 7 input tokens, plus the 100 cached ones, which the Responses API counts inside input_tokens.
	u := resp.Usage
	if resp.Status != "completed" || resp.OutputText() != "tok1 tok2 tok3 " || !strings.HasPrefix(resp.ID, "resp_") ||
		u.InputTokens != 107 || u.InputTokensDetails.CachedTokens != 100 || u.OutputTokens != 3 ||
		u.OutputTokensDetails.ReasoningTokens != 0 || u.TotalTokens != 110 {
		t.Fatalf("response %s", resp.RawJSON())
	}
	rec, _ := m.srv.Last()
	if *rec.UsageSent != (Usage{107, 3, 110}) || rec.UsageDetails.CacheReadTokens != 100 {
		t.Errorf("recorded %+v %+v", rec.UsageSent, rec.UsageDetails)
	}

	got, err := client.Responses.Get(ctx, resp.ID, responses.ResponseGetParams{})
	if err != nil || got.RawJSON() != resp.RawJSON() {
		t.Fatalf("get: %v\n%s\nwant %s", err, got.RawJSON(), resp.RawJSON())
	}
	items, err := client.Responses.InputItems.List(ctx, resp.ID, responses.InputItemListParams{})
	if err != nil {
		t.Fatal(err)
	}
	if len(items.Data) != 1 || items.Data[0].Type != "message" || items.Data[0].Role != "user" ||
		items.Data[0].ID == "" || !strings.Contains(items.Data[0].RawJSON(), `"input_text"`) {
		t.Errorf("input items %s", items.RawJSON())
	}
	if err := client.Responses.Delete(ctx, resp.ID); err != nil {
		t.Fatal(err)
	}
	_, err = client.Responses.Get(ctx, resp.ID, responses.ResponseGetParams{})
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusNotFound || apiErr.Type != "invalid_request_error" {
		t.Errorf("get after delete: %v", err)
	}
}

func TestResponses_SDK_Stream_DeltasThenCompleted(t *testing.T) {
	m := startMock(t, Config{})
	client := m.openAIClient(t)
	ctx := context.Background()
	params := responses.ResponseNewParams{Model: "gpt-4.1", Input: respInput("What is the weather in Paris?")}
	stream := client.Responses.NewStreaming(ctx, params, option.WithHeader(HeaderCacheReadTokens, "5"))
	var types []string
	var text string
	var completed responses.Response
	seq := int64(-1)
	for stream.Next() {
		ev := stream.Current()
		types = append(types, ev.Type)
		if ev.SequenceNumber != seq+1 {
			t.Errorf("sequence_number %d after %d", ev.SequenceNumber, seq)
		}
		seq = ev.SequenceNumber
		switch ev.Type {
		case "response.output_text.delta":
			text += ev.Delta
		case "response.completed":
			completed = ev.Response
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	want := "response.created response.in_progress response.output_item.added response.content_part.added " +
		strings.Repeat("response.output_text.delta ", 5) + "response.output_text.done response.content_part.done " +
		"response.output_item.done response.completed"
	if strings.Join(types, " ") != want {
		t.Errorf("events %v", types)
	}
	u := completed.Usage
	if text != "tok1 tok2 tok3 tok4 tok5 " || completed.OutputText() != text || u.InputTokens != 12 ||
		u.InputTokensDetails.CachedTokens != 5 || u.OutputTokens != 5 || u.TotalTokens != 17 {
		t.Errorf("text %q, completed %s", text, completed.RawJSON())
	}
	rec := waitDone(t, m.srv)
	if rec.UsageSent == nil || *rec.UsageSent != (Usage{12, 5, 17}) {
		t.Errorf("recorded %+v", rec.UsageSent)
	}
	// The stream's response is stored like a non-streamed one.
	if got, err := client.Responses.Get(ctx, completed.ID, responses.ResponseGetParams{}); err != nil ||
		got.OutputText() != text {
		t.Errorf("get streamed response: %v", err)
	}
}

func TestResponses_Stream_Framing(t *testing.T) {
	m := startMock(t, Config{})
	r := m.mustDo(t, "POST", "/v1/responses", `{"model":"gpt-4.1","input":"hi","stream":true}`, HeaderChunks, "2")
	if r.status != 200 || r.header["content-type"] != "text/event-stream; charset=utf-8" {
		t.Fatalf("status %d headers %v", r.status, r.header)
	}
	checkNamedFraming(t, r.body)
	if bytes.Contains(r.body, []byte("[DONE]")) {
		t.Errorf("Responses streams end without [DONE]")
	}
}

func TestResponses_SDK_FunctionCall(t *testing.T) {
	m := startMock(t, Config{})
	client := m.openAIClient(t)
	params := responses.ResponseNewParams{Model: "gpt-4.1", Input: respInput("Weather in Paris?"),
		Tools: []responses.ToolUnionParam{responses.ToolParamOfFunction("get_weather",
			map[string]any{"type": "object", "properties": map[string]any{"city": map[string]any{"type": "string"}},
				"required": []string{"city"}}, false)}}
	resp, err := client.Responses.New(context.Background(), params)
	if err != nil {
		t.Fatal(err)
	}
	fc := resp.Output[0].AsFunctionCall()
	if len(resp.Output) != 1 || resp.Output[0].Type != "function_call" || fc.Name != "get_weather" ||
		fc.Arguments != cityArgs || fc.CallID == "" {
		t.Fatalf("response %s", resp.RawJSON())
	}
	stream := client.Responses.NewStreaming(context.Background(), params)
	var args, done string
	for stream.Next() {
		ev := stream.Current()
		switch ev.Type {
		case "response.function_call_arguments.delta":
			args += ev.Delta
		case "response.function_call_arguments.done":
			done = ev.Arguments
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if args != cityArgs || done != cityArgs {
		t.Errorf("streamed arguments %q, done %q", args, done)
	}
}

func TestResponses_Reasoning_ItemAndTokens(t *testing.T) {
	m := startMock(t, Config{})
	client := m.openAIClient(t)
	resp, err := client.Responses.New(context.Background(), responses.ResponseNewParams{Model: "o4-mini",
		Input: respInput("hi there"), Reasoning: shared.ReasoningParam{Effort: shared.ReasoningEffortLow}},
		option.WithHeader(HeaderChunks, "4"))
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Output) != 2 || resp.Output[0].Type != "reasoning" || resp.OutputText() != "tok1 tok2 tok3 tok4 " ||
		resp.Usage.OutputTokensDetails.ReasoningTokens != 4 || resp.Usage.OutputTokens != 8 {
		t.Errorf("response %s", resp.RawJSON())
	}
}

// With x-mock-chunks sent, max_output_tokens cuts the answer short (without it, the limit is the length).
func TestResponses_MaxOutputTokens_Incomplete(t *testing.T) {
	m := startMock(t, Config{})
	r := m.mustDo(t, "POST", "/v1/responses", `{"model":"gpt-4.1","input":"hi","max_output_tokens":2,"stream":true}`,
		HeaderChunks, "5")
	evs := strings.Split(strings.TrimSpace(string(r.body)), "\n\n")
	last := evs[len(evs)-1]
	if !strings.HasPrefix(last, "event: response.incomplete\n") || !strings.Contains(last, `"reason":"max_output_tokens"`) ||
		!strings.Contains(last, `"output_tokens":2`) {
		t.Errorf("last event %s", last)
	}
}

// TestResponses_TwoMocks_IDsBelongToTheirCreator is what a gateway test relies on to see which upstream a
// GET, DELETE or input_items call was routed to.
func TestResponses_TwoMocks_IDsBelongToTheirCreator(t *testing.T) {
	a, b := startMock(t, Config{}), startMock(t, Config{})
	ra, rb := a.mustDo(t, "POST", "/v1/responses", responsesBody), b.mustDo(t, "POST", "/v1/responses", responsesBody)
	ida, idb := decode(t, string(ra.body))["id"].(string), decode(t, string(rb.body))["id"].(string)
	if ida == idb {
		t.Fatalf("two mocks gave the same id %s", ida)
	}
	for _, path := range []string{"/v1/responses/" + ida, "/v1/responses/" + ida + "/input_items"} {
		if r := a.mustDo(t, "GET", path, ""); r.status != 200 {
			t.Errorf("GET %s on its creator: %d %s", path, r.status, r.body)
		}
		r := b.mustDo(t, "GET", path, "")
		if e := errorKeys(t, r.body); r.status != 404 || e["type"] != "invalid_request_error" {
			t.Errorf("GET %s on the other mock: %d %s", path, r.status, r.body)
		}
	}
	if r := b.mustDo(t, "DELETE", "/v1/responses/"+ida, ""); r.status != 404 {
		t.Errorf("DELETE on the other mock: %d", r.status)
	}
	got := b.srv.Requests()
	if last := got[len(got)-1]; last.Method != "DELETE" || last.Path != "/v1/responses/"+ida {
		t.Errorf("log %+v", last)
	}
}

func TestResponses_Store(t *testing.T) {
	m := startMock(t, Config{ResponsesKept: 2})
	var ids []string
	for range 3 {
		ids = append(ids, decode(t, string(m.mustDo(t, "POST", "/v1/responses", responsesBody).body))["id"].(string))
	}
	if r := m.mustDo(t, "GET", "/v1/responses/"+ids[0], ""); r.status != 404 {
		t.Errorf("oldest kept beyond ResponsesKept: %d", r.status)
	}
	if r := m.mustDo(t, "GET", "/v1/responses/"+ids[2], ""); r.status != 200 {
		t.Errorf("newest: %d", r.status)
	}
	r := m.mustDo(t, "POST", "/v1/responses", `{"model":"gpt-4.1","input":"x","store":false}`)
	if r := m.mustDo(t, "GET", "/v1/responses/"+decode(t, string(r.body))["id"].(string), ""); r.status != 404 {
		t.Errorf("store:false kept: %d", r.status)
	}
	r = m.mustDo(t, "POST", "/v1/responses", `{"model":"gpt-4.1","input":"x","previous_response_id":"resp_nope"}`)
	if e := errorKeys(t, r.body); r.status != 400 || e["param"] != "previous_response_id" {
		t.Errorf("unknown previous_response_id: %d %s", r.status, r.body)
	}
	r = m.mustDo(t, "POST", "/v1/responses", `{"model":"gpt-4.1","input":"x","previous_response_id":"`+ids[2]+`"}`)
	if r.status != 200 || decode(t, string(r.body))["previous_response_id"] != ids[2] {
		t.Errorf("known previous_response_id: %d %s", r.status, r.body)
	}
	r = m.mustDo(t, "POST", "/v1/responses", `{"model":"gpt-4.1"}`)
	if e := errorKeys(t, r.body); r.status != 400 || e["param"] != "input" {
		t.Errorf("missing input: %d %s", r.status, r.body)
	}
}

func TestResponses_InputItems_ArrayInputAndOrder(t *testing.T) {
	m := startMock(t, Config{})
	r := m.mustDo(t, "POST", "/v1/responses", `{"model":"gpt-4.1","input":[{"role":"user","content":"first"},`+
		`{"type":"message","role":"user","content":[{"type":"input_text","text":"second"}]}]}`)
	id := decode(t, string(r.body))["id"].(string)
	var list struct {
		Object string
		Data   []struct {
			ID      string
			Type    string
			Content []struct{ Text string }
		}
		FirstID string `json:"first_id"`
	}
	if err := json.Unmarshal(m.mustDo(t, "GET", "/v1/responses/"+id+"/input_items", "").body, &list); err != nil {
		t.Fatal(err)
	}
	if list.Object != "list" || len(list.Data) != 2 || list.Data[0].Content[0].Text != "second" ||
		list.Data[1].Type != "message" || list.FirstID != list.Data[0].ID {
		t.Errorf("desc list %+v", list)
	}
	if err := json.Unmarshal(m.mustDo(t, "GET", "/v1/responses/"+id+"/input_items?order=asc", "").body, &list); err != nil {
		t.Fatal(err)
	}
	if list.Data[0].Content[0].Text != "first" {
		t.Errorf("asc list %+v", list)
	}
}

func TestReplay_ResponsesFixtures_ByteIdentical(t *testing.T) {
	dir := fixturesDir(t)
	m := startMock(t, Config{ReplayDir: dir})
	files, err := filepath.Glob(filepath.Join(dir, "openai-responses", "*"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range files {
		base := filepath.Base(f)
		if strings.HasSuffix(base, suffixHeaders) || strings.HasSuffix(base, suffixChunks) {
			continue
		}
		n++
		t.Run(base, func(t *testing.T) {
			want, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			r := m.mustDo(t, "POST", "/v1/responses", responsesBody, HeaderReplay, "openai-responses/"+base)
			if !bytes.Equal(r.body, want) {
				t.Fatalf("status %d, body differs from the recording (%d vs %d bytes)", r.status, len(r.body), len(want))
			}
			if strings.HasPrefix(base, "error-401") && r.status != 401 {
				t.Errorf("status %d", r.status)
			}
		})
	}
	if n == 0 {
		t.Fatal("no openai-responses fixtures")
	}
}

func TestReplay_ResponsesChunks_FramedWithEventNames(t *testing.T) {
	dir := fixturesDir(t)
	m := startMock(t, Config{ReplayDir: dir})
	const name = "openai-responses/stream-error-insufficient-quota.chunks.jsonl"
	raw, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	var want bytes.Buffer
	for line := range strings.Lines(string(raw)) {
		line = strings.TrimRight(line, "\r\n")
		var v struct{ Type string }
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			t.Fatal(err)
		}
		want.WriteString("event: " + v.Type + "\ndata: " + line + "\n\n")
	}
	r := m.mustDo(t, "POST", "/v1/responses", responsesBody, HeaderReplay, name)
	if !bytes.Equal(r.body, want.Bytes()) {
		t.Fatalf("framed replay differs:\n%s", r.body)
	}
}

func TestReplay_ResponsesUsage(t *testing.T) {
	m := startMock(t, Config{ReplayDir: fixturesDir(t)})
	m.mustDo(t, "POST", "/v1/responses", responsesBody, HeaderReplay, "openai-responses/stream-text-cached-tokens.sse")
	rec := waitDone(t, m.srv)
	if rec.UsageSent == nil || *rec.UsageSent != (Usage{1515, 8, 1523}) || rec.UsageDetails == nil ||
		rec.UsageDetails.CacheReadTokens != 1390 {
		t.Errorf("usage %+v %+v", rec.UsageSent, rec.UsageDetails)
	}
	m.mustDo(t, "POST", "/v1/responses", responsesBody, HeaderReplay, "openai-responses/nonstream-reasoning-tokens.json")
	rec = waitDone(t, m.srv)
	if rec.UsageSent == nil || rec.UsageSent.PromptTokens != 54 || rec.UsageDetails.ReasoningTokens != 128 {
		t.Errorf("usage %+v %+v", rec.UsageSent, rec.UsageDetails)
	}
}
