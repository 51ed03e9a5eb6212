package tap

import (
	"testing"

	"github.com/loom-gateway/loom/proxy/call"
)

func TestEstimateUsage_FromPromptTextAndOutputDeltas(t *testing.T) {
	tests := []struct {
		name    string
		request string
		chunks  []string
		in, out int64
	}{
		{"chat string and parts",
			`{"model":"m","messages":[{"role":"system","content":"12345678"},{"role":"user","content":[{"type":"text","text":"abcd"},{"type":"image_url","image_url":{"url":"http://x"}}]}]}`,
			[]string{
				`{"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}`,
				`{"choices":[{"index":0,"delta":{"content":"Hel"}}]}`,
				`{"choices":[{"index":0,"delta":{"content":"lo"}}]}`,
				`{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{"}}]}}]}`,
				`{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}`,
			}, 3, 3},
		{"legacy prompt list", `{"model":"m","prompt":["abcdefgh","ab"]}`,
			[]string{`{"choices":[{"index":0,"text":"x"}]}`, `{"choices":[{"index":0,"text":""}]}`}, 3, 1},
		{"no prompt", `{"model":"m"}`, nil, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r call.Record
			for _, c := range tt.chunks {
				Observe(&r, []byte(c))
			}
			EstimateUsage(&r, []byte(tt.request))
			if r.UsageSource != call.UsageEstimated || r.Usage.InputTokens != tt.in || r.Usage.OutputTokens != tt.out ||
				r.Usage.TotalTokens != tt.in+tt.out {
				t.Fatalf("usage %+v (%s), want in %d out %d", r.Usage, r.UsageSource, tt.in, tt.out)
			}
		})
	}
}
