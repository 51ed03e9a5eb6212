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
	Status  int                 `json:"status"`
	Headers map[string][]string `json:"headers"`
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
	f, err := s.replay.load(filepath.Join(s.cfg.ReplayDir, filepath.FromSlash(name)))
	if err != nil {
		return nil, badMockHeader(HeaderReplay, name, "a readable .sse, .chunks.jsonl or .json file: "+err.Error())
	}
	ctx.SetContentType(f.contentType)
	if !f.stream {
		ctx.SetStatusCode(f.status)
		ctx.SetBody(f.body)
		if u := usageOf(f.body); u != nil {
			s.log.update(c.rec, func(r *Received) { r.UsageSent = u })
		}
		return nil, nil
	}
	return newStream(s, c, f.events), nil
}

func (rc *replayCache) load(path string) (*replayFile, error) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if f, ok := rc.files[path]; ok {
		return f, nil
	}
	f, err := readReplay(path)
	if err != nil {
		return nil, err
	}
	if rc.files == nil {
		rc.files = make(map[string]*replayFile)
	}
	rc.files[path] = f
	return f, nil
}

func readReplay(path string) (*replayFile, error) {
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
		f.events = frameChunkLines(data)
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
// SOURCES.md) as the stream the provider sent.
func frameChunkLines(data []byte) []sseEvent {
	var out []sseEvent
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		line := bytes.TrimRight(sc.Bytes(), "\r")
		if len(line) == 0 {
			continue
		}
		out = append(out, newReplayEvent(frame(line)))
	}
	return append(out, doneEvent())
}

func newReplayEvent(b []byte) sseEvent {
	ev := sseEvent{data: b}
	if payload, ok := bytes.CutPrefix(bytes.TrimSpace(b), []byte("data:")); ok {
		ev.usage = usageOf(bytes.TrimSpace(payload))
	}
	return ev
}

// usageOf reads a usage object from a recorded chunk or body, for Received.UsageSent; nil if none.
func usageOf(b []byte) *Usage {
	var v struct {
		Usage *Usage `json:"usage"`
	}
	if json.Unmarshal(b, &v) != nil {
		return nil
	}
	return v.Usage
}
