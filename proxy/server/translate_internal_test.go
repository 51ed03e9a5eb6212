package server

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/loom-gateway/loom/proxy/relay"
)

// memBody is an upstream body held in memory.
type memBody struct{ bytes.Reader }

func (*memBody) CloseWithError(error) error { return nil }

var translatorCases = []struct {
	name, file string
	mode       mode
}{
	{"chat-from-anthropic/text", "anthropic/messages-stream-text.sse", modeChatFromAnthropic},
	{"chat-from-anthropic/tool-use", "anthropic/messages-stream-tool-use.sse", modeChatFromAnthropic},
	{"messages-native/thinking", "anthropic/messages-stream-thinking.sse", modeMessagesNative},
	{"messages-from-chat/text", "openai/chat-stream-text-include-usage.sse", modeMessagesFromChat},
	{"messages-from-chat/tool-calls", "openai/chat-stream-parallel-tool-calls.sse", modeMessagesFromChat},
}

// relayTranslated runs src through a relay.Stream with ex's translator for
// its mode, as a stream's client would read it.
func relayTranslated(ex *exchange, s *relay.Stream, body *memBody, src []byte) {
	ex.rec.Reset()
	body.Reset(src)
	var o relay.Options
	ex.setTranslator(&o)
	s.Reset(body, &ex.rec, o)
	_, _ = s.WriteTo(io.Discard)
	_ = s.CloseWithError(nil)
}

// A translated (or natively observed) stream allocates nothing per event
// once its exchange's buffers are warm: the translators live with the
// pooled exchange and append into its buffers.
func TestTranslators_ZeroAllocsPerStream(t *testing.T) {
	for _, tc := range translatorCases {
		t.Run(tc.name, func(t *testing.T) {
			src, err := os.ReadFile(filepath.Join("..", "..", "bench", "fixtures", "wire", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			ex := &exchange{mode: tc.mode}
			ex.req.Model = []byte("claude-sonnet")
			ex.req.IncludeUsage = true
			var s relay.Stream
			var body memBody
			for range 3 {
				relayTranslated(ex, &s, &body, src)
			}
			if ex.rec.Usage.OutputTokens == 0 || ex.rec.ChunksSent == 0 {
				t.Fatalf("nothing read: %+v", ex.rec.Usage)
			}
			if allocs := testing.AllocsPerRun(20, func() { relayTranslated(ex, &s, &body, src) }); allocs > 0 {
				t.Fatalf("%v allocations per stream of %d events", allocs, ex.rec.Chunks)
			}
		})
	}
}

func BenchmarkTranslatedStream(b *testing.B) {
	for _, tc := range translatorCases {
		b.Run(tc.name, func(b *testing.B) {
			src, err := os.ReadFile(filepath.Join("..", "..", "bench", "fixtures", "wire", tc.file))
			if err != nil {
				b.Fatal(err)
			}
			ex := &exchange{mode: tc.mode}
			ex.req.Model = []byte("claude-sonnet")
			var s relay.Stream
			var body memBody
			events := bytes.Count(src, []byte("\n\n"))
			b.ReportAllocs()
			b.SetBytes(int64(len(src)))
			for b.Loop() {
				relayTranslated(ex, &s, &body, src)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*events), "ns/event")
		})
	}
}
