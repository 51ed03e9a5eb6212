package anthropic_test

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"path/filepath"

	"github.com/loom-gateway/loom/proxy/anthropic"
	"github.com/loom-gateway/loom/proxy/call"
	"github.com/loom-gateway/loom/proxy/sse"
)

// A chat request for a model served by Anthropic, translated on the way up.
func ExampleAppendMessagesRequest() {
	chat := []byte(`{"model":"claude","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi"}],"stop":"END","user":"u-1"}`)
	body, err := anthropic.AppendMessagesRequest(nil, chat, anthropic.RequestOptions{UpstreamModel: "claude-sonnet-4-5", DefaultMaxTokens: 1024})
	if err != nil {
		// err carries an *apierror.Error: answer the client with it.
		panic(err)
	}
	fmt.Println(string(body))
	// Output:
	// {"model":"claude-sonnet-4-5","max_tokens":1024,"system":[{"type":"text","text":"Be brief."}],"messages":[{"role":"user","content":[{"type":"text","text":"Hi"}]}],"stop_sequences":["END"],"metadata":{"user_id":"u-1"}}
}

// An Anthropic stream, translated event by event for an OpenAI client: each
// Event's output is written and flushed as it comes; End closes a stream
// that ended cleanly.
func ExampleChatStream() {
	recorded, _ := os.ReadFile(filepath.Join("..", "..", "bench", "fixtures", "wire", "anthropic", "messages-stream-delta-usage-cumulative.sse"))
	var rec call.Record
	var s anthropic.ChatStream
	s.Reset(&rec, true) // the client sent stream_options.include_usage
	sc := sse.NewScanner(bytes.NewReader(recorded), nil, 0)
	var out []byte
	chunks := 0
	for sc.Next() {
		ev := sc.Event()
		out, _ = s.Event(out[:0], ev.Name, ev.Data)
		chunks += bytes.Count(out, []byte("\n\n"))
		// write out to the client and flush here
	}
	if s.Done() {
		out = s.End(out[:0])
		chunks += bytes.Count(out, []byte("\n\n"))
	}
	fmt.Println(chunks, "chunks, the last:", string(bytes.TrimSpace(out[bytes.LastIndex(out[:len(out)-2], []byte("\n\n"))+2:])))
	fmt.Println(rec.Usage.InputTokens, rec.Usage.OutputTokens, rec.FinishReasons)
	// Output:
	// 5 chunks, the last: data: [DONE]
	// 20 5 [stop]
}

// An Anthropic error answer, as an OpenAI client expects it.
func ExampleErrorToOpenAI() {
	status, body := anthropic.ErrorToOpenAI(nil, 529, []byte(`{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`))
	fmt.Println(status, http.StatusText(status))
	fmt.Println(string(body))
	// Output:
	// 503 Service Unavailable
	// {"error":{"message":"Overloaded","type":"server_error","param":null,"code":"overloaded"}}
}
