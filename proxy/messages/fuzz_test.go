package messages_test

import (
	"bytes"
	stdjson "encoding/json"
	"errors"
	"testing"

	"github.com/anthropics/anthropic-sdk-go/v2"

	"github.com/loom-gateway/loom/proxy/apierror"
	"github.com/loom-gateway/loom/proxy/call"
	"github.com/loom-gateway/loom/proxy/messages"
)

// decodeEvents splits translated output into events and decodes each one
// as anthropic-sdk-go does, failing on anything an Anthropic client could
// not read: a malformed frame, data that is not JSON (encoding/json, the
// strict reader), a name that differs from the data's type.
func decodeEvents(t *testing.T, out []byte) []anthropic.MessageStreamEventUnion {
	t.Helper()
	if len(out) == 0 {
		return nil
	}
	if !bytes.HasSuffix(out, []byte("\n\n")) {
		t.Fatalf("output does not end an event: %q", out)
	}
	var events []anthropic.MessageStreamEventUnion
	for _, ev := range bytes.Split(bytes.TrimSuffix(out, []byte("\n\n")), []byte("\n\n")) {
		name, data, ok := bytes.Cut(ev, []byte("\ndata: "))
		if !ok || !bytes.HasPrefix(name, []byte("event: ")) || bytes.ContainsAny(data, "\r\n") {
			t.Fatalf("malformed event %q", ev)
		}
		if !stdjson.Valid(data) {
			t.Fatalf("event data is not JSON: %q", data)
		}
		var u anthropic.MessageStreamEventUnion
		if err := stdjson.Unmarshal(data, &u); err != nil {
			t.Fatalf("event %q: %v", data, err)
		}
		if u.Type != string(name[len("event: "):]) {
			t.Fatalf("event %s carries type %q", name, u.Type)
		}
		events = append(events, u)
	}
	return events
}

// FuzzStream feeds any sequence of chunk payloads (one per line) to a
// Stream and checks that what comes out is always an Anthropic stream a
// client reads: framing, JSON, block order, and anthropic-sdk-go's
// Message.Accumulate accepting every event; or, after an upstream error,
// the same up to one final error event. Output stays proportional to input.
func FuzzStream(f *testing.F) {
	for _, name := range recordedStreams {
		if p := streamPayloads(f, name); len(p) < 60 {
			f.Add(bytes.Join(p, []byte("\n")))
		}
	}
	f.Add([]byte(`{"error":{"message":"boom","type":"server_error"}}`))
	f.Add([]byte(`{"choices":[{"delta":{"tool_calls":[{"index":3,"function":{"arguments":"{"}},{"index":0,"id":"a","function":{"name":"f"}}]}}]}` + "\n" +
		`{"choices":[{"delta":{"content":"x","reasoning_content":"y","refusal":"z"},"finish_reason":"length"}],"usage":{"prompt_tokens":-5,"completion_tokens":99999999999999999999}}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		var s messages.Stream
		var rec call.Record
		s.Reset(&rec, []byte("m"))
		var out []byte
		for _, p := range bytes.Split(in, []byte("\n")) {
			out, _ = s.Chunk(out, p)
		}
		out = s.End(out)
		if len(out) > 64*len(in)+4096 {
			t.Fatalf("%d bytes out for %d in", len(out), len(in))
		}
		events := decodeEvents(t, out)
		failed := len(events) > 0 && events[len(events)-1].Type == "error"
		if failed {
			events = events[:len(events)-1]
			for _, ev := range events {
				if ev.Type == "message_stop" {
					t.Fatal("error event after message_stop")
				}
			}
		} else {
			checkEventOrder(t, events, true)
		}
		var msg anthropic.Message
		for _, ev := range events {
			if err := msg.Accumulate(ev); err != nil {
				t.Fatalf("accumulate %s: %v", ev.RawJSON(), err)
			}
		}
	})
}

// FuzzParse checks that any body is either refused with a 400 in
// Anthropic's terms, or translated into a chat request that encoding/json
// reads, whose model is the one asked for.
func FuzzParse(f *testing.F) {
	f.Add([]byte(claudeCodeLike))
	f.Add([]byte(`{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"image","source":{"type":"base64","media_type":"image/png","data":"\u0000"}}]}]}`))
	f.Add([]byte(`{"model":"m","max_tokens":1,"system":[{"type":"text","text":"a\"b"}],"messages":[{"role":"assistant","content":[{"type":"tool_use","id":"i","name":"n","input":{"k":"\ud800"}}]}],"metadata":{"user_id":null}}`))
	f.Add([]byte(`{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"tool_result","tool_use_id":"t","content":[{"type":"image","source":{"type":"url","url":"u"}}]}]}],"output_config":{"format":{"type":"json_schema","schema":{}}}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var r messages.Request
		err := r.Parse(body)
		if err != nil {
			var ae *apierror.Error
			if !errors.As(err, &ae) || ae.Status != 400 {
				t.Fatalf("refusal not a 400: %v", err)
			}
			_, rendered := messages.ErrorFromAPIError(nil, ae)
			if !stdjson.Valid(rendered) {
				t.Fatalf("error body not JSON: %q", rendered)
			}
			return
		}
		out, err := messages.AppendChatRequest(nil, &r, body, "up")
		if err != nil {
			t.Fatal(err)
		}
		var c struct {
			Model    string `json:"model"`
			Messages []any  `json:"messages"`
		}
		if err := stdjson.Unmarshal(out, &c); err != nil {
			t.Fatalf("translated request not JSON: %v\n%s\nfrom %s", err, out, body)
		}
		if c.Model != "up" {
			t.Fatalf("model %q", c.Model)
		}
	})
}
