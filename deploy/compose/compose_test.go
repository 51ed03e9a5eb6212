package compose

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"maps"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/dotenv"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/valyala/fasthttp"
	"go.opentelemetry.io/collector/otelcol"
	"go.yaml.in/yaml/v3"

	"github.com/loom-gateway/loom/bench/mockupstream"
	"github.com/loom-gateway/loom/deploy/prereq"
	"github.com/loom-gateway/loom/otelcol/distribution"
	loomcli "github.com/loom-gateway/loom/proxy/cli"
	"github.com/loom-gateway/loom/proxy/config"
	"github.com/loom-gateway/loom/proxy/ledger"
	"github.com/loom-gateway/loom/proxy/server"
	"github.com/loom-gateway/loom/proxy/tenancy"
)

// root is the repository root, relative to this package.
const root = "../.."

// The deploy contract's paths inside the images.
const (
	loomConfigPath      = "/etc/loom/loom.yaml"
	collectorConfigPath = "/etc/otelcol-loom/config.yaml"
	alertRules          = "deploy/prometheus/loom-alerts.yaml"
)

// The services compose.yaml must have.
var wantServices = []string{"grafana", "grafana-db-role", "loom", "mock", "otelcol-loom", "postgres", "prometheus", "redis"}

// exampleEnv is .env.example with every empty value filled in, as a user
// is told to: letters and digits, as the example says (they go into URLs).
func exampleEnv(t *testing.T) map[string]string {
	t.Helper()
	env, err := dotenv.Read(".env.example")
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range env {
		if v == "" {
			env[k] = "test" + strings.ToLower(strings.ReplaceAll(k, "_", ""))
		}
	}
	// LOOM_LEDGER_KEY, when given, is the base64 of a 32-byte seed.
	env[ledger.EnvKey] = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
	return env
}

func load(t *testing.T, env map[string]string) (*types.Project, error) {
	t.Helper()
	var list []string
	for k, v := range env {
		list = append(list, k+"="+v)
	}
	opts, err := cli.NewProjectOptions([]string{"compose.yaml"},
		cli.WithWorkingDirectory("."),
		cli.WithEnv(list),
		cli.WithInterpolation(true),
		cli.WithNormalization(true),
		cli.WithConsistency(true),
		cli.WithResolvedPaths(true),
	)
	if err != nil {
		return nil, err
	}
	return opts.LoadProject(context.Background())
}

func project(t *testing.T) *types.Project {
	t.Helper()
	p, err := load(t, exampleEnv(t))
	if err != nil {
		t.Fatalf("load compose.yaml: %v", err)
	}
	return p
}

func service(t *testing.T, p *types.Project, name string) types.ServiceConfig {
	t.Helper()
	s, err := p.GetService(name)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// environ is a service's environment, every variable set.
func environ(t *testing.T, s types.ServiceConfig) map[string]string {
	t.Helper()
	env := map[string]string{}
	for k, v := range s.Environment {
		if v == nil {
			t.Errorf("service %s: %s has no value", s.Name, k)
			continue
		}
		env[k] = *v
	}
	return env
}

// setenv puts a service's environment into the test's.
func setenv(t *testing.T, env map[string]string) {
	for k, v := range env {
		t.Setenv(k, v)
	}
}

// bindSource is the repository file (relative to the root) bind-mounted at
// target in s, or "" when nothing is.
func bindSource(t *testing.T, s types.ServiceConfig, target string) string {
	t.Helper()
	for _, v := range s.Volumes {
		if v.Type == types.VolumeTypeBind && v.Target == target {
			return repoRel(t, v.Source)
		}
	}
	return ""
}

// volumeAt is the named volume mounted at target or above it in s.
func volumeAt(s types.ServiceConfig, path string) string {
	for _, v := range s.Volumes {
		if v.Type == types.VolumeTypeVolume && (path == v.Target || strings.HasPrefix(path, strings.TrimSuffix(v.Target, "/")+"/")) {
			return v.Source
		}
	}
	return ""
}

func repoRel(t *testing.T, abs string) string {
	t.Helper()
	r, err := filepath.Abs(root)
	if err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(r, abs)
	if err != nil || strings.HasPrefix(rel, "..") {
		t.Fatalf("%s is outside the repository", abs)
	}
	return filepath.ToSlash(rel)
}

// probeURL is the URL a healthcheck hands to /httpprobe.
func probeURL(t *testing.T, s types.ServiceConfig) *url.URL {
	t.Helper()
	if s.HealthCheck == nil || len(s.HealthCheck.Test) < 3 || s.HealthCheck.Test[0] != "CMD" || s.HealthCheck.Test[1] != "/httpprobe" {
		t.Fatalf("service %s: healthcheck %v, want [CMD /httpprobe URL] (its image has no shell)", s.Name, s.HealthCheck)
	}
	u, err := url.Parse(s.HealthCheck.Test[len(s.HealthCheck.Test)-1])
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func port(t *testing.T, addr string) string {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("address %q: %v", addr, err)
	}
	return p
}

// listens reports whether s publishes or exposes port.
func listens(s types.ServiceConfig, p string) bool {
	for _, sp := range s.Ports {
		if strconv.Itoa(int(sp.Target)) == p {
			return true
		}
	}
	return slices.Contains(s.Expose, p)
}

func loomConfig(t *testing.T, p *types.Project) *config.Config {
	t.Helper()
	loom := service(t, p, "loom")
	src := bindSource(t, loom, loomConfigPath)
	if src == "" {
		t.Fatalf("loom: nothing is mounted at %s, the path the image's CMD reads", loomConfigPath)
	}
	setenv(t, environ(t, loom))
	cfg, err := config.Load(filepath.Join(root, src))
	if err != nil {
		t.Fatalf("%s in loom's environment: %v", src, err)
	}
	return cfg
}

func TestCompose_LoadsWithComposeSpecLoader_EveryServicePinnedOrBuiltFromTheContractsDockerfiles(t *testing.T) {
	p := project(t)
	if got := p.ServiceNames(); !slices.Equal(sorted(got), wantServices) {
		t.Fatalf("services %v, want %v", sorted(got), wantServices)
	}
	dockerfiles := map[string]string{
		"loom": "deploy/docker/loom.Dockerfile", "otelcol-loom": "deploy/docker/otelcol-loom.Dockerfile",
		"mock": "deploy/docker/mockupstream.Dockerfile",
	}
	for _, s := range p.Services {
		if want, ok := dockerfiles[s.Name]; ok {
			if s.Build == nil {
				t.Errorf("%s: no build section, want %s", s.Name, want)
				continue
			}
			if ctx := repoRel(t, s.Build.Context); ctx != "." {
				t.Errorf("%s: build context %s, want the repository root (the Dockerfiles' context)", s.Name, ctx)
			}
			if s.Build.Dockerfile != want {
				t.Errorf("%s: dockerfile %s, want %s", s.Name, s.Build.Dockerfile, want)
			}
			if _, err := os.Stat(filepath.Join(root, want)); err != nil {
				t.Error(err)
			}
			for _, a := range []string{"VERSION", "REVISION"} {
				if v := s.Build.Args[a]; v == nil || *v == "" {
					t.Errorf("%s: build arg %s unset: the image's version labels would be the defaults", s.Name, a)
				}
			}
			continue
		}
		name, tag, ok := strings.Cut(s.Image, ":")
		if !ok || name == "" || tag == "" || tag == "latest" {
			t.Errorf("%s: image %q, want a pinned tag", s.Name, s.Image)
		}
	}
}

func TestCompose_SecretMissingFromEnv_RefusesToLoadNamingTheVariable(t *testing.T) {
	for _, secret := range []string{"POSTGRES_PASSWORD", "REDIS_PASSWORD", "LOOM_ADMIN_TOKEN", "GRAFANA_ADMIN_PASSWORD", "GRAFANA_PG_PASSWORD"} {
		env := exampleEnv(t)
		env[secret] = ""
		_, err := load(t, env)
		if err == nil || !strings.Contains(err.Error(), secret) || !strings.Contains(err.Error(), ".env") {
			t.Errorf("%s empty: load error %v, want one naming %s and .env", secret, err, secret)
		}
	}
}

// secretName is a variable that holds a secret (or a URL that may carry one).
var secretName = regexp.MustCompile(`PASSWORD|TOKEN|SECRET|_KEY$|_URL$|AUTH`)

// TestCompose_Secrets_OnlyFromEnvNeverInTheFiles reads compose.yaml before
// interpolation: every secret-bearing variable of every service takes its
// secret from a ${VARIABLE} that .env.example lists with an empty value,
// and .env is ignored by git.
func TestCompose_Secrets_OnlyFromEnvNeverInTheFiles(t *testing.T) {
	raw, err := os.ReadFile("compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Services map[string]struct {
			Environment map[string]string `yaml:"environment"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	example, err := dotenv.Read(".env.example")
	if err != nil {
		t.Fatal(err)
	}
	ref := regexp.MustCompile(`\$\{([A-Z0-9_]+)[:?}-]`)
	secrets := 0
	for name, s := range doc.Services {
		for k, v := range s.Environment {
			if !secretName.MatchString(k) || strings.HasPrefix(v, "http://") {
				continue // a plain URL to another service carries no credential
			}
			m := ref.FindAllStringSubmatch(v, -1)
			if len(m) == 0 {
				t.Errorf("%s: %s=%q is not from the environment", name, k, v)
			}
			for _, r := range m {
				secrets++
				if val, ok := example[r[1]]; !ok || val != "" {
					t.Errorf("%s: %s reads ${%s}, which .env.example must list with an empty value (has %q, listed %v)", name, k, r[1], val, ok)
				}
			}
		}
	}
	if secrets < 5 {
		t.Errorf("found %d secrets read from the environment, want the database, Redis, admin and Grafana ones", secrets)
	}
	ignore, err := os.ReadFile(".gitignore")
	if err != nil || !slices.Contains(strings.Fields(string(ignore)), ".env") {
		t.Errorf("deploy/compose/.gitignore does not ignore .env (%v)", err)
	}
}

func TestCompose_LoomConfig_LoadsStrictlyInTheServicesEnvironment_EveryVariableItNamesSet(t *testing.T) {
	p := project(t)
	cfg := loomConfig(t, p)
	env := environ(t, service(t, p, "loom"))

	named := map[string]string{
		"store.database_url_env": cfg.Store.DatabaseURLEnv, "store.secret_key_env": cfg.Store.SecretKeyEnv,
		"redis.url_env": cfg.Redis.URLEnv, "admin.token_env": cfg.Admin.TokenEnv,
		"console.database_url_env": cfg.Console.DatabaseURLEnv,
	}
	for i, d := range cfg.Deployments {
		named[fmt.Sprintf("deployments[%d].api_key_env", i)] = d.APIKeyEnv
	}
	read := map[string]bool{"GOGC": true, "GOMEMLIMIT": true, loomcli.EnvDatabaseURL: true, loomcli.EnvSecretKey: true, loomcli.EnvActor: true}
	if loom := service(t, p, "loom"); loom.MemLimit > 0 {
		if n, ok := goMemLimit(env["GOMEMLIMIT"]); !ok || n >= int64(loom.MemLimit) {
			t.Errorf("GOMEMLIMIT %q with mem_limit %d: want a limit below the container's, or with GOGC=400 the heap outgrows it",
				env["GOMEMLIMIT"], loom.MemLimit)
		}
	}
	for field, v := range named {
		if v == "" {
			continue
		}
		read[v] = true
		if _, ok := env[v]; !ok {
			t.Errorf("loom.yaml's %s names %s, which the loom service does not set", field, v)
		}
	}
	for k := range env {
		if !read[k] {
			t.Errorf("the loom service sets %s, which neither loom.yaml nor the loom command reads", k)
		}
	}
	on := map[string]bool{"store": cfg.Store.Enabled(), "redis": cfg.Redis.Enabled(), "admin": cfg.Admin.Listen != "",
		"console": cfg.Console.Listen != "", "ops": cfg.Ops.Listen != "", "tracing": cfg.Tracing.Endpoint != ""}
	for part, ok := range on {
		if !ok {
			t.Errorf("loom.yaml leaves %s off: compose's stack runs it", part)
		}
	}
}

// goMemLimit reads a GOMEMLIMIT value as the Go runtime does (a number
// with an optional B, KiB, MiB, GiB or TiB suffix).
func goMemLimit(v string) (int64, bool) {
	mult := int64(1)
	for i, suffix := range []string{"TiB", "GiB", "MiB", "KiB", "B"} {
		if s, ok := strings.CutSuffix(v, suffix); ok {
			mult, v = int64(1)<<(10*(4-i)), s
			break
		}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	return n * mult, err == nil && n > 0
}

func TestCompose_LoomListeners_BindEveryInterfaceAndArePublishedOnLoopbackOnly(t *testing.T) {
	p := project(t)
	cfg := loomConfig(t, p)
	loom := service(t, p, "loom")
	for field, addr := range map[string]string{"listen": cfg.Listen, "ops.listen": cfg.Ops.Listen,
		"admin.listen": cfg.Admin.Listen, "console.listen": cfg.Console.Listen} {
		host, pt, err := net.SplitHostPort(addr)
		if err != nil {
			t.Fatal(err)
		}
		if host != "0.0.0.0" && host != "" {
			t.Errorf("%s %s: in a container it must bind every interface, or nothing outside reaches it", field, addr)
		}
		if !listens(loom, pt) {
			t.Errorf("%s port %s is neither published nor exposed by the loom service", field, pt)
		}
	}
	if want := port(t, config.DefaultListen); port(t, cfg.Listen) != want {
		t.Errorf("the gateway listens on %s, want the default port %s (the images' EXPOSE and the README's)", cfg.Listen, want)
	}
	for _, s := range p.Services {
		for _, sp := range s.Ports {
			if sp.HostIP != "127.0.0.1" {
				t.Errorf("%s publishes %d on %q, want 127.0.0.1 (nothing open to the network by default)", s.Name, sp.Target, sp.HostIP)
			}
		}
	}
}

// TestCompose_LoomHealthcheckAndScrape_AnsweredByTheOpsHandler builds the
// gateway from compose's config and asks its ops handler the healthcheck's
// path and the Prometheus job's metrics path.
func TestCompose_LoomHealthcheckAndScrape_AnsweredByTheOpsHandler(t *testing.T) {
	p := project(t)
	cfg := loomConfig(t, p)
	srv, err := server.New(cfg, server.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ops := srv.OpsHandler()
	get := func(path string) (int, string) {
		var ctx fasthttp.RequestCtx
		ctx.Request.Header.SetMethod(fasthttp.MethodGet)
		ctx.Request.SetRequestURI(path)
		ops(&ctx)
		return ctx.Response.StatusCode(), string(ctx.Response.Body())
	}

	hc := probeURL(t, service(t, p, "loom"))
	if hc.Port() != port(t, cfg.Ops.Listen) {
		t.Errorf("healthcheck %s: port %s, want the ops listener's %s", hc, hc.Port(), port(t, cfg.Ops.Listen))
	}
	if code, body := get(hc.Path); code != fasthttp.StatusOK || !strings.Contains(body, `"ok"`) {
		t.Errorf("ops handler GET %s: %d %s", hc.Path, code, body)
	}

	job := scrapeJob(t, "loom")
	if len(job.targets) != 1 || job.targets[0] != "loom:"+port(t, cfg.Ops.Listen) {
		t.Errorf("prometheus job loom scrapes %v, want [loom:%s] (ops.listen)", job.targets, port(t, cfg.Ops.Listen))
	}
	code, body := get(job.path)
	if code != fasthttp.StatusOK || !strings.Contains(body, "loom_") {
		t.Errorf("ops handler GET %s: %d, want 200 with loom_ metrics; body %.200q", job.path, code, body)
	}
}

// TestCompose_MockAndTracing_LoomReachesTheServicesByName checks that the
// deployments and the tracing endpoint name the mock's and the collector's
// service and port, that the mock's healthcheck path is one the mock
// serves, and that the demo models file validates against the deployments.
func TestCompose_MockAndTracing_LoomReachesTheServicesByName(t *testing.T) {
	p := project(t)
	cfg := loomConfig(t, p)
	mock := service(t, p, "mock")
	addr := ""
	for i, a := range mock.Command {
		if a == "-addr" && i+1 < len(mock.Command) {
			addr = mock.Command[i+1]
		}
	}
	if addr == "" {
		t.Fatalf("mock command %v: no -addr (its default is loopback, unreachable from loom)", mock.Command)
	}
	mockPort := port(t, addr)
	for _, d := range cfg.Deployments {
		u, err := url.Parse(d.BaseURL)
		if err != nil {
			t.Fatal(err)
		}
		if u.Hostname() == "mock" && u.Port() != mockPort {
			t.Errorf("deployment %s: %s, but the mock listens on %s", d.Name, d.BaseURL, addr)
		}
	}
	hc := probeURL(t, mock)
	if hc.Port() != mockPort {
		t.Errorf("mock healthcheck %s: port, want %s", hc, mockPort)
	}
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.SetMethod(fasthttp.MethodGet)
	ctx.Request.SetRequestURI(hc.Path)
	mockupstream.New(mockupstream.Config{}).Handler()(&ctx)
	if ctx.Response.StatusCode() != fasthttp.StatusOK {
		t.Errorf("mock GET %s: %d", hc.Path, ctx.Response.StatusCode())
	}

	u, err := url.Parse(cfg.Tracing.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	grpcPort := port(t, collectorConfig(t, p).Receivers.OTLP.Protocols.GRPC.Endpoint)
	if u.Hostname() != "otelcol-loom" || u.Port() != grpcPort || cfg.Tracing.Protocol != config.TracingGRPC {
		t.Errorf("tracing %s over %s, want http://otelcol-loom:%s over grpc (the collector's OTLP gRPC receiver)",
			cfg.Tracing.Endpoint, cfg.Tracing.Protocol, grpcPort)
	}
	loom := service(t, p, "loom")
	if v := volumeAt(loom, cfg.Tracing.Spool.Dir); v == "" {
		t.Errorf("tracing.spool.dir %s is on no named volume: the spool would not outlive the container", cfg.Tracing.Spool.Dir)
	}

	// The README's `loom tenants models demo -file ...` reads this.
	src := bindSource(t, loom, "/etc/loom/demo-models.yaml")
	if src == "" {
		t.Fatal("loom: nothing mounted at /etc/loom/demo-models.yaml")
	}
	b, err := os.ReadFile(filepath.Join(root, src))
	if err != nil {
		t.Fatal(err)
	}
	var models []tenancy.Model
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&models); err != nil {
		t.Fatalf("%s: %v", src, err)
	}
	deployments := map[string]bool{}
	for _, d := range cfg.Deployments {
		deployments[d.Name] = true
	}
	demo := tenancy.Tenant{ID: "demo", Models: models}
	if err := tenancy.ValidateTenant(demo, func(n string) bool { return deployments[n] }); err != nil {
		t.Errorf("%s against loom.yaml's deployments: %v", src, err)
	}
	for _, m := range models {
		if !slices.ContainsFunc(cfg.Prices, func(pr config.Price) bool { return pr.Model == m.Name }) {
			t.Errorf("demo model %s has no price in loom.yaml: its calls would cost nothing", m.Name)
		}
	}
}

// collector is what the checks read of otelcol.yaml.
type collector struct {
	Receivers struct {
		OTLP struct {
			Protocols struct {
				GRPC struct{ Endpoint string } `yaml:"grpc"`
				HTTP struct{ Endpoint string } `yaml:"http"`
			} `yaml:"protocols"`
		} `yaml:"otlp"`
	} `yaml:"receivers"`
	Extensions struct {
		FileStorage struct {
			Directory  string `yaml:"directory"`
			Compaction struct {
				Directory string `yaml:"directory"`
			} `yaml:"compaction"`
		} `yaml:"file_storage"`
		HealthCheck struct{ Endpoint string } `yaml:"health_check"`
	} `yaml:"extensions"`
	Service struct {
		Telemetry struct {
			Metrics struct {
				Readers []struct {
					Pull struct {
						Exporter struct {
							Prometheus struct {
								Host string
								Port int
							} `yaml:"prometheus"`
						} `yaml:"exporter"`
					} `yaml:"pull"`
				} `yaml:"readers"`
			} `yaml:"metrics"`
		} `yaml:"telemetry"`
	} `yaml:"service"`
}

func collectorFile(t *testing.T, p *types.Project) string {
	t.Helper()
	src := bindSource(t, service(t, p, "otelcol-loom"), collectorConfigPath)
	if src == "" {
		t.Fatalf("otelcol-loom: nothing is mounted at %s, the path the image's CMD reads", collectorConfigPath)
	}
	return filepath.Join(root, src)
}

func collectorConfig(t *testing.T, p *types.Project) collector {
	t.Helper()
	b, err := os.ReadFile(collectorFile(t, p))
	if err != nil {
		t.Fatal(err)
	}
	var c collector
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestCompose_CollectorConfig_ValidatesAsOtelcolLoomInTheServicesEnvironment
// runs otelcol-loom's own `validate` command (its components, its config
// resolution) on the mounted config, with the service's environment.
func TestCompose_CollectorConfig_ValidatesAsOtelcolLoomInTheServicesEnvironment(t *testing.T) {
	p := project(t)
	col := service(t, p, "otelcol-loom")
	env := environ(t, col)
	setenv(t, env)
	path := collectorFile(t, p)
	cmd := otelcol.NewCommand(distribution.Settings("test", ""))
	cmd.SetArgs([]string{"validate", "--config", "file:" + path})
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	if err := cmd.Execute(); err != nil {
		t.Fatalf("otelcol-loom validate %s: %v\n%s", path, err, out.String())
	}
	if !slices.Equal(col.Command, []string{"--config", collectorConfigPath}) {
		t.Errorf("otelcol-loom command %v, want [--config %s]", col.Command, collectorConfigPath)
	}

	// Every ${env:NAME} it reads is set, and the service sets nothing else
	// than those and the ledger's key, which the exporter reads itself.
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	read := map[string]bool{ledger.EnvKey: true}
	for _, m := range regexp.MustCompile(`\$\{env:([A-Za-z0-9_]+)`).FindAllStringSubmatch(string(b), -1) {
		read[m[1]] = true
		if _, ok := env[m[1]]; !ok {
			t.Errorf("otelcol.yaml reads ${env:%s}, which the otelcol-loom service does not set", m[1])
		}
	}
	for k := range env {
		if !read[k] {
			t.Errorf("the otelcol-loom service sets %s, which neither otelcol.yaml nor otelcol-loom reads", k)
		}
	}
}

func TestCompose_CollectorPorts_HealthcheckQueueVolumeAndScrapeLineUp(t *testing.T) {
	p := project(t)
	c := collectorConfig(t, p)
	col := service(t, p, "otelcol-loom")
	for what, addr := range map[string]string{"otlp grpc": c.Receivers.OTLP.Protocols.GRPC.Endpoint,
		"otlp http": c.Receivers.OTLP.Protocols.HTTP.Endpoint, "health_check": c.Extensions.HealthCheck.Endpoint} {
		host, pt, err := net.SplitHostPort(addr)
		if err != nil {
			t.Fatalf("%s endpoint %q: %v", what, addr, err)
		}
		if host != "0.0.0.0" {
			t.Errorf("%s endpoint %s: in a container it must bind every interface", what, addr)
		}
		if !listens(col, pt) {
			t.Errorf("%s port %s is neither published nor exposed by otelcol-loom", what, pt)
		}
	}
	hc := probeURL(t, col)
	if hc.Port() != port(t, c.Extensions.HealthCheck.Endpoint) || hc.Path != "/" {
		t.Errorf("healthcheck %s, want the health_check extension's http://127.0.0.1:%s/", hc, port(t, c.Extensions.HealthCheck.Endpoint))
	}
	fsx := c.Extensions.FileStorage
	for _, dir := range []string{fsx.Directory, fsx.Compaction.Directory} {
		if volumeAt(col, dir) == "" {
			t.Errorf("file_storage directory %s is on no named volume: the persistent queue would die with the container", dir)
		}
	}
	readers := c.Service.Telemetry.Metrics.Readers
	if len(readers) != 1 {
		t.Fatalf("%d telemetry metric readers, want one pull reader for Prometheus", len(readers))
	}
	prom := readers[0].Pull.Exporter.Prometheus
	mp := strconv.Itoa(prom.Port)
	if prom.Host != "0.0.0.0" || !listens(col, mp) {
		t.Errorf("collector metrics on %s:%d: want 0.0.0.0, exposed", prom.Host, prom.Port)
	}
	job := scrapeJob(t, "otelcol-loom")
	if !slices.Equal(job.targets, []string{"otelcol-loom:" + mp}) {
		t.Errorf("prometheus job otelcol-loom scrapes %v, want [otelcol-loom:%s]", job.targets, mp)
	}
}

// scrape is one Prometheus job of prometheus.yml.
type scrape struct {
	path    string
	targets []string
}

type promConfig struct {
	Global struct {
		ScrapeInterval string `yaml:"scrape_interval"`
	} `yaml:"global"`
	RuleFiles     []string `yaml:"rule_files"`
	ScrapeConfigs []struct {
		JobName       string `yaml:"job_name"`
		MetricsPath   string `yaml:"metrics_path"`
		StaticConfigs []struct {
			Targets []string `yaml:"targets"`
		} `yaml:"static_configs"`
	} `yaml:"scrape_configs"`
}

func readProm(t *testing.T) promConfig {
	t.Helper()
	b, err := os.ReadFile("prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	var c promConfig
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

func scrapeJob(t *testing.T, name string) scrape {
	t.Helper()
	for _, j := range readProm(t).ScrapeConfigs {
		if j.JobName != name {
			continue
		}
		s := scrape{path: cmpOr(j.MetricsPath, "/metrics")}
		for _, sc := range j.StaticConfigs {
			s.targets = append(s.targets, sc.Targets...)
		}
		return s
	}
	t.Fatalf("prometheus.yml has no job %s", name)
	return scrape{}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func TestCompose_Prometheus_ScrapesServicesThatListenThere_LoadsTheAlertRulesFile(t *testing.T) {
	p := project(t)
	prom := service(t, p, "prometheus")
	if bindSource(t, prom, "/etc/prometheus/prometheus.yml") != "deploy/compose/prometheus.yml" {
		t.Error("prometheus: deploy/compose/prometheus.yml is not mounted at /etc/prometheus/prometheus.yml")
	}
	if !slices.Contains(prom.Command, "--config.file=/etc/prometheus/prometheus.yml") {
		t.Errorf("prometheus command %v does not read /etc/prometheus/prometheus.yml", prom.Command)
	}
	c := readProm(t)
	jobs := 0
	for _, j := range c.ScrapeConfigs {
		for _, sc := range j.StaticConfigs {
			for _, target := range sc.Targets {
				jobs++
				host, pt, err := net.SplitHostPort(target)
				if err != nil {
					t.Fatalf("job %s target %q: %v", j.JobName, target, err)
				}
				if host == "localhost" {
					host = "prometheus"
				}
				s, err := p.GetService(host)
				if err != nil {
					t.Errorf("job %s target %s: no service %s", j.JobName, target, host)
					continue
				}
				if !listens(s, pt) {
					t.Errorf("job %s target %s: the %s service neither publishes nor exposes %s", j.JobName, target, host, pt)
				}
			}
		}
	}
	if jobs < 3 {
		t.Errorf("%d scrape targets, want loom, otelcol-loom and prometheus", jobs)
	}
	if len(c.RuleFiles) != 1 {
		t.Fatalf("rule_files %v, want the one alert rules file", c.RuleFiles)
	}
	if src := bindSource(t, prom, c.RuleFiles[0]); src != alertRules {
		t.Errorf("rule file %s is mounted from %q, want %s (the rules the Helm chart ships too)", c.RuleFiles[0], src, alertRules)
	}
}

// TestCompose_PrometheusConfig_PassesPromtoolCheckWithItsMountsInPlace
// runs promtool check config on prometheus.yml as the prometheus service
// would read it: each rule file at the repository file mounted there.
func TestCompose_PrometheusConfig_PassesPromtoolCheckWithItsMountsInPlace(t *testing.T) {
	promtool, err := prereq.Program("promtool")
	if err != nil {
		prereq.Check(t, fmt.Errorf("%w (install Debian's prometheus package)", err), prereq.ErrNotInstalled)
	}
	p := project(t)
	prom := service(t, p, "prometheus")
	b, err := os.ReadFile("prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	rules, _ := doc["rule_files"].([]any)
	for i, r := range rules {
		src := bindSource(t, prom, r.(string))
		if src == "" {
			t.Fatalf("rule file %v is not mounted into the prometheus service", r)
		}
		abs, err := filepath.Abs(filepath.Join(root, src))
		if err != nil {
			t.Fatal(err)
		}
		rules[i] = abs
	}
	out, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "prometheus.yml")
	if err := os.WriteFile(path, out, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), promtool, "check", "config", path)
	if res, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool check config: %v\n%s", err, res)
	}
}

func TestCompose_BindMounts_EverySourceExistsInTheRepoAndIsReadOnly(t *testing.T) {
	p := project(t)
	n := 0
	for _, s := range p.Services {
		for _, v := range s.Volumes {
			if v.Type != types.VolumeTypeBind {
				continue
			}
			n++
			rel := repoRel(t, v.Source)
			if !v.ReadOnly {
				t.Errorf("%s: bind mount %s -> %s is writable: a container must not change the repository", s.Name, rel, v.Target)
			}
			if _, err := os.Stat(v.Source); err != nil {
				t.Errorf("%s: bind mount source %s: %v", s.Name, rel, err)
			}
		}
	}
	if n < 8 {
		t.Errorf("%d bind mounts, want the configs of loom, otelcol-loom, prometheus and grafana", n)
	}
}

func TestCompose_DependsOn_HealthyMeansAHealthcheck_LoomWaitsForItsDependencies(t *testing.T) {
	p := project(t)
	for _, s := range p.Services {
		for dep, d := range s.DependsOn {
			target := service(t, p, dep)
			switch d.Condition {
			case types.ServiceConditionHealthy:
				if target.HealthCheck == nil || len(target.HealthCheck.Test) == 0 || target.HealthCheck.Disable {
					t.Errorf("%s waits for %s to be healthy, which has no healthcheck", s.Name, dep)
				}
			case types.ServiceConditionCompletedSuccessfully:
				if target.Restart != "no" && target.Restart != "" {
					t.Errorf("%s waits for %s to complete, which restarts (%s)", s.Name, dep, target.Restart)
				}
			default:
				t.Errorf("%s depends on %s with condition %s: want service_healthy or service_completed_successfully", s.Name, dep, d.Condition)
			}
		}
	}
	want := map[string][]string{
		"loom":            {"mock", "otelcol-loom", "postgres", "redis"},
		"otelcol-loom":    {"postgres"},
		"grafana-db-role": {"loom"}, // the tables it grants on exist once loom has migrated
		"grafana":         {"grafana-db-role", "prometheus"},
	}
	for name, deps := range want {
		if got := sorted(slices.Collect(maps.Keys(service(t, p, name).DependsOn))); !slices.Equal(got, deps) {
			t.Errorf("%s depends on %v, want %v", name, got, deps)
		}
	}
	for _, s := range p.Services {
		if s.Name != "grafana-db-role" && (s.HealthCheck == nil || len(s.HealthCheck.Test) == 0) {
			t.Errorf("%s has no healthcheck", s.Name)
		}
	}
}

func TestCompose_Hardening_ReadOnlyRootNonRootNoCapabilities_StateOnNamedVolumes(t *testing.T) {
	p := project(t)
	// The images from deploy/docker run as 65532; the others' users are
	// set here or are their images' own non-root ones.
	imageUser := map[string]bool{"loom": true, "otelcol-loom": true, "mock": true, "prometheus": true, "grafana": true}
	for _, s := range p.Services {
		if s.Name != "grafana" && !s.ReadOnly {
			t.Errorf("%s: root filesystem not read-only", s.Name)
		}
		if !slices.Equal(s.CapDrop, []string{"ALL"}) {
			t.Errorf("%s: cap_drop %v, want [ALL]", s.Name, s.CapDrop)
		}
		if !slices.Contains(s.SecurityOpt, "no-new-privileges:true") {
			t.Errorf("%s: security_opt %v lacks no-new-privileges:true", s.Name, s.SecurityOpt)
		}
		switch {
		case s.User == "":
			if !imageUser[s.Name] {
				t.Errorf("%s: no user: it would run as its image's root", s.Name)
			}
		case s.User == "0" || strings.HasPrefix(s.User, "0:") || strings.HasPrefix(s.User, "root"):
			t.Errorf("%s: runs as %s", s.Name, s.User)
		}
	}
	volumes := map[string]string{"postgres": "/var/lib/postgresql/data", "loom": "/var/lib/loom",
		"otelcol-loom": "/var/lib/otelcol-loom", "prometheus": "/prometheus", "grafana": "/var/lib/grafana"}
	for name, target := range volumes {
		v := volumeAt(service(t, p, name), target)
		if v == "" {
			t.Errorf("%s: no named volume at %s", name, target)
			continue
		}
		if _, ok := p.Volumes[v]; !ok {
			t.Errorf("%s: volume %s is not declared", name, v)
		}
	}
}

func TestCompose_Grafana_ProvisioningVariablesSet_DashboardsMounted_EveryDatasourceTheyNameProvisioned(t *testing.T) {
	p := project(t)
	g := service(t, p, "grafana")
	env := environ(t, g)
	prov := bindSource(t, g, "/etc/grafana/provisioning")
	if prov != "deploy/grafana/provisioning" {
		t.Fatalf("grafana: /etc/grafana/provisioning is mounted from %q, want deploy/grafana/provisioning", prov)
	}
	uids := map[string]bool{}
	var promURLs, promIntervals []string
	varRef := regexp.MustCompile(`\$\{?([A-Z][A-Z0-9_]*)\}?`)
	err := filepath.WalkDir(filepath.Join(root, prov, "datasources"), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		var doc struct {
			Datasources []struct {
				UID      string `yaml:"uid"`
				Type     string `yaml:"type"`
				URL      string `yaml:"url"`
				JSONData struct {
					TimeInterval string `yaml:"timeInterval"`
				} `yaml:"jsonData"`
			} `yaml:"datasources"`
		}
		if err := yaml.Unmarshal(b, &doc); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		for _, ds := range doc.Datasources {
			uids[ds.UID] = true
			if ds.Type == "prometheus" {
				promURLs = append(promURLs, ds.URL)
				promIntervals = append(promIntervals, ds.JSONData.TimeInterval)
			}
		}
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), "#") {
				continue
			}
			for _, m := range varRef.FindAllStringSubmatch(line, -1) {
				if _, ok := env[m[1]]; !ok {
					t.Errorf("%s reads $%s, which the grafana service does not set", path, m[1])
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if env["LOOM_GRAFANA_PG_HOST"] != "postgres:5432" {
		t.Errorf("LOOM_GRAFANA_PG_HOST %q, want postgres:5432", env["LOOM_GRAFANA_PG_HOST"])
	}
	if len(promURLs) == 0 {
		t.Error("deploy/grafana/provisioning provisions no prometheus datasource")
	}
	for _, raw := range promURLs {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		s, err := p.GetService(u.Hostname())
		if err != nil || u.Hostname() != "prometheus" || !listens(s, u.Port()) {
			t.Errorf("prometheus datasource url %s: want this stack's prometheus service on a port it listens on", raw)
		}
	}
	if want := readProm(t).Global.ScrapeInterval; len(promIntervals) == 0 || slices.ContainsFunc(promIntervals, func(i string) bool { return i != want }) {
		t.Errorf("prometheus datasource timeInterval %v, want prometheus.yml's scrape_interval %s ($__rate_interval rests on it)", promIntervals, want)
	}
	pg := service(t, p, "postgres")
	if env["LOOM_GRAFANA_PG_DATABASE"] != *pg.Environment["POSTGRES_DB"] {
		t.Errorf("grafana reads database %q, postgres makes %q", env["LOOM_GRAFANA_PG_DATABASE"], *pg.Environment["POSTGRES_DB"])
	}
	role := service(t, p, "grafana-db-role")
	if *role.Environment["GRAFANA_PG_PASSWORD"] != env["LOOM_GRAFANA_PG_PASSWORD"] {
		t.Error("grafana-db-role sets a different password from the one grafana's datasource logs in with")
	}
	sql, err := os.ReadFile(filepath.Join(root, bindSource(t, role, "/grafana-role.sql")))
	if err != nil {
		t.Fatal(err)
	}
	if user := env["LOOM_GRAFANA_PG_USER"]; !strings.Contains(string(sql), "ALTER ROLE "+user+" WITH LOGIN") {
		t.Errorf("grafana-role.sql does not make the login role %s that grafana uses", user)
	}

	// The dashboards provider reads the folder the JSON is mounted on.
	b, err := os.ReadFile(filepath.Join(root, prov, "dashboards/loom.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var dp struct {
		Providers []struct {
			Options struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	if err := yaml.Unmarshal(b, &dp); err != nil {
		t.Fatal(err)
	}
	if len(dp.Providers) != 1 {
		t.Fatalf("%d dashboard providers, want 1", len(dp.Providers))
	}
	dash := bindSource(t, g, dp.Providers[0].Options.Path)
	if dash != "dashboards/grafana/json" {
		t.Fatalf("grafana: the provider's %s is mounted from %q, want dashboards/grafana/json", dp.Providers[0].Options.Path, dash)
	}
	files, err := filepath.Glob(filepath.Join(root, dash, "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no dashboards in %s (%v)", dash, err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var doc any
		if err := json.Unmarshal(b, &doc); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for uid := range datasourceUIDs(doc) {
			if !uids[uid] {
				t.Errorf("%s names datasource %q, which deploy/grafana/provisioning does not provision", filepath.Base(f), uid)
			}
		}
	}
}

// datasourceUIDs are the uids of every "datasource": {"uid": ...} in a
// dashboard, template variables ("${...}") left out.
func datasourceUIDs(v any) map[string]bool {
	out := map[string]bool{}
	var walk func(any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, c := range x {
				if ds, ok := c.(map[string]any); ok && k == "datasource" {
					if uid, ok := ds["uid"].(string); ok && uid != "" && !strings.HasPrefix(uid, "$") {
						out[uid] = true
					}
				}
				walk(c)
			}
		case []any:
			for _, c := range x {
				walk(c)
			}
		}
	}
	walk(v)
	return out
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}
