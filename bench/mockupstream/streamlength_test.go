package mockupstream

import (
	"strconv"
	"strings"
	"testing"
)

func TestStreamLength_ChunksHeaderAndMaxTokensDecideIt(t *testing.T) {
	msgs := `"messages":[{"role":"user","content":"count to five hundred"}]`
	usage := `"stream":true,"stream_options":{"include_usage":true}`
	tests := []struct {
		name       string
		path, body string
		headers    []string
		delta      string // what marks one content chunk in this wire format
		wantChunks int
		wantFinish string
	}{
		{name: "chat, x-mock-chunks 500", path: "/v1/chat/completions", delta: `{"content":"tok`,
			body: `{"model":"gpt-4o",` + msgs + `,` + usage + `}`, headers: []string{HeaderChunks, "500"},
			wantChunks: 500, wantFinish: `"finish_reason":"stop"`},
		{name: "chat, max_tokens 500", path: "/v1/chat/completions", delta: `{"content":"tok`,
			body:       `{"model":"gpt-4o",` + msgs + `,"max_tokens":500,` + usage + `}`,
			wantChunks: 500, wantFinish: `"finish_reason":"stop"`},
		{name: "chat, max_completion_tokens wins over max_tokens", path: "/v1/chat/completions", delta: `{"content":"tok`,
			body:       `{"model":"gpt-4o",` + msgs + `,"max_tokens":7,"max_completion_tokens":500,` + usage + `}`,
			wantChunks: 500, wantFinish: `"finish_reason":"stop"`},
		// The header is exact in chat, past max_tokens too: a provider overrunning what Loom reserved.
		{name: "chat, x-mock-chunks past max_tokens is exact", path: "/v1/chat/completions", delta: `{"content":"tok`,
			body:    `{"model":"gpt-4o",` + msgs + `,"max_tokens":500,` + usage + `}`,
			headers: []string{HeaderChunks, "600"}, wantChunks: 600, wantFinish: `"finish_reason":"stop"`},
		{name: "chat, x-mock-chunks under max_tokens", path: "/v1/chat/completions", delta: `{"content":"tok`,
			body:    `{"model":"gpt-4o",` + msgs + `,"max_tokens":4096,` + usage + `}`,
			headers: []string{HeaderChunks, "500"}, wantChunks: 500, wantFinish: `"finish_reason":"stop"`},
		{name: "responses, max_output_tokens 500", path: "/v1/responses", delta: "event: response.output_text.delta\n",
			body:       `{"model":"gpt-4.1","input":"count","max_output_tokens":500,"stream":true}`,
			wantChunks: 500, wantFinish: `"type":"response.completed"`},
		{name: "responses, x-mock-chunks 500", path: "/v1/responses", delta: "event: response.output_text.delta\n",
			body:    `{"model":"gpt-4.1","input":"count","stream":true}`,
			headers: []string{HeaderChunks, "500"}, wantChunks: 500, wantFinish: `"type":"response.completed"`},
		{name: "anthropic, x-mock-chunks 500 under max_tokens", path: "/v1/messages", delta: `"type":"text_delta"`,
			body:    `{"model":"claude-sonnet-4-5","max_tokens":1024,` + msgs + `,"stream":true}`,
			headers: append(anthropicHeaders(), HeaderChunks, "500"), wantChunks: 500,
			wantFinish: `"stop_reason":"end_turn"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m := startMock(t, Config{})
			r := m.mustDo(t, "POST", tc.path, tc.body, tc.headers...)
			body := string(r.body)
			if got := strings.Count(body, tc.delta); got != tc.wantChunks {
				t.Errorf("%d content chunks, want %d", got, tc.wantChunks)
			}
			if !strings.Contains(body, `"tok`+strconv.Itoa(tc.wantChunks)+` "`) {
				t.Errorf("no chunk tok%d", tc.wantChunks)
			}
			if !strings.Contains(body, tc.wantFinish) {
				t.Errorf("stream does not end with %s", tc.wantFinish)
			}
			rec := waitDone(t, m.srv)
			if rec.UsageSent == nil || rec.UsageSent.CompletionTokens != tc.wantChunks {
				t.Errorf("usage %+v, want %d completion tokens", rec.UsageSent, tc.wantChunks)
			}
		})
	}
}
