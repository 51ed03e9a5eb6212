package devstack

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/loom-gateway/loom/deploy/pgserver/pgtest"
	"github.com/loom-gateway/loom/deploy/prereq"
	"github.com/loom-gateway/loom/proxy/config"
	"github.com/loom-gateway/loom/proxy/tenancy"
	"github.com/loom-gateway/loom/proxy/tenant"
)

// The test binary doubles as a service for the Stack tests: with
// DEVSTACK_TEST_SERVICE set it runs as one instead of running tests.
const envService = "DEVSTACK_TEST_SERVICE"

func TestMain(m *testing.M) {
	if mode := os.Getenv(envService); mode != "" {
		os.Exit(fakeService(mode))
	}
	os.Exit(m.Run())
}

// fakeService is "serve ADDR" (answers GET /ready, exits 0 on SIGTERM),
// "stubborn ADDR" (the same, but ignores SIGTERM) or "crash" (exits 3).
func fakeService(mode string) int {
	kind, addr, _ := strings.Cut(mode, " ")
	fmt.Println("fake service", kind, "starting")
	if kind == "crash" {
		fmt.Fprintln(os.Stderr, "fake service: crashing")
		return 3
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	go func() {
		_ = http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") }))
	}()
	for {
		<-sig
		if kind != "stubborn" {
			fmt.Println("fake service: SIGTERM, exiting")
			return 0
		}
	}
}

func fakeServiceDef(t *testing.T, name, kind string) Service {
	t.Helper()
	addr, _, err := freeAddr(name, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	svc := Service{Name: name, Path: os.Args[0], Env: []string{envService + "=" + kind + " " + addr}}
	if kind != "crash" {
		svc.Ready = HTTPReady("http://" + addr + "/ready")
	}
	return svc
}

func TestRenderConfig_ParsesForEveryUpstream(t *testing.T) {
	_, hash, err := tenant.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name           string
		env            map[string]string
		wantDeployment string
		wantBaseURL    string
		wantKeyEnv     string
		wantForward    bool
	}{
		{name: "mock by default", wantDeployment: "mock", wantBaseURL: "http://127.0.0.1:9090/v1", wantForward: true},
		{
			name: "OPENAI_API_KEY routes to OpenAI", env: map[string]string{EnvOpenAIKey: "sk-test-not-real"},
			wantDeployment: "openai", wantBaseURL: OpenAIBaseURL, wantKeyEnv: EnvOpenAIKey,
		},
		{
			name: "LOOM_UPSTREAM_URL wins over OPENAI_API_KEY",
			env: map[string]string{EnvOpenAIKey: "sk-test-not-real", EnvUpstreamURL: "http://127.0.0.1:11434/v1/",
				EnvUpstreamKey: "secret"},
			wantDeployment: "upstream", wantBaseURL: "http://127.0.0.1:11434/v1", wantKeyEnv: EnvUpstreamKey,
		},
		{
			name: "LOOM_UPSTREAM_URL without a key", env: map[string]string{EnvUpstreamURL: "https://llm.example.com/v1"},
			wantDeployment: "upstream", wantBaseURL: "https://llm.example.com/v1",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, k := range []string{EnvOpenAIKey, EnvUpstreamURL, EnvUpstreamKey} {
				t.Setenv(k, tt.env[k]) // config.Parse checks api_key_env against the real environment
			}
			up := ChooseUpstream(os.Getenv)
			if up.Mock {
				up.BaseURL = "http://127.0.0.1:9090/v1"
			}
			b := RenderConfig("127.0.0.1:8080", []Upstream{up}, hash, "http://127.0.0.1:4317", "/var/lib/loom/spool")
			cfg, err := config.Parse(b)
			if err != nil {
				t.Fatalf("config.Parse: %v\n%s", err, b)
			}
			if cfg.Tracing.Spool.Dir != "/var/lib/loom/spool" {
				t.Errorf("tracing.spool.dir = %q, want the state directory's spool", cfg.Tracing.Spool.Dir)
			}
			if cfg.Tracing.Endpoint != "http://127.0.0.1:4317" || cfg.Tracing.Protocol != config.TracingGRPC {
				t.Errorf("tracing = %s over %s, want http://127.0.0.1:4317 over grpc", cfg.Tracing.Endpoint, cfg.Tracing.Protocol)
			}
			// The mock serves every model from a second deployment too, so that failover shows.
			wantDeployments := []string{tt.wantDeployment}
			if up.Mock {
				wantDeployments = append(wantDeployments, tt.wantDeployment+"-b")
			}
			if len(cfg.Deployments) != len(wantDeployments) {
				t.Fatalf("deployments = %d, want %v", len(cfg.Deployments), wantDeployments)
			}
			if up.Mock && (cfg.Deployments[1].Name != wantDeployments[1] || cfg.Deployments[1].BaseURL != tt.wantBaseURL) {
				t.Errorf("second mock deployment %+v", cfg.Deployments[1])
			}
			d := cfg.Deployments[0]
			if d.Name != tt.wantDeployment || d.Provider != config.ProviderOpenAI || d.BaseURL != tt.wantBaseURL ||
				d.APIKeyEnv != tt.wantKeyEnv || d.APIKey != "" {
				t.Errorf("deployment = %+v, want name %q, provider openai, base_url %q, api_key_env %q, no api_key",
					d, tt.wantDeployment, tt.wantBaseURL, tt.wantKeyEnv)
			}
			if got := len(d.ForwardHeaders) == 1 && d.ForwardHeaders[0] == "x-mock-*" &&
				len(d.ForwardResponseHeaders) == 1 && d.ForwardResponseHeaders[0] == "x-mock-*"; got != tt.wantForward {
				t.Errorf("forward headers %v / %v, want x-mock-* forwarded: %v", d.ForwardHeaders, d.ForwardResponseHeaders, tt.wantForward)
			}
			for _, secret := range tt.env {
				if strings.Contains(secret, "secret") || strings.HasPrefix(secret, "sk-") {
					if bytes.Contains(b, []byte(secret)) {
						t.Errorf("config contains the credential %q", secret)
					}
				}
			}
			if cfg.Listen != "127.0.0.1:8080" {
				t.Errorf("listen = %q", cfg.Listen)
			}
			if len(cfg.Tenants) != 1 || cfg.Tenants[0].ID != DemoTenant || len(cfg.Tenants[0].Keys) != 1 ||
				cfg.Tenants[0].Keys[0].ID != DemoKeyID || cfg.Tenants[0].Keys[0].SHA256 != hash {
				t.Fatalf("tenants = %+v, want demo with key demo-key", cfg.Tenants)
			}
			var models []string
			for _, m := range cfg.Tenants[0].Models {
				models = append(models, m.Name)
				if got := modelTargets(m); got != strings.Join(wantDeployments, ",") {
					t.Errorf("model %s goes to %q, want %q", m.Name, got, wantDeployments)
				}
			}
			if strings.Join(models, ",") != strings.Join(DemoModels, ",") {
				t.Errorf("models = %v, want %v", models, DemoModels)
			}
		})
	}
}

// modelTargets is where a model goes, in priority order: "a" or "a,b".
func modelTargets(m tenancy.Model) string {
	if m.Deployment != "" {
		return m.Deployment
	}
	var out []string
	for i, d := range m.Deployments {
		if d.Priority != i {
			return fmt.Sprintf("%+v", m.Deployments)
		}
		out = append(out, d.Deployment)
	}
	return strings.Join(out, ",")
}

func TestRenderConfig_ClaudeModels_ForEveryAnthropicUpstream(t *testing.T) {
	_, hash, err := tenant.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name        string
		env         map[string]string
		wantTargets string
		wantBaseURL string
		wantKeyEnv  string
		wantMock    bool
	}{
		{name: "mock by default", wantTargets: "mock-anthropic,mock-anthropic-b", wantBaseURL: "http://127.0.0.1:9090/v1",
			wantMock: true},
		{name: "ANTHROPIC_API_KEY routes to Anthropic", env: map[string]string{EnvAnthropicKey: "sk-ant-test-not-real"},
			wantTargets: "anthropic", wantBaseURL: AnthropicBaseURL, wantKeyEnv: EnvAnthropicKey},
		{name: "LOOM_ANTHROPIC_URL wins over ANTHROPIC_API_KEY",
			env: map[string]string{EnvAnthropicKey: "sk-ant-test-not-real", EnvAnthropicURL: "http://127.0.0.1:4000/v1/",
				EnvAnthropicUpstreamKey: "secret"},
			wantTargets: "anthropic-upstream", wantBaseURL: "http://127.0.0.1:4000/v1", wantKeyEnv: EnvAnthropicUpstreamKey},
		{name: "LOOM_ANTHROPIC_URL without a key", env: map[string]string{EnvAnthropicURL: "https://claude.example.com/v1"},
			wantTargets: "anthropic-upstream", wantBaseURL: "https://claude.example.com/v1"},
		{name: "a Loom key in ANTHROPIC_API_KEY is ignored", env: map[string]string{EnvAnthropicKey: tenant.KeyPrefix + "abc"},
			wantTargets: "mock-anthropic,mock-anthropic-b", wantBaseURL: "http://127.0.0.1:9090/v1", wantMock: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, k := range []string{EnvOpenAIKey, EnvUpstreamURL, EnvAnthropicKey, EnvAnthropicURL, EnvAnthropicUpstreamKey} {
				t.Setenv(k, tt.env[k]) // config.Parse checks api_key_env against the real environment
			}
			up, claude := ChooseUpstream(os.Getenv), ChooseAnthropic(os.Getenv)
			if claude.Mock != tt.wantMock || (tt.wantMock && strings.HasPrefix(tt.env[EnvAnthropicKey], tenant.KeyPrefix) &&
				!strings.Contains(claude.Note, "ignored")) {
				t.Fatalf("ChooseAnthropic = %+v", claude)
			}
			up.BaseURL = "http://127.0.0.1:9090/v1"
			if claude.Mock {
				claude.BaseURL = up.BaseURL // one mock speaks both APIs
			}
			b := RenderConfig("127.0.0.1:8080", []Upstream{up, claude}, hash, "", "")
			cfg, err := config.Parse(b)
			if err != nil {
				t.Fatalf("config.Parse: %v\n%s", err, b)
			}
			deps := map[string]config.Deployment{}
			for _, d := range cfg.Deployments {
				deps[d.Name] = d
			}
			var claudeModels []string
			for _, m := range cfg.Tenants[0].Models {
				if !strings.Contains(m.Name, "claude") {
					continue
				}
				claudeModels = append(claudeModels, m.Name)
				if got := modelTargets(m); got != tt.wantTargets {
					t.Errorf("model %s goes to %q, want %q", m.Name, got, tt.wantTargets)
				}
				for _, name := range strings.Split(tt.wantTargets, ",") {
					d := deps[name]
					if d.Provider != config.ProviderAnthropic || d.BaseURL != tt.wantBaseURL || d.APIKeyEnv != tt.wantKeyEnv {
						t.Errorf("deployment %s = %+v, want anthropic at %s with api_key_env %q", name, d, tt.wantBaseURL, tt.wantKeyEnv)
					}
					// The mock wants some x-api-key; a real upstream's key is only ever named.
					if (d.APIKey != "") != tt.wantMock || (tt.wantMock && d.APIKey != mockAnthropicKey) {
						t.Errorf("deployment %s api_key %q", name, d.APIKey)
					}
				}
			}
			if strings.Join(claudeModels, ",") != strings.Join(DemoClaudeModels, ",") {
				t.Errorf("claude models %v, want %v", claudeModels, DemoClaudeModels)
			}
			for _, k := range []string{EnvAnthropicKey, EnvAnthropicUpstreamKey} {
				if secret := tt.env[k]; secret != "" && bytes.Contains(b, []byte(secret)) {
					t.Errorf("config contains the credential %q", secret)
				}
			}
		})
	}
}

func TestPrepare_ClaudeModelsAndFailover_InConfigAndBanner(t *testing.T) {
	env := map[string]string{EnvDatabaseURL: "postgres://db.example.com/loom"}
	p, err := Prepare(Options{Dir: t.TempDir(), Bin: fakeBin(t), Listen: "127.0.0.1:0", MockAddr: "127.0.0.1:0",
		OTLPAddr: "127.0.0.1:0", HealthAddr: "127.0.0.1:0", Getenv: func(k string) string { return env[k] }})
	if err != nil {
		t.Fatal(err)
	}
	if !p.Anthropic.Mock || p.Anthropic.BaseURL != p.Upstream.BaseURL {
		t.Errorf("Claude models on %+v, want the mock at %s", p.Anthropic, p.Upstream.BaseURL)
	}
	t.Setenv(EnvDatabaseURL, env[EnvDatabaseURL]) // as Loom's environment has it
	cfg, err := config.Load(p.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	// The demo tenant is served from the tenant store, seeded from p.seed.
	if len(cfg.Tenants) != 0 || !cfg.Store.Enabled() || cfg.Store.SecretKeyFile == "" {
		t.Errorf("loom.yaml tenants %+v, store %+v; want the store and no file tenants", cfg.Tenants, cfg.Store)
	}
	var names []string
	for _, m := range p.seed.Models {
		names = append(names, m.Name)
	}
	if got := strings.Join(names, ","); got != strings.Join(append(slices.Clone(DemoModels), DemoClaudeModels...), ",") {
		t.Errorf("demo models %s", got)
	}
	b := p.Banner("dir")
	for _, want := range []string{"export ANTHROPIC_BASE_URL=" + p.LoomURL + "\n", "export ANTHROPIC_API_KEY=" + p.Key + "\n",
		p.LoomURL + "/v1/messages -H \"x-api-key: $ANTHROPIC_API_KEY\" -H 'anthropic-version: 2023-06-01'",
		"-H 'x-mock-fail: 500' -H 'x-mock-fail-count: 1'"} {
		if !strings.Contains(b, want) {
			t.Errorf("banner lacks %q:\n%s", want, b)
		}
	}
	if strings.Contains(b, "replace your real") {
		t.Errorf("banner warns about real keys it does not use:\n%s", b)
	}

	// Real keys for both: no mock at all, and the banner says which exports replace them.
	env[EnvOpenAIKey], env[EnvAnthropicKey] = "sk-test-not-real", "sk-ant-test-not-real"
	t.Setenv(EnvOpenAIKey, env[EnvOpenAIKey]) // the generated config is parsed against the real environment
	t.Setenv(EnvAnthropicKey, env[EnvAnthropicKey])
	p, err = Prepare(Options{Dir: t.TempDir(), Bin: fakeBin(t), Listen: "127.0.0.1:0", MockAddr: "127.0.0.1:0",
		OTLPAddr: "127.0.0.1:0", HealthAddr: "127.0.0.1:0", Getenv: func(k string) string { return env[k] }})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range p.Services {
		if s.Name == "mockupstream" {
			t.Errorf("the mock starts although both upstreams are real")
		}
	}
	b = p.Banner("dir")
	if !strings.Contains(b, "replace your real OPENAI_API_KEY and ANTHROPIC_API_KEY there") || strings.Contains(b, "x-mock-fail") {
		t.Errorf("banner:\n%s", b)
	}
}

// Loom's metrics are on an ops listener of their own: loom.yaml names it,
// and the banner's curl line goes there, not to the gateway's port.
func TestPrepare_MetricsOnTheOpsListener(t *testing.T) {
	p, err := Prepare(Options{Dir: t.TempDir(), Bin: fakeBin(t), Listen: "127.0.0.1:0", MockAddr: "127.0.0.1:0",
		OTLPAddr: "127.0.0.1:0", HealthAddr: "127.0.0.1:0",
		Getenv: func(k string) string { return map[string]string{EnvDatabaseURL: "postgres://db.example.com/loom"}[k] }})
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(EnvDatabaseURL, "postgres://db.example.com/loom") // as Loom's environment has it
	cfg, err := config.Load(p.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Ops.Listen == "" || cfg.Ops.Listen == cfg.Listen || p.MetricsURL != "http://"+cfg.Ops.Listen+"/metrics" {
		t.Fatalf("ops.listen %q (gateway %q), metrics URL %q", cfg.Ops.Listen, cfg.Listen, p.MetricsURL)
	}
	b := p.Banner("dir")
	if !strings.Contains(b, "curl -sS "+p.MetricsURL+"\n") || strings.Contains(b, p.LoomURL+"/metrics") {
		t.Fatalf("banner's metrics line does not name the ops listener %s:\n%s", p.MetricsURL, b)
	}
	// Both Prometheus scrape URLs are in the banner: Loom's and
	// otelcol-loom's own, which its config serves.
	if !strings.HasPrefix(p.CollectorMetricsURL, "http://127.0.0.1:") || !strings.Contains(b, p.CollectorMetricsURL) ||
		!strings.Contains(b, "#   loom          "+p.MetricsURL+"\n") {
		t.Fatalf("banner lacks the scrape URLs (%s, %s):\n%s", p.MetricsURL, p.CollectorMetricsURL, b)
	}
	col, err := os.ReadFile(filepath.Join(filepath.Dir(p.ConfigPath), "otelcol.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(strings.TrimSuffix(strings.TrimPrefix(p.CollectorMetricsURL, "http://"), "/metrics"))
	if !strings.Contains(string(col), "port: "+port+"\n") {
		t.Fatalf("otelcol.yaml does not serve its metrics on %s:\n%s", port, col)
	}
}

func TestChooseUpstream_LoomKeyInOpenAIKey_IsIgnored(t *testing.T) {
	env := map[string]string{EnvOpenAIKey: tenant.KeyPrefix + "abc"}
	up := ChooseUpstream(func(k string) string { return env[k] })
	if !up.Mock || !strings.Contains(up.Note, "ignored") {
		t.Errorf("ChooseUpstream = %+v, want the mock and a note that the key is ignored", up)
	}
}

func TestDemoKey_CreatedOnceWithMode0600(t *testing.T) {
	path := filepath.Join(t.TempDir(), "demo.key")
	k1, err := DemoKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(k1, tenant.KeyPrefix) {
		t.Errorf("key %q lacks the prefix %q", k1, tenant.KeyPrefix)
	}
	if fi, err := os.Stat(path); err != nil {
		t.Fatal(err)
	} else if runtime.GOOS != "windows" && fi.Mode().Perm() != 0o600 {
		t.Errorf("mode = %v, want 0600", fi.Mode().Perm())
	}
	k2, err := DemoKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if k1 != k2 {
		t.Errorf("second run got a different key")
	}
	if err := os.WriteFile(path, []byte("garbage\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := DemoKey(path); err == nil {
		t.Errorf("a key file without %s... was accepted", tenant.KeyPrefix)
	}
}

func TestLineWriter_PrefixesWholeLines(t *testing.T) {
	var out bytes.Buffer
	w := NewTerminal(&out).prefixed("svc | ")
	for _, s := range []string{"one\ntw", "o\n", "three"} {
		if _, err := w.Write([]byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	w.flush()
	if want := "svc | one\nsvc | two\nsvc | three\n"; out.String() != want {
		t.Errorf("got %q, want %q", out.String(), want)
	}
}

func newStack(t *testing.T, svcs ...Service) (*Stack, *bytes.Buffer) {
	var out bytes.Buffer
	return &Stack{Services: svcs, LogDir: t.TempDir(), Out: NewTerminal(&out),
		ReadyTimeout: 10 * time.Second, StopTimeout: 5 * time.Second}, &out
}

func TestStack_Interrupted_StopsEveryServiceAndReturnsNil(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no SIGTERM")
	}
	st, out := newStack(t, fakeServiceDef(t, "first", "serve"), fakeServiceDef(t, "second", "serve"))
	ctx, cancel := context.WithCancel(context.Background())
	if err := st.Start(ctx); err != nil {
		t.Fatal(err)
	}
	procs := append([]*proc(nil), st.procs...)
	cancel()
	if err := st.Wait(ctx); err != nil {
		t.Fatalf("Wait = %v, want nil", err)
	}
	for _, p := range procs {
		select {
		case <-p.done:
		default:
			t.Fatalf("%s still running", p.svc.Name)
		}
		if p.err != nil {
			t.Errorf("%s exited with %v, want a clean exit on SIGTERM", p.svc.Name, p.err)
		}
		b, err := os.ReadFile(filepath.Join(st.LogDir, p.svc.Name+".log"))
		if err != nil || !strings.Contains(string(b), "SIGTERM, exiting") {
			t.Errorf("%s.log = %q, %v; want the service's output", p.svc.Name, b, err)
		}
	}
	s := out.String()
	if !strings.Contains(s, "first  | fake service serve starting") || !strings.Contains(s, "second | fake service: SIGTERM") {
		t.Errorf("terminal output lacks prefixed lines:\n%s", s)
	}
	// Reverse order: second stops before first.
	if i, j := strings.Index(s, "second | fake service: SIGTERM"), strings.Index(s, "first  | fake service: SIGTERM"); i < 0 || j < i {
		t.Errorf("services did not stop in reverse order:\n%s", s)
	}
}

func TestStack_ServiceDies_WaitReturnsErrExited(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no SIGTERM")
	}
	crash := fakeServiceDef(t, "crasher", "crash")
	crash.Ready = nil
	st, _ := newStack(t, fakeServiceDef(t, "web", "serve"), crash)
	ctx := context.Background()
	if err := st.Start(ctx); err != nil {
		t.Fatal(err)
	}
	procs := append([]*proc(nil), st.procs...)
	err := st.Wait(ctx)
	if !errors.Is(err, ErrExited) || !strings.Contains(err.Error(), "crasher") || !strings.Contains(err.Error(), "exit status 3") {
		t.Fatalf("Wait = %v, want crasher's ErrExited with exit status 3", err)
	}
	select {
	case <-procs[0].done:
	default:
		t.Fatal("the surviving service was left running")
	}
}

func TestStack_ServiceExitsBeforeReady_StartFails(t *testing.T) {
	crash := fakeServiceDef(t, "crasher", "crash")
	crash.Ready = func(context.Context) error { return errors.New("not yet") }
	st, _ := newStack(t, crash)
	err := st.Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), "exited before it was ready") {
		t.Fatalf("Start = %v, want an exited-before-ready error", err)
	}
}

func TestStack_ServiceIgnoresSIGTERM_IsKilled(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no SIGTERM")
	}
	st, out := newStack(t, fakeServiceDef(t, "stubborn", "stubborn"))
	st.StopTimeout = 300 * time.Millisecond
	if err := st.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	p := st.procs[0]
	st.Stop()
	select {
	case <-p.done:
	default:
		t.Fatal("still running after Stop")
	}
	if !strings.Contains(out.String(), "killing it") {
		t.Errorf("no kill reported:\n%s", out.String())
	}
}

// TestDevstack_RealBinaries_AnswerTheBannerCurl runs the real stack when
// `make build` has put the binaries in bin/; it builds nothing itself. The
// database is a throwaway Postgres given as LOOM_DATABASE_URL, so the test
// leaves .loom alone.
func TestDevstack_RealBinaries_AnswerTheBannerCurl(t *testing.T) {
	bin, err := filepath.Abs(filepath.Join("..", "..", "bin"))
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range []string{"loom", "mockupstream", "otelcol-loom"} {
		if _, err := os.Stat(filepath.Join(bin, b)); err != nil {
			// A skip on a developer's machine; under CI=true (where .ci/run
			// runs `make build` first) a failure.
			prereq.Check(t, fmt.Errorf("%s in %s %w (run `make build` to include this test)", b, bin, prereq.ErrNotInstalled), prereq.ErrNotInstalled)
		}
	}
	dbURL := pgtest.Database(t, pgtest.Start(t))
	dir := t.TempDir()
	// Traces fan out to a second OTLP backend too (LOOM_OTLP_ENDPOINT):
	// the real otelcol-loom with both of devstack's configs.
	backend := &otlpBackend{}
	fanout := "http://" + startBackend(t, backend)
	p, err := Prepare(Options{Dir: dir, Bin: bin, Listen: "127.0.0.1:0", MockAddr: "127.0.0.1:0",
		OTLPAddr: "127.0.0.1:0", HealthAddr: "127.0.0.1:0",
		Getenv: func(k string) string { return map[string]string{EnvDatabaseURL: dbURL, EnvOTLPEndpoint: fanout}[k] }})
	if err != nil {
		t.Fatal(err)
	}
	if p.Postgres != nil || p.DatabaseURL != dbURL {
		t.Fatalf("plan runs its own Postgres (%v) or lost %s (%q)", p.Postgres, EnvDatabaseURL, p.DatabaseURL)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "otelcol.yaml")); err != nil || bytes.Contains(b, []byte(dbURL)) {
		t.Fatalf("otelcol.yaml (%v) holds the database URL:\n%s", err, b)
	}
	st, out := newStack(t, p.Services...)
	st.LogDir = dir
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// As Main does: the demo tenant and key into the tenant store, which
	// is all Loom serves.
	if _, err := p.SeedStore(ctx); err != nil {
		t.Fatal(err)
	}
	if err := st.Start(ctx); err != nil {
		t.Fatalf("Start: %v\n%s", err, out)
	}
	defer st.Stop()

	for _, tc := range []struct{ name, body, wantIn string }{
		{"unary", `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello"}]}`, `"object":"chat.completion"`},
		{"stream", `{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"Hello"}]}`, "data: [DONE]"},
	} {
		resp, b, err := postJSON(p.LoomURL+"/v1/chat/completions", tc.body, map[string]string{"Authorization": "Bearer " + p.Key})
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), tc.wantIn) {
			t.Errorf("%s: %s %s, want 200 with %q", tc.name, resp.Status, b, tc.wantIn)
		}
		if tc.name == "stream" && strings.Contains(string(b), `"usage"`) {
			t.Errorf("stream: the client got a usage chunk it did not ask for:\n%s", b)
		}
	}
	if err := awaitClientSpans(ctx, dbURL, 2, 30*time.Second); err != nil {
		t.Errorf("%v\n%s", err, out)
	}
	// Two calls, a SERVER and a CLIENT span each, at the fan-out's backend.
	for deadline := time.Now().Add(30 * time.Second); backend.spans.Load() < 4 && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
	if got := backend.spans.Load(); got < 4 {
		t.Errorf("the fan-out backend (%s) got %d spans, want the 2 calls' 4 at least\n%s", fanout, got, out)
	} else if psql, err := exec.LookPath(p.psql); err == nil {
		// The banner's line, as a shell runs it.
		line := psqlLine(psql, p.DatabaseURL)
		got, err := exec.Command("/bin/sh", "-c", line).CombinedOutput()
		if err != nil || !strings.Contains(string(got), " demo ") || !strings.Contains(string(got), "gpt-4o-mini") {
			t.Errorf("%s: %v\n%s", line, err, got)
		}
	}
	// The banner's audit line, as a shell runs it: one instance, one run
	// still running, 2 calls numbered and stored, no gap.
	if line := auditLine(p.loom, p.DatabaseURL); strings.Contains(p.Banner(dir), line) {
		got, err := exec.Command("/bin/sh", "-c", line).CombinedOutput()
		if err != nil || !strings.Contains(string(got), "running") || !strings.Contains(string(got), " 2 ") {
			t.Errorf("%s: %v\n%s", line, err, got)
		}
	} else {
		t.Errorf("the banner lacks the audit line %q:\n%s", line, p.Banner(dir))
	}
	// The banner's metrics line: on the ops listener, counting the calls;
	// the gateway's port does not serve it.
	if resp, err := http.Get(p.MetricsURL); err != nil {
		t.Error(err)
	} else {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), "loom_calls_total 2") {
			t.Errorf("%s: %s\n%s", p.MetricsURL, resp.Status, b)
		}
	}
	// otelcol-loom's own metrics, at the banner's other scrape URL: its
	// exporter queue and the postgres exporter's counters.
	if resp, err := http.Get(p.CollectorMetricsURL); err != nil {
		t.Error(err)
	} else {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), "otelcol_exporter_queue_size{") ||
			!strings.Contains(string(b), "\nloom_exporter_spans_inserted_total ") {
			t.Errorf("%s: %s\n%s", p.CollectorMetricsURL, resp.Status, b)
		}
	}
	if resp, err := http.Get(p.LoomURL + "/metrics"); err != nil || resp.StatusCode != http.StatusNotFound {
		t.Errorf("the gateway's /metrics: %v %v, want 404", resp, err)
	} else {
		resp.Body.Close()
	}
	// The demo tenant's models include the Claude ones, and the banner's
	// failover line gets one clean answer: the first mock deployment fails
	// the call once, the second serves it.
	req, _ := http.NewRequest(http.MethodGet, p.LoomURL+"/v1/models", nil)
	req.Header.Set("Authorization", "Bearer "+p.Key)
	if resp, err := http.DefaultClient.Do(req); err != nil {
		t.Error(err)
	} else {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, m := range DemoClaudeModels {
			if !strings.Contains(string(b), `"`+m+`"`) {
				t.Errorf("/v1/models lacks %s: %s", m, b)
			}
		}
	}
	if resp, b, err := postJSON(p.LoomURL+"/v1/chat/completions", `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello"}]}`,
		map[string]string{"Authorization": "Bearer " + p.Key, "x-mock-fail": "500", "x-mock-fail-count": "1", "x-mock-fail-key": "devstack-test"}); err != nil {
		t.Error(err)
	} else {
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), `"object":"chat.completion"`) {
			t.Errorf("failover: %s %s, want the second deployment's answer", resp.Status, b)
		}
	}
	// The Claude models, as the banner's lines use them: an OpenAI client
	// (translated to the mock's Messages API and back) and an Anthropic
	// client on /v1/messages (relayed as it is).
	claude := DemoClaudeModels[0]
	for _, tc := range []struct{ name, path, body, wantIn string }{
		{"claude via chat", "/v1/chat/completions", `{"model":"` + claude + `","messages":[{"role":"user","content":"Hello"}]}`,
			`"object":"chat.completion"`},
		{"claude via messages", "/v1/messages", `{"model":"` + claude + `","max_tokens":64,"messages":[{"role":"user","content":"Hello"}]}`,
			`"type":"message"`},
		{"claude via messages, streamed", "/v1/messages",
			`{"model":"` + claude + `","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"Hello"}]}`, "event: message_stop"},
	} {
		auth := map[string]string{"Authorization": "Bearer " + p.Key}
		if tc.path == "/v1/messages" {
			auth = map[string]string{"x-api-key": p.Key, "anthropic-version": "2023-06-01"}
		}
		resp, b, err := postJSON(p.LoomURL+tc.path, tc.body, auth)
		if err != nil {
			t.Error(err)
			continue
		}
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), tc.wantIn) {
			t.Errorf("%s: %s %s, want 200 with %q", tc.name, resp.Status, b, tc.wantIn)
		}
	}
	// The banner's console: the demo key logs in and sees the calls.
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	// As a browser does: the login form first, for its CSRF token and the
	// nonce cookie it is bound to.
	loginURL := strings.TrimSuffix(p.ConsoleURL, "/") + "/login"
	resp, err := browser.Get(loginURL)
	if err != nil {
		t.Fatalf("console login form: %v\n%s", err, out)
	}
	form, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindSubmatch(form)
	if m == nil {
		t.Fatalf("console login form has no CSRF token:\n%s", form)
	}
	resp, err = browser.PostForm(loginURL, url.Values{"key": {p.Key}, "csrf": {string(m[1])}})
	if err != nil {
		t.Fatalf("console login: %v\n%s", err, out)
	}
	resp.Body.Close()
	if resp, err = browser.Get(p.ConsoleURL + "calls"); err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), "gpt-4o-mini") || strings.Contains(string(b), p.Key) {
		t.Errorf("console calls as the demo tenant: %s\n%s", resp.Status, b)
	}
	// A tenant made in the store shows on the admin's Tenants page.
	adminSeesNewTenant(t, p)
	procs := append([]*proc(nil), st.procs...)
	cancel()
	if err := st.Wait(ctx); err != nil {
		t.Fatalf("Wait = %v", err)
	}
	for _, pr := range procs {
		if pr.err != nil {
			t.Errorf("%s exited with %v after SIGTERM\n%s", pr.svc.Name, pr.err, out)
		}
	}
	if b, err := os.ReadFile(filepath.Join(dir, "loom.log")); err != nil || !strings.Contains(string(b), "tenant=demo") {
		t.Errorf("loom.log lacks the logged calls: %v\n%s", err, b)
	}
}

// awaitClientSpans polls loom.spans until it holds want CLIENT spans of
// the demo tenant with their token counts (one per call), the rows the
// banner's psql line lists.
func awaitClientSpans(ctx context.Context, dbURL string, want int, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	var got int
	for {
		// The table appears once the collector has migrated the schema.
		err = conn.QueryRow(ctx, `SELECT count(*) FROM loom.spans
			WHERE kind = 'client' AND tenant_id = $1 AND input_tokens IS NOT NULL`, DemoTenant).Scan(&got)
		if err == nil && got >= want {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("loom.spans has %d client spans of tenant %s with tokens after %s, want %d (last error: %w)",
				got, DemoTenant, timeout, want, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// The kernel may offer a port that was just checked and closed for the next
// ":0": a plan never hands the same address to two services.
func TestPickAddr_NeverTheSameAddressTwiceInAPlan(t *testing.T) {
	var p Plan
	first, err := p.pickAddr("one", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// The same address asked for again, as a fixed default that is free:
	// the plan moves the second service elsewhere.
	second, err := p.pickAddr("two", first)
	if err != nil {
		t.Fatal(err)
	}
	if second == first {
		t.Fatalf("both services got %s", first)
	}
}

// Every demo model has a price and the demo tenant a daily budget, so `make
// run` shows what a call cost and what is left.
func TestRenderConfig_EveryDemoModelPricedAndTheTenantBudgeted(t *testing.T) {
	_, hash, err := tenant.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	ups := []Upstream{ChooseUpstream(func(string) string { return "" }), ChooseAnthropic(func(string) string { return "" })}
	for i := range ups {
		ups[i].BaseURL = "http://127.0.0.1:9090/v1"
	}
	b := RenderConfig("127.0.0.1:8080", ups, hash, "", "")
	cfg, err := config.Parse(b)
	if err != nil {
		t.Fatalf("config.Parse: %v\n%s", err, b)
	}
	entries, err := cfg.PriceEntries()
	if err != nil {
		t.Fatal(err)
	}
	priced := map[string]bool{}
	for _, e := range entries {
		priced[e.Model] = true
	}
	for _, m := range append(append([]string(nil), DemoModels...), DemoClaudeModels...) {
		if !priced[m] {
			t.Errorf("demo model %s has no price", m)
		}
	}
	if len(cfg.Tenants) != 1 || len(cfg.Tenants[0].Budgets) != 1 || cfg.Tenants[0].Budgets[0].Period != "day" {
		t.Errorf("demo tenant budgets = %+v, want one daily budget", cfg.Tenants[0].Budgets)
	}
}

// postJSON posts a JSON body with headers and reads the whole answer.
func postJSON(url, body string, headers map[string]string) (*http.Response, []byte, error) {
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}
