package cli_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/loom-gateway/loom/deploy/freeport"
	"github.com/loom-gateway/loom/proxy/cli"
)

// twoFreeAddrs is two loopback addresses nothing listens on: two different
// ones, as a just-freed port may be offered again.
func twoFreeAddrs(t *testing.T) (string, string) {
	t.Helper()
	for range 10 {
		a, err1 := freeport.Addr()
		b, err2 := freeport.Addr()
		if err := errors.Join(err1, err2); err != nil {
			t.Fatal(err)
		}
		if a != b {
			return a, b
		}
	}
	t.Fatal("the same free port ten times over")
	return "", ""
}

func httpGet(t *testing.T, url string) (int, string, http.Header) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b), resp.Header
}

// serveWithOps runs `loom serve` with an ops listener (and ops.pprof as
// given) until the test ends, and returns the gateway's and the ops
// listener's addresses once /readyz answers.
func serveWithOps(t *testing.T, pprof bool) (listen, ops string) {
	t.Helper()
	listen, ops = twoFreeAddrs(t)
	path := filepath.Join(t.TempDir(), "loom.yaml")
	yaml := fmt.Sprintf(`listen: %q
ops: {listen: %q, pprof: %v}
deployments:
  - {name: openai, provider: openai, base_url: "http://127.0.0.1:1/v1", api_key: sk-x}
tenants:
  - id: acme
    keys: [{id: acme-1, sha256: 0f343b0931126a20f133d67c2b018a3b51f1d5c0e8e2c8b3ad6e4a7e0c6e1f7a}]
    models: [{name: gpt-4o-mini, deployment: openai}]
`, listen, ops, pprof)
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- cli.Main(ctx, []string{"serve", "-config", path}, io.Discard, io.Discard) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("loom serve: %v", err)
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://" + ops + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		select {
		case err := <-served:
			served <- err
			t.Fatalf("loom serve exited: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the ops listener never answered /readyz: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return listen, ops
}

// `loom serve` with ops.listen serves /metrics over HTTP on that listener
// (Prometheus text, counting what the gateway refused), and not on the
// gateway's own address.
func TestServe_OpsListen_ServesMetricsOverHTTP(t *testing.T) {
	listen, ops := serveWithOps(t, false)
	// Two calls without a key, counted on the ops listener's /metrics.
	for range 2 {
		resp, err := http.Post("http://"+listen+"/v1/chat/completions", "application/json", strings.NewReader(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 {
			t.Fatalf("call without a key: %d", resp.StatusCode)
		}
	}
	status, body, h := httpGet(t, "http://"+ops+"/metrics")
	if status != 200 || !strings.HasPrefix(h.Get("Content-Type"), "text/plain") ||
		!strings.Contains(body, `loom_rejected_unauthenticated_total{reason="missing_api_key"} 2`+"\n") {
		t.Fatalf("ops /metrics: %d %s\n%s", status, h.Get("Content-Type"), body)
	}
	if status, body, _ := httpGet(t, "http://"+listen+"/metrics"); status != 404 || !strings.Contains(body, `"unknown_url"`) {
		t.Fatalf("the gateway's /metrics: %d %s, want 404 unknown_url", status, body)
	}
}

// Go's profiles are on the ops listener only when ops.pprof says so, and a
// CPU profile of a few seconds outlives the listener's usual 10 s write
// deadline for small GETs.
func TestServe_OpsPprof_ServesProfilesOnlyWhenOn(t *testing.T) {
	_, off := serveWithOps(t, false)
	if status, _, _ := httpGet(t, "http://"+off+"/debug/pprof/goroutine?debug=1"); status != http.StatusNotFound {
		t.Errorf("ops.pprof off: /debug/pprof/goroutine answered %d, want 404", status)
	}
	listen, on := serveWithOps(t, true)
	status, body, _ := httpGet(t, "http://"+on+"/debug/pprof/goroutine?debug=1")
	if status != http.StatusOK || !strings.Contains(body, "goroutine profile:") {
		t.Fatalf("ops.pprof on: /debug/pprof/goroutine: %d\n%.300s", status, body)
	}
	status, body, _ = httpGet(t, "http://"+on+"/debug/pprof/profile?seconds=1")
	// A CPU profile is gzipped protobuf.
	if status != http.StatusOK || len(body) < 2 || body[0] != 0x1f || body[1] != 0x8b {
		t.Fatalf("ops.pprof on: /debug/pprof/profile: %d, %d bytes", status, len(body))
	}
	if status, _, _ := httpGet(t, "http://"+listen+"/debug/pprof/goroutine?debug=1"); status != http.StatusNotFound {
		t.Errorf("the gateway's own port served /debug/pprof/: %d", status)
	}
}
