package cli_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/loom-gateway/loom/deploy/freeport"
	"github.com/loom-gateway/loom/proxy/cli"
	"github.com/loom-gateway/loom/proxy/tenant"
)

// syncBuffer is serve's stderr, read while serve writes its log.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// models is GET /v1/models with key: its status and body.
func models(t *testing.T, listen, key string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+listen+"/v1/models", nil)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// eventually polls cond for up to 10 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("never: %s", what)
		}
	}
}

// `loom serve` reloads its file on SIGHUP (a real signal, to this process,
// caught by serve's handler): a new key works and the removed one is
// refused; a change that needs a restart is logged by name and not
// applied; a file that does not load is refused with its field logged, and
// the gateway keeps serving the configuration before it.
func TestServe_SIGHUP_ReloadsTheFile_RefusesAnInvalidOne(t *testing.T) {
	listen, err := freeport.Addr()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "loom.yaml")
	write := func(key string, extra string) {
		_, hash, _ := strings.Cut(key, "|")
		yaml := fmt.Sprintf(`listen: %q
%s
deployments:
  - {name: openai, provider: openai, base_url: "http://127.0.0.1:1/v1", api_key: sk-x}
tenants:
  - id: acme
    keys: [{id: acme-1, sha256: %s}]
    models: [{name: gpt-4o-mini, deployment: openai}, {name: gpt-4o, deployment: openai}]
`, listen, extra, hash)
		if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	newKey := func() (string, string) {
		k, h, err := tenant.NewKey()
		if err != nil {
			t.Fatal(err)
		}
		return k, k + "|" + h
	}
	key1, spec1 := newKey()
	key2, spec2 := newKey()
	key3, spec3 := newKey()
	write(spec1, "")

	var logs syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- cli.Main(ctx, []string{"serve", "-config", path}, io.Discard, &logs) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("loom serve: %v", err)
		}
	})
	eventually(t, "serving key 1", func() bool { s, _ := models(t, listen, key1); return s == 200 })

	write(spec2, "max_body_bytes: 4096")
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	eventually(t, "key 2 served after SIGHUP", func() bool { s, _ := models(t, listen, key2); return s == 200 })
	if s, _ := models(t, listen, key1); s != 401 {
		t.Fatalf("the removed key 1: status %d, want 401", s)
	}
	if log := logs.String(); !strings.Contains(log, "need a restart") || !strings.Contains(log, "fields=max_body_bytes") {
		t.Fatalf("no needs-a-restart line naming max_body_bytes in the log:\n%s", log)
	}

	write(spec3, "timeouts: {drain: -1s}")
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the refused reload logged", func() bool {
		return strings.Contains(logs.String(), "configuration reload refused")
	})
	if log := logs.String(); !strings.Contains(log, "timeouts.drain: must not be negative") {
		t.Fatalf("the refusal does not name the field:\n%s", log)
	}
	if s, body := models(t, listen, key2); s != 200 || !strings.Contains(body, `"gpt-4o"`) {
		t.Fatalf("key 2 after a refused reload: %d %s", s, body)
	}
	if s, _ := models(t, listen, key3); s != 401 {
		t.Fatalf("the refused file's key 3: status %d, want 401", s)
	}
}
