package mockupstream

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fixturesDir is the in-repo copy of the recorded wire traffic (bench/fixtures/wire, see SOURCES.md there).
func fixturesDir(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "fixtures", "wire"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("wire fixtures missing at %s: %v", dir, err)
	}
	return dir
}

func TestReplay_EverySSEFixture_IsByteIdentical(t *testing.T) {
	dir := fixturesDir(t)
	m := startMock(t, Config{ReplayDir: dir})
	var files []string
	for _, provider := range []string{"openai", "azure"} {
		matches, err := filepath.Glob(filepath.Join(dir, provider, "*.sse"))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range matches {
			files = append(files, provider+"/"+filepath.Base(f))
		}
	}
	if len(files) == 0 {
		t.Fatalf("no .sse fixtures in %s: the in-repo copy is incomplete", dir)
	}
	for _, name := range files {
		t.Run(name, func(t *testing.T) {
			want, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(name)))
			if err != nil {
				t.Fatal(err)
			}
			path := "/v1/chat/completions"
			headers := []string{HeaderReplay, name}
			if strings.HasPrefix(name, "azure/") {
				path = "/openai/deployments/gpt-35-turbo/chat/completions?api-version=2024-02-01"
			}
			r := m.mustDo(t, "POST", path, streamBody, headers...)
			if r.status != 200 || !bytes.Equal(r.body, want) {
				t.Fatalf("status %d, body differs from the recording (%d vs %d bytes)", r.status, len(r.body), len(want))
			}
			// The recorded Content-Type where a *.headers.json has one (Azure sends no charset).
			if !strings.HasPrefix(r.header["content-type"], "text/event-stream") {
				t.Errorf("content-type %q", r.header["content-type"])
			}
			rec, _ := m.srv.Last()
			if wantEvents := strings.Count(string(want), "\n\n"); len(rec.ChunkSentAt) != wantEvents {
				t.Errorf("%d flushes, want one per event (%d)", len(rec.ChunkSentAt), wantEvents)
			}
		})
	}
}

func TestReplay_UsageFromRecording(t *testing.T) {
	m := startMock(t, Config{ReplayDir: fixturesDir(t)})
	m.mustDo(t, "POST", "/v1/chat/completions", streamBody, HeaderReplay, "openai/chat-stream-text-include-usage.sse")
	rec, _ := m.srv.Last()
	if rec.UsageSent == nil || *rec.UsageSent != (Usage{14, 30, 44}) {
		t.Errorf("usage %+v", rec.UsageSent)
	}
}

func TestReplay_ChunksJSONL_IsFramed(t *testing.T) {
	dir := fixturesDir(t)
	m := startMock(t, Config{ReplayDir: dir})
	const name = "openai/chat-stream-long-300.chunks.jsonl"
	raw, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err) // the fixture is in the repository: missing is a failure
	}
	var want bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if sc.Text() != "" {
			want.WriteString("data: " + sc.Text() + "\n\n")
		}
	}
	want.WriteString("data: [DONE]\n\n")
	r := m.mustDo(t, "POST", "/v1/chat/completions", streamBody, HeaderReplay, name)
	if !bytes.Equal(r.body, want.Bytes()) {
		t.Fatalf("framed replay differs (%d vs %d bytes)", len(r.body), want.Len())
	}
	if r.header["content-type"] != "text/event-stream; charset=utf-8" {
		t.Errorf("content-type %q", r.header["content-type"])
	}
}

func TestReplay_JSON_StatusAndBody(t *testing.T) {
	dir := fixturesDir(t)
	m := startMock(t, Config{ReplayDir: dir})
	tests := []struct {
		name, file, path string
		wantStatus       int
	}{
		{name: "openai 401", file: "openai/error-401-invalid-api-key.json", path: "/v1/chat/completions", wantStatus: 401},
		{name: "openai body without headers file", file: "openai/chat-completion-basic.json",
			path: "/v1/chat/completions", wantStatus: 200},
		{name: "azure 404", file: "azure/error-404-deployment-not-found.json",
			path: "/openai/deployments/x/chat/completions?api-version=2024-02-01", wantStatus: 404},
		{name: "embeddings", file: "openai/embeddings-base64.json", path: "/v1/embeddings", wantStatus: 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			want, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(tc.file)))
			if err != nil {
				t.Fatal(err) // the fixture is in the repository: missing is a failure
			}
			r := m.mustDo(t, "POST", tc.path, chatBody, HeaderReplay, tc.file)
			if r.status != tc.wantStatus || !bytes.Equal(r.body, want) {
				t.Errorf("status %d (want %d), body identical %v", r.status, tc.wantStatus, bytes.Equal(r.body, want))
			}
			if !strings.HasPrefix(r.header["content-type"], "application/json") {
				t.Errorf("content-type %q", r.header["content-type"])
			}
		})
	}
}

func TestReplay_RejectsNamesOutsideDir(t *testing.T) {
	m := startMock(t, Config{ReplayDir: t.TempDir()})
	tests := []struct{ name, file string }{
		{name: "parent", file: "../secret.sse"},
		{name: "nested parent", file: "openai/../../secret.sse"},
		{name: "absolute", file: "/etc/passwd"},
		{name: "missing", file: "openai/nope.sse"},
		{name: "unknown kind", file: "notes.txt"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := m.mustDo(t, "POST", "/v1/chat/completions", chatBody, HeaderReplay, tc.file)
			if r.status != 400 || !strings.Contains(string(r.body), `"param":"x-mock-replay"`) {
				t.Errorf("status %d body %s", r.status, r.body)
			}
		})
	}
}

func TestSplitEvents_KeepsEveryByte(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want int
	}{
		{name: "lf", in: "data: a\n\ndata: b\n\n", want: 2},
		{name: "crlf", in: "data: a\r\n\r\ndata: b\r\n\r\n", want: 2},
		{name: "named events", in: "event: x\ndata: a\n\nevent: y\ndata: b\n\n", want: 2},
		{name: "no final blank line", in: "data: a\n\ndata: b", want: 2},
		{name: "stray blank line", in: "\ndata: a\n\n", want: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			evs := splitEvents([]byte(tc.in))
			var joined []byte
			for _, e := range evs {
				joined = append(joined, e.data...)
			}
			if len(evs) != tc.want || string(joined) != tc.in {
				t.Errorf("%d events, rejoined %q", len(evs), joined)
			}
		})
	}
}
