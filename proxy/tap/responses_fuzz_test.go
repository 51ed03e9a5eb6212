package tap

import (
	"testing"

	"github.com/loom-gateway/loom/proxy/call"
)

// FuzzObserveResponse feeds the Responses readers whatever an upstream
// might send: they never panic, record at most one choice's finish reason
// and keep captured text within its bound.
func FuzzObserveResponse(f *testing.F) {
	for _, b := range fixtureChunks(f) {
		f.Add(b)
	}
	f.Add([]byte(`{"type":"response.completed","response":{"status":"incomplete","incomplete_details":{"reason":"content_filter"}}}`))
	f.Add([]byte(`{"type":"error","error":{"code":"\u00ff\xff"}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var r call.Record
		ObserveResponseEvent(&r, data)
		ObserveResponse(&r, data)
		c := call.Content{Capture: true, Max: 64}
		ObserveResponseContent(&c, data)
		if len(r.FinishReasons) > 1 {
			t.Fatalf("finish reasons %v from one response", r.FinishReasons)
		}
		if n := len(c.Choices); n > 1 || (n == 1 && len(c.Choices[0]) > 64) {
			t.Fatalf("content %q beyond its bound", c.Choices)
		}
	})
}
