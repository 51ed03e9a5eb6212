package replicas_test

import (
	"context"
	"errors"
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
	"github.com/loom-gateway/loom/deploy/pgserver/pgtest"
	"github.com/loom-gateway/loom/deploy/prereq"
	"github.com/loom-gateway/loom/deploy/process"
	"github.com/loom-gateway/loom/deploy/promserver"
	"github.com/loom-gateway/loom/deploy/promserver/promtest"
	"github.com/loom-gateway/loom/deploy/redisserver"
	"github.com/loom-gateway/loom/proxy/tenant"
)

// binary is one of `make build`'s programs in the checkout's bin/. The test
// builds nothing: under `make test` a build of three binaries would cost
// more than the test itself, and CI runs `make build` first.
func binary(t *testing.T, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("..", "..", "bin", name))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		// A skip on a developer's machine; under CI=true a failure.
		prereq.Check(t, fmt.Errorf("%s %w (run `make build` to include this test)", p, prereq.ErrNotInstalled), prereq.ErrNotInstalled)
	}
	return p
}

// proc is one real program of the stack.
type proc struct {
	name    string
	logPath string
	p       *process.Process
}

// start runs bin and waits until ready answers; the program is stopped
// (SIGTERM, then a kill after process.Grace) when the test ends, unless the
// test stopped it first.
func start(t *testing.T, ctx context.Context, name, logPath string, ready func(context.Context) error, env []string, bin string, args ...string) (*proc, error) {
	out, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	// The child holds its own descriptor of the log from here on.
	defer out.Close()
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Env = append(os.Environ(), env...)
	p, err := process.Start(cmd)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	pr := &proc{name: name, logPath: logPath, p: p}
	t.Cleanup(func() { _ = p.Stop(process.Grace) })
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for ready(ctx) != nil {
		select {
		case <-p.Done():
			return nil, fmt.Errorf("%s exited while starting; see %s:\n%s", name, logPath, tail(logPath))
		case <-ctx.Done():
			return nil, fmt.Errorf("%s not ready: %w; see %s:\n%s", name, ctx.Err(), logPath, tail(logPath))
		case <-time.After(20 * time.Millisecond):
		}
	}
	return pr, nil
}

// stop is the graceful stop a deployment does (SIGTERM), and its exit
// status: a kill after the grace, or an exit other than 0, is an error.
func (p *proc) stop() error {
	err := p.p.Stop(process.Grace)
	if err == nil {
		err = p.p.Wait()
	}
	if err != nil {
		return fmt.Errorf("stop %s: %w; see %s:\n%s", p.name, err, p.logPath, tail(p.logPath))
	}
	return nil
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return string(b)
}

// replica is one Loom instance and the collector it ships to.
type replica struct {
	name       string // "a", "b": the replica label in Prometheus
	instanceID string // tracing.instance_id: loom.instance.id of its spans
	addr       string // the gateway listener
	opsAddr    string // /metrics
	otlp       string // its collector's OTLP gRPC
	health     string // its collector's health check
	telemetry  string // its collector's own metrics
	collector  *proc
	loom       *proc
}

// stack is the deployment under test.
type stack struct {
	dir      string
	dbURL    string
	redis    *redisserver.Server
	prom     *promserver.Server
	mockAddr string
	replicas [2]*replica
	keys     map[string]string // tenant id -> key, the same on both replicas
}

// Scrape jobs, as a deployment would name them.
const (
	jobLoom      = "loom"
	jobCollector = "otelcol-loom"
)

// redisEnv names the variable that hands Loom the Redis URL (config.Redis
// wants a variable, as a URL can carry a password).
const redisEnv = "LOOM_REPLICAS_REDIS_URL"

func freeAddr(t *testing.T) string {
	t.Helper()
	a, err := freeport.Addr()
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// startStack starts everything and stops it when the test ends: the
// servers through their harnesses, the programs with SIGTERM. Logs and
// state stay in a temporary directory, kept (and named) when the test fails.
func startStack(t *testing.T) *stack {
	t.Helper()
	bins := map[string]string{}
	for _, name := range []string{"loom", "otelcol-loom", "mockupstream"} {
		bins[name] = binary(t, name)
	}
	// Before anything starts: a missing prometheus skips at once.
	if _, err := promserver.FindBin(); err != nil {
		promtest.Check(t, err)
	}
	dir, err := os.MkdirTemp("", "loom-replicas-")
	if err != nil {
		t.Fatal(err)
	}
	// Registered first, so it runs after every process has stopped.
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("logs and state kept in %s", dir)
			return
		}
		_ = os.RemoveAll(dir)
	})
	st := &stack{dir: dir, keys: map[string]string{}}
	for i, name := range []string{"a", "b"} {
		st.replicas[i] = &replica{name: name, instanceID: "replica-" + name, addr: freeAddr(t), opsAddr: freeAddr(t),
			otlp: freeAddr(t), health: freeAddr(t), telemetry: freeAddr(t)}
	}
	hashes := map[string]string{}
	for _, id := range tenants {
		key, hash, err := tenant.NewKey()
		if err != nil {
			t.Fatal(err)
		}
		st.keys[id], hashes[id] = key, hash
	}
	ctx := t.Context()

	// The servers that depend on nothing start side by side.
	var wg sync.WaitGroup
	var mockErr error
	st.mockAddr = freeAddr(t)
	wg.Go(func() {
		_, mockErr = start(t, ctx, "mockupstream", filepath.Join(dir, "mockupstream.log"),
			devstack.HTTPReady("http://"+st.mockAddr+"/v1/models"), nil,
			bins["mockupstream"], "-addr", st.mockAddr, "-log-limit", "1", "-grace", "2s")
	})
	var jobs [2]promserver.Job
	jobs[0], jobs[1] = promserver.Job{Name: jobLoom}, promserver.Job{Name: jobCollector}
	for _, r := range st.replicas {
		labels := map[string]string{"replica": r.name}
		jobs[0].Targets = append(jobs[0].Targets, promserver.Target{Addr: r.opsAddr, Labels: labels})
		jobs[1].Targets = append(jobs[1].Targets, promserver.Target{Addr: r.telemetry, Labels: labels})
	}
	var promErr, redisErr error
	wg.Go(func() {
		st.prom, promErr = promserver.Start(ctx, promserver.Options{Dir: filepath.Join(dir, "prometheus"),
			ScrapeInterval: scrapeInterval, Jobs: jobs[:]})
	})
	wg.Go(func() {
		st.redis, redisErr = redisserver.Start(ctx, redisserver.Options{Dir: filepath.Join(dir, "redis")})
	})
	// Should Postgres fail the test, what started beside it stops too.
	t.Cleanup(func() {
		wg.Wait()
		if st.prom != nil {
			_ = st.prom.Stop()
		}
		if st.redis != nil {
			_ = st.redis.Stop()
		}
	})
	pg := pgtest.Start(t)
	st.dbURL = pgtest.Database(t, pg)
	wg.Wait()
	promtest.Check(t, promErr)
	prereq.Check(t, redisErr, redisserver.ErrNotInstalled)
	if mockErr != nil {
		t.Fatal(mockErr)
	}

	// Then each replica's collector, and each replica's Loom.
	errs := make([]error, 2)
	for i, r := range st.replicas {
		wg.Go(func() {
			cfg := filepath.Join(dir, "otelcol-"+r.name+".yaml")
			if errs[i] = os.WriteFile(cfg, collectorConfig(r, filepath.Join(dir, "otelcol-"+r.name), st.dbURL), 0o600); errs[i] != nil {
				return
			}
			r.collector, errs[i] = start(t, ctx, "otelcol-loom "+r.name, filepath.Join(dir, "otelcol-"+r.name+".log"),
				devstack.HTTPReady("http://"+r.health+"/"), nil, bins["otelcol-loom"], "--config", cfg)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	for i, r := range st.replicas {
		wg.Go(func() {
			cfg := filepath.Join(dir, "loom-"+r.name+".yaml")
			if errs[i] = os.WriteFile(cfg, loomConfig(st, r, filepath.Join(dir, "spool-"+r.name), hashes), 0o600); errs[i] != nil {
				return
			}
			r.loom, errs[i] = start(t, ctx, "loom "+r.name, filepath.Join(dir, "loom-"+r.name+".log"),
				devstack.HTTPReady("http://"+r.addr+"/readyz"), []string{redisEnv + "=" + st.redis.URL()},
				bins["loom"], "serve", "-config", cfg)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	return st
}

// collectorConfig is otelcol-loom's for one replica: the distribution's
// shape (persistent queue, no batch processor, retry forever), its own
// metrics served for Prometheus, and short intervals so the test waits
// little for the last rows.
func collectorConfig(r *replica, storage, dbURL string) []byte {
	host, port, _ := strings.Cut(r.telemetry, ":")
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
      queue_size: 1073741824
      batch: {sizer: items, min_size: 1000, max_size: 5000, flush_timeout: 100ms}
    retry_on_failure: {enabled: true, initial_interval: 100ms, max_interval: 1s, max_elapsed_time: 0}
service:
  extensions: [file_storage, health_check]
  telemetry:
    logs: {level: warn}
    metrics:
      level: basic
      readers:
        - pull:
            exporter:
              prometheus: {host: %q, port: %s}
  pipelines:
    traces: {receivers: [otlp], processors: [memory_limiter], exporters: [postgres]}
`, storage, r.health, r.otlp, dbURL, host, port)
}

// loomConfig is one replica's: the same tenants, keys and routes on both
// (as one Helm release renders them), rate limits shared through Redis, its
// own instance id and spool, and its own collector.
func loomConfig(st *stack, r *replica, spool string, hashes map[string]string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "listen: %q\nops: {listen: %q}\n", r.addr, r.opsAddr)
	b.WriteString("timeouts: {connect: 2s, first_byte: 15s, stream_idle: 15s, drain: 2s, shutdown: 15s}\n")
	fmt.Fprintf(&b, "redis: {url_env: %s}\n", redisEnv)
	fmt.Fprintf(&b, "tracing:\n  endpoint: \"http://%s\"\n  instance_id: %s\n  batch_timeout: 50ms\n  export_timeout: 10s\n", r.otlp, r.instanceID)
	fmt.Fprintf(&b, "  spool: {dir: %q}\n", spool)
	fmt.Fprintf(&b, "deployments:\n  - name: mock\n    provider: openai\n    base_url: \"http://%s/v1\"\n", st.mockAddr)
	b.WriteString("    forward_headers: [\"x-mock-*\"]\n    max_conns: 512\n")
	b.WriteString("tenants:\n")
	for _, id := range tenants {
		fmt.Fprintf(&b, "  - id: %s\n    keys: [{id: %s-key, sha256: %q}]\n    models: [{name: %s, deployment: mock, upstream_model: gpt-4o-mini-2024-07-18}]\n",
			id, id, hashes[id], publicModel[id])
		if id == limitedTenant {
			fmt.Fprintf(&b, "    limits: {requests_per_minute: %d}\n", limitRPM)
		}
	}
	return []byte(b.String())
}
