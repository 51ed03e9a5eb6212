package request

import (
	stdjson "encoding/json"
	"errors"
	"testing"

	"github.com/loom-gateway/loom/proxy/apierror"
	"github.com/loom-gateway/loom/proxy/call"
	"github.com/loom-gateway/loom/proxy/internal/json"
)

func TestAppendUpstreamBody_SplicesOnlyWhatItMust(t *testing.T) {
	tests := []struct {
		name, in, upstream, want string
	}{
		{"same model, no stream: untouched", `{"model":"m","messages":[{"role":"user","content":"hi"}]}`, "m",
			`{"model":"m","messages":[{"role":"user","content":"hi"}]}`},
		{"model renamed, spacing kept", `{ "model" : "m" ,"messages":[{}] }`, "gpt-4o-2024",
			`{ "model" : "gpt-4o-2024" ,"messages":[{}] }`},
		{"stream without options gets include_usage", `{"model":"m","messages":[{}],"stream":true}`, "m",
			`{"model":"m","messages":[{}],"stream":true,"stream_options":{"include_usage":true}}`},
		{"null options replaced", `{"model":"m","messages":[{}],"stream":true,"stream_options":null}`, "m",
			`{"model":"m","messages":[{}],"stream":true,"stream_options":{"include_usage":true}}`},
		{"empty options filled", `{"model":"m","messages":[{}],"stream":true,"stream_options":{}}`, "m",
			`{"model":"m","messages":[{}],"stream":true,"stream_options":{"include_usage":true}}`},
		{"other options kept", `{"stream_options":{"x":1},"model":"m","messages":[{}],"stream":true}`, "up",
			`{"stream_options":{"include_usage":true,"x":1},"model":"up","messages":[{}],"stream":true}`},
		{"false flipped", `{"model":"m","messages":[{}],"stream":true,"stream_options":{"include_usage":false}}`, "m",
			`{"model":"m","messages":[{}],"stream":true,"stream_options":{"include_usage":true}}`},
		{"client asked: untouched", `{"model":"m","messages":[{}],"stream":true,"stream_options":{"include_usage":true}}`, "m",
			`{"model":"m","messages":[{}],"stream":true,"stream_options":{"include_usage":true}}`},
		{"model needing escapes", `{"model":"m","messages":[{}]}`, `we"ird`, `{"model":"we\"ird","messages":[{}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r Request
			if err := r.Parse(call.OpChat, []byte(tt.in)); err != nil {
				t.Fatal(err)
			}
			got := string(r.AppendUpstreamBody(nil, []byte(tt.in), tt.upstream))
			if got != tt.want {
				t.Fatalf("got  %s\nwant %s", got, tt.want)
			}
			if !json.Valid([]byte(got)) {
				t.Fatalf("invalid JSON: %s", got)
			}
		})
	}
}

func TestParse_RejectsWhatOpenAIRejects(t *testing.T) {
	tests := []struct {
		name  string
		op    call.Operation
		body  string
		param string
	}{
		{"not json", call.OpChat, `{"model":`, ""},
		{"array body", call.OpChat, `[1]`, ""},
		{"missing model", call.OpChat, `{"messages":[{}]}`, "model"},
		{"empty model", call.OpChat, `{"model":"","messages":[{}]}`, "model"},
		{"model number", call.OpChat, `{"model":4,"messages":[{}]}`, "model"},
		{"stream string", call.OpChat, `{"model":"m","messages":[{}],"stream":"true"}`, "stream"},
		{"messages missing", call.OpChat, `{"model":"m"}`, "messages"},
		{"messages object", call.OpChat, `{"model":"m","messages":{}}`, "messages"},
		{"messages empty", call.OpChat, `{"model":"m","messages":[]}`, "messages"},
		{"message not object", call.OpChat, `{"model":"m","messages":["hi"]}`, "messages[0]"},
		{"duplicate model", call.OpChat, `{"model":"a","model":"b","messages":[{}]}`, "model"},
		{"escaped duplicate model", call.OpChat, `{"model":"a","mod\u0065l":"b","messages":[{}]}`, "model"},
		{"stream_options without stream", call.OpChat, `{"model":"m","messages":[{}],"stream_options":{"include_usage":true}}`, "stream_options"},
		{"duplicate include_usage", call.OpChat, `{"model":"m","messages":[{}],"stream":true,"stream_options":{"include_usage":true,"include_usage":false}}`, "stream_options.include_usage"},
		{"escaped duplicate include_usage", call.OpChat, `{"model":"m","messages":[{}],"stream":true,"stream_options":{"include_usage":true,"include_\u0075sage":false}}`, "stream_options.include_usage"},
		{"escaped include_usage string", call.OpChat, `{"model":"m","messages":[{}],"stream":true,"stream_options":{"include_\u0075sage":"no"}}`, "stream_options.include_usage"},
		{"include_usage string", call.OpChat, `{"model":"m","messages":[{}],"stream":true,"stream_options":{"include_usage":"yes"}}`, "stream_options.include_usage"},
		{"temperature string", call.OpChat, `{"model":"m","messages":[{}],"temperature":"hot"}`, "temperature"},
		{"temperature too high", call.OpChat, `{"model":"m","messages":[{}],"temperature":3}`, "temperature"},
		{"n zero", call.OpChat, `{"model":"m","messages":[{}],"n":0}`, "n"},
		{"n float", call.OpChat, `{"model":"m","messages":[{}],"n":1.5}`, "n"},
		{"prompt missing", call.OpTextCompletion, `{"model":"m"}`, "prompt"},
		{"input number", call.OpEmbeddings, `{"model":"m","input":5}`, "input"},
		{"embeddings stream", call.OpEmbeddings, `{"model":"m","input":"x","stream":true}`, "stream"},
		{"encoding_format bad", call.OpEmbeddings, `{"model":"m","input":"x","encoding_format":"hex"}`, "encoding_format"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r Request
			perr := r.Parse(tt.op, []byte(tt.body))
			if perr == nil {
				t.Fatal("accepted")
			}
			err, ok := errors.AsType[*apierror.Error](perr)
			if !ok {
				t.Fatalf("error %v (%T) carries no *apierror.Error", perr, perr)
			}
			if err.Status != 400 || err.Type != "invalid_request_error" || err.Param != tt.param {
				t.Fatalf("got %d %s param=%q (%s), want 400 param=%q", err.Status, err.Type, err.Param, err.Message, tt.param)
			}
		})
	}
}

// A key the upstream decodes as include_usage is include_usage to Loom too:
// the escaped form must not turn off the usage Loom asks for.
func TestParse_EscapedIncludeUsageFalse_UsageStillRequestedUpstream(t *testing.T) {
	body := `{"model":"m","messages":[{}],"stream":true,"stream_options":{"include_\u0075sage":false}}`
	var r Request
	if err := r.Parse(call.OpChat, []byte(body)); err != nil {
		t.Fatal(err)
	}
	if r.IncludeUsage || !r.AddsUsage() {
		t.Fatalf("IncludeUsage %v, AddsUsage %v; want false, true", r.IncludeUsage, r.AddsUsage())
	}
	up := r.AppendUpstreamBody(nil, []byte(body), "m")
	var decoded struct {
		StreamOptions map[string]any `json:"stream_options"`
	}
	if err := stdjson.Unmarshal(up, &decoded); err != nil {
		t.Fatalf("%v: %s", err, up)
	}
	if len(decoded.StreamOptions) != 1 || decoded.StreamOptions["include_usage"] != true {
		t.Fatalf("upstream decodes stream_options as %v: %s", decoded.StreamOptions, up)
	}
}

func TestParse_DuplicateIncludeUsage_RefusedAsDuplicate(t *testing.T) {
	for _, so := range []string{
		`{"include_usage":true,"include_usage":false}`,
		`{"include_\u0075sage":true,"include_usage":false}`,
		`{"include_usage":true,"x":1,"\u0069nclude_usage":false}`,
	} {
		var r Request
		perr := r.Parse(call.OpChat, []byte(`{"model":"m","messages":[{}],"stream":true,"stream_options":`+so+`}`))
		err, _ := errors.AsType[*apierror.Error](perr)
		if err == nil || err.Status != 400 || err.Code != "duplicate_parameter" || err.Param != "stream_options.include_usage" {
			t.Errorf("stream_options %s: got %+v, want 400 duplicate_parameter on stream_options.include_usage", so, err)
		}
	}
}

func TestParse_MaxTokensAndMaxCompletionTokens_TheLargerCounts(t *testing.T) {
	for _, body := range []string{
		`{"model":"m","messages":[{}],"max_completion_tokens":9000,"max_tokens":10}`,
		`{"model":"m","messages":[{}],"max_tokens":10,"max_completion_tokens":9000}`,
		`{"model":"m","messages":[{}],"max_tokens":9000,"max_tokens":10}`,
		`{"model":"m","messages":[{}],"max_tokens":9000,"max_tokens":null}`,
	} {
		var r Request
		if err := r.Parse(call.OpChat, []byte(body)); err != nil {
			t.Fatal(err)
		}
		if r.Params.MaxTokens == nil || *r.Params.MaxTokens != 9000 {
			t.Errorf("%s: max tokens %v, want 9000", body, r.Params.MaxTokens)
		}
	}
}

func TestParse_ReadsParams(t *testing.T) {
	var r Request
	body := `{"model":"gpt","messages":[{"role":"user","content":"x"}],"temperature":0.5,"top_p":1,"max_tokens":100,"n":2,"seed":7,"stream":true}`
	if err := r.Parse(call.OpChat, []byte(body)); err != nil {
		t.Fatal(err)
	}
	p := r.Params
	if string(r.Model) != "gpt" || !r.Stream || *p.Temperature != 0.5 || *p.TopP != 1 || *p.MaxTokens != 100 || *p.N != 2 || *p.Seed != 7 {
		t.Fatalf("params %+v", r)
	}
	if !r.AddsUsage() {
		t.Fatal("a stream without include_usage must get usage added")
	}
}

func TestParse_IsAllocationFreeOnTheCommonPath(t *testing.T) {
	body := []byte(`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hello"}],"stream":true}`)
	var r Request
	dst := make([]byte, 0, 512)
	_ = r.Parse(call.OpChat, body)
	allocs := testing.AllocsPerRun(200, func() {
		if err := r.Parse(call.OpChat, body); err != nil {
			t.Fatal(err)
		}
		dst = r.AppendUpstreamBody(dst[:0], body, "gpt-4o-mini-2024-07-18")
	})
	if allocs != 0 {
		t.Fatalf("Parse+AppendUpstreamBody: %v allocs per call, want 0", allocs)
	}
}

func BenchmarkParseAndRewrite(b *testing.B) {
	body := []byte(`{"model":"gpt-4o-mini","messages":[{"role":"system","content":"You are a helpful assistant that answers briefly."},{"role":"user","content":"` +
		string(make([]byte, 0)) + `Explain the difference between TCP and UDP in two sentences, with one example each."}],"temperature":0.2,"max_tokens":200,"stream":true}`)
	var r Request
	dst := make([]byte, 0, 2048)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		_ = r.Parse(call.OpChat, body)
		dst = r.AppendUpstreamBody(dst[:0], body, "gpt-4o-mini-2024-07-18")
	}
}

// Found by FuzzWalk: json.Valid let an invalid escape through, and Parse read
// the model as the prefix before it ("gpt-4o") while no upstream could read
// the body at all.
func TestParse_InvalidEscapeInModel_RefusedAsNotJSON(t *testing.T) {
	var r Request
	err := r.Parse(call.OpChat, []byte(`{"model":"gpt-4o\q","messages":[{"role":"user","content":"hi"}]}`))
	var ae *apierror.Error
	if !errors.As(err, &ae) || ae.Status != 400 || len(r.Model) != 0 {
		t.Fatalf("err %v, model %q: want a 400 before any model is read", err, r.Model)
	}
}
