package harness

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/loom-gateway/loom/deploy/devstack"
	"github.com/loom-gateway/loom/deploy/freeport"
	"github.com/loom-gateway/loom/deploy/pgserver"
	"github.com/loom-gateway/loom/deploy/process"
	"github.com/loom-gateway/loom/proxy/tenant"
)

// proc is one process of the system under test.
type proc struct {
	name string
	p    *process.Process
	log  string
}

// startProc runs bin with args, its output in dir/name.log, and waits until
// ready says it serves.
func startProc(ctx context.Context, dir, name, bin string, env []string, ready func(context.Context) error, args ...string) (*proc, error) {
	p := &proc{name: name, log: filepath.Join(dir, name+".log")}
	out, err := os.Create(p.log)
	if err != nil {
		return nil, err
	}
	// The child holds its own descriptor of the log from here on.
	defer out.Close()
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Env = append(os.Environ(), env...)
	if p.p, err = process.Start(cmd); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		if err := ready(ctx); err == nil {
			return p, nil
		}
		select {
		case <-p.p.Done():
			return nil, fmt.Errorf("%s exited while starting; see %s:\n%s", name, p.log, tail(p.log))
		case <-ctx.Done():
			p.stop()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.stop()
			return nil, fmt.Errorf("%s not ready after 60s; see %s:\n%s", name, p.log, tail(p.log))
		}
	}
}

func (p *proc) stop() { _ = p.p.Stop(process.Grace) }

// cpu is the process's CPU time so far, summed over its threads from
// /proc/PID/task/*/schedstat (nanoseconds; /proc/PID/stat counts 10 ms
// ticks, too coarse for a short segment): Loom's CPU per 1,000 requests is
// the difference across a measured segment.
func (p *proc) cpu() (time.Duration, error) {
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", p.p.Pid()))
	if err != nil || len(tasks) == 0 {
		return 0, errors.New("no /proc schedstat for " + p.name)
	}
	var total int64
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue // a thread that just exited
		}
		if f := strings.Fields(string(b)); len(f) > 0 {
			n, _ := strconv.ParseInt(f[0], 10, 64)
			total += n
		}
	}
	return time.Duration(total), nil
}

// peakRSS is the process's high-water resident set, in bytes.
func (p *proc) peakRSS() int64 { return p.status("VmHWM:") }

// rss is the process's resident set now, in bytes.
func (p *proc) rss() int64 { return p.status("VmRSS:") }

// status reads a size in kB from /proc/PID/status, in bytes.
func (p *proc) status(field string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.p.Pid()))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// stack is the system under test: the mock upstream, Postgres,
// otelcol-loom, and two Looms in front of the same mock, one tracing every
// call through the whole pipeline and one with tracing off.
type stack struct {
	dir      string
	pgDir    string
	pg       *pgserver.Server
	procs    []*proc
	mockAddr string
	// failingAt is a second mock whose every attempt fails with a 500: the
	// first deployment of the failover scenario's model.
	failingAt string
	traced    *proc
	untraced  *proc
	tracedAt  string // Loom's address, tracing on
	opsAt     string // the traced Loom's ops listener (its /metrics)
	plainAt   string // Loom's address, tracing off
	plainOps  string // the untraced Loom's ops listener
	keys      [2]string
	collector *proc
	// profileDir, when set, gets Loom's CPU profiles (Options.Profile).
	profileDir string
	// spoolDir holds the traced Loom's spool (tracing.spool.dir), removed
	// at stop.
	spoolDir string
}

// Tenants of the bench configuration: two, so the mix can alternate.
var benchTenants = [2]string{"bench-a", "bench-b"}

// startStack starts what o's mode needs: the mock, and for a mode with
// scenarios both Looms and the pipeline (Postgres, otelcol-loom); the
// streams mode starts one Loom, the traced one and the pipeline only with
// o.Tracing.
func startStack(ctx context.Context, o Options, dir string) (st *stack, err error) {
	st = &stack{dir: dir}
	wantTraced := !o.Mode.StreamsOnly || o.Tracing
	wantUntraced := !o.Mode.StreamsOnly || !o.Tracing
	defer func() {
		if err != nil {
			st.stop()
		}
	}()
	bin := func(name string) string { return filepath.Join(o.Bin, name) }
	need := []string{"loom", "mockupstream"}
	if wantTraced {
		need = append(need, "otelcol-loom")
	}
	for _, b := range need {
		if _, err := os.Stat(bin(b)); err != nil {
			return st, fmt.Errorf("%w (run `make build` first)", err)
		}
	}
	if st.mockAddr, err = freeport.Addr(); err != nil {
		return st, err
	}
	mock, err := startProc(ctx, dir, "mockupstream", bin("mockupstream"), nil,
		devstack.HTTPReady("http://"+st.mockAddr+"/v1/models"), "-addr", st.mockAddr, "-log-limit", "1000", "-grace", "2s")
	if err != nil {
		return st, err
	}
	st.procs = append(st.procs, mock)
	if st.failingAt, err = freeport.Addr(); err != nil {
		return st, err
	}
	failing, err := startProc(ctx, dir, "mockupstream-failing", bin("mockupstream"), nil,
		devstack.HTTPReady("http://"+st.failingAt+"/_mock/requests"), "-addr", st.failingAt, "-log-limit", "100", "-grace", "2s", "-fail", "500")
	if err != nil {
		return st, err
	}
	st.procs = append(st.procs, failing)
	if !wantTraced {
		return st, st.startLooms(ctx, o, dir, "", false, true)
	}

	// Postgres runs as the postgres user when we are root, and a checkout
	// may sit where that user cannot go: its cluster lives in a temporary
	// directory of its own.
	if st.pgDir, err = os.MkdirTemp("", "loom-bench-pg-"); err != nil {
		return st, err
	}
	if err := os.Chmod(st.pgDir, 0o755); err != nil {
		return st, err
	}
	st.pg, err = pgserver.Start(ctx, pgserver.Options{Dir: filepath.Join(st.pgDir, "data"), LogFile: filepath.Join(st.pgDir, "postgres.log")})
	if err != nil {
		return st, fmt.Errorf("postgres: %w", err)
	}
	if o.PipelineNice != 0 || o.PipelineIdle {
		pid, err := postmasterPID(st.pg.Dir())
		if err == nil {
			err = demoteTree(pid, o.PipelineNice, o.PipelineIdle)
		}
		if err != nil {
			return st, fmt.Errorf("postgres: nice %d: %w", o.PipelineNice, err)
		}
	}
	otlp, health := "", ""
	if otlp, err = freeport.Addr(); err != nil {
		return st, err
	}
	if health, err = freeport.Addr(); err != nil {
		return st, err
	}
	colCfg := filepath.Join(dir, "otelcol.yaml")
	if err := os.WriteFile(colCfg, devstack.RenderCollectorConfig(otlp, health, filepath.Join(dir, "otelcol"), "", ""), 0o600); err != nil {
		return st, err
	}
	st.collector, err = startProc(ctx, dir, "otelcol-loom", bin("otelcol-loom"), []string{devstack.EnvDatabaseURL + "=" + st.pg.URL()},
		devstack.HTTPReady("http://"+health+"/"), "--config", colCfg)
	if err != nil {
		return st, err
	}
	st.procs = append(st.procs, st.collector)
	if o.PipelineNice != 0 || o.PipelineIdle {
		if err := demoteTree(st.collector.p.Pid(), o.PipelineNice, o.PipelineIdle); err != nil {
			return st, fmt.Errorf("otelcol-loom: nice %d: %w", o.PipelineNice, err)
		}
	}
	return st, st.startLooms(ctx, o, dir, otlp, true, wantUntraced)
}

// startLooms starts the traced Loom (exporting to otlp) and the untraced
// one, as asked, each with an ops listener.
func (st *stack) startLooms(ctx context.Context, o Options, dir, otlp string, traced, untraced bool) (err error) {
	bin := func(name string) string { return filepath.Join(o.Bin, name) }
	var env []string
	if o.LoomProcs > 0 {
		// The measure of many long streams gives Loom one core.
		env = append(env, "GOMAXPROCS="+strconv.Itoa(o.LoomProcs))
	}
	streams := 0
	if ls := o.longStreams(); ls != nil {
		streams = ls.Streams
	}
	hashes := [2]string{}
	for i := range st.keys {
		if st.keys[i], hashes[i], err = tenant.NewKey(); err != nil {
			return err
		}
	}
	for _, tr := range []bool{true, false} {
		if (tr && !traced) || (!tr && !untraced) {
			continue
		}
		addr, err := freeport.Addr()
		if err != nil {
			return err
		}
		// Each Loom's counters (calls, streams open, goroutines) are read
		// from its ops listener: the gateway's own port does not serve
		// /metrics.
		ops, err := freeport.Addr()
		if err != nil {
			return err
		}
		name, extra := "loom-untraced", "ops: {listen: \""+ops+"\", pprof: "+strconv.FormatBool(o.Profile)+"}\n"
		if tr {
			if st.spoolDir, err = os.MkdirTemp("", "loom-bench-spool-"); err != nil {
				return err
			}
			name = "loom-traced"
			extra += "tracing: {endpoint: \"http://" + otlp + "\", spool: {dir: \"" + st.spoolDir + "\"}}\n"
		}
		cfgPath := filepath.Join(dir, name+".yaml")
		if err := os.WriteFile(cfgPath, loomConfig(addr, st.mockAddr, st.failingAt, hashes, extra, streams, !o.NoBilling), 0o600); err != nil {
			return err
		}
		args := []string{"serve", "-config", cfgPath}
		if o.AddedLatency > 0 {
			args = append(args, "-debug-added-latency", o.AddedLatency.String())
		}
		p, err := startProc(ctx, dir, name, bin("loom"), env, devstack.HTTPReady("http://"+addr+"/readyz"), args...)
		if err != nil {
			return err
		}
		st.procs = append(st.procs, p)
		if tr {
			st.traced, st.tracedAt, st.opsAt = p, addr, ops
		} else {
			st.untraced, st.plainAt, st.plainOps = p, addr, ops
		}
	}
	return nil
}

// loomConfig is a bench Loom's configuration. conns is the most calls the
// run holds open at once (the long streams): every one is a client
// connection from 127.0.0.1 and an upstream connection, so the front
// door's caps and the deployment's pool are sized above it. With billing,
// every bench model has a price and each tenant and key a day and a month
// budget (in memory, never reached): the gateway a billing deployment runs,
// costing and reserving on every call.
func loomConfig(listen, mock, failing string, hashes [2]string, tracing string, conns int, billing bool) []byte {
	conns = max(4096, conns+1024)
	var b strings.Builder
	fmt.Fprintf(&b, "listen: %q\n%s", listen, tracing)
	fmt.Fprintf(&b, "connections: {max_total: %d, max_per_ip: %d}\n", conns, conns)
	// The failover scenario measures a failed attempt and the next on every
	// call: the failing deployment's circuit must never open and skip it.
	b.WriteString("routing: {circuit_failures: 1000000000}\n")
	b.WriteString("deployments:\n")
	for _, d := range []struct{ name, provider, addr string }{
		{"mock", "openai", mock}, {"mock-anthropic", "anthropic", mock}, {"mock-failing", "openai", failing},
	} {
		fmt.Fprintf(&b, "  - name: %s\n    provider: %s\n    base_url: \"http://%s/v1\"\n", d.name, d.provider, d.addr)
		if d.provider == "anthropic" {
			b.WriteString("    api_key: bench\n")
		}
		// tenant_share 1: the long streams all come from one tenant, and
		// the bench measures the relay, not the fairness between tenants
		// (at the default half share, 3,000 streams got 952 429s).
		fmt.Fprintf(&b, "    forward_headers: [\"x-mock-*\"]\n    forward_response_headers: [\"x-mock-*\"]\n    max_conns: %d\n    tenant_share: 1\n", conns)
	}
	budgets := ""
	if billing {
		b.WriteString("prices:\n")
		for _, m := range []string{ModelOpenAI, ModelAnthropic, ModelFailover} {
			fmt.Fprintf(&b, "  - {model: %s, effective_from: 2025-01-01, input: \"0.15\", cached_input: \"0.075\", output: \"0.60\"}\n", m)
		}
		budgets = `, budgets: [{period: day, limit: "900000"}, {period: month, limit: "999999"}]`
	}
	b.WriteString("tenants:\n")
	for i, id := range benchTenants {
		fmt.Fprintf(&b, "  - id: %s\n    keys: [{id: %s-key, sha256: %q%s}]\n", id, id, hashes[i], budgets)
		if billing {
			b.WriteString("    budgets: [{period: day, limit: \"900000\"}, {period: month, limit: \"999999\"}]\n")
		}
		b.WriteString("    models:\n")
		fmt.Fprintf(&b, "      - {name: %s, deployment: mock}\n      - {name: %s, deployment: mock-anthropic}\n", ModelOpenAI, ModelAnthropic)
		fmt.Fprintf(&b, "      - {name: %s, deployments: [{name: mock-failing, priority: 0}, {name: mock, priority: 1}]}\n", ModelFailover)
	}
	return []byte(b.String())
}

// The bench tenants' models: one relayed as it is, one translated to an
// Anthropic deployment, one whose first deployment always fails.
const (
	ModelOpenAI    = "gpt-4o-mini"
	ModelAnthropic = "claude-sonnet-4-5"
	ModelFailover  = "gpt-4o-mini-failover"
)

// tracedCalls is how many calls the traced Loom recorded, warm-ups
// included: its loom_calls_total, the last loom.seq it gave, read from its
// ops listener.
func (st *stack) tracedCalls(ctx context.Context) (int64, error) {
	return opsMetric(ctx, st.opsAt, "loom_calls_total")
}

// opsMetric reads one unlabelled sample from the /metrics of the Loom
// whose ops listener is at ops.
func opsMetric(ctx context.Context, ops, name string) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+ops+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("read Loom's metrics: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		}
	}
	return 0, errors.New("Loom's /metrics has no " + name)
}

// spanRows waits until the count of SERVER spans (one per call) in
// Postgres stops growing and returns it: the pipeline kept up, and lost
// nothing, if it equals the calls the traced Loom recorded.
func (st *stack) spanRows(ctx context.Context, want int64) (int64, error) {
	conn, err := pgx.Connect(ctx, st.pg.URL())
	if err != nil {
		return 0, err
	}
	defer conn.Close(context.Background())
	var n, last int64 = 0, -1
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); {
		// The schema appears with the collector's first export.
		err := conn.QueryRow(ctx, "SELECT count(*) FROM loom.spans WHERE kind = 'server'").Scan(&n)
		if err == nil && (n >= want || n == last) {
			break
		}
		last = n
		select {
		case <-ctx.Done():
			return n, ctx.Err()
		case <-time.After(time.Second):
		}
	}
	return n, nil
}

func (st *stack) stop() {
	for i := len(st.procs) - 1; i >= 0; i-- {
		st.procs[i].stop()
	}
	if st.pg != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = st.pg.Stop(ctx)
	}
	if st.pgDir != "" {
		_ = os.RemoveAll(st.pgDir)
	}
	if st.spoolDir != "" {
		_ = os.RemoveAll(st.spoolDir)
	}
}
