package request

import (
	"errors"
	"strings"
	"testing"

	"github.com/loom-gateway/loom/proxy/apierror"
	"github.com/loom-gateway/loom/proxy/call"
	"github.com/loom-gateway/loom/proxy/internal/json"
)

func TestParseResponses_ReadsModelStreamAndMaxOutputTokens(t *testing.T) {
	body := []byte(`{"model":"m","input":"hi","stream":true,"max_output_tokens":16,"temperature":0.5,"stream_options":{"include_obfuscation":false}}`)
	var r Request
	if err := r.ParseResponses(body); err != nil {
		t.Fatal(err)
	}
	if string(r.Model) != "m" || !r.Stream || r.Params.MaxTokens == nil || *r.Params.MaxTokens != 16 ||
		r.Params.Temperature == nil || r.Op != call.OpChat || r.AddsUsage() {
		t.Fatalf("parsed %+v", r)
	}
	got := string(r.AppendUpstreamBody(nil, body, "gpt-4.1"))
	want := `{"model":"gpt-4.1","input":"hi","stream":true,"max_output_tokens":16,"temperature":0.5,"stream_options":{"include_obfuscation":false}}`
	if got != want {
		t.Fatalf("upstream body\n got %s\nwant %s", got, want)
	}
}

func TestParseResponses_RejectsWhatOpenAIRejects(t *testing.T) {
	tests := []struct{ name, body, param string }{
		{"missing model", `{"input":"hi"}`, "model"},
		{"model number", `{"model":1,"input":"hi"}`, "model"},
		{"input number", `{"model":"m","input":3}`, "input"},
		{"duplicate input", `{"model":"m","input":"a","input":"b"}`, "input"},
		{"max_output_tokens string", `{"model":"m","max_output_tokens":"x"}`, "max_output_tokens"},
		{"stream string", `{"model":"m","stream":"yes"}`, "stream"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r Request
			err := r.ParseResponses([]byte(tt.body))
			e, ok := errors.AsType[*apierror.Error](err)
			if !ok || e.Status != 400 || e.Param != tt.param {
				t.Fatalf("err %v, want a 400 on %q", err, tt.param)
			}
		})
	}
}

func TestParseResponses_NoInputAndMessagesIgnored(t *testing.T) {
	var r Request
	if err := r.ParseResponses([]byte(`{"model":"m","previous_response_id":"resp_1","messages":5,"n":"x"}`)); err != nil {
		t.Fatal(err)
	}
}

func TestParseNamed_ModelFromPathIsAddedOrReplaced(t *testing.T) {
	tests := []struct{ name, body, upstream, want string }{
		{"absent: added", `{"messages":[{}]}`, "gpt35", `{"model":"gpt35","messages":[{}]}`},
		{"absent with spaces", ` { "messages":[{}]}`, "d", ` {"model":"d", "messages":[{}]}`},
		{"present: replaced", `{"model":"whatever","messages":[{}]}`, "d", `{"model":"d","messages":[{}]}`},
		{"present and equal to path: kept", `{"model":"azure-gpt","messages":[{}]}`, "azure-gpt", `{"model":"azure-gpt","messages":[{}]}`},
		{"stream gets usage too", `{"messages":[{}],"stream":true}`, "d", `{"model":"d","messages":[{}],"stream":true,"stream_options":{"include_usage":true}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r Request
			if err := r.ParseNamed(call.OpChat, []byte("azure-gpt"), []byte(tt.body)); err != nil {
				t.Fatal(err)
			}
			if string(r.Model) != "azure-gpt" {
				t.Fatalf("model %q, want the path's", r.Model)
			}
			got := r.AppendUpstreamBody(nil, []byte(tt.body), tt.upstream)
			if string(got) != tt.want || !json.Valid(got) {
				t.Fatalf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestParseNamed_EmptyBodyObjectGetsModelWithoutComma(t *testing.T) {
	var r Request
	body := []byte(`{}`)
	if err := r.ParseNamed(call.OpEmbeddings, []byte("e"), body); err == nil {
		t.Fatal("an embeddings body without input was accepted")
	}
	r = Request{}
	body = []byte(`{"input":"x"}`)
	if err := r.ParseNamed(call.OpEmbeddings, []byte("e"), body); err != nil {
		t.Fatal(err)
	}
	if got := string(r.AppendUpstreamBody(nil, body, "e")); got != `{"model":"e","input":"x"}` {
		t.Fatalf("got %s", got)
	}
}

func BenchmarkParseNamed(b *testing.B) {
	body := []byte(`{"messages":[{"role":"user","content":"hi"}],"stream":true}`)
	var r Request
	dst := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		_ = r.ParseNamed(call.OpChat, []byte("azure-gpt"), body)
		dst = r.AppendUpstreamBody(dst[:0], body, "dep")
	}
}

func TestParseNamed_UpstreamBodyAllocatesOnlyItsBuffer(t *testing.T) {
	for _, body := range [][]byte{
		[]byte(`{"model":"x","messages":[{"role":"user","content":"hi"}]}`),
		[]byte(`{"messages":[{"role":"user","content":"hi"}]}`),
	} {
		var r Request
		dst := make([]byte, 0, 256)
		allocs := testing.AllocsPerRun(100, func() {
			if err := r.ParseNamed(call.OpChat, []byte("azure-gpt"), body); err != nil {
				t.Fatal(err)
			}
			dst = r.AppendUpstreamBody(dst[:0], body, "dep")
		})
		if allocs > 0 {
			t.Fatalf("%s: %v allocations per call", body, allocs)
		}
	}
}

func TestParseMessages_ReadsWhatLoomNeeds_LeavesTheRestToAnthropic(t *testing.T) {
	body := []byte(`{"model":"claude","max_tokens":1024,"stream":true,"system":"be brief","temperature":0.3,` +
		`"messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}],"tools":[{"type":"web_search_20250305","name":"web_search"}]}`)
	var r Request
	if err := r.ParseMessages(body); err != nil {
		t.Fatal(err)
	}
	if string(r.Model) != "claude" || !r.Stream || r.AddsUsage() || r.Params.MaxTokens == nil || *r.Params.MaxTokens != 1024 ||
		r.Params.Temperature == nil {
		t.Fatalf("parsed %+v", r)
	}
	got := string(r.AppendUpstreamBody(nil, body, "claude-sonnet-4-5"))
	if want := strings.Replace(string(body), `"claude"`, `"claude-sonnet-4-5"`, 1); got != want {
		t.Fatalf("upstream body %s", got)
	}
	for _, bad := range []string{`{"max_tokens":1,"messages":[{}]}`, `{"model":"m","max_tokens":1}`, `{"model":"m","messages":{}}`} {
		if err := r.ParseMessages([]byte(bad)); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}
