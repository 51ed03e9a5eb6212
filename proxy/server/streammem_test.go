package server_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/loom-gateway/loom/bench/mockupstream"
	"github.com/loom-gateway/loom/proxy/config"
	"github.com/loom-gateway/loom/proxy/server"
	"github.com/loom-gateway/loom/proxy/tenant"
)

// streamBudget is what one open stream may cost Loom in memory (heap in
// use plus goroutine stacks), the target: thousands of long streams
// at once must fit in a small box.
const streamBudget = 32 << 10

// openStreamsRig is a mock upstream that holds every stream open after its
// first event until released, and a Loom in front of it. Clients are raw
// TCP connections without goroutines, so what N open streams cost is
// almost all the mock's and Loom's; the same N streams opened straight to
// the mock give the part that is not Loom's.
type openStreamsRig struct {
	mockAddr, loomAddr string
	key                string
	loom               *server.Server
	release            chan struct{}
	releaseOnce        sync.Once
	stop               func()
}

func newOpenStreamsRig(t testing.TB) *openStreamsRig {
	t.Helper()
	rig := &openStreamsRig{release: make(chan struct{})}
	// Event 0 goes out at once; event 1 (and so the rest) waits for release.
	gate := func(i int) {
		if i == 1 {
			<-rig.release
		}
	}
	mock := mockupstream.New(mockupstream.Config{APIKey: upstreamSecret, LogLimit: 16, EventGate: gate})
	mln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = mock.Serve(mln) }()
	rig.mockAddr = mln.Addr().String()
	key, hash, _ := tenant.NewKey()
	rig.key = key
	cfg, err := config.Parse(fmt.Appendf(nil, `
deployments:
  - {name: mock, provider: openai, base_url: "http://%s/v1", api_key: %s, forward_headers: ["x-mock-*"], max_conns: 4096}
tenants:
  - id: bench
    keys: [{id: bench-key, sha256: %s}]
    models: [{name: gpt-4o-mini, deployment: mock}]
`, rig.mockAddr, upstreamSecret, hash))
	if err != nil {
		t.Fatal(err)
	}
	loom, err := server.New(cfg, server.Options{})
	if err != nil {
		t.Fatal(err)
	}
	lln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = loom.Serve(lln) }()
	rig.loomAddr, rig.loom = lln.Addr().String(), loom
	rig.stop = func() {
		rig.open()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = loom.Shutdown(ctx)
		_ = mock.Shutdown(ctx)
	}
	return rig
}

// open lets every held stream run to its end.
func (rig *openStreamsRig) open() { rig.releaseOnce.Do(func() { close(rig.release) }) }

// openStreams starts n streams at addr with key and returns their
// connections once each has received its first event.
func openStreams(t testing.TB, addr, key string, n int) []net.Conn {
	t.Helper()
	body := `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hold on"}],"stream":true,"stream_options":{"include_usage":true}}`
	req := fmt.Appendf(nil, "POST /v1/chat/completions HTTP/1.1\r\nHost: loom\r\nAuthorization: Bearer %s\r\n"+
		"Content-Type: application/json\r\nx-mock-chunks: 4\r\nContent-Length: %d\r\n\r\n%s", key, len(body), body)
	conns := make([]net.Conn, 0, n)
	var buf [4096]byte
	for range n {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		if _, err := c.Write(req); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		var got []byte
		for !bytes.Contains(got, []byte("data: ")) || !bytes.HasSuffix(bytes.TrimRight(got, "\r\n"), []byte("}")) {
			m, err := c.Read(buf[:])
			if err != nil {
				t.Fatalf("stream %d: first event: %v (got %q)", len(conns), err, got)
			}
			got = append(got, buf[:m]...)
		}
		if !bytes.HasPrefix(got, []byte("HTTP/1.1 200")) {
			t.Fatalf("stream %d: %q", len(conns), got)
		}
	}
	return conns
}

// finishStreams reads each stream to its end and closes it.
func finishStreams(t testing.TB, conns []net.Conn) {
	t.Helper()
	var buf [4096]byte
	for i, c := range conns {
		var tail []byte
		for !bytes.HasSuffix(tail, []byte("0\r\n\r\n")) {
			m, err := c.Read(buf[:])
			if err != nil {
				t.Fatalf("stream %d: read to end: %v (tail %q)", i, err, tail)
			}
			tail = append(tail, buf[:m]...)
			tail = tail[max(0, len(tail)-16):]
		}
		c.Close()
	}
}

// inUse is the memory the process holds for live objects and goroutine
// stacks, after two collections (the second empties sync.Pools' victims).
func inUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse + m.StackInuse
}

// streamCost opens n streams at addr, measures what holding them costs
// the process, then lets them finish. Per stream, in bytes.
func streamCost(t testing.TB, rig *openStreamsRig, addr, key string, n int) float64 {
	t.Helper()
	before := inUse()
	conns := openStreams(t, addr, key, n)
	during := inUse()
	rig.open()
	finishStreams(t, conns)
	return (float64(during) - float64(before)) / float64(n)
}

// perStreamMemory is Loom's memory per open stream: the same n held
// streams opened through Loom and straight to the mock, each in a fresh
// rig, the difference divided by n.
func perStreamMemory(t testing.TB, n int) (loom, direct float64) {
	warm := newOpenStreamsRig(t)
	// Warm both paths (pools, the scheduler's structures) once.
	streamCost(t, warm, warm.loomAddr, warm.key, 32)
	warm.stop()

	rig := newOpenStreamsRig(t)
	direct = streamCost(t, rig, rig.mockAddr, upstreamSecret, n)
	rig.stop()
	rig = newOpenStreamsRig(t)
	via := streamCost(t, rig, rig.loomAddr, rig.key, n)
	rig.stop()
	return via - direct, direct
}

func TestServer_ManyOpenStreams_MemoryPerStreamWithinBudget(t *testing.T) {
	if testing.Short() {
		t.Skip("opens hundreds of streams")
	}
	if raceDetector {
		t.Skip("memory per stream means nothing under -race: make test runs this test again without it")
	}
	const n = 400
	base := runtime.NumGoroutine()
	loom, direct := perStreamMemory(t, n)
	t.Logf("per open stream: Loom %.0f B (budget %d), mock and client %.0f B; %d streams", loom, streamBudget, direct, n)
	if loom > streamBudget {
		t.Errorf("an open stream costs Loom %.0f bytes (heap in use + stacks), over the %d budget", loom, streamBudget)
	}
	// Every goroutine a stream started is gone once the streams are.
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > base+4 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if g := runtime.NumGoroutine(); g > base+4 {
		t.Errorf("%d goroutines after the streams ended, %d before", g, base)
	}
}

// BenchmarkOpenStreamMemory reports Loom's bytes per open stream (not a
// timing: ns/op is meaningless here).
func BenchmarkOpenStreamMemory(b *testing.B) {
	for b.Loop() {
		loom, direct := perStreamMemory(b, 400)
		b.ReportMetric(loom, "B/stream")
		b.ReportMetric(direct, "mock-B/stream")
	}
}

// The ops listener shows the streams being relayed and the goroutines,
// which the long-streams bench reads before, during and after its load.
func TestServer_Metrics_StreamsOpenAndGoroutines(t *testing.T) {
	rig := newOpenStreamsRig(t)
	defer rig.stop()
	conns := openStreams(t, rig.loomAddr, rig.key, 3)
	m := string(rig.loom.AppendMetrics(nil))
	if open, g := metric(m, "loom_streams_open"), metric(m, "go_goroutines"); open != 3 || g < 3 {
		t.Fatalf("held 3 streams: loom_streams_open %d, go_goroutines %d", open, g)
	}
	rig.open()
	finishStreams(t, conns)
	deadline := time.Now().Add(5 * time.Second)
	for metric(string(rig.loom.AppendMetrics(nil)), "loom_streams_open") != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("loom_streams_open still %d after the streams ended", metric(string(rig.loom.AppendMetrics(nil)), "loom_streams_open"))
		}
		time.Sleep(10 * time.Millisecond)
	}
}
