package anthropic

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/loom-gateway/loom/deploy/prereq"
	"github.com/loom-gateway/loom/proxy/call"
)

// nodeResult is what openai-node made of one translated stream.
type nodeResult struct {
	Path         string
	ID, Model    string
	Content      string
	Reasoning    string
	FinishReason string `json:"finish_reason"`
	ToolCalls    []struct {
		ID, Name, Arguments string
	} `json:"tool_calls"`
	Usage *struct {
		PromptTokens        int64 `json:"prompt_tokens"`
		CompletionTokens    int64 `json:"completion_tokens"`
		TotalTokens         int64 `json:"total_tokens"`
		PromptTokensDetails struct {
			CachedTokens int64 `json:"cached_tokens"`
		} `json:"prompt_tokens_details"`
	}
	Error *struct{ Name, Message string }
}

// TestChatStream_RecordedStreams_ReassembleInOpenAINode reads every
// recorded Anthropic stream, translated, with openai-node's stream helper
// (testdata/openai-node/check.mjs): the text, the thinking, the tool calls
// and the usage come out as the recording says, and an error event raises
// the SDK's APIError.
func TestChatStream_RecordedStreams_ReassembleInOpenAINode(t *testing.T) {
	dir := filepath.Join("testdata", "openai-node")
	node := prereq.Node(t, dir)

	tmp := t.TempDir()
	want := map[string]recording{}
	var paths []string
	for _, name := range recordedStreams(t) {
		evs := events(t, fixture(t, name))
		var rec call.Record
		path := filepath.Join(tmp, name)
		if err := os.WriteFile(path, translate(t, &rec, evs, true), 0o644); err != nil {
			t.Fatal(err)
		}
		want[path] = readRecording(t, evs)
		paths = append(paths, path)
	}
	failed := filepath.Join(tmp, "overloaded-mid-stream.sse")
	evs := append(events(t, fixture(t, "messages-stream-text.sse"))[:5],
		sseEvent{[]byte("error"), []byte(`{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`)})
	var rec call.Record
	if err := os.WriteFile(failed, translate(t, &rec, evs, true), 0o644); err != nil {
		t.Fatal(err)
	}
	paths = append(paths, failed)

	cmd := exec.CommandContext(t.Context(), node, append([]string{"check.mjs"}, paths...)...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.WaitDelay = 10 * time.Second
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node check.mjs: %v\n%s", err, stderr.String())
	}
	seen := 0
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r nodeResult
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("node printed %q: %v", sc.Text(), err)
		}
		seen++
		name := filepath.Base(r.Path)
		if r.Path == failed {
			if r.Error == nil || !strings.Contains(r.Error.Message, "Overloaded") {
				t.Errorf("%s: openai-node did not raise the error event: %+v", name, r)
			}
			continue
		}
		w := want[r.Path]
		if r.Error != nil {
			t.Errorf("%s: openai-node failed: %+v", name, r.Error)
			continue
		}
		if r.Content != w.text || r.Reasoning != w.thinking || r.ID != w.id || r.Model != w.model {
			t.Errorf("%s: content %q reasoning %q id %q model %q; recording %q %q %q %q", name, r.Content, r.Reasoning, r.ID, r.Model, w.text, w.thinking, w.id, w.model)
		}
		if r.FinishReason != finishReason([]byte(`"`+w.stopReason+`"`)) {
			t.Errorf("%s: finish reason %q for %q", name, r.FinishReason, w.stopReason)
		}
		if len(r.ToolCalls) != len(w.tools) {
			t.Errorf("%s: tool calls %+v, recording %+v", name, r.ToolCalls, w.tools)
			continue
		}
		for i, c := range r.ToolCalls {
			if c.ID != w.tools[i].id || c.Name != w.tools[i].name || c.Arguments != w.tools[i].args || !json.Valid([]byte(c.Arguments)) {
				t.Errorf("%s: tool call %d %+v, recording %+v", name, i, c, w.tools[i])
			}
		}
		prompt := w.input + w.cacheRead + w.cacheCreation
		if u := r.Usage; u == nil || u.PromptTokens != prompt || u.CompletionTokens != w.output || u.TotalTokens != prompt+w.output || u.PromptTokensDetails.CachedTokens != w.cacheRead {
			t.Errorf("%s: usage %+v, recording in %d (+%d read, +%d written) out %d", name, u, w.input, w.cacheRead, w.cacheCreation, w.output)
		}
	}
	if seen != len(paths) {
		t.Fatalf("node read %d of %d streams\n%s", seen, len(paths), stderr.String())
	}
}
