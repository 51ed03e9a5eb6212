package server_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/loom-gateway/loom/proxy/call"
)

// tapGolden is what the tap must read from a recorded stream.
type tapGolden struct {
	ResponseID    string     `json:"response_id"`
	ResponseModel string     `json:"response_model"`
	FinishReasons []string   `json:"finish_reasons"`
	Usage         call.Usage `json:"usage"`
	UsageSource   string     `json:"usage_source"`
	Chunks        int        `json:"chunks"`
}

func goldenOf(r *call.Record) tapGolden {
	return tapGolden{
		ResponseID: string(r.ResponseID), ResponseModel: string(r.ResponseModel),
		FinishReasons: r.FinishReasons, Usage: r.Usage, UsageSource: string(r.UsageSource), Chunks: r.Chunks,
	}
}

// recordedStreams lists every stream fixture with the bytes a client must
// receive for it.
func recordedStreams(t *testing.T) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, dir := range []string{"openai", "azure"} {
		files, err := filepath.Glob(filepath.Join(fixtures, dir, "*"))
		if err != nil || len(files) == 0 {
			t.Fatalf("no fixtures under %s: %v", fixtures, err)
		}
		for _, f := range files {
			name := dir + "/" + filepath.Base(f)
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case strings.HasSuffix(f, ".sse"):
				out[name] = b
			case strings.HasSuffix(f, ".chunks.jsonl"):
				// SOURCES.md: SSE framing was stripped upstream; re-frame.
				var framed []byte
				for _, line := range bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n")) {
					framed = append(append(append(framed, "data: "...), line...), "\n\n"...)
				}
				out[name] = append(framed, "data: [DONE]\n\n"...)
			}
		}
	}
	return out
}

func modelFor(fixture string) string {
	if strings.HasPrefix(fixture, "azure/") {
		return "azure-gpt"
	}
	return "gpt-4o-mini"
}

func TestRelay_RecordedStreams_ReachClientByteForByte(t *testing.T) {
	st := startStack(t, stackOptions{})
	streams := recordedStreams(t)
	if len(streams) < 10 {
		t.Fatalf("only %d recorded streams found", len(streams))
	}
	for name, want := range streams {
		t.Run(name, func(t *testing.T) {
			seen := st.count()
			body := `{"model":"` + modelFor(name) + `","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":true}}`
			status, hdr, got := st.do("POST", "/v1/chat/completions", st.keyA, body, map[string]string{"x-mock-replay": name})
			if status != 200 {
				t.Fatalf("status %d: %s", status, got)
			}
			if !strings.HasPrefix(hdr.Get("Content-Type"), "text/event-stream") {
				t.Fatalf("content-type %q", hdr.Get("Content-Type"))
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("client bytes differ from the recording (%d vs %d bytes)\n got: %.300q\nwant: %.300q", len(got), len(want), got, want)
			}
			rec := st.lastRecord(seen)
			if rec.Outcome != call.OutcomeOK || rec.ClientBytes != int64(len(want)) || rec.UpstreamBytes != int64(len(want)) {
				t.Fatalf("record: outcome %s client bytes %d upstream bytes %d, want %d", rec.Outcome, rec.ClientBytes, rec.UpstreamBytes, len(want))
			}
			if rec.UsageRequested {
				t.Fatal("client asked for usage itself; Loom must not mark it as added")
			}
			checkGolden(t, "replay-"+strings.ReplaceAll(name, "/", "-"), goldenOf(rec))
		})
	}
}

func checkGolden(t *testing.T, name string, got tapGolden) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name+".json")
	b, _ := json.MarshalIndent(got, "", "  ")
	b = append(b, '\n')
	if *update {
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("golden %s missing (run go test -update): %v", path, err)
	}
	if !bytes.Equal(b, want) {
		t.Fatalf("tap read differs from %s:\n got: %s\nwant: %s", path, b, want)
	}
}

func TestStream_WithoutIncludeUsage_ClientGetsNoUsageChunk(t *testing.T) {
	st := startStack(t, stackOptions{})
	const name = "openai/chat-stream-text-include-usage.sse"
	recorded := recordedStreams(t)[name]
	// What OpenAI would have sent without include_usage: the same events
	// minus the usage chunk.
	var want []byte
	for _, ev := range sseEvents(recorded) {
		if !bytes.Contains(ev, []byte(`"usage":{`)) {
			want = append(want, ev...)
		}
	}
	if len(want) == len(recorded) {
		t.Fatal("fixture has no usage chunk")
	}
	seen := st.count()
	body := `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"stream":true}`
	status, _, got := st.do("POST", "/v1/chat/completions", st.keyA, body, map[string]string{"x-mock-replay": name})
	if status != 200 || !bytes.Equal(got, want) {
		t.Fatalf("status %d; client bytes differ from the recording without its usage chunk:\n got: %q\nwant: %q", status, got, want)
	}
	up, _ := st.mock.Last()
	if !up.IncludeUsage {
		t.Fatalf("Loom did not ask the upstream for usage; upstream body: %s", up.Body)
	}
	rec := st.lastRecord(seen)
	if !rec.UsageRequested || rec.UsageSource != call.UsageProvider || rec.Usage.InputTokens != 14 || rec.Usage.OutputTokens != 30 || rec.Usage.TotalTokens != 44 {
		t.Fatalf("tap usage %+v source %q requested %v", rec.Usage, rec.UsageSource, rec.UsageRequested)
	}
}

func TestStream_GeneratedWithUsageNull_ClientSeesNoUsageAtAll(t *testing.T) {
	st := startStack(t, stackOptions{})
	seen := st.count()
	body := `{"model":"gpt-4o","messages":[{"role":"user","content":"count to five"}],"stream":true}`
	status, _, got := st.do("POST", "/v1/chat/completions", st.keyA, body,
		map[string]string{"x-mock-usage-null": "1", "x-mock-chunks": "7"})
	if status != 200 {
		t.Fatalf("status %d: %s", status, got)
	}
	if bytes.Contains(got, []byte(`"usage"`)) {
		t.Fatalf("client got usage it did not ask for:\n%s", got)
	}
	for _, ev := range sseEvents(got) {
		data := bytes.TrimPrefix(bytes.TrimSpace(ev), []byte("data: "))
		if string(data) != "[DONE]" && !json.Valid(data) {
			t.Fatalf("splice left invalid JSON: %s", data)
		}
	}
	up, _ := st.mock.Last()
	rec := st.lastRecord(seen)
	if up.UsageSent == nil || rec.Usage.InputTokens != int64(up.UsageSent.PromptTokens) ||
		rec.Usage.OutputTokens != int64(up.UsageSent.CompletionTokens) || rec.Usage.TotalTokens != int64(up.UsageSent.TotalTokens) {
		t.Fatalf("tap usage %+v, mock sent %+v", rec.Usage, up.UsageSent)
	}
	if rec.Chunks != len(up.ChunkSentAt)-1 {
		t.Fatalf("chunks %d, mock sent %d events (with [DONE])", rec.Chunks, len(up.ChunkSentAt))
	}
	if rec.ChunksSent != len(up.ChunkSentAt)-1 {
		t.Fatalf("chunks sent %d, want %d (usage chunk dropped, [DONE] kept)", rec.ChunksSent, len(up.ChunkSentAt)-1)
	}
}
