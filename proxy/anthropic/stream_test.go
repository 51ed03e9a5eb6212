package anthropic

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/packages/ssestream"

	"github.com/loom-gateway/loom/proxy/call"
)

// translate feeds evs through a fresh ChatStream and returns the client's
// bytes.
func translate(tb testing.TB, rec *call.Record, evs []sseEvent, includeUsage bool) []byte {
	tb.Helper()
	var s ChatStream
	s.Reset(rec, includeUsage)
	var out []byte
	for _, ev := range evs {
		var err error
		if out, err = s.Event(out, ev.name, ev.data); err != nil {
			tb.Fatalf("event %s: %v", ev.data, err)
		}
	}
	return s.End(out)
}

// openaiGo reads a translated stream the way openai-go's client does.
func openaiGo(tb testing.TB, body []byte) (openai.ChatCompletionAccumulator, []openai.ChatCompletionChunk, error) {
	tb.Helper()
	res := &http.Response{
		StatusCode: 200,
		Header:     http.Header{"Content-Type": {"text/event-stream"}},
		Body:       io.NopCloser(bytes.NewReader(body)),
	}
	stream := ssestream.NewStream[openai.ChatCompletionChunk](ssestream.NewDecoder(res), nil)
	var acc openai.ChatCompletionAccumulator
	var chunks []openai.ChatCompletionChunk
	for stream.Next() {
		ch := stream.Current()
		if !acc.AddChunk(ch) {
			tb.Fatalf("the accumulator refused chunk %s", ch.RawJSON())
		}
		chunks = append(chunks, ch)
	}
	return acc, chunks, stream.Err()
}

// checkChunks asserts every data payload of a translated stream is valid
// JSON of valid UTF-8, as strict decoders demand.
func checkChunks(tb testing.TB, out []byte) {
	tb.Helper()
	if !utf8.Valid(out) {
		tb.Fatalf("translated stream is not UTF-8: %q", out)
	}
	for _, ev := range bytes.Split(out, []byte("\n\n")) {
		if len(ev) == 0 {
			continue
		}
		data, ok := bytes.CutPrefix(ev, []byte("data: "))
		if !ok || bytes.IndexByte(data, '\n') >= 0 {
			tb.Fatalf("not one data line: %q", ev)
		}
		if string(data) != "[DONE]" && !json.Valid(data) {
			tb.Fatalf("chunk is not JSON: %s", data)
		}
	}
}

func TestChatStream_RecordedStreams_ReassembleInOpenAIGo(t *testing.T) {
	for _, name := range recordedStreams(t) {
		t.Run(name, func(t *testing.T) {
			evs := events(t, fixture(t, name))
			want := readRecording(t, evs)
			var rec call.Record
			out := translate(t, &rec, evs, true)
			checkChunks(t, out)
			acc, chunks, err := openaiGo(t, out)
			if err != nil {
				t.Fatal(err)
			}
			if len(acc.Choices) != 1 {
				t.Fatalf("%d choices", len(acc.Choices))
			}
			msg := acc.Choices[0].Message
			if msg.Content != want.text {
				t.Errorf("text %q, recording says %q", msg.Content, want.text)
			}
			if acc.ID != want.id || acc.Model != want.model {
				t.Errorf("id %q model %q, want %q %q", acc.ID, acc.Model, want.id, want.model)
			}
			if len(msg.ToolCalls) != len(want.tools) {
				t.Fatalf("tool calls %+v, recording has %+v", msg.ToolCalls, want.tools)
			}
			for i, tc := range msg.ToolCalls {
				w := want.tools[i]
				if tc.ID != w.id || tc.Function.Name != w.name || tc.Function.Arguments != w.args {
					t.Errorf("tool call %d: %s %s %q, recording %s %s %q", i, tc.ID, tc.Function.Name, tc.Function.Arguments, w.id, w.name, w.args)
				}
				if !json.Valid([]byte(tc.Function.Arguments)) {
					t.Errorf("tool call %d arguments are not JSON: %q", i, tc.Function.Arguments)
				}
			}
			prompt := want.input + want.cacheRead + want.cacheCreation
			if acc.Usage.PromptTokens != prompt || acc.Usage.CompletionTokens != want.output ||
				acc.Usage.TotalTokens != prompt+want.output || acc.Usage.PromptTokensDetails.CachedTokens != want.cacheRead {
				t.Errorf("client usage %+v, recording in %d (+%d read, +%d written) out %d", acc.Usage, want.input, want.cacheRead, want.cacheCreation, want.output)
			}
			u := rec.Usage
			if rec.UsageSource != call.UsageProvider || u.InputTokens != prompt || u.OutputTokens != want.output ||
				u.TotalTokens != prompt+want.output || u.CachedInputTokens != want.cacheRead ||
				u.CacheCreationInputTokens != want.cacheCreation || u.HasCached != want.hasCacheRead {
				t.Errorf("recorded usage %+v (%q)", u, rec.UsageSource)
			}
			if string(rec.ResponseID) != want.id || string(rec.ResponseModel) != want.model {
				t.Errorf("record id %q model %q", rec.ResponseID, rec.ResponseModel)
			}
			finish := finishReason([]byte(`"` + want.stopReason + `"`))
			if acc.Choices[0].FinishReason != finish || !slices.Equal(rec.FinishReasons, []string{finish}) {
				t.Errorf("finish %q, record %v, want %q (from %q)", acc.Choices[0].FinishReason, rec.FinishReasons, finish, want.stopReason)
			}
			last := chunks[len(chunks)-1]
			if len(last.Choices) != 0 || !last.JSON.Usage.Valid() {
				t.Errorf("last chunk %s: want OpenAI's usage chunk with no choices", last.RawJSON())
			}
			var thinking strings.Builder
			for _, ch := range chunks {
				if len(ch.Choices) > 0 {
					if f, ok := ch.Choices[0].Delta.JSON.ExtraFields["reasoning_content"]; ok {
						var s string
						_ = json.Unmarshal([]byte(f.Raw()), &s)
						thinking.WriteString(s)
					}
				}
			}
			if thinking.String() != want.thinking {
				t.Errorf("reasoning_content %q, recording's thinking %q", thinking.String(), want.thinking)
			}
		})
	}
}

func TestChatStream_WithoutIncludeUsage_SendsNoUsageChunkButRecordsUsage(t *testing.T) {
	evs := events(t, fixture(t, "messages-stream-text.sse"))
	var rec call.Record
	out := translate(t, &rec, evs, false)
	_, chunks, err := openaiGo(t, out)
	if err != nil {
		t.Fatal(err)
	}
	for _, ch := range chunks {
		if ch.JSON.Usage.Valid() {
			t.Fatalf("usage chunk sent although the client did not ask: %s", ch.RawJSON())
		}
	}
	if rec.Usage.InputTokens == 0 || rec.Usage.OutputTokens == 0 || rec.UsageSource != call.UsageProvider {
		t.Fatalf("record usage %+v", rec.Usage)
	}
	if !bytes.HasSuffix(out, []byte("data: [DONE]\n\n")) {
		t.Fatal("stream does not end with [DONE]")
	}
}

func TestChatStream_DeltaUsageIsCumulative_LastReportWins(t *testing.T) {
	// Newer API versions repeat every usage field in message_delta as a
	// running total: adding them to message_start's would double count.
	evs := []sseEvent{
		{[]byte("message_start"), []byte(`{"type":"message_start","message":{"id":"m","model":"c","usage":{"input_tokens":20,"cache_read_input_tokens":100,"cache_creation_input_tokens":0,"output_tokens":1}}}`)},
		{[]byte("message_delta"), []byte(`{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":3}}`)},
		{[]byte("message_delta"), []byte(`{"type":"message_delta","delta":{},"usage":{"input_tokens":20,"cache_read_input_tokens":100,"cache_creation_input_tokens":0,"output_tokens":5,"output_tokens_details":{"thinking_tokens":2}}}`)},
		{[]byte("message_stop"), []byte(`{"type":"message_stop"}`)},
	}
	var rec call.Record
	out := translate(t, &rec, evs, true)
	acc, _, err := openaiGo(t, out)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Usage.InputTokens != 120 || rec.Usage.OutputTokens != 5 || rec.Usage.TotalTokens != 125 || rec.Usage.CachedInputTokens != 100 ||
		rec.Usage.ReasoningTokens != 2 || !rec.Usage.HasReasoning || rec.UsageSource != call.UsageProvider {
		t.Fatalf("record usage %+v", rec.Usage)
	}
	if acc.Usage.PromptTokens != 120 || acc.Usage.CompletionTokens != 5 || acc.Usage.CompletionTokensDetails.ReasoningTokens != 2 {
		t.Fatalf("client usage %+v", acc.Usage)
	}
}

func TestChatStream_ErrorEvent_BecomesOpenAIStreamErrorAndEndsStream(t *testing.T) {
	// No recorded in-stream error exists (SOURCES.md); this is the shape
	// Anthropic documents for an overloaded stream.
	evs := events(t, fixture(t, "messages-stream-text.sse"))[:6]
	evs = append(evs, sseEvent{[]byte("error"), []byte(`{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`)},
		sseEvent{[]byte("content_block_delta"), []byte(`{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"after"}}`)})
	var rec call.Record
	var s ChatStream
	s.Reset(&rec, true)
	var out []byte
	for _, ev := range evs {
		out, _ = s.Event(out, ev.name, ev.data)
	}
	if !s.Failed() {
		t.Fatal("stream not marked failed")
	}
	end := s.End(nil)
	if len(end) != 0 {
		t.Fatalf("End after an error appended %q", end)
	}
	checkChunks(t, out)
	if bytes.Contains(out, []byte("after")) {
		t.Fatal("an event after the error was translated")
	}
	_, _, err := openaiGo(t, out)
	var se *ssestream.StreamError
	if !errors.As(err, &se) || !strings.Contains(se.Message, "Overloaded") {
		t.Fatalf("openai-go error %v, want a stream error saying Overloaded", err)
	}
	if rec.Outcome != call.OutcomeUpstreamError || rec.ErrorType != "overloaded_error" || rec.ErrorMessage != "Overloaded" {
		t.Fatalf("record %q %q %q", rec.Outcome, rec.ErrorType, rec.ErrorMessage)
	}
}

func TestChatStream_ToolWithoutArguments_GetsEmptyObject(t *testing.T) {
	evs := []sseEvent{
		{nil, []byte(`{"type":"message_start","message":{"id":"m","model":"c","usage":{"input_tokens":1,"output_tokens":1}}}`)},
		{nil, []byte(`{"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"toolu_1","name":"now","input":{}}}`)},
		{nil, []byte(`{"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":""}}`)},
		{nil, []byte(`{"type":"content_block_stop","index":0}`)},
		{nil, []byte(`{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_2","name":"at","input":{"city":"Paris"}}}`)},
		{nil, []byte(`{"type":"content_block_stop","index":1}`)},
		{nil, []byte(`{"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":9}}`)},
		{nil, []byte(`{"type":"message_stop"}`)},
	}
	var rec call.Record
	out := translate(t, &rec, evs, false)
	acc, _, err := openaiGo(t, out)
	if err != nil {
		t.Fatal(err)
	}
	calls := acc.Choices[0].Message.ToolCalls
	if len(calls) != 2 || calls[0].Function.Arguments != "{}" || calls[1].Function.Arguments != `{"city":"Paris"}` {
		t.Fatalf("tool calls %+v", calls)
	}
	if acc.Choices[0].FinishReason != "tool_calls" {
		t.Fatalf("finish %q", acc.Choices[0].FinishReason)
	}
}

func TestChatStream_HostileUpstreamStrings_StayValidJSON(t *testing.T) {
	evs := []sseEvent{
		{nil, []byte("{\"type\":\"message_start\",\"message\":{\"id\":\"m\xff\\q\",\"model\":\"c\x01\",\"usage\":{\"input_tokens\":\"x\",\"output_tokens\":-4}}}")},
		{nil, []byte("{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}")},
		{nil, []byte("{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"bad \xc3\x28 raw\x02 esc\\x \\ud800 ok\"}}")},
		{nil, []byte("{\"type\":\"content_block_delta\",\"index\":99999999999,\"delta\":{\"type\":\"text_delta\",\"text\":\"far\"}}")},
		{nil, []byte("{\"type\":\"content_block_delta\",\"index\":-1,\"delta\":{\"type\":\"text_delta\",\"text\":\"neg\"}}")},
		{nil, []byte("{\"type\":\"content_block_delta\",\"index\":0,\"delta\":\"nope\"}")},
		{nil, []byte("{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"\\u0000weird\"},\"usage\":[]}")},
	}
	var rec call.Record
	out := translate(t, &rec, evs, true)
	checkChunks(t, out)
	if bytes.Contains(out, []byte("far")) || bytes.Contains(out, []byte("neg")) {
		t.Fatalf("out-of-range block index translated: %s", out)
	}
	acc, _, err := openaiGo(t, out)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(acc.Choices[0].Message.Content, "bad ") || acc.Choices[0].FinishReason != "stop" {
		t.Fatalf("content %q finish %q", acc.Choices[0].Message.Content, acc.Choices[0].FinishReason)
	}
	if rec.Usage.InputTokens < 0 || rec.Usage.OutputTokens < 0 {
		t.Fatalf("negative usage recorded: %+v", rec.Usage)
	}
	huge := `{"type":"message_start","message":{"id":"` + strings.Repeat("é", 100000) + `","model":"c"}}`
	out = translate(t, &rec, []sseEvent{{nil, []byte(huge)}}, false)
	if len(out) > 2*maxIDBytes+200 {
		t.Fatalf("a huge id went into the chunk head: %d bytes", len(out))
	}
}

func TestChatStream_NotJSON_IsMalformedAndWritesNothing(t *testing.T) {
	var rec call.Record
	var s ChatStream
	s.Reset(&rec, true)
	if out, err := s.Event([]byte("x"), []byte("ping"), []byte(" ")); err != nil || string(out) != "x" {
		t.Errorf("empty data: %v, wrote %q", err, out)
	}
	for _, data := range []string{"[DONE]", "[1,2]", `{"type":"message_start"`, "nul"} {
		out, err := s.Event([]byte("x"), []byte("message_start"), []byte(data))
		if !errors.Is(err, ErrMalformed) || string(out) != "x" {
			t.Errorf("%q: %v, wrote %q", data, err, out)
		}
	}
}

func TestChatStream_CapturesTextWhenTheTenantCapturesContent(t *testing.T) {
	evs := events(t, fixture(t, "messages-stream-text.sse"))
	want := readRecording(t, evs)
	rec := call.Record{Content: call.Content{Capture: true, Max: 1 << 20}}
	translate(t, &rec, evs, false)
	if len(rec.Content.Choices) != 1 || string(rec.Content.Choices[0]) != want.text {
		t.Fatalf("captured %q", rec.Content.Choices)
	}
}

func TestChatStream_AllocationFreePerEvent(t *testing.T) {
	evs := events(t, fixture(t, "messages-stream-tool-use.sse"))
	evs = append(evs, events(t, fixture(t, "messages-stream-thinking.sse"))[1:]...)
	var rec call.Record
	var s ChatStream
	out := make([]byte, 0, 64<<10)
	run := func() {
		rec.Reset()
		s.Reset(&rec, true)
		out = out[:0]
		for _, ev := range evs {
			out, _ = s.Event(out, ev.name, ev.data)
		}
		out = s.End(out)
	}
	run()
	if n := testing.AllocsPerRun(50, run); n != 0 {
		t.Fatalf("%v allocations per stream of %d events, want 0", n, len(evs))
	}
}

func BenchmarkChatStream(b *testing.B) {
	for _, name := range []string{"messages-stream-text.sse", "messages-stream-tool-use.sse"} {
		b.Run(name, func(b *testing.B) {
			evs := events(b, fixture(b, name))
			var rec call.Record
			var s ChatStream
			out := make([]byte, 0, 64<<10)
			var in int64
			for _, ev := range evs {
				in += int64(len(ev.data))
			}
			b.SetBytes(in)
			b.ReportAllocs()
			for b.Loop() {
				rec.Reset()
				s.Reset(&rec, true)
				out = out[:0]
				for _, ev := range evs {
					out, _ = s.Event(out, ev.name, ev.data)
				}
				out = s.End(out)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(evs)), "ns/event")
		})
	}
}

func TestChatStream_CutBeforeMessageDelta_KeepsExactInputAndEstimatesOutput(t *testing.T) {
	evs := events(t, fixture(t, "messages-stream-cache-read.sse"))
	want := readRecording(t, evs)
	var cut []sseEvent
	for _, ev := range evs {
		if bytes.Contains(ev.data, []byte(`"message_delta"`)) {
			break
		}
		cut = append(cut, ev)
	}
	var rec call.Record
	var s ChatStream
	s.Reset(&rec, true)
	var native call.Record
	var o Observer
	for _, ev := range cut {
		s.Event(nil, ev.name, ev.data)
		o.Event(&native, ev.name, ev.data)
	}
	if s.Done() {
		t.Fatal("a cut stream reads as done")
	}
	for _, r := range []*call.Record{&rec, &native} {
		u := r.Usage
		if r.UsageSource != call.UsageEstimated || u.InputTokens != want.input+want.cacheRead || u.CachedInputTokens != want.cacheRead ||
			u.OutputTokens != int64(r.OutputPieces) || u.OutputTokens < 2 || u.TotalTokens != u.InputTokens+u.OutputTokens {
			t.Fatalf("usage %+v (%q, %d pieces): want the exact input and an estimated output", u, r.UsageSource, r.OutputPieces)
		}
	}
}
