package faults_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/loom-gateway/loom/deploy/devstack"
	"github.com/loom-gateway/loom/deploy/freeport"
	"github.com/loom-gateway/loom/deploy/pgserver"
	"github.com/loom-gateway/loom/deploy/pgserver/pgtest"
	"github.com/loom-gateway/loom/deploy/process"
	"github.com/loom-gateway/loom/proxy/tenant"
)

// binDir holds loom, otelcol-loom and mockupstream, built from this
// checkout by TestMain, only when a suite here is asked for: `make test`
// skips these tests and should not pay for three builds.
var binDir string

func TestMain(m *testing.M) {
	if os.Getenv(envFaults) == "" && os.Getenv(envSoak) == "" {
		os.Exit(m.Run())
	}
	os.Exit(process.RunWithBinaries(m, func(dir string) { binDir = dir },
		"github.com/loom-gateway/loom/proxy/cmd/loom",
		"github.com/loom-gateway/loom/otelcol/cmd/otelcol-loom",
		"github.com/loom-gateway/loom/bench/cmd/mockupstream"))
}

// service is one real program of the stack that the suite can start,
// SIGKILL and stop gracefully, again and again, on the same arguments (so
// the same ports, configuration and state directories).
type service struct {
	name    string
	bin     string
	args    []string
	env     []string
	logPath string // appended to by every start
	ready   func(context.Context) error

	mu    sync.Mutex
	p     *process.Process
	lives []life
}

// life is one start of a service: for Loom, one run.
type life struct {
	start, end time.Time // end is zero while it runs
	pid        int
	ended      string // "sigterm", "sigkill"; "" while it runs
}

func (s *service) start(ctx context.Context) error {
	out, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	// The child holds its own descriptor of the log from here on.
	defer out.Close()
	fmt.Fprintf(out, "\n==== faults: start %s at %s\n", s.name, time.Now().UTC().Format(time.RFC3339Nano))
	cmd := exec.Command(s.bin, s.args...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Env = append(os.Environ(), s.env...)
	begun := time.Now()
	p, err := process.Start(cmd)
	if err != nil {
		return fmt.Errorf("start %s: %w", s.name, err)
	}
	s.mu.Lock()
	s.p = p
	s.lives = append(s.lives, life{start: begun, pid: p.Pid()})
	s.mu.Unlock()
	deadline := time.Now().Add(90 * time.Second)
	for s.ready(ctx) != nil {
		select {
		case <-p.Done():
			return fmt.Errorf("%s exited while starting; see %s:\n%s", s.name, s.logPath, tail(s.logPath))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after 90s; see %s:\n%s", s.name, s.logPath, tail(s.logPath))
		}
	}
	return nil
}

// kill is SIGKILL: no flush, no goodbye.
func (s *service) kill() {
	s.mu.Lock()
	p := s.p
	s.mu.Unlock()
	if p == nil || p.Exited() {
		return
	}
	p.Kill()
	s.ended("sigkill")
}

// stop is SIGTERM, then a kill after grace; it reports a kill or an exit
// status other than 0 as an error.
func (s *service) stop(grace time.Duration) error {
	s.mu.Lock()
	p := s.p
	s.mu.Unlock()
	if p == nil || p.Exited() {
		return nil
	}
	err := p.Stop(grace)
	if err == nil {
		err = p.Wait()
	}
	s.ended("sigterm")
	if err != nil {
		return fmt.Errorf("stop %s: %w", s.name, err)
	}
	return nil
}

func (s *service) ended(how string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := len(s.lives); n > 0 && s.lives[n-1].ended == "" {
		s.lives[n-1].end, s.lives[n-1].ended = time.Now(), how
	}
}

func (s *service) pid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.p == nil {
		return 0
	}
	return s.p.Pid()
}

func (s *service) history() []life {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]life(nil), s.lives...)
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// stack is the system under test: the mock upstream (never faulted),
// PostgreSQL, otelcol-loom and Loom, each on fixed ports for its whole life
// so that a restart comes back where its clients expect it.
type stack struct {
	dir       string
	pg        *pgserver.Server
	dbURL     string
	mock      *service
	collector *service
	loom      *service
	mockAddr  string
	loomAddr  string // the stable address clients call
	opsAddr   string // Loom's /metrics
	spoolDir  string
	loomCfg   string
	keys      map[string]string // tenant id -> key
}

// Tenants of the suite: two, with their own keys and models.
var tenants = [2]string{"acme", "globex"}

var publicModel = map[string]string{"acme": "gpt-4o-mini", "globex": "globex-model"}

// stackOptions vary the stack between the suite and the soak.
type stackOptions struct {
	commitInterval time.Duration // tracing.spool.commit_interval; 0 = Loom's default
	segmentBytes   int64         // tracing.spool.segment_bytes; 0 = Loom's default
}

func addr(t testing.TB) string {
	t.Helper()
	a, err := freeport.Addr()
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// startStack starts the whole stack and stops it when the test ends. Logs
// stay in the test's temporary directory; on failure their paths are in
// the output.
func startStack(t *testing.T, o stackOptions) *stack {
	t.Helper()
	dir, err := os.MkdirTemp("", "loom-faults-")
	if err != nil {
		t.Fatal(err)
	}
	// Registered first, so it runs after every process has stopped.
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("logs and state kept in %s (loom.log, otelcol.log, mockupstream.log, spool/)", dir)
			return
		}
		_ = os.RemoveAll(dir)
	})
	st := &stack{dir: dir, keys: map[string]string{}}
	bin := func(name string) string { return filepath.Join(binDir, name) }
	ctx := t.Context()

	st.pg = pgtest.Start(t)
	st.dbURL = pgtest.Database(t, st.pg)

	st.mockAddr = addr(t)
	st.mock = &service{name: "mockupstream", bin: bin("mockupstream"), logPath: filepath.Join(st.dir, "mockupstream.log"),
		// Every request stays in the log: it is the ground truth of what
		// reached the upstream.
		args:  []string{"-addr", st.mockAddr, "-log-limit", "-1", "-grace", "2s"},
		ready: devstack.HTTPReady("http://" + st.mockAddr + "/v1/models")}
	t.Cleanup(func() { _ = st.mock.stop(5 * time.Second) })
	if err := st.mock.start(ctx); err != nil {
		t.Fatal(err)
	}

	otlp, health := addr(t), addr(t)
	colCfg := filepath.Join(st.dir, "otelcol.yaml")
	if err := os.WriteFile(colCfg, collectorConfig(otlp, health, filepath.Join(st.dir, "otelcol-storage"), st.dbURL), 0o600); err != nil {
		t.Fatal(err)
	}
	st.collector = &service{name: "otelcol-loom", bin: bin("otelcol-loom"), logPath: filepath.Join(st.dir, "otelcol.log"),
		args: []string{"--config", colCfg}, ready: devstack.HTTPReady("http://" + health + "/")}
	t.Cleanup(func() { _ = st.collector.stop(process.Grace) })
	if err := st.collector.start(ctx); err != nil {
		t.Fatal(err)
	}

	hashes := map[string]string{}
	for _, id := range tenants {
		key, hash, err := tenant.NewKey()
		if err != nil {
			t.Fatal(err)
		}
		st.keys[id], hashes[id] = key, hash
	}
	st.loomAddr, st.opsAddr = addr(t), addr(t)
	st.spoolDir = filepath.Join(st.dir, "spool")
	st.loomCfg = filepath.Join(st.dir, "loom.yaml")
	if err := os.WriteFile(st.loomCfg, loomConfig(st, otlp, hashes, o), 0o600); err != nil {
		t.Fatal(err)
	}
	st.loom = &service{name: "loom", bin: bin("loom"), logPath: filepath.Join(st.dir, "loom.log"),
		args: []string{"serve", "-config", st.loomCfg}, ready: devstack.HTTPReady("http://" + st.loomAddr + "/readyz")}
	t.Cleanup(func() { _ = st.loom.stop(process.Grace) })
	if err := st.loom.start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("stack in %s: loom %s (ops %s), mock %s, collector OTLP %s, postgres :%d", st.dir, st.loomAddr, st.opsAddr,
		st.mockAddr, otlp, st.pg.Port())
	return st
}

// restartPostgres stops PostgreSQL (fast: sessions are ended), leaves it
// down for down, and starts it again on the same port and data.
func (st *stack) restartPostgres(ctx context.Context, down time.Duration) error {
	if err := st.pg.Stop(ctx); err != nil {
		return fmt.Errorf("stop postgres: %w", err)
	}
	time.Sleep(down)
	if err := st.pg.Restart(ctx); err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	return nil
}

// collectorConfig is otelcol-loom's for the suite: the distribution's
// shape (persistent queue, no batch processor, retry forever) with short
// retry intervals, so a Postgres restart of seconds costs seconds.
func collectorConfig(otlp, health, storage, dbURL string) []byte {
	return fmt.Appendf(nil, `
extensions:
  file_storage: {directory: %q, create_directory: true}
  health_check: {endpoint: %q}
receivers:
  otlp:
    protocols:
      grpc: {endpoint: %q}
processors:
  memory_limiter: {check_interval: 1s, limit_mib: 1024, spike_limit_mib: 256}
exporters:
  postgres:
    endpoint: %q
    schema_migrations: true
    timeout: 10s
    sending_queue:
      enabled: true
      storage: file_storage
      num_consumers: 4
      sizer: bytes
      queue_size: 2147483648
      batch: {sizer: items, min_size: 500, max_size: 5000, flush_timeout: 100ms}
    retry_on_failure: {enabled: true, initial_interval: 100ms, max_interval: 1s, max_elapsed_time: 0}
service:
  extensions: [file_storage, health_check]
  telemetry:
    metrics: {level: none}
    logs: {level: info}
  pipelines:
    traces: {receivers: [otlp], processors: [memory_limiter], exporters: [postgres]}
`, storage, health, otlp, dbURL)
}

// loomConfig serves both tenants from the mock, traces into the collector
// through a spool that outlives each process, and keeps its export and
// shutdown bounded so a graceful restart takes seconds, not the defaults'
// minutes.
func loomConfig(st *stack, otlp string, hashes map[string]string, o stackOptions) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "listen: %q\nops: {listen: %q}\n", st.loomAddr, st.opsAddr)
	b.WriteString("timeouts: {connect: 2s, first_byte: 15s, stream_idle: 15s, drain: 2s, shutdown: 15s}\n")
	fmt.Fprintf(&b, "tracing:\n  endpoint: \"http://%s\"\n  export_timeout: 10s\n", otlp)
	fmt.Fprintf(&b, "  spool:\n    dir: %q\n", st.spoolDir)
	if o.commitInterval > 0 {
		fmt.Fprintf(&b, "    commit_interval: %s\n", o.commitInterval)
	}
	if o.segmentBytes > 0 {
		fmt.Fprintf(&b, "    segment_bytes: %d\n", o.segmentBytes)
	}
	fmt.Fprintf(&b, "deployments:\n  - name: mock\n    provider: openai\n    base_url: \"http://%s/v1\"\n", st.mockAddr)
	b.WriteString("    forward_headers: [\"x-mock-*\"]\n    max_conns: 1024\n")
	b.WriteString("tenants:\n")
	for _, id := range tenants {
		fmt.Fprintf(&b, "  - id: %s\n    keys: [{id: %s-key, sha256: %q}]\n    models: [{name: %s, deployment: mock, upstream_model: gpt-4o-mini-2024-07-18}]\n",
			id, id, hashes[id], publicModel[id])
	}
	return []byte(b.String())
}
