package loadtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/loom-gateway/loom/bench/mockupstream"
	"github.com/loom-gateway/loom/deploy/prereq"
)

// runLib runs script, an ES module, under Node.js in loadtest/ with k6's __ENV set to env (before any
// dynamic import; static imports run first): what k6's init context gives lib/config.js and
// lib/timing.js, which import nothing from k6. It returns stdout, stderr and the run's error.
func runLib(t *testing.T, env map[string]string, stdin []byte, script string) (string, string, error) {
	t.Helper()
	node := nodeProgram(t)
	envJSON, err := json.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "--input-type=module", "-e",
		"globalThis.__ENV = JSON.parse(process.env.K6_ENV);\n"+script)
	cmd.Env = append(cmd.Environ(), "K6_ENV="+string(envJSON))
	cmd.Stdin = bytes.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	return stdout.String(), stderr.String(), err
}

// nodeProgram is node, or the end of a test on a machine without it (a failure under CI).
func nodeProgram(t *testing.T) string {
	t.Helper()
	node, err := prereq.Program("node")
	prereq.Check(t, err, prereq.ErrNotInstalled)
	return node
}

// The scripts take Loom's address from OPENAI_BASE_URL, the line `make run` prints, or LOOM_BASE_URL,
// and stop in the init context (k6 exit code 107) when neither is set or the value is not an API root:
// never a guessed :8080 that could load some other server.
func TestConfig_BaseURL_FromMakeRunsExportOrStops(t *testing.T) {
	const printBase = "const c = await import('./lib/config.js'); console.log(c.BASE_URL);"
	tests := []struct {
		name      string
		env       map[string]string
		want      string // BASE_URL; "" when the import must throw
		wantError string
	}{
		{name: "make run's export", env: map[string]string{"OPENAI_BASE_URL": "http://127.0.0.1:18080/v1"}, want: "http://127.0.0.1:18080/v1"},
		{name: "trailing slash", env: map[string]string{"OPENAI_BASE_URL": "http://127.0.0.1:18080/v1/"}, want: "http://127.0.0.1:18080/v1"},
		{name: "LOOM_BASE_URL overrides", env: map[string]string{"OPENAI_BASE_URL": "http://127.0.0.1:18080/v1", "LOOM_BASE_URL": "http://127.0.0.1:9090/v1"}, want: "http://127.0.0.1:9090/v1"},
		{name: "unset", env: map[string]string{}, wantError: "set OPENAI_BASE_URL"},
		{name: "empty", env: map[string]string{"OPENAI_BASE_URL": ""}, wantError: "set OPENAI_BASE_URL"},
		{name: "no /v1", env: map[string]string{"OPENAI_BASE_URL": "http://127.0.0.1:8080"}, wantError: "ending in /v1"},
		{name: "not http", env: map[string]string{"OPENAI_BASE_URL": "127.0.0.1:8080/v1"}, wantError: "ending in /v1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.env["OPENAI_API_KEY"] = "sk-loom-test"
			out, stderr, err := runLib(t, tt.env, nil, printBase)
			if tt.wantError != "" {
				if err == nil || !strings.Contains(stderr, tt.wantError) {
					t.Fatalf("imported with BASE_URL %q (err %v), want a throw naming %q; stderr:\n%s", out, err, tt.wantError, stderr)
				}
				return
			}
			if err != nil {
				t.Fatalf("%v\n%s", err, stderr)
			}
			if got := strings.TrimSpace(out); got != tt.want {
				t.Errorf("BASE_URL = %q, want %q", got, tt.want)
			}
		})
	}
}

// lib/timing.js reads the report the real mock ends a stream with (x-mock-timing: 1), and finds none in
// a stream without it: the parser and the mock's format cannot drift apart.
func TestTiming_ReadsTheMocksReport(t *testing.T) {
	nodeProgram(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := mockupstream.New(mockupstream.Config{})
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	stream := func(timing string) []byte {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, "http://"+ln.Addr().String()+"/v1/chat/completions",
			strings.NewReader(`{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hi"}]}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(mockupstream.HeaderChunkDelayMS, "2")
		req.Header.Set(mockupstream.HeaderTTFTMS, "5")
		if timing != "" {
			req.Header.Set(mockupstream.HeaderTiming, timing)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d, %v: %s", resp.StatusCode, err, body)
		}
		return body
	}
	// Static imports run before the __ENV line; timing.js needs none.
	const script = "import { readFileSync } from 'node:fs';\n" +
		"import { mockTiming } from './lib/timing.js';\n" +
		"console.log(JSON.stringify(mockTiming(readFileSync(0, 'utf8')) ?? null));"

	body := stream("1")
	out, stderr, err := runLib(t, map[string]string{}, body, script)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	var got *struct{ HeadMs, FirstEventMs, ServiceMs float64 }
	if err := json.Unmarshal([]byte(out), &got); err != nil || got == nil {
		t.Fatalf("mockTiming read %q (%v) from a stream ending %q", out, err, body[max(0, len(body)-100):])
	}
	_, comment, _ := strings.Cut(string(body), mockupstream.TimingComment)
	var head, first, service float64
	if _, err := fmt.Sscanf(comment, "head-ms=%g first-event-ms=%g service-ms=%g", &head, &first, &service); err != nil {
		t.Fatalf("the mock's comment %q: %v", comment, err)
	}
	if got.HeadMs != head || got.FirstEventMs != first || got.ServiceMs != service {
		t.Errorf("mockTiming = %+v, the mock reported head %v first %v service %v", *got, head, first, service)
	}
	if got.FirstEventMs-got.HeadMs < 5 || got.ServiceMs < got.FirstEventMs {
		t.Errorf("mockTiming = %+v: want the first event 5 ms or more after the head, and the last after it", *got)
	}

	out, stderr, err = runLib(t, map[string]string{}, stream(""), script)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	if strings.TrimSpace(out) != "null" {
		t.Errorf("mockTiming found %s in a stream that asked for no timing", out)
	}
}
