package devstack

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/loom-gateway/loom/proxy/config"
	"github.com/loom-gateway/loom/proxy/secret"
)

func prepareIn(t *testing.T, dir string, o Options) *Plan {
	t.Helper()
	o.Dir, o.Bin = dir, fakeBin(t)
	if o.Getenv == nil {
		o.Getenv = func(k string) string { return map[string]string{EnvDatabaseURL: "postgres://db.example.com/loom"}[k] }
	}
	for _, a := range []*string{&o.MockAddr, &o.OTLPAddr, &o.HealthAddr, &o.ConsoleAddr, &o.OpsAddr} {
		if *a == "" {
			*a = "127.0.0.1:0"
		}
	}
	p, err := Prepare(o)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func hold(t *testing.T, addr string) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// A port chosen because the default was taken is the next run's too, even
// once the default is free again; a flag given wins; a kept port taken
// now falls back to the default.
func TestPrepare_PortsChosenOnce_KeptAndReusedNextRun(t *testing.T) {
	dir := t.TempDir()
	blocker := hold(t, "127.0.0.1:0")
	def := blocker.Addr().String() // the "default", taken

	first := prepareIn(t, dir, Options{Listen: def})
	if first.LoomURL == "http://"+def {
		t.Fatalf("loom got the taken default %s", def)
	}
	otherAddrs := map[string]string{"console": first.ConsoleURL, "metrics": first.MetricsURL, "otlp": first.OTLPAddr}
	blocker.Close() // the default is free again

	second := prepareIn(t, dir, Options{Listen: def})
	if second.LoomURL != first.LoomURL {
		t.Errorf("second run's loom on %s, want the first run's %s (kept in %s)", second.LoomURL, first.LoomURL, PortsFile)
	}
	for what, was := range otherAddrs {
		now := map[string]string{"console": second.ConsoleURL, "metrics": second.MetricsURL, "otlp": second.OTLPAddr}[what]
		if now != was {
			t.Errorf("%s moved from %s to %s", what, was, now)
		}
	}

	explicit := prepareIn(t, dir, Options{Listen: def, Explicit: map[string]bool{"listen": true}})
	if explicit.LoomURL != "http://"+def {
		t.Errorf("with -listen %s given, loom on %s", def, explicit.LoomURL)
	}

	// The kept port is taken now: the default it is, with a note.
	hold(t, strings.TrimPrefix(first.LoomURL, "http://"))
	moved := prepareIn(t, dir, Options{Listen: def})
	if moved.LoomURL != "http://"+def {
		t.Errorf("kept port taken: loom on %s, want the default %s", moved.LoomURL, def)
	}
	if !slices.ContainsFunc(moved.Notes, func(n string) bool { return strings.Contains(n, "kept from the last run") }) {
		t.Errorf("notes %q do not say the kept port is in use", moved.Notes)
	}
	b, err := os.ReadFile(filepath.Join(dir, PortsFile))
	if err != nil || !strings.Contains(string(b), `"listen": "`+def+`"`) {
		t.Errorf("%s = %s (%v), want the new choice kept", PortsFile, b, err)
	}
}

// make clean removes the state directory and the cluster's home under the
// fallback, and refuses while that cluster's postmaster runs.
func TestClean_RemovesStateAndTheClusterWhereverItLives(t *testing.T) {
	root := t.TempDir()
	state := filepath.Join(root, "checkout", ".loom")
	fallback := filepath.Join(root, "var-lib-loom")
	abs, _ := filepath.Abs(state)
	home := filepath.Join(fallback, clusterID(abs))
	other := filepath.Join(fallback, "another-checkouts")
	for _, d := range []string{filepath.Join(state, "spool"), filepath.Join(home, "pg"), other} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{filepath.Join(state, "demo.key"), filepath.Join(home, "pg", "PG_VERSION")} {
		if err := os.WriteFile(f, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	// A pid that is not a postgres program's (this test's) is stale:
	// clean goes ahead. A real postmaster is told by /proc/<pid>/comm.
	pidFile := filepath.Join(home, "pg", "postmaster.pid")
	if err := os.WriteFile(pidFile, fmt.Appendf(nil, "%d\n%s\n", os.Getpid(), home), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, live := livePostmaster(filepath.Join(home, "pg")); live {
		t.Fatal("a pid of another program counted as a live postmaster")
	}
	if sleep, err := exec.LookPath("sleep"); err == nil {
		// A process named like a postmaster is live: clean refuses.
		link := filepath.Join(root, "postgres")
		if err := os.Symlink(sleep, link); err == nil {
			cmd := exec.Command(link, "30")
			if err := cmd.Start(); err == nil {
				t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
				_ = os.WriteFile(pidFile, fmt.Appendf(nil, "%d\n", cmd.Process.Pid), 0o600)
				var out bytes.Buffer
				if err := clean(state, fallback, &out); err == nil || !strings.Contains(err.Error(), "stop make run") {
					t.Errorf("clean with a live postmaster = %v, want a refusal", err)
				}
				if _, err := os.Stat(state); err != nil {
					t.Errorf("refused, yet %s is gone", state)
				}
				_ = cmd.Process.Kill()
				_ = cmd.Wait()
			}
		}
	}

	var out bytes.Buffer
	if err := clean(state, fallback, &out); err != nil {
		t.Fatal(err)
	}
	for _, gone := range []string{state, home} {
		if _, err := os.Stat(gone); !os.IsNotExist(err) {
			t.Errorf("%s still there after clean (%v)", gone, err)
		}
		if !strings.Contains(out.String(), "removed "+gone) {
			t.Errorf("output does not say %s was removed:\n%s", gone, out.String())
		}
	}
	if _, err := os.Stat(other); err != nil {
		t.Errorf("another checkout's cluster went too: %v", err)
	}

	// A directory that is not devstack's is never removed.
	notState := filepath.Join(root, "home")
	if err := os.MkdirAll(filepath.Join(notState, "projects"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := clean(notState, fallback, &out); err == nil {
		t.Error("clean removed a directory without devstack's files")
	}
	if _, err := os.Stat(filepath.Join(notState, "projects")); err != nil {
		t.Error(err)
	}
}

// The cluster's fallback home is where Clean looks for it.
func TestPostgresHome_FallbackIsWhereCleanLooks(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the fallback is for root only")
	}
	root := t.TempDir() // 0700: the postgres user cannot enter it
	state := filepath.Join(root, ".loom")
	fallback := filepath.Join(t.TempDir(), "loom")
	home, _, err := postgresHome(state, fallback)
	if err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs(state)
	if home != filepath.Join(fallback, clusterID(abs)) {
		t.Errorf("cluster home %s, Clean would look in %s", home, filepath.Join(fallback, clusterID(abs)))
	}
}

func TestShowWarnings_InfoStaysInTheLog(t *testing.T) {
	for _, tt := range []struct {
		line string
		show bool
	}{
		{`time=2026-01-02T03:04:05Z level=INFO msg="tracing on" endpoint=http://127.0.0.1:4317`, false},
		{`time=2026-01-02T03:04:05Z level=WARN msg="export failed" err="connection refused"`, true},
		{`time=2026-01-02T03:04:05Z level=ERROR msg=boom`, true},
		{`time=2026-01-02T03:04:05Z level=WARN+2 msg=between`, true},
		{"2026-01-02T03:04:05.000Z\tinfo\tservice@v0.165.0/service.go:1\tEverything is ready.", false},
		{"2026-01-02T03:04:05.000Z\twarn\tbatchprocessor@v0.165.0/batch_processor.go:272\tSender failed", true},
		{"2026-01-02T03:04:05.000Z\terror\texporterhelper/queue.go:1\tExporting failed", true},
		{`{"level":"info","msg":"x"}`, false},
		{"panic: runtime error: index out of range", true},
		{"goroutine 1 [running]:", true},
	} {
		if got := ShowWarnings([]byte(tt.line)); got != tt.show {
			t.Errorf("ShowWarnings(%q) = %v, want %v", tt.line, got, tt.show)
		}
	}
}

// Loom's per-call lines become one summary line per interval (and stay in
// its log); warnings still show; dropped calls are a warning.
func TestSummary_CallLinesCountedNotShown_OneLinePerInterval(t *testing.T) {
	var dropped atomic.Int64 // the handler reads it on the server's goroutine
	metrics := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "# TYPE loom_calls_dropped_total counter\nloom_calls_dropped_total{reason=\"spool_full\"} %d\n"+
			"loom_calls_dropped_total{reason=\"other\"} 0\nloom_spool_bytes 2048\n", dropped.Load())
	}))
	defer metrics.Close()
	s := &Summary{MetricsURL: metrics.URL, Interval: 10 * time.Second}
	term := &bytes.Buffer{}
	w := NewTerminal(term).prefixed("loom | ")
	w.show = s.Show
	for i := range 100 {
		status, et, dur := 200, `""`, fmt.Sprintf("%dms", i+1)
		if i%25 == 0 {
			status, et = 502, "upstream_reset"
		}
		fmt.Fprintf(w, "time=2026-01-02T03:04:05Z level=INFO msg=call op=chat tenant=demo key_id=demo-key model=gpt-4o-mini "+
			"deployment=mock stream=false status=%d outcome=ok error_type=%s response_id=\"a b\" duration=%s overhead=120µs\n", status, et, dur)
	}
	fmt.Fprintf(w, "time=2026-01-02T03:04:05Z level=WARN msg=\"spool filling\"\n")
	fmt.Fprintf(w, "time=2026-01-02T03:04:05Z level=INFO msg=\"tracing on\"\n")
	if got := term.String(); got != "loom | time=2026-01-02T03:04:05Z level=WARN msg=\"spool filling\"\n" {
		t.Fatalf("terminal got:\n%s\nwant only the warning", got)
	}

	line, warn := s.Line(t.Context())
	for _, want := range []string{"100 calls (10.0/s)", "4 errors (upstream_reset: 4)", "max 100ms",
		"spool backlog 2.0 KiB, 0 dropped"} {
		if !strings.Contains(line, want) {
			t.Errorf("summary %q lacks %q", line, want)
		}
	}
	// Percentiles good to 5%: the calls took 1ms, 2ms ... 100ms.
	for q, want := range map[string]time.Duration{"p50": 50 * time.Millisecond, "p99": 99 * time.Millisecond} {
		m := regexp.MustCompile(q + ` ([0-9.]+m?s)`).FindStringSubmatch(line)
		if m == nil {
			t.Errorf("summary %q has no %s", line, q)
			continue
		}
		got, _ := time.ParseDuration(m[1])
		if got < want*95/100 || got > want*105/100 {
			t.Errorf("%s = %s, want %s within 5%%", q, got, want)
		}
	}
	if warn != "" {
		t.Errorf("warning %q with nothing dropped", warn)
	}
	// Nothing happened since: no line at all... but a backlog is worth one.
	if line, _ := s.Line(t.Context()); !strings.Contains(line, "0 calls") || !strings.Contains(line, "backlog 2.0 KiB") {
		t.Errorf("idle with a backlog: %q", line)
	}
	dropped.Store(7)
	if _, warn := s.Line(t.Context()); !strings.Contains(warn, "dropped 7 calls") {
		t.Errorf("warning = %q, want 7 dropped calls", warn)
	}
	// The fan-out's losses, from the collector's own metrics: a warning
	// once they grow, naming the exporter; Postgres's own do not count.
	var fanLost atomic.Int64
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "otelcol_exporter_enqueue_failed_spans_total{exporter=\"otlp_grpc/fanout\"} %d\n"+
			"otelcol_exporter_send_failed_spans_total{exporter=\"otlp_grpc/fanout\",data_type=\"traces\"} 1\n"+
			"otelcol_exporter_send_failed_spans_total{exporter=\"postgres\"} %d\n", fanLost.Load(), 1000+fanLost.Load())
	}))
	defer collector.Close()
	s.CollectorMetricsURL, s.FanoutExporter = collector.URL, "otlp_grpc/fanout"
	if _, warn := s.Line(t.Context()); warn != "" {
		t.Errorf("first look at the collector: warning %q", warn)
	}
	fanLost.Store(250)
	if _, warn := s.Line(t.Context()); !strings.Contains(warn, "lost 250 spans") || !strings.Contains(warn, `"otlp_grpc/fanout"`) {
		t.Errorf("warning = %q, want 250 spans lost by otlp_grpc/fanout", warn)
	}
	if _, warn := s.Line(t.Context()); warn != "" {
		t.Errorf("nothing lost since: warning %q", warn)
	}
	quiet := &Summary{}
	if line, warn := quiet.Line(t.Context()); line != "" || warn != "" {
		t.Errorf("idle, no metrics: %q %q, want nothing", line, warn)
	}
}

// With LOOM_OTLP_ENDPOINT, the collector runs with the fan-out config
// merged over its own, and the header values only in its environment.
func TestPrepare_Fanout_SecondConfigAndHeaderValuesInTheEnvironmentOnly(t *testing.T) {
	dir := t.TempDir()
	env := map[string]string{EnvDatabaseURL: "postgres://db.example.com/loom",
		EnvOTLPEndpoint: "https://otel.example.com:4317", EnvOTLPHeaders: "authorization=Bearer%20s3cret"}
	p := prepareIn(t, dir, Options{Listen: "127.0.0.1:0", Getenv: func(k string) string { return env[k] }})
	var col *Service
	for i := range p.Services {
		if p.Services[i].Name == collectorName {
			col = &p.Services[i]
		}
	}
	fan := filepath.Join(dir, "otelcol-fanout.yaml")
	if col == nil || !slices.Equal(col.Args, []string{"--config", filepath.Join(dir, "otelcol.yaml"), "--config", fan}) {
		t.Fatalf("collector service %+v, want both configs", col)
	}
	if !slices.Contains(col.Env, "LOOM_OTLP_HEADER_0=Bearer s3cret") {
		t.Errorf("collector env %q lacks the header value", col.Env)
	}
	b, err := os.ReadFile(fan)
	if err != nil || strings.Contains(string(b), "s3cret") || !strings.Contains(string(b), "otel.example.com:4317") {
		t.Fatalf("%s (%v):\n%s", fan, err, b)
	}
	if banner := p.Banner(dir); !strings.Contains(banner, "OTLP gRPC to otel.example.com:4317 (TLS") || strings.Contains(banner, "s3cret") {
		t.Errorf("banner:\n%s", banner)
	}
	// Unset again: no fan-out, and the old file is gone.
	delete(env, EnvOTLPEndpoint)
	p = prepareIn(t, dir, Options{Listen: "127.0.0.1:0", Getenv: func(k string) string { return env[k] }})
	if _, err := os.Stat(fan); !os.IsNotExist(err) {
		t.Errorf("%s left from the last run: %v", fan, err)
	}
	if p.Fanout != nil {
		t.Errorf("fan-out %+v without %s", p.Fanout, EnvOTLPEndpoint)
	}
	// A wrong setting stops Prepare with the variable named.
	env[EnvOTLPEndpoint], env[EnvOTLPProtocol] = "x:4317", "thrift"
	o := Options{Dir: dir, Bin: fakeBin(t), Listen: "127.0.0.1:0", MockAddr: "127.0.0.1:0", OTLPAddr: "127.0.0.1:0",
		HealthAddr: "127.0.0.1:0", Getenv: func(k string) string { return env[k] }}
	if _, err := Prepare(o); err == nil || !strings.Contains(err.Error(), EnvOTLPProtocol) {
		t.Errorf("Prepare with %s=thrift: %v", EnvOTLPProtocol, err)
	}
}

// make run's console can be opened as admin (pipeline health included) and
// its sessions survive a restart: the admin token and the session key are
// made once under .loom/ (0600) and kept, and loom.yaml names only the
// token's hash and the key's file.
func TestPrepare_AdminTokenAndConsoleKey_MadeOnceKeptAndOnlyHashedInTheConfig(t *testing.T) {
	dir := t.TempDir()
	first := prepareIn(t, dir, Options{})
	if !strings.HasPrefix(first.AdminToken, "loom-admin-") {
		t.Fatalf("admin token %q", first.AdminToken)
	}
	cfgText, err := os.ReadFile(first.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(EnvDatabaseURL, "postgres://db.example.com/loom") // as Loom's environment has it
	cfg, err := config.Parse(cfgText)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(first.AdminToken))
	if cfg.Admin.TokenSHA256 != hex.EncodeToString(sum[:]) || "http://"+cfg.Admin.Listen != first.AdminURL {
		t.Errorf("admin = %+v, want the token's hash and the admin API on %s", cfg.Admin, first.AdminURL)
	}
	if strings.Contains(string(cfgText), first.AdminToken) {
		t.Error("loom.yaml holds the admin token itself")
	}
	key, err := secret.ReadKey("", cfg.Console.SessionKeyFile)
	if err != nil || len(key) != 32 {
		t.Fatalf("console.session_key_file %q: %v", cfg.Console.SessionKeyFile, err)
	}
	// The tenant store's credential key, kept the same way.
	if sk, err := secret.ReadKey("", cfg.Store.SecretKeyFile); err != nil || len(sk) != 32 || filepath.Base(cfg.Store.SecretKeyFile) != StoreKeyFile {
		t.Errorf("store.secret_key_file %q: %v", cfg.Store.SecretKeyFile, err)
	}
	for _, f := range []string{AdminTokenFile, ConsoleKeyFile, StoreKeyFile} {
		if fi, err := os.Stat(filepath.Join(dir, f)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, %v; want mode 0600", f, fi, err)
		}
	}
	if !strings.Contains(first.Banner(dir), first.AdminToken) {
		t.Error("the banner does not give the admin token")
	}

	second := prepareIn(t, dir, Options{})
	again, err := secret.ReadKey("", cfg.Console.SessionKeyFile)
	if second.AdminToken != first.AdminToken || err != nil || !bytes.Equal(again, key) {
		t.Errorf("second run: admin token %q (was %q), session key changed or unreadable (%v)", second.AdminToken, first.AdminToken, err)
	}

	if err := os.WriteFile(filepath.Join(dir, AdminTokenFile), []byte("not a token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := AdminToken(filepath.Join(dir, AdminTokenFile)); err == nil {
		t.Error("a garbage admin token file was accepted")
	}
}
