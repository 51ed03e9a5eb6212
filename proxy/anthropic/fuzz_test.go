package anthropic

import (
	"bytes"
	stdjson "encoding/json"
	"errors"
	"testing"
	"unicode/utf8"

	"github.com/loom-gateway/loom/proxy/apierror"
	"github.com/loom-gateway/loom/proxy/call"
	"github.com/loom-gateway/loom/proxy/sse"
)

// strictChunks checks what a translator wrote for a client: data lines of
// JSON that a strict decoder (encoding/json) reads, valid UTF-8, [DONE].
func strictChunks(t *testing.T, out []byte) {
	t.Helper()
	if !utf8.Valid(out) {
		t.Fatalf("output is not UTF-8: %q", out)
	}
	for len(out) > 0 {
		ev, rest, ok := bytes.Cut(out, []byte("\n\n"))
		if !ok {
			t.Fatalf("unterminated chunk %q", out)
		}
		out = rest
		data, ok := bytes.CutPrefix(ev, []byte("data: "))
		if !ok || bytes.ContainsAny(data, "\r\n") {
			t.Fatalf("not one data line: %q", ev)
		}
		if string(data) != "[DONE]" && !stdjson.Valid(data) {
			t.Fatalf("chunk is not JSON: %q", data)
		}
	}
}

// FuzzChatStream feeds arbitrary streams to the translator and the native
// observer: whatever an upstream sends, nothing panics and every chunk a
// client gets is strict JSON. Seeds: every recorded stream, and
// testdata/fuzz/FuzzChatStream.
func FuzzChatStream(f *testing.F) {
	for _, name := range recordedStreams(f) {
		f.Add(fixture(f, name), true)
	}
	f.Fuzz(func(t *testing.T, in []byte, includeUsage bool) {
		var rec, native call.Record
		var s ChatStream
		var o Observer
		s.Reset(&rec, includeUsage)
		sc := sse.NewScanner(bytes.NewReader(in), nil, 1<<16)
		var out []byte
		for sc.Next() {
			ev := sc.Event()
			o.Event(&native, ev.Name, ev.Data)
			n := len(out)
			var err error
			out, err = s.Event(out, ev.Name, ev.Data)
			if err != nil && (!errors.Is(err, ErrMalformed) || len(out) != n) {
				t.Fatalf("error %v after writing %q", err, out[n:])
			}
		}
		out = s.End(out)
		strictChunks(t, out)
		for _, u := range []call.Usage{rec.Usage, native.Usage} {
			if u.InputTokens < 0 || u.OutputTokens < 0 || u.TotalTokens != u.InputTokens+u.OutputTokens {
				t.Fatalf("usage %+v", u)
			}
		}
		if len(rec.ResponseID) > maxIDBytes || len(rec.ResponseModel) > maxModelBytes {
			t.Fatalf("record grew: id %d model %d bytes", len(rec.ResponseID), len(rec.ResponseModel))
		}
	})
}

// FuzzAppendChatCompletion: any 200 body either is refused as malformed or
// becomes a strict-JSON chat completion.
func FuzzAppendChatCompletion(f *testing.F) {
	f.Add(fixture(f, "messages-nonstream.json"))
	f.Add([]byte(`{"id":"m","type":"message","model":"c","content":[{"type":"tool_use","id":"t","name":"n","input":{"a":"\u0000\"]}"}},{"type":"thinking","thinking":"x"}],"stop_reason":"tool_use","usage":{"input_tokens":1e3}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var rec call.Record
		out, err := AppendChatCompletion(nil, body, &rec)
		if err != nil {
			if !errors.Is(err, ErrMalformed) || out != nil {
				t.Fatalf("error %v, output %q", err, out)
			}
			return
		}
		if !utf8.Valid(out) || !stdjson.Valid(out) {
			t.Fatalf("not strict JSON: %q", out)
		}
		status, e := ErrorToOpenAI(nil, 500, body)
		if status < 400 || !stdjson.Valid(e) {
			t.Fatalf("error translation %d %q", status, e)
		}
	})
}

// FuzzAppendMessagesRequest: any client body either gets a 400 or becomes a
// Messages request that is JSON wherever the body was.
func FuzzAppendMessagesRequest(f *testing.F) {
	f.Add([]byte(typicalRequest))
	f.Add([]byte(`{"model":"c","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}}]},{"role":"assistant","tool_calls":[{"id":"a","type":"function","function":{"name":"f","arguments":"{\"x\":[1,\"\\u00e9\"]}"}}]},{"role":"tool","tool_call_id":"a","content":[]}],"stop":["a",""]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		out, err := AppendMessagesRequest(nil, body, RequestOptions{UpstreamModel: "claude", DefaultMaxTokens: 100})
		if err != nil {
			var ae *apierror.Error
			if !errors.As(err, &ae) || ae.Status != 400 || out != nil {
				t.Fatalf("error %v (%T), output %q", err, err, out)
			}
			return
		}
		if stdjson.Valid(body) && !stdjson.Valid(out) {
			t.Fatalf("valid body %q became invalid JSON %q", body, out)
		}
	})
}
