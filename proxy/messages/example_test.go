package messages_test

import (
	"errors"
	"fmt"
	"strings"

	"github.com/loom-gateway/loom/proxy/apierror"
	"github.com/loom-gateway/loom/proxy/call"
	"github.com/loom-gateway/loom/proxy/messages"
	"github.com/loom-gateway/loom/proxy/sse"
)

// Example shows the flow POST /v1/messages follows to an OpenAI-compatible
// deployment: parse and check, translate the request, then translate the
// upstream's stream event by event (a unary answer goes through
// AppendMessage instead, an upstream error status through ErrorFromOpenAI).
func Example() {
	body := []byte(`{"model":"claude-demo","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"Say hi"}]}`)
	var req messages.Request
	if err := req.Parse(body); err != nil {
		var ae *apierror.Error
		errors.As(err, &ae)
		status, answer := messages.ErrorFromAPIError(nil, ae)
		fmt.Println(status, string(answer))
		return
	}
	upstreamBody, _ := messages.AppendChatRequest(nil, &req, body, "gpt-4o-mini")
	fmt.Println(string(upstreamBody))

	// What the upstream streams back (fasthttp's body stream in the server).
	upstream := strings.NewReader(`data: {"id":"chatcmpl-1","choices":[{"index":0,"delta":{"role":"assistant","content":"Hi!"},"finish_reason":null}]}` + "\n\n" +
		`data: {"id":"chatcmpl-1","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}` + "\n\n" +
		`data: {"id":"chatcmpl-1","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":2}}` + "\n\n" +
		"data: [DONE]\n\n")
	var rec call.Record
	var s messages.Stream
	s.Reset(&rec, req.Model)
	var out []byte
	scan := sse.NewScanner(upstream, nil, 0)
	for scan.Next() {
		if ev := scan.Event(); ev.HasData {
			out, _ = s.Chunk(out[:0], ev.Data)
			fmt.Print(string(out)) // write and flush to the client
		}
	}
	if scan.Err() != nil {
		fmt.Print(string(s.Fail(out[:0], messages.TypeAPI, "upstream connection lost")))
	} else {
		fmt.Print(string(s.End(out[:0]))) // nothing left after [DONE]
	}
	fmt.Println(rec.Usage.InputTokens, rec.Usage.OutputTokens, rec.FinishReasons)
	// Output:
	// {"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hi"}],"max_completion_tokens":64,"stream":true,"stream_options":{"include_usage":true}}
	// event: message_start
	// data: {"type":"message_start","message":{"id":"msg_chatcmpl-1","type":"message","role":"assistant","model":"claude-demo","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":0,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":0}}}
	//
	// event: content_block_start
	// data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}
	//
	// event: content_block_delta
	// data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi!"}}
	//
	// event: content_block_stop
	// data: {"type":"content_block_stop","index":0}
	//
	// event: message_delta
	// data: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"input_tokens":9,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":2}}
	//
	// event: message_stop
	// data: {"type":"message_stop"}
	//
	// 9 2 [stop]
}
