package messages_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/loom-gateway/loom/proxy/apierror"
	"github.com/loom-gateway/loom/proxy/call"
	"github.com/loom-gateway/loom/proxy/messages"
)

func TestParse_HostileBodies_ClearFourHundredsFast(t *testing.T) {
	deep := `{"model":"m","max_tokens":1,"messages":` + strings.Repeat("[", 1<<20) + strings.Repeat("]", 1<<20) + `}`
	tests := []struct{ name, body, want string }{
		{"a million nested arrays (past any parser's depth)", deep, "not valid JSON"},
		{"truncated", `{"model":"m","max_tokens":1,"messages":[{"role":"user","content":"hi`, "not valid JSON"},
		{"invalid escape", `{"model":"m\q","max_tokens":1,"messages":[]}`, "not valid JSON"},
		{"raw newline inside a string", "{\"model\":\"m\",\"max_tokens\":1,\"messages\":[{\"role\":\"user\",\"content\":\"a\nb\"}]}", "not valid JSON"},
		{"max_tokens past int64", `{"model":"m","max_tokens":99999999999999999999999,"messages":[{"role":"user","content":"x"}]}`, "max_tokens:"},
		{"NUL bytes", "\x00\x00", "not valid JSON"},
		{"empty body", "", "not valid JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			var r messages.Request
			err := r.Parse([]byte(tt.body))
			var ae *apierror.Error
			if !errors.As(err, &ae) || ae.Status != 400 || !strings.Contains(ae.Message, tt.want) {
				t.Fatalf("got %v, want a 400 about %q", err, tt.want)
			}
			if len(ae.Message) > 300 {
				t.Fatalf("message of %d bytes", len(ae.Message))
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Fatalf("took %v", d)
			}
		})
	}
}

func TestParse_EscapedKeysReadAsAnthropicReadsThem(t *testing.T) {
	out := translate(t, `{"mod\u0065l":"claude","max_\u0074okens":5,"m\u0065ssages":[{"role":"user","content":"hi"}]}`, "")
	if !bytes.HasPrefix(out, []byte(`{"model":"claude","messages":[{"role":"user","content":"hi"}],"max_completion_tokens":5`)) {
		t.Fatalf("got %s", out)
	}
}

func TestAppendChatRequest_HugeContent_PassesThroughOnce(t *testing.T) {
	text := strings.Repeat("é", 4<<20)
	body := `{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"text","text":"` + text + `"}]}]}`
	out := translate(t, body, "up")
	if len(out) > len(body)+200 || !bytes.Contains(out, []byte(text)) {
		t.Fatalf("%d bytes out for %d in", len(out), len(body))
	}
}

func TestAppendChatRequest_InvalidUTF8Model_ComesOutValid(t *testing.T) {
	out := translate(t, "{\"model\":\"cl\xffaude\",\"max_tokens\":1,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", "")
	decodeAny(t, out)
	if !bytes.HasPrefix(out, []byte(`{"model":"cl\ufffdaude"`)) {
		t.Fatalf("got %s", out)
	}
}

func TestStream_Reused_ForgetsTheLastStream(t *testing.T) {
	var s messages.Stream
	var rec call.Record
	s.Reset(&rec, []byte("m"))
	var out []byte
	for _, p := range streamPayloads(t, "openai/chat-stream-parallel-tool-calls.sse") {
		out, _ = s.Chunk(out, p)
	}
	s.End(out)

	rec.Reset()
	s.Reset(&rec, []byte("other"))
	payloads := streamPayloads(t, "openai/chat-stream-text-include-usage.sse")
	out = out[:0]
	for _, p := range payloads {
		out, _ = s.Chunk(out, p)
	}
	msg, events, err := sdkStream(t, s.End(out))
	if err != nil {
		t.Fatal(err)
	}
	checkEventOrder(t, events, false)
	checkMessage(t, msg, recordedStream(t, payloads), "other")
}

func TestStream_InvalidChunk_ReportedAndSkipped(t *testing.T) {
	var s messages.Stream
	s.Reset(nil, []byte("m"))
	out, err := s.Chunk(nil, []byte(`{"id":"c","choices":[{"index":0,"delta":{"content":"a"}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{`not json`, `{"id":`, `[]`} {
		var got []byte
		got, err = s.Chunk(out, []byte(bad))
		if !errors.Is(err, messages.ErrUpstreamChunk) || len(got) != len(out) {
			t.Fatalf("%q: err %v, wrote %q", bad, err, got[len(out):])
		}
	}
	if _, _, err := sdkStream(t, s.End(out)); err != nil {
		t.Fatal(err)
	}
}

func TestStream_EmptyDataKeepAlive_Ignored(t *testing.T) {
	var s messages.Stream
	s.Reset(nil, []byte("m"))
	for _, data := range []string{``, ` `, "\n"} {
		out, err := s.Chunk(nil, []byte(data))
		if err != nil || len(out) != 0 {
			t.Fatalf("%q: out %q err %v", data, out, err)
		}
	}
}
