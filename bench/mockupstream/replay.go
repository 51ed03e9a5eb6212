package mockupstream

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/valyala/fasthttp"
)

// Replay file kinds, by suffix. Suffixes are matched longest first: "x.chunks.jsonl" is not a ".json".
const (
	suffixChunks  = ".chunks.jsonl"
	suffixSSE     = ".sse"
	suffixJSON    = ".json"
	suffixHeaders = ".headers.json"
)

// replayFile is a recording, split and ready to send. Its bytes are never changed after loading.
type replayFile struct {
	stream      bool
	events      []sseEvent // stream: one SSE event each, framing included
	body        []byte     // non-stream
	status      int
	contentType string
}

// recordedHeaders is the part of a fixture's *.headers.json the mock uses.
type recordedHeaders struct {
	Status  int                     `json:"status"`
	Headers map[string]headerValues `json:"headers"`
}

// headerValues reads a recorded header as the fixtures store it: a list of values, or (in some Anthropic
// recordings) a plain string.
type headerValues []string

func (h *headerValues) UnmarshalJSON(b []byte) error {
	var one string
	if json.Unmarshal(b, &one) == nil {
		*h = headerValues{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return fmt.Errorf("header value: %w", err)
	}
	*h = many
	return nil
}

func (s *Server) serveReplay(ctx *fasthttp.RequestCtx, c *call) (*stream, *apiError) {
	name := c.plan.replay
	// Replay names come from request headers: never let one read outside ReplayDir.
	if s.cfg.ReplayDir == "" {
		return nil, badMockHeader(HeaderReplay, name, "a file name, but this mock has no replay directory")
	}
	if strings.Contains(name, "..") || filepath.IsAbs(name) || strings.HasPrefix(name, "/") ||
		strings.HasPrefix(name, `\`) {
		return nil, badMockHeader(HeaderReplay, name, "a relative path inside the replay directory, without '..'")
	}
	// The Responses API names its events; its *.chunks.jsonl recordings are re-framed that way (SOURCES.md).
	named := c.ep == epResponses
	f, err := s.replay.load(filepath.Join(s.cfg.ReplayDir, filepath.FromSlash(name)), named)
	if err != nil {
		return nil, badMockHeader(HeaderReplay, name, "a readable .sse, .chunks.jsonl or .json file: "+err.Error())
	}
	ctx.SetContentType(f.contentType)
	if !f.stream {
		ctx.SetStatusCode(f.status)
		ctx.SetBody(f.body)
		if w := usageOf(f.body); w != nil {
			s.log.update(c.rec, func(r *Received) { applyUsage(r, w) })
		}
		return nil, nil
	}
	return newStream(s, c, f.events), nil
}

func (rc *replayCache) load(path string, named bool) (*replayFile, error) {
	key := path
	if named {
		key += "\x00named"
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if f, ok := rc.files[key]; ok {
		return f, nil
	}
	f, err := readReplay(path, named)
	if err != nil {
		return nil, err
	}
	if rc.files == nil {
		rc.files = make(map[string]*replayFile)
	}
	rc.files[key] = f
	return f, nil
}

func readReplay(path string, named bool) (*replayFile, error) {
	var base string
	f := &replayFile{status: fasthttp.StatusOK}
	switch {
	case strings.HasSuffix(path, suffixChunks):
		base, f.stream = strings.TrimSuffix(path, suffixChunks), true
	case strings.HasSuffix(path, suffixSSE):
		base, f.stream = strings.TrimSuffix(path, suffixSSE), true
	case strings.HasSuffix(path, suffixJSON):
		base = strings.TrimSuffix(path, suffixJSON)
	default:
		return nil, fmt.Errorf("unknown replay kind %q", filepath.Ext(path))
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read replay: %w", err)
	}
	f.contentType = "application/json"
	if f.stream {
		f.contentType = "text/event-stream; charset=utf-8"
	}
	if hb, err := os.ReadFile(base + suffixHeaders); err == nil {
		var rh recordedHeaders
		if err := json.Unmarshal(hb, &rh); err != nil {
			return nil, fmt.Errorf("read replay headers: %w", err)
		}
		if rh.Status != 0 && !f.stream {
			f.status = rh.Status
		}
		for k, v := range rh.Headers {
			if strings.EqualFold(k, fasthttp.HeaderContentType) && len(v) > 0 {
				f.contentType = v[0]
			}
		}
	}
	switch {
	case strings.HasSuffix(path, suffixChunks):
		f.events = frameChunkLines(data, named)
	case f.stream:
		f.events = splitEvents(data)
	default:
		f.body = data
	}
	return f, nil
}

// splitEvents cuts a recorded stream after each blank line (LF or CRLF), so concatenating the events gives
// back the file exactly; bytes after the last blank line form a final event of their own.
func splitEvents(data []byte) []sseEvent {
	var out []sseEvent
	start := 0
	for i := 0; i < len(data); {
		nl := bytes.IndexByte(data[i:], '\n')
		if nl < 0 {
			break
		}
		line := data[i : i+nl]
		i += nl + 1
		if len(line) == 0 || (len(line) == 1 && line[0] == '\r') {
			if i-start > len(line)+1 { // not a stray blank line between events
				out = append(out, newReplayEvent(data[start:i]))
				start = i
			}
		}
	}
	if start < len(data) {
		out = append(out, newReplayEvent(data[start:]))
	}
	return out
}

// frameChunkLines re-frames a *.chunks.jsonl recording (SSE payloads with the framing stripped, see
// SOURCES.md) as the stream the provider sent: "data: <line>" and a final [DONE] for chat completions,
// "event: <type>\ndata: <line>" and no [DONE] for the Responses API (named).
func frameChunkLines(data []byte, named bool) []sseEvent {
	var out []sseEvent
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		line := bytes.TrimRight(sc.Bytes(), "\r")
		if len(line) == 0 {
			continue
		}
		if named {
			var v struct {
				Type string `json:"type"`
			}
			_ = json.Unmarshal(line, &v) // a line without a type still goes out, under an empty name
			out = append(out, newReplayEvent(namedEvent(v.Type, bytes.Clone(line)).data))
			continue
		}
		out = append(out, newReplayEvent(frame(line)))
	}
	if named {
		return out
	}
	return append(out, doneEvent())
}

func newReplayEvent(b []byte) sseEvent { return sseEvent{data: b, wire: eventUsage(b)} }
