package server_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/loom-gateway/loom/deploy/prereq"
)

// TestMessages_AnthropicNodeSDK runs testdata/node/messages.mjs, an app on
// @anthropic-ai/sdk, against Loom's /v1/messages: a Claude model relayed
// byte for byte (unary, a recorded text stream, a recorded tool-use
// stream), a model on an OpenAI deployment translated, and a bad key.
func TestMessages_AnthropicNodeSDK(t *testing.T) {
	dir := filepath.Join("testdata", "node")
	node := prereq.Node(t, dir)
	st := startAnthropicStack(t)
	seen := st.count()
	cmd := exec.CommandContext(t.Context(), node, "messages.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "LOOM_URL="+st.url, "LOOM_KEY="+st.keyA)
	cmd.WaitDelay = 10 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node messages.mjs: %v\n%s", err, out)
	}
	var got struct {
		Unary struct {
			ID, Text string
			Output   int64
		}
		Stream struct {
			Text, Stop string
			Output     int64
		}
		Tools      []map[string]any
		Translated struct {
			Text   string
			Output int64
		}
		BadKey struct {
			Status int
			Type   string
		}
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("messages.mjs printed %s: %v", out, err)
	}
	recs := st.waitRecords(seen + 4)[seen:]
	if got.Unary.Text == "" || got.Unary.ID != string(recs[0].ResponseID) || got.Unary.Output != recs[0].Usage.OutputTokens {
		t.Fatalf("unary %+v, record %q %+v", got.Unary, recs[0].ResponseID, recs[0].Usage)
	}
	text := readRecording(t, "messages-stream-text.sse")
	if got.Stream.Text != text.text || got.Stream.Output != text.output || got.Stream.Stop != text.stop ||
		recs[1].Usage.OutputTokens != text.output {
		t.Fatalf("stream %+v, recorded %+v", got.Stream, text)
	}
	tools := readRecording(t, "messages-stream-tool-use.sse")
	if len(got.Tools) != len(tools.toolInputs) || len(got.Tools) == 0 {
		t.Fatalf("tool inputs %v, recorded %v", got.Tools, tools.toolInputs)
	}
	for i, in := range tools.toolInputs {
		var want map[string]any
		_ = json.Unmarshal([]byte(in), &want)
		if b1, _ := json.Marshal(got.Tools[i]); string(b1) != mustMarshal(want) {
			t.Fatalf("tool input %s, recorded %s", b1, in)
		}
	}
	if got.Translated.Text == "" || got.Translated.Output != recs[3].Usage.OutputTokens || recs[3].Deployment != "mock-openai" {
		t.Fatalf("translated %+v, record %s %+v", got.Translated, recs[3].Deployment, recs[3].Usage)
	}
	if got.BadKey.Status != 401 || got.BadKey.Type != "authentication_error" {
		t.Fatalf("bad key %+v", got.BadKey)
	}
}

func mustMarshal(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
