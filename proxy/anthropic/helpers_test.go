package anthropic

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/loom-gateway/loom/proxy/sse"
)

// fixture reads a recorded file from the in-repo copy of the wire fixtures.
func fixture(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "bench", "fixtures", "wire", "anthropic", name))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// recordedStreams are the names of every recorded Anthropic stream.
func recordedStreams(tb testing.TB) []string {
	tb.Helper()
	paths, err := filepath.Glob(filepath.Join("..", "..", "bench", "fixtures", "wire", "anthropic", "*.sse"))
	if err != nil || len(paths) == 0 {
		tb.Fatalf("no recorded streams: %v", err)
	}
	var names []string
	for _, p := range paths {
		names = append(names, filepath.Base(p))
	}
	return names
}

type sseEvent struct{ name, data []byte }

// events splits a recorded stream into its events, copied.
func events(tb testing.TB, stream []byte) []sseEvent {
	tb.Helper()
	sc := sse.NewScanner(bytes.NewReader(stream), nil, 0)
	var out []sseEvent
	for sc.Next() {
		ev := sc.Event()
		if !ev.HasData {
			continue
		}
		out = append(out, sseEvent{append([]byte(nil), ev.Name...), append([]byte(nil), ev.Data...)})
	}
	if err := sc.Err(); err != nil {
		tb.Fatal(err)
	}
	return out
}

// recording is what a recorded stream says, read independently of the
// package with encoding/json: the oracle the translation is checked against.
type recording struct {
	id, model                string
	text, thinking           string
	tools                    []recordedTool
	stopReason               string
	input, output            int64
	cacheRead, cacheCreation int64
	hasCacheRead             bool
}

type recordedTool struct{ id, name, args string }

func readRecording(tb testing.TB, evs []sseEvent) recording {
	tb.Helper()
	var r recording
	toolAt := map[int]int{}
	for _, ev := range evs {
		var e struct {
			Type    string
			Index   int
			Message struct {
				ID, Model string
				Usage     map[string]any
			}
			ContentBlock struct {
				Type, ID, Name string
			} `json:"content_block"`
			Delta struct {
				Type, Text, Thinking string
				PartialJSON          string `json:"partial_json"`
				StopReason           string `json:"stop_reason"`
			}
			Usage map[string]any
		}
		if err := json.Unmarshal(ev.data, &e); err != nil {
			tb.Fatalf("recording %s: %v", ev.data, err)
		}
		usage := func(u map[string]any) {
			for k, v := range u {
				n, ok := v.(float64)
				if !ok {
					continue
				}
				switch k {
				case "input_tokens":
					r.input = int64(n)
				case "output_tokens":
					r.output = int64(n)
				case "cache_read_input_tokens":
					r.cacheRead, r.hasCacheRead = int64(n), true
				case "cache_creation_input_tokens":
					r.cacheCreation = int64(n)
				}
			}
		}
		switch e.Type {
		case "message_start":
			r.id, r.model = e.Message.ID, e.Message.Model
			usage(e.Message.Usage)
		case "content_block_start":
			if e.ContentBlock.Type == "tool_use" {
				toolAt[e.Index] = len(r.tools)
				r.tools = append(r.tools, recordedTool{id: e.ContentBlock.ID, name: e.ContentBlock.Name})
			}
		case "content_block_delta":
			switch e.Delta.Type {
			case "text_delta":
				r.text += e.Delta.Text
			case "thinking_delta":
				r.thinking += e.Delta.Thinking
			case "input_json_delta":
				r.tools[toolAt[e.Index]].args += e.Delta.PartialJSON
			}
		case "message_delta":
			r.stopReason = e.Delta.StopReason
			usage(e.Usage)
		}
	}
	return r
}
