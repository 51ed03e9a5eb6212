package messages_test

import (
	"bufio"
	"bytes"
	"context"
	stdjson "encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/loom-gateway/loom/deploy/prereq"
	"github.com/loom-gateway/loom/proxy/messages"
)

// nodeDir holds the pinned @anthropic-ai/sdk and the script that drives it.
var nodeDir = filepath.Join("testdata", "node")

// tsResult is one line of sdk.mjs's output.
type tsResult struct {
	Message *struct {
		ID         string `json:"id"`
		Model      string `json:"model"`
		StopReason string `json:"stop_reason"`
		Content    []struct {
			Type     string             `json:"type"`
			Text     string             `json:"text"`
			Thinking string             `json:"thinking"`
			ID       string             `json:"id"`
			Name     string             `json:"name"`
			Input    stdjson.RawMessage `json:"input"`
		} `json:"content"`
		Usage struct {
			InputTokens     int64 `json:"input_tokens"`
			CacheReadTokens int64 `json:"cache_read_input_tokens"`
			OutputTokens    int64 `json:"output_tokens"`
		} `json:"usage"`
	} `json:"message"`
	Error *struct {
		Name, Type, Message string
		Status              int
	} `json:"error"`
}

// runTSSDK serves each answer (an SSE stream or a JSON body, with its
// status) at its own URL and reads them all with one node process.
func runTSSDK(t *testing.T, mode string, statuses []int, answers [][]byte) []tsResult {
	t.Helper()
	node := prereq.Node(t, nodeDir)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var i int
		if _, err := fmt.Sscanf(r.URL.Path, "/%d/", &i); err != nil || i >= len(answers) {
			http.NotFound(w, r)
			return
		}
		if mode == "stream" && statuses[i] == 200 {
			w.Header().Set("Content-Type", "text/event-stream")
		} else {
			w.Header().Set("Content-Type", "application/json")
		}
		w.WriteHeader(statuses[i])
		_, _ = w.Write(answers[i])
	}))
	defer srv.Close()
	args := []string{"sdk.mjs", mode}
	for i := range answers {
		args = append(args, fmt.Sprintf("%s/%d", srv.URL, i))
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, args...)
	cmd.Dir = nodeDir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node sdk.mjs: %v\n%s", err, stderr.Bytes())
	}
	var results []tsResult
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		var r tsResult
		if err := stdjson.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("sdk.mjs line %s: %v", sc.Bytes(), err)
		}
		results = append(results, r)
	}
	if len(results) != len(answers) {
		t.Fatalf("%d results for %d answers:\n%s\n%s", len(results), len(answers), out, stderr.Bytes())
	}
	return results
}

// checkTS compares what the TypeScript SDK assembled with the recording.
func checkTS(t *testing.T, name string, got tsResult, want recorded) {
	t.Helper()
	if got.Message == nil {
		t.Errorf("%s: SDK error %+v", name, got.Error)
		return
	}
	m := got.Message
	var text string
	tools := 0
	for _, b := range m.Content {
		switch b.Type {
		case "text":
			text += b.Text
		case "tool_use":
			if tools >= len(want.tools) {
				t.Errorf("%s: extra tool_use %s", name, b.Name)
				continue
			}
			w := want.tools[tools]
			if b.ID != w.id || b.Name != w.name || !sameJSON(t, string(b.Input), w.args) {
				t.Errorf("%s: tool %d got %s %s %s, want %+v", name, tools, b.ID, b.Name, b.Input, w)
			}
			tools++
		}
	}
	if text != want.text || tools != len(want.tools) || m.StopReason != string(wantStopReason(want)) {
		t.Errorf("%s: text %q tools %d stop %q; want %q %d %q", name, text, tools, m.StopReason, want.text, len(want.tools), wantStopReason(want))
	}
	if want.hasUsage && (m.Usage.InputTokens+m.Usage.CacheReadTokens != want.prompt || m.Usage.OutputTokens != want.completion) {
		t.Errorf("%s: usage %+v, want %d/%d", name, m.Usage, want.prompt, want.completion)
	}
}

// TestTranslation_AnthropicTypeScriptSDK reads the translated recordings
// with @anthropic-ai/sdk, the SDK Claude Code uses: streams through
// messages.stream().finalMessage(), bodies through messages.create, and
// translated errors as the SDK's typed errors.
func TestTranslation_AnthropicTypeScriptSDK(t *testing.T) {
	t.Run("streams", func(t *testing.T) {
		var answers [][]byte
		var statuses []int
		var wants []recorded
		for _, name := range recordedStreams {
			payloads := streamPayloads(t, name)
			wants = append(wants, recordedStream(t, payloads))
			answers = append(answers, translateStream(t, payloads, nil, "claude-via-loom"))
			statuses = append(statuses, 200)
		}
		for i, got := range runTSSDK(t, "stream", statuses, answers) {
			checkTS(t, recordedStreams[i], got, wants[i])
		}
	})
	t.Run("bodies", func(t *testing.T) {
		var answers [][]byte
		var statuses []int
		var wants []recorded
		for _, name := range recordedBodies {
			body := readFixture(t, name)
			var want recorded
			want.take(t, body)
			wants = append(wants, want)
			out, err := messages.AppendMessage(nil, body, []byte("claude-via-loom"), nil)
			if err != nil {
				t.Fatal(err)
			}
			answers = append(answers, out)
			statuses = append(statuses, 200)
		}
		for i, got := range runTSSDK(t, "unary", statuses, answers) {
			checkTS(t, recordedBodies[i], got, wants[i])
		}
	})
	t.Run("errors", func(t *testing.T) {
		cases := []struct {
			status     int
			body, name string
		}{
			{401, "openai/error-401-invalid-api-key.json", "AuthenticationError"},
			{404, "openai/error-404-model-not-found.json", "NotFoundError"},
			{400, "openai/error-400-unsupported-parameter.json", "BadRequestError"},
			{503, "", "OverloadedError"}, // 529: the SDK has a class for it
		}
		var answers [][]byte
		var statuses []int
		for _, c := range cases {
			var body []byte
			if c.body != "" {
				body = readFixture(t, c.body)
			}
			status, out := messages.ErrorFromOpenAI(nil, c.status, body)
			answers, statuses = append(answers, out), append(statuses, status)
		}
		for i, got := range runTSSDK(t, "unary", statuses, answers) {
			want := messages.TypeForStatus(statuses[i])
			if got.Error == nil || got.Error.Name != cases[i].name || got.Error.Status != statuses[i] || got.Error.Type != want {
				t.Errorf("%d: got %+v, want %s %d %s", cases[i].status, got.Error, cases[i].name, statuses[i], want)
			}
		}
	})
}
