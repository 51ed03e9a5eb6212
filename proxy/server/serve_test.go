package server_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/loom-gateway/loom/deploy/process"
	"github.com/loom-gateway/loom/proxy/tenant"
)

// buildLoom builds the loom binary into dir, for the tests that run a real
// `loom serve` (what a deployment runs, GOGC and all).
func buildLoom(dir string) (string, error) {
	if err := process.Build(dir, "github.com/loom-gateway/loom/proxy/cmd/loom"); err != nil {
		return "", err
	}
	return filepath.Join(dir, "loom"), nil
}

// served is a running `loom serve`.
type served struct {
	addr string
	pid  int
	key  string
}

// startServe runs `loom serve` with extra configuration appended to a
// minimal one (one tenant, one deployment nobody reaches) and waits until
// it listens.
func startServe(t *testing.T, extra string) *served {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the loom binary")
	}
	bin, err := buildLoom(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	key, hash, _ := tenant.NewKey()
	cfgPath := filepath.Join(t.TempDir(), "loom.yaml")
	cfg := fmt.Sprintf(`
listen: 127.0.0.1:0
deployments:
  - {name: d, provider: openai, base_url: "http://127.0.0.1:9/v1", api_key: sk-x}
tenants:
  - {id: t, keys: [{id: k, sha256: %s}], models: [{name: m, deployment: d}]}
%s`, hash, extra)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", "-config", cfgPath)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			if !strings.Contains(line, `msg="loom serving"`) {
				continue
			}
			if _, rest, ok := strings.Cut(line, " addr="); ok {
				addr <- strings.Fields(rest)[0]
			}
		}
		close(addr)
	}()
	select {
	case a, ok := <-addr:
		if !ok {
			t.Fatal("loom serve exited before it listened")
		}
		return &served{addr: a, pid: cmd.Process.Pid, key: key}
	case <-time.After(30 * time.Second):
		t.Fatal("loom serve did not listen within 30s")
	}
	return nil
}

// rss is the process's resident set in bytes (VmRSS).
func rss(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// TestServe_ConnectionsAnnouncingHugeBodies_MemoryStaysFlat is issue 10's
// front-door check against a real `loom serve`: 50 connections announcing
// 60 MB bodies (refused at their headers) and 50 announcing bodies just
// under max_body_bytes that never come (read only as they arrive) leave
// Loom's RSS under 100 MB.
func TestServe_ConnectionsAnnouncingHugeBodies_MemoryStaysFlat(t *testing.T) {
	srv := startServe(t, "")
	base := rss(t, srv.pid)
	const conns = 50
	announce := func(length int) []net.Conn {
		var cs []net.Conn
		for range conns {
			c, err := net.Dial("tcp", srv.addr)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			fmt.Fprintf(c, "POST /v1/chat/completions HTTP/1.1\r\nHost: loom\r\nAuthorization: Bearer %s\r\n"+
				"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n", srv.key, length)
			cs = append(cs, c)
		}
		return cs
	}
	peak := func(d time.Duration) int64 {
		p := int64(0)
		for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
			p = max(p, rss(t, srv.pid))
		}
		return p
	}

	// Two waves, as an attacker reconnects: the second finds the heap the
	// first left, whose reuse (zeroing) is what makes a buffer resident.
	hugePeak := int64(0)
	for range 2 {
		huge := announce(60_000_000)
		hugePeak = max(hugePeak, peak(time.Second))
		for i, c := range huge {
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			status, body := readResponse(t, c)
			if i == 0 || status != 413 {
				assertError(t, status, body, 413, "request_too_large")
			}
			c.Close()
		}
	}
	t.Logf("RSS: %d MB idle, %d MB with %d connections announcing 60 MB (two waves)", base>>20, hugePeak>>20, conns)
	announce(16<<20 - 1) // the default max_body_bytes, less one; held open
	unsentPeak := peak(time.Second)
	t.Logf("RSS: %d MB with %d connections announcing 16 MiB-1 that never comes", unsentPeak>>20, conns)
	if hugePeak > 100<<20 || unsentPeak > 100<<20 {
		t.Fatalf("RSS peaked at %d MB (60 MB announced) and %d MB (16 MiB-1 unsent); want under 100 MB", hugePeak>>20, unsentPeak>>20)
	}
	// The server still answers (these connections hold no worker hostage).
	c, err := net.Dial("tcp", srv.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: loom\r\n\r\n")
	if status, body := readResponse(t, c); status != 200 {
		t.Fatalf("healthz: %d %s", status, body)
	}
}

// readResponse reads one HTTP/1.1 response with a Content-Length body.
func readResponse(t *testing.T, c net.Conn) (int, []byte) {
	t.Helper()
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("no response: %v", err)
	}
	var status int
	fmt.Sscanf(line, "HTTP/1.1 %d", &status)
	length := 0
	for {
		h, err := r.ReadString('\n')
		if err != nil || h == "\r\n" {
			break
		}
		if k, v, ok := strings.Cut(h, ":"); ok && strings.EqualFold(k, "content-length") {
			length, _ = strconv.Atoi(strings.TrimSpace(v))
		}
	}
	body := make([]byte, length)
	_, _ = io.ReadFull(r, body)
	return status, body
}
