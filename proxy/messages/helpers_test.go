package messages_test

import (
	"bufio"
	"bytes"
	"context"
	stdjson "encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/anthropics/anthropic-sdk-go/v2"
	"github.com/anthropics/anthropic-sdk-go/v2/option"

	"github.com/loom-gateway/loom/proxy/call"
	"github.com/loom-gateway/loom/proxy/messages"
	"github.com/loom-gateway/loom/proxy/sse"
)

// fixtures is the in-repo copy of ../shared/fixtures/wire.
var fixtures = filepath.Join("..", "..", "bench", "fixtures", "wire")

func readFixture(t testing.TB, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(fixtures, rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// streamPayloads returns the data payloads of a recorded chat stream, in
// order, [DONE] included when recorded; *.chunks.jsonl (framing stripped
// upstream) are read one payload a line and end with [DONE].
func streamPayloads(t testing.TB, rel string) [][]byte {
	t.Helper()
	b := readFixture(t, rel)
	var out [][]byte
	if strings.HasSuffix(rel, ".chunks.jsonl") {
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			if line := bytes.TrimSpace(sc.Bytes()); len(line) > 0 {
				out = append(out, append([]byte(nil), line...))
			}
		}
		return append(out, []byte("[DONE]"))
	}
	s := sse.NewScanner(bytes.NewReader(b), nil, 0)
	for s.Next() {
		if ev := s.Event(); ev.HasData {
			out = append(out, append([]byte(nil), ev.Data...))
		}
	}
	if s.Err() != nil {
		t.Fatal(s.Err())
	}
	return out
}

// translateStream runs every payload through a Stream and ends it.
func translateStream(t testing.TB, payloads [][]byte, rec *call.Record, model string) []byte {
	t.Helper()
	var s messages.Stream
	s.Reset(rec, []byte(model))
	var out []byte
	for _, p := range payloads {
		var err error
		out, err = s.Chunk(out, p)
		if err != nil {
			t.Fatalf("chunk %s: %v", p, err)
		}
	}
	return s.End(out)
}

// recordedTool is one tool call as the recording streamed or answered it.
type recordedTool struct{ id, name, args string }

// recorded is what a chat stream or completion said in choice 0, read
// with encoding/json, independently of the code under test.
type recorded struct {
	text, reasoning    string
	refusal            bool
	tools              []recordedTool
	finish             string
	hasUsage           bool
	prompt, completion int64
	cached             int64
	responseID         string
}

type chatUsage struct {
	PromptTokens        int64 `json:"prompt_tokens"`
	CompletionTokens    int64 `json:"completion_tokens"`
	PromptTokensDetails *struct {
		CachedTokens int64 `json:"cached_tokens"`
	} `json:"prompt_tokens_details"`
}

type chatToolCall struct {
	Index    *int   `json:"index"`
	ID       string `json:"id"`
	Function struct {
		Name      string `json:"name"`
		Arguments string `json:"arguments"`
	} `json:"function"`
}

type chatMessage struct {
	Content          *string        `json:"content"`
	Refusal          *string        `json:"refusal"`
	ReasoningContent *string        `json:"reasoning_content"`
	ToolCalls        []chatToolCall `json:"tool_calls"`
}

type chatChoice struct {
	Index        int          `json:"index"`
	Delta        *chatMessage `json:"delta"`
	Message      *chatMessage `json:"message"`
	FinishReason *string      `json:"finish_reason"`
}

type chatBody struct {
	ID      string       `json:"id"`
	Model   string       `json:"model"`
	Choices []chatChoice `json:"choices"`
	Usage   *chatUsage   `json:"usage"`
}

func (r *recorded) take(t testing.TB, payload []byte) {
	t.Helper()
	var c chatBody
	if err := stdjson.Unmarshal(payload, &c); err != nil {
		t.Fatalf("recording %s: %v", payload, err)
	}
	if r.responseID == "" {
		r.responseID = c.ID
	}
	if c.Usage != nil {
		r.hasUsage = true
		r.prompt, r.completion = c.Usage.PromptTokens, c.Usage.CompletionTokens
		if c.Usage.PromptTokensDetails != nil {
			r.cached = c.Usage.PromptTokensDetails.CachedTokens
		}
	}
	for _, ch := range c.Choices {
		if ch.Index != 0 {
			continue
		}
		m := ch.Delta
		if m == nil {
			m = ch.Message
		}
		if ch.FinishReason != nil {
			r.finish = *ch.FinishReason
		}
		if m == nil {
			continue
		}
		if m.Content != nil {
			r.text += *m.Content
		}
		if m.Refusal != nil && *m.Refusal != "" {
			r.text += *m.Refusal
			r.refusal = true
		}
		if m.ReasoningContent != nil {
			r.reasoning += *m.ReasoningContent
		}
		for i, tc := range m.ToolCalls {
			idx := i
			if tc.Index != nil {
				idx = *tc.Index
			}
			for len(r.tools) <= idx {
				r.tools = append(r.tools, recordedTool{})
			}
			if tc.ID != "" {
				r.tools[idx].id = tc.ID
			}
			if tc.Function.Name != "" {
				r.tools[idx].name = tc.Function.Name
			}
			r.tools[idx].args += tc.Function.Arguments
		}
	}
}

func recordedStream(t testing.TB, payloads [][]byte) recorded {
	t.Helper()
	var r recorded
	for _, p := range payloads {
		if string(p) != "[DONE]" {
			r.take(t, p)
		}
	}
	return r
}

// serve answers every request with status and body (as an SSE stream when
// stream is set) and returns a client pointed at it, with the last request
// body it received.
func serve(t testing.TB, status int, body []byte, stream bool) (anthropic.Client, *[]byte) {
	t.Helper()
	got := new([]byte)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		*got, _ = io.ReadAll(r.Body)
		if stream {
			w.Header().Set("Content-Type", "text/event-stream")
		} else {
			w.Header().Set("Content-Type", "application/json")
		}
		w.WriteHeader(status)
		_, _ = w.Write(body)
	}))
	t.Cleanup(srv.Close)
	client := anthropic.NewClient(option.WithBaseURL(srv.URL), option.WithAPIKey("loom-key"), option.WithMaxRetries(0))
	return client, got
}

var sdkParams = anthropic.MessageNewParams{
	Model:     "claude-via-loom",
	MaxTokens: 1024,
	Messages:  []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("hi"))},
}

// sdkStream reads sseBytes with anthropic-sdk-go's streaming client and
// accumulates the message as its docs say to.
func sdkStream(t testing.TB, sseBytes []byte) (anthropic.Message, []anthropic.MessageStreamEventUnion, error) {
	t.Helper()
	client, _ := serve(t, 200, sseBytes, true)
	stream := client.Messages.NewStreaming(context.Background(), sdkParams)
	defer stream.Close()
	var msg anthropic.Message
	var events []anthropic.MessageStreamEventUnion
	for stream.Next() {
		ev := stream.Current()
		events = append(events, ev)
		if err := msg.Accumulate(ev); err != nil {
			return msg, events, err
		}
	}
	return msg, events, stream.Err()
}

// sdkMessage reads body with anthropic-sdk-go's non-streaming client.
func sdkMessage(t testing.TB, status int, body []byte) (*anthropic.Message, error) {
	t.Helper()
	client, _ := serve(t, status, body, false)
	return client.Messages.New(context.Background(), sdkParams)
}

func asError(err error, target **anthropic.Error) bool { return errors.As(err, target) }

// unmarshalStrict decodes b into v, refusing fields v does not name: a
// translated request must hold only what the test expects.
func unmarshalStrict(b []byte, v any) error {
	d := stdjson.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	return d.Decode(v)
}
