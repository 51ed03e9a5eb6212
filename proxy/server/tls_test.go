package server_test

import (
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/loom-gateway/loom/proxy/config"
	"github.com/loom-gateway/loom/proxy/server"
	"github.com/loom-gateway/loom/proxy/tenant"
)

// TestUpstream_HTTPS relays through a TLS upstream whose certificate is
// trusted through the deployment's ca_file, as a self-hosted server would be.
func TestUpstream_HTTPS(t *testing.T) {
	var gotAuth, gotBody string
	up := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		gotAuth, gotBody = r.Header.Get("Authorization"), string(b)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"id":"chatcmpl-tls","object":"chat.completion","created":1,"model":"m-tls","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}`)
	}))
	defer up.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: up.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	// httptest's certificate is for 127.0.0.1 and example.com.
	port := up.Listener.Addr().(*net.TCPAddr).Port
	key, hash, _ := tenant.NewKey()
	cfg, err := config.Parse([]byte(fmt.Sprintf(`
deployments:
  - {name: tls, provider: openai, base_url: "https://127.0.0.1:%d/v1", api_key: %s, ca_file: %s}
tenants:
  - {id: t, keys: [{id: k, sha256: %s}], models: [{name: m, deployment: tls, upstream_model: m-tls}]}
`, port, upstreamSecret, ca, hash)))
	if err != nil {
		t.Fatal(err)
	}
	loom, err := server.New(cfg, server.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	go func() { _ = loom.Serve(ln) }()
	req, _ := http.NewRequest("POST", "http://"+ln.Addr().String()+"/v1/chat/completions",
		strings.NewReader(`{"model":"m","messages":[{"role":"user","content":"x"}]}`))
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), "chatcmpl-tls") {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
	if gotAuth != "Bearer "+upstreamSecret || !strings.Contains(gotBody, `"model":"m-tls"`) {
		t.Fatalf("upstream got auth %q body %s", gotAuth, gotBody)
	}
}
