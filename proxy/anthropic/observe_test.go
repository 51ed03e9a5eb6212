package anthropic

import (
	"slices"
	"testing"

	"github.com/loom-gateway/loom/proxy/call"
)

func TestObserver_RecordedStreams_UsageIdsAndStopReason(t *testing.T) {
	for _, name := range recordedStreams(t) {
		t.Run(name, func(t *testing.T) {
			evs := events(t, fixture(t, name))
			want := readRecording(t, evs)
			var rec call.Record
			var o Observer
			for _, ev := range evs {
				if o.Event(&rec, ev.name, ev.data) {
					t.Fatalf("error reported for %s", ev.data)
				}
			}
			prompt := want.input + want.cacheRead + want.cacheCreation
			u := rec.Usage
			if rec.UsageSource != call.UsageProvider || u.InputTokens != prompt || u.OutputTokens != want.output ||
				u.TotalTokens != prompt+want.output || u.CachedInputTokens != want.cacheRead || u.CacheCreationInputTokens != want.cacheCreation {
				t.Errorf("usage %+v, recording in %d (+%d read, +%d written) out %d", u, want.input, want.cacheRead, want.cacheCreation, want.output)
			}
			if string(rec.ResponseID) != want.id || string(rec.ResponseModel) != want.model {
				t.Errorf("id %q model %q", rec.ResponseID, rec.ResponseModel)
			}
			// The client of a byte-for-byte relay saw Anthropic's own stop
			// reason: that is what the span says.
			if !slices.Equal(rec.FinishReasons, []string{want.stopReason}) {
				t.Errorf("finish reasons %v, want [%s]", rec.FinishReasons, want.stopReason)
			}
			if rec.OutputPieces == 0 {
				t.Error("no output pieces counted")
			}
		})
	}
}

func TestObserver_ErrorEvent_MarksRecord(t *testing.T) {
	var rec call.Record
	var o Observer
	if !o.Event(&rec, []byte("error"), []byte(`{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`)) {
		t.Fatal("error event not reported")
	}
	if rec.Outcome != call.OutcomeUpstreamError || rec.ErrorType != "overloaded_error" || rec.ErrorMessage != "Overloaded" {
		t.Fatalf("record %q %q %q", rec.Outcome, rec.ErrorType, rec.ErrorMessage)
	}
}

func TestObserver_CapturesTextWhenTheTenantCapturesContent(t *testing.T) {
	evs := events(t, fixture(t, "messages-stream-tool-use.sse"))
	want := readRecording(t, evs)
	rec := call.Record{Content: call.Content{Capture: true, Max: 1 << 20}}
	var o Observer
	for _, ev := range evs {
		o.Event(&rec, ev.name, ev.data)
	}
	if len(rec.Content.Choices) != 1 || string(rec.Content.Choices[0]) != want.text {
		t.Fatalf("captured %q, want %q", rec.Content.Choices, want.text)
	}
}

func TestObserver_AllocationFreePerEvent(t *testing.T) {
	var evs []sseEvent
	for _, name := range recordedStreams(t) {
		evs = append(evs, events(t, fixture(t, name))...)
	}
	var rec call.Record
	var o Observer
	run := func() {
		rec.Reset()
		o.Reset()
		for _, ev := range evs {
			o.Event(&rec, ev.name, ev.data)
		}
	}
	run()
	if n := testing.AllocsPerRun(20, run); n != 0 {
		t.Fatalf("%v allocations for %d events, want 0", n, len(evs))
	}
}

func BenchmarkObserver(b *testing.B) {
	evs := events(b, fixture(b, "messages-stream-text.sse"))
	var rec call.Record
	var o Observer
	b.ReportAllocs()
	for b.Loop() {
		rec.Reset()
		o.Reset()
		for _, ev := range evs {
			o.Event(&rec, ev.name, ev.data)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(evs)), "ns/event")
}

func TestObserveMessage_RecordedBodies(t *testing.T) {
	var rec call.Record
	ObserveMessage(&rec, fixture(t, "messages-nonstream.json"))
	if string(rec.ResponseID) != "msg_01Egs18hRzhru3uGon3qesbA" || string(rec.ResponseModel) != "claude-sonnet-4-5-20250929" ||
		!slices.Equal(rec.FinishReasons, []string{"end_turn"}) || rec.Usage.InputTokens != 249 || rec.Usage.OutputTokens != 26 ||
		rec.Usage.TotalTokens != 275 || rec.UsageSource != call.UsageProvider {
		t.Fatalf("record %+v", rec)
	}
	for file, typ := range map[string]string{
		"error-400-invalid-request.json": "invalid_request_error",
		"error-401-authentication.json":  "authentication_error",
		"error-429-rate-limit.json":      "rate_limit_error",
	} {
		var rec call.Record
		ObserveMessage(&rec, fixture(t, file))
		if rec.ErrorType != typ || rec.ErrorMessage == "" || rec.UsageSource != call.UsageNone {
			t.Errorf("%s: error type %q message %q", file, rec.ErrorType, rec.ErrorMessage)
		}
	}
}

func TestObserveMessage_CacheUsageCountsIntoInput(t *testing.T) {
	var rec call.Record
	ObserveMessage(&rec, []byte(`{"id":"m","type":"message","model":"c","content":[],"stop_reason":"max_tokens",
		"usage":{"input_tokens":5,"cache_read_input_tokens":1000,"cache_creation_input_tokens":24,"output_tokens":7}}`))
	u := rec.Usage
	if u.InputTokens != 1029 || u.CachedInputTokens != 1000 || !u.HasCached || u.CacheCreationInputTokens != 24 || !u.HasCacheCreation || u.TotalTokens != 1036 {
		t.Fatalf("usage %+v", u)
	}
}
