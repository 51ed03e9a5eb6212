// Package devstack is what `make run` starts: a local Loom with a demo tenant
// and key, in front of the mock upstream (or the real OpenAI, or any
// OpenAI-compatible server; Anthropic, or an Anthropic-compatible server, for
// the Claude models), tracing every call through otelcol-loom into
// PostgreSQL (a local cluster, or the one LOOM_DATABASE_URL names), with its
// state under .loom/ in the checkout. The stack is Postgres, then a list of
// services, each with a command and a readiness check, started in order and
// stopped in reverse, Postgres last. It must never write a credential
// (upstream key, database password) to disk: the generated configurations
// name environment variables, and the services inherit devstack's
// environment. The one exception is the local cluster's own password, which
// it generates and must keep to reach the cluster again: .loom/pgpass, mode
// 0600, never printed. Tenants and keys live in the tenant store in that
// Postgres (SeedStore puts the demo tenant and key there once), so the
// console and the admin API manage them; its credential key is kept in
// .loom/store.key (0600) like the console's session key.
package devstack

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/loom-gateway/loom/deploy/freeport"
	"github.com/loom-gateway/loom/deploy/pgserver"
	"github.com/loom-gateway/loom/deploy/prereq"
	"github.com/loom-gateway/loom/proxy/config"
	"github.com/loom-gateway/loom/proxy/ledger"
	"github.com/loom-gateway/loom/proxy/tenancy"
	"github.com/loom-gateway/loom/proxy/tenant"
)

// Options say where the stack lives and listens.
type Options struct {
	// Dir holds the demo key, the generated configuration and the logs.
	Dir string
	// Bin holds the loom, mockupstream and otelcol-loom binaries (`make build`).
	Bin string
	// Listen is Loom's preferred address, MockAddr the mock's, OTLPAddr the
	// collector's OTLP gRPC receiver and HealthAddr its health check; when
	// one is taken, a free port on the same host is used instead.
	Listen     string
	MockAddr   string
	OTLPAddr   string
	HealthAddr string
	// ConsoleAddr is the web console's preferred address; empty is any
	// free port on 127.0.0.1.
	ConsoleAddr string
	// OpsAddr is Loom's ops listener's preferred address (/metrics,
	// /healthz, /readyz); empty is any free port on 127.0.0.1.
	OpsAddr string
	// CollectorMetricsAddr is where otelcol-loom serves its own metrics
	// for Prometheus; empty is any free port on 127.0.0.1.
	CollectorMetricsAddr string
	// PostgresPort is the local cluster's preferred port on 127.0.0.1
	// (a free one if taken; 0 is any free one).
	PostgresPort int
	// Explicit names the flags given on the command line (listen,
	// mock-addr, ...): their addresses win over those kept in PortsFile
	// from the last run, and are not kept themselves.
	Explicit map[string]bool
	// Getenv reads the variables that choose the upstream and the database.
	Getenv func(string) string
}

// Plan is a prepared stack: files written, ports chosen, not yet started.
type Plan struct {
	// picked holds the addresses pickAddr gave this plan.
	picked map[string]bool
	// kept are the addresses of the last run (PortsFile), chosen this
	// run's picks by flag name, explicit the flags given.
	kept, chosen ports
	explicit     map[string]bool

	Key string // the demo API key
	// AdminToken logs in to the console as admin (.loom/admin.token).
	AdminToken string
	// LedgerPublicKey is the public half of .loom/ledger.key (base64), the
	// key the collector signs the ledger's checkpoints with.
	LedgerPublicKey string
	LoomURL         string // http://host:port, without /v1
	// ConsoleURL is the web console's page: http://host:port/console/.
	ConsoleURL string
	// AdminURL is the admin API's root (http://host:port; its routes are
	// under /admin/).
	AdminURL string
	// MetricsURL is Loom's /metrics on its ops listener (the gateway's own
	// port does not serve it).
	MetricsURL string
	ConfigPath string
	// Upstream serves the GPT demo models, Anthropic the Claude ones.
	Upstream  Upstream
	Anthropic Upstream
	// OTLPAddr is where otelcol-loom takes Loom's spans (OTLP gRPC).
	OTLPAddr string
	// Fanout is the OTLP backend that otelcol-loom also sends every span
	// to (LOOM_OTLP_ENDPOINT); nil for none.
	Fanout *Fanout
	// DatabaseURL is the Postgres that otelcol-loom writes loom.spans into:
	// LOOM_DATABASE_URL's, or the local cluster's once StartPostgres ran.
	DatabaseURL string
	// Postgres is the local cluster that StartPostgres starts; nil when
	// LOOM_DATABASE_URL names a server.
	Postgres *pgserver.Options
	Services []Service
	// Summary counts Loom's calls (its per-call log lines) for the
	// terminal's periodic summary.
	Summary *Summary
	// Notes are lines to show before the stack starts.
	Notes []string

	// CollectorMetricsURL is otelcol-loom's own metrics (Prometheus).
	CollectorMetricsURL string

	psql string // the psql program the banner names
	loom string // the loom binary, for the banner's audit line
	// passfile is the local cluster's password file (see PasswordFile);
	// "" without a local cluster.
	passfile string
	// seed is the demo tenant that SeedStore puts into the tenant store,
	// deployments the names of this run's deployments, storeConfig
	// loom.yaml's store section.
	seed        *tenancy.Tenant
	deployments []string
	storeConfig config.Store
}

// Prepare creates o.Dir, the demo key and Loom's configuration, and picks
// the ports.
func Prepare(o Options) (*Plan, error) {
	if o.Getenv == nil {
		o.Getenv = os.Getenv
	}
	loomBin, mockBin := filepath.Join(o.Bin, "loom"), filepath.Join(o.Bin, "mockupstream")
	collectorBin := filepath.Join(o.Bin, "otelcol-loom")
	up, claude := ChooseUpstream(o.Getenv), ChooseAnthropic(o.Getenv)
	need := []string{loomBin, collectorBin}
	if up.Mock || claude.Mock {
		need = append(need, mockBin)
	}
	for _, b := range need {
		if _, err := os.Stat(b); err != nil {
			return nil, fmt.Errorf("%w (run `make build` first)", err)
		}
	}
	dbURL := o.Getenv(EnvDatabaseURL)
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("create state dir: %w", err)
	}
	if dbURL == "" && os.Geteuid() == 0 {
		// PostgreSQL runs as the postgres user, who must be able to enter
		// .loom to reach .loom/pg. Search only: the files stay 0600.
		if err := os.Chmod(o.Dir, 0o711); err != nil {
			return nil, fmt.Errorf("open state dir to the postgres user: %w", err)
		}
	}
	key, err := DemoKey(filepath.Join(o.Dir, "demo.key"))
	if err != nil {
		return nil, err
	}
	kept, err := loadPorts(o.Dir)
	if err != nil {
		return nil, err
	}
	p := &Plan{Key: key, Upstream: up, Anthropic: claude, ConfigPath: filepath.Join(o.Dir, "loom.yaml"),
		Notes: []string{up.Note, claude.Note},
		psql:  findPsql(), loom: loomBin,
		kept: kept, chosen: ports{}, explicit: o.Explicit}

	if dbURL == "" {
		addr, err := p.pickKept("pg-port", "postgres", net.JoinHostPort("127.0.0.1", strconv.Itoa(o.PostgresPort)))
		if err != nil {
			return nil, err
		}
		_, port, _ := net.SplitHostPort(addr)
		n, _ := strconv.Atoi(port)
		home, note, err := postgresHome(o.Dir, pgFallback)
		if err != nil {
			return nil, err
		}
		if note != "" {
			p.Notes = append(p.Notes, note)
		}
		// The cluster asks for a password: with trust, every local account
		// would be its superuser, with every tenant's captured content.
		passfile, err := filepath.Abs(filepath.Join(o.Dir, PasswordFile))
		if err != nil {
			return nil, err
		}
		pw, err := PostgresPassword(passfile)
		if err != nil {
			return nil, err
		}
		p.passfile = passfile
		p.Postgres = &pgserver.Options{Dir: filepath.Join(home, "pg"), Port: n,
			LogFile: filepath.Join(home, "postgres.log"), Fsync: true, Password: pw}
	}

	if up.Mock || claude.Mock {
		addr, err := p.pickKept("mock-addr", "the mock upstream", o.MockAddr)
		if err != nil {
			return nil, err
		}
		// One mock speaks both APIs, at the same root.
		base := "http://" + addr + "/v1"
		if up.Mock {
			p.Upstream.BaseURL = base
		}
		if claude.Mock {
			p.Anthropic.BaseURL = base
		}
		p.Services = append(p.Services, Service{
			Name:  "mockupstream",
			Path:  mockBin,
			Args:  []string{"-addr", addr, "-grace", "5s"},
			Ready: HTTPReady(base + "/models"),
		})
	}
	if p.Fanout, err = ChooseFanout(o.Getenv); err != nil {
		return nil, err
	}
	if p.Fanout != nil {
		p.Notes = append(p.Notes, EnvOTLPEndpoint+" is set: every span also goes to "+p.Fanout.Describe()+
			"; drops show in otelcol-loom's metrics as exporter=\""+p.Fanout.ExporterID()+"\"")
	}
	if err := p.addCollector(o, collectorBin); err != nil {
		return nil, err
	}
	listen, err := p.pickKept("listen", "loom", o.Listen)
	if err != nil {
		return nil, err
	}
	p.LoomURL = "http://" + listen
	if o.ConsoleAddr == "" {
		o.ConsoleAddr = "127.0.0.1:0"
	}
	consoleAddr, err := p.pickKept("console-addr", "the console", o.ConsoleAddr)
	if err != nil {
		return nil, err
	}
	p.ConsoleURL = "http://" + consoleAddr + "/console/"
	if o.OpsAddr == "" {
		o.OpsAddr = "127.0.0.1:0"
	}
	opsAddr, err := p.pickKept("ops-addr", "loom's ops listener", o.OpsAddr)
	if err != nil {
		return nil, err
	}
	p.MetricsURL = "http://" + opsAddr + "/metrics"
	adminAddr, err := p.pickKept("admin-addr", "the admin API", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p.AdminURL = "http://" + adminAddr
	spool, err := filepath.Abs(filepath.Join(o.Dir, "spool"))
	if err != nil {
		return nil, err
	}
	ups := []Upstream{p.Upstream, p.Anthropic}
	// The demo tenant is rendered as a config's, and so checked as one,
	// but served from the tenant store (SeedStore puts it there).
	seedCfg, err := config.Parse(RenderConfig(listen, ups, tenant.Hash(key), "", ""))
	if err != nil {
		return nil, fmt.Errorf("generated demo tenant: %w", err)
	}
	p.seed = &seedCfg.ResolveTenants()[0]
	for _, d := range seedCfg.Deployments {
		p.deployments = append(p.deployments, d.Name)
	}
	storeKey, err := filepath.Abs(filepath.Join(o.Dir, StoreKeyFile))
	if err != nil {
		return nil, err
	}
	if _, err := StoreKey(storeKey); err != nil {
		return nil, err
	}
	p.storeConfig = config.Store{DatabaseURLEnv: EnvDatabaseURL, SecretKeyFile: storeKey}
	cfg := renderGateway(listen, ups, "http://"+p.OTLPAddr, spool)
	if p.AdminToken, err = AdminToken(filepath.Join(o.Dir, AdminTokenFile)); err != nil {
		return nil, err
	}
	consoleKey, err := filepath.Abs(filepath.Join(o.Dir, ConsoleKeyFile))
	if err != nil {
		return nil, err
	}
	if _, err := ConsoleKey(consoleKey); err != nil {
		return nil, err
	}
	adminSum := sha256.Sum256([]byte(p.AdminToken))
	cfg = append(cfg, RenderConsoleConfig(consoleAddr, consoleKey, adminAddr, hex.EncodeToString(adminSum[:]))...)
	cfg = append(cfg, renderOpsConfig(opsAddr)...)
	if _, err := config.Parse(cfg); err != nil {
		return nil, fmt.Errorf("generated config: %w", err)
	}
	// After the check: the database's variable is set only in the
	// services' environment.
	cfg = append(cfg, RenderStoreConfig(storeKey)...)
	if err := os.WriteFile(p.ConfigPath, cfg, 0o600); err != nil {
		return nil, fmt.Errorf("write config: %w", err)
	}
	p.Services = append(p.Services, Service{
		Name: "loom",
		Path: loomBin,
		// -migrate: the console reads loom.spans, and loom must never
		// start against a database without the schema. otelcol-loom
		// (started and ready before loom) migrates too; a second run is a
		// no-op under the schema's lock.
		Args:  []string{"serve", "-config", p.ConfigPath, "-listen", listen, "-log-calls", "-migrate"},
		Ready: HTTPReady(p.LoomURL + "/readyz"),
	})
	if dbURL != "" {
		p.Notes = append(p.Notes, EnvDatabaseURL+" is set: spans go to the Postgres at "+describeDatabase(dbURL))
		p.useDatabase(dbURL)
	}
	if err := p.savePorts(o.Dir); err != nil {
		return nil, err
	}
	// Warnings and a summary on the terminal; every line in the logs.
	p.Summary = &Summary{MetricsURL: p.MetricsURL, CollectorMetricsURL: p.CollectorMetricsURL}
	if p.Fanout != nil {
		p.Summary.FanoutExporter = p.Fanout.ExporterID()
	}
	for i := range p.Services {
		p.Services[i].Show = ShowWarnings
		if p.Services[i].Name == "loom" {
			p.Services[i].Show = p.Summary.Show
		}
	}
	return p, nil
}

// renderOpsConfig is loom.yaml's ops section: /metrics on a listener of
// its own, apart from the gateway's.
func renderOpsConfig(listen string) []byte {
	return fmt.Appendf(nil, "ops:\n  # Loom's metrics, /healthz and /readyz for operators: not on the gateway's port.\n  listen: %s\n",
		strconv.Quote(listen))
}

// addCollector picks otelcol-loom's ports, writes its configuration and
// adds it to the services. Its database URL comes later, from useDatabase.
func (p *Plan) addCollector(o Options, bin string) error {
	otlp, err := p.pickKept("otlp-addr", "otelcol-loom's OTLP receiver", o.OTLPAddr)
	if err != nil {
		return err
	}
	health, err := p.pickKept("health-addr", "otelcol-loom's health check", o.HealthAddr)
	if err != nil {
		return err
	}
	storage, err := filepath.Abs(filepath.Join(o.Dir, "otelcol"))
	if err != nil {
		return fmt.Errorf("collector storage: %w", err)
	}
	keyFile, err := filepath.Abs(filepath.Join(o.Dir, "ledger.key"))
	if err != nil {
		return fmt.Errorf("ledger key: %w", err)
	}
	if p.LedgerPublicKey, err = ledgerKey(keyFile); err != nil {
		return err
	}
	if o.CollectorMetricsAddr == "" {
		o.CollectorMetricsAddr = "127.0.0.1:0"
	}
	metrics, err := p.pickKept("otelcol-metrics-addr", "otelcol-loom's metrics", o.CollectorMetricsAddr)
	if err != nil {
		return err
	}
	p.CollectorMetricsURL = "http://" + metrics + "/metrics"
	path := filepath.Join(o.Dir, "otelcol.yaml")
	if err := os.WriteFile(path, RenderCollectorConfig(otlp, health, storage, keyFile, metrics), 0o600); err != nil {
		return fmt.Errorf("write collector config: %w", err)
	}
	args := []string{"--config", path}
	var env []string
	fanPath := filepath.Join(o.Dir, "otelcol-fanout.yaml")
	if p.Fanout == nil {
		// A fan-out of an earlier run must not linger as if it were used.
		if err := os.Remove(fanPath); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove the earlier fan-out config: %w", err)
		}
	} else {
		if err := os.WriteFile(fanPath, RenderFanoutConfig(p.Fanout), 0o600); err != nil {
			return fmt.Errorf("write the fan-out config: %w", err)
		}
		// Merged over the first: the fan-out adds a pipeline, and changes
		// nothing in Postgres's.
		args = append(args, "--config", fanPath)
		env = p.Fanout.Env
	}
	p.OTLPAddr = otlp
	p.Services = append(p.Services, Service{
		Name:  collectorName,
		Path:  bin,
		Args:  args,
		Env:   env,
		Ready: HTTPReady("http://" + health + "/"),
	})
	return nil
}

// ledgerKey returns the public half of the audit ledger's signing key in
// path, making the key (0600) on the first run: kept in .loom/ like the
// demo key, so the checkpoints of every run are signed by one key.
func ledgerKey(path string) (string, error) {
	k, err := ledger.LoadKey(path)
	if errors.Is(err, fs.ErrNotExist) {
		pub, err := ledger.WriteKeyFile(path)
		if err != nil {
			return "", fmt.Errorf("ledger key: %w", err)
		}
		return ledger.EncodePublicKey(pub), nil
	}
	if err != nil {
		return "", fmt.Errorf("ledger key %s: %w (remove it for a new one)", path, err)
	}
	return ledger.EncodePublicKey(k.Public().(ed25519.PublicKey)), nil
}

// pickAddr is freeAddr, noting a move in the plan and never handing out an
// address it already gave this plan: a port closed after its check is free
// again, and the kernel may offer it for the next ":0" (the console and the
// ops listener once got the same one).
func (p *Plan) pickAddr(what, want string) (string, error) {
	for range 20 {
		addr, note, err := freeAddr(what, want)
		if err != nil {
			return "", err
		}
		if p.picked[addr] {
			want = anyPort(want)
			continue
		}
		p.markPicked(addr)
		if note != "" {
			p.Notes = append(p.Notes, note)
		}
		return addr, nil
	}
	return "", fmt.Errorf("find a port for %s: every try gave one already taken", what)
}

func (p *Plan) markPicked(addr string) {
	if p.picked == nil {
		p.picked = map[string]bool{}
	}
	p.picked[addr] = true
}

// anyPort is addr's host with port 0.
func anyPort(addr string) string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return net.JoinHostPort(host, "0")
}

// freeAddr returns want if it can be listened on, else a free port on the
// same host, with a note saying so. The port is free when checked; a race
// with another program is possible and shows up as a failed start.
func freeAddr(what, want string) (addr, note string, err error) {
	if addr, err := freeport.On(want); err == nil {
		return addr, "", nil
	}
	host, _, err := net.SplitHostPort(want)
	if err != nil {
		return "", "", fmt.Errorf("address %q: %w", want, err)
	}
	if addr, err = freeport.On(net.JoinHostPort(host, "0")); err != nil {
		return "", "", fmt.Errorf("find a port for %s: %w", what, err)
	}
	return addr, fmt.Sprintf("%s is in use, so %s listens on %s", want, what, addr), nil
}

// Flags are devstack's flags, set into o: what `bin/devstack -h` lists
// (with -clean, which Main adds) and the README's list must match.
func Flags(o *Options) *flag.FlagSet {
	fs := flag.NewFlagSet("devstack", flag.ContinueOnError)
	fs.StringVar(&o.Dir, "dir", ".loom", "state directory: demo key, generated config, logs, kept ports")
	fs.StringVar(&o.Bin, "bin", "bin", "directory with the loom, mockupstream and otelcol-loom binaries")
	fs.StringVar(&o.Listen, "listen", "127.0.0.1:8080", "Loom's address (a free port if taken; the last run's is kept in DIR/"+PortsFile+")")
	fs.StringVar(&o.MockAddr, "mock-addr", "127.0.0.1:9090", "the mock upstream's address (a free port if taken, then kept)")
	fs.StringVar(&o.OTLPAddr, "otlp-addr", "127.0.0.1:4317", "otelcol-loom's OTLP gRPC address (a free port if taken, then kept)")
	fs.StringVar(&o.HealthAddr, "health-addr", "127.0.0.1:13133", "otelcol-loom's health check address (a free port if taken, then kept)")
	fs.StringVar(&o.ConsoleAddr, "console-addr", "127.0.0.1:8082", "the web console's address (a free port if taken, then kept)")
	fs.StringVar(&o.OpsAddr, "ops-addr", "127.0.0.1:9464", "Loom's ops listener, /metrics (a free port if taken, then kept)")
	fs.StringVar(&o.CollectorMetricsAddr, "otelcol-metrics-addr", "127.0.0.1:8888", "otelcol-loom's own metrics for Prometheus (a free port if taken, then kept)")
	fs.IntVar(&o.PostgresPort, "pg-port", 54329, "the local Postgres's port on 127.0.0.1 (a free one if taken, then kept; unused with "+EnvDatabaseURL+")")
	return fs
}

// Main is the devstack command: prepare, start, print how to call Loom, and
// run until ctx ends (nil) or a service dies (an error). Postgres stops
// last, however the stack ends.
func Main(ctx context.Context, args []string, stdout io.Writer) (err error) {
	var o Options
	fs := Flags(&o)
	fs.SetOutput(stdout)
	clean := fs.Bool("clean", false, "remove everything devstack made (the state directory, and the local cluster wherever it lives), then exit (what make clean runs)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *clean {
		return Clean(o.Dir, stdout)
	}
	o.Explicit = map[string]bool{}
	fs.Visit(func(f *flag.Flag) { o.Explicit[f.Name] = true })
	if os.Getenv(EnvDatabaseURL) == "" {
		// The one program make run needs beyond Go: installed here when
		// it can be (root, apt-get), else one line naming the package.
		pg := prereq.Postgres()
		pg.Else = "or set " + EnvDatabaseURL + " to a PostgreSQL to use"
		if err := prereq.Ensure(ctx, "make run", []prereq.Need{pg}, prereq.CanInstall(os.Geteuid(), exec.LookPath),
			prereq.Apt(stdout), stdout); err != nil {
			return err
		}
	}
	term := NewTerminal(stdout)
	p, err := Prepare(o)
	if err != nil {
		return err
	}
	for _, n := range p.Notes {
		term.Printf("devstack: %s\n", n)
	}
	if p.Postgres != nil {
		term.Printf("devstack: starting postgres (data %s, log %s)\n", p.Postgres.Dir, p.Postgres.LogFile)
	}
	stopPostgres, err := p.StartPostgres(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil // interrupted while starting: not a failure
		}
		return err
	}
	waited := false
	defer func() {
		if stopErr := stopPostgres(); stopErr != nil {
			err = errors.Join(err, stopErr)
		}
		if waited && err == nil {
			term.Printf("devstack: stopped\n")
		}
	}()
	if p.Postgres != nil {
		term.Printf("devstack: postgres ready on 127.0.0.1:%d\n", p.Postgres.Port)
	}
	notes, err := p.SeedStore(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil // interrupted while starting: not a failure
		}
		return err
	}
	for _, n := range notes {
		term.Printf("devstack: %s\n", n)
	}
	st := &Stack{Services: p.Services, LogDir: o.Dir, Out: term}
	if err := st.Start(ctx); err != nil {
		if ctx.Err() != nil {
			return nil // interrupted while starting: not a failure
		}
		return err
	}
	term.Printf("%s", p.Banner(o.Dir))
	term.Printf("devstack: the terminal shows warnings and, every %s while there are calls, a summary; each call is in %s\n",
		SummaryInterval, filepath.Join(o.Dir, "loom.log"))
	waited = true
	sumCtx, stopSummary := context.WithCancel(ctx)
	defer stopSummary()
	go p.Summary.Run(sumCtx, term)
	return st.Wait(ctx)
}

// Banner is what devstack prints once the stack is ready: lines that work
// when pasted into a shell.
func (p *Plan) Banner(dir string) string {
	logs := ""
	for _, s := range p.Services {
		logs += " " + filepath.Join(dir, s.Name+".log")
	}
	db := "the Postgres at " + describeDatabase(p.DatabaseURL) + " (" + EnvDatabaseURL + ")"
	if p.Postgres != nil {
		logs += " " + p.Postgres.LogFile
		db = "the local Postgres on 127.0.0.1:" + strconv.Itoa(p.Postgres.Port) + " (data in " + p.Postgres.Dir + ")"
	}
	chat := `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello"}]}`
	stream := `{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"Hello"}]}`
	messages := `{"model":"` + DemoClaudeModels[len(DemoClaudeModels)-1] + `","max_tokens":256,"messages":[{"role":"user","content":"Hello"}]}`
	rest := " " + p.LoomURL + `/v1/chat/completions -H "Authorization: Bearer $OPENAI_API_KEY" -H 'Content-Type: application/json' -d '`
	b := "\n" +
		"devstack: ready. Loom is on " + p.LoomURL + ", relaying to " + p.Upstream.Describe() +
		" (Claude models: " + p.Anthropic.Describe() + ").\n" +
		"devstack: every call goes as spans to otelcol-loom (OTLP gRPC on " + p.OTLPAddr + "), which writes them into\n" +
		"devstack: loom.spans in " + db + ".\n"
	if p.Fanout != nil {
		b += "devstack: and, from otelcol-loom, to " + p.Fanout.Describe() + " (" + EnvOTLPEndpoint + ").\n"
	}
	b += "devstack: config " + p.ConfigPath + ", logs" + logs + ". Ctrl-C stops everything.\n" +
		"devstack: console: open " + p.ConsoleURL + " and log in with the demo key (OPENAI_API_KEY below), or as admin\n" +
		"devstack: (every tenant, pipeline health; Tenants to add tenants and keys) with the admin token: " + p.AdminToken + "\n" +
		"devstack: admin API (the same, as JSON): curl -sS " + p.AdminURL + "/admin/tenants -H \"Authorization: Bearer $(cat " +
		filepath.Join(dir, AdminTokenFile) + ")\"\n"
	var replaced []string
	if !p.Upstream.Mock && p.Upstream.APIKeyEnv == EnvOpenAIKey {
		replaced = append(replaced, EnvOpenAIKey)
	}
	if !p.Anthropic.Mock && p.Anthropic.APIKeyEnv == EnvAnthropicKey {
		replaced = append(replaced, EnvAnthropicKey)
	}
	if len(replaced) > 0 {
		b += "devstack: paste these into another shell: the exports replace your real " + strings.Join(replaced, " and ") + " there.\n"
	}
	b += "\n" +
		"export OPENAI_BASE_URL=" + p.LoomURL + "/v1\n" +
		"export OPENAI_API_KEY=" + p.Key + "\n" +
		"curl -sS" + rest + chat + "'\n" +
		"\n# what it cost (X-Loom-Cost) and what is left of the demo tenant's daily budget (x-loom-budget-*):\n" +
		"curl -sS -D - -o /dev/null" + rest + chat + "' | grep -i '^x-loom'\n" +
		"\n# streaming (-N: print each event as it arrives):\n" +
		"curl -sSN" + rest + stream + "'\n"
	if p.Upstream.Mock {
		b += "\n# failover: the mock's first deployment fails this call once, its second answers (two attempts in the spans):\n" +
			"curl -sS -H 'x-mock-fail: 500' -H 'x-mock-fail-count: 1' -H \"x-mock-fail-key: $RANDOM\"" + rest + chat + "'\n"
	}
	b += "\n# the Claude models, through Loom's Anthropic API (Claude Code, the Anthropic SDKs) or the OpenAI one above:\n" +
		"export ANTHROPIC_BASE_URL=" + p.LoomURL + "\n" +
		"export ANTHROPIC_API_KEY=" + p.Key + "\n" +
		"curl -sS " + p.LoomURL + `/v1/messages -H "x-api-key: $ANTHROPIC_API_KEY" -H 'anthropic-version: 2023-06-01' ` +
		`-H 'Content-Type: application/json' -d '` + messages + "'\n" +
		"\n# the calls, with tokens and latency (in Postgres a second after each call):\n" +
		psqlLine(p.psql, p.psqlURL()) + "\n" +
		"\n# every run of every Loom instance: calls numbered, calls stored, gaps, clean stop or crash:\n" +
		auditLine(p.loom, p.psqlURL()) + "\n" +
		"\n# The audit ledger: every stored call in a hash chain per tenant, every admin change in _system,\n" +
		"# the heads signed every minute with .loom/ledger.key; verify the chains against loom.spans:\n" +
		verifyLine(p.loom, p.psqlURL(), p.LedgerPublicKey) + "\n" +
		"\n# Loom's metrics, on its ops listener (loom_requests_total, loom_calls_shipped_total...):\n" +
		"curl -sS " + p.MetricsURL + "\n" +
		"# Prometheus scrape URLs (alert rules: deploy/prometheus/loom-alerts.yaml):\n" +
		"#   loom          " + p.MetricsURL + "\n" +
		"#   otelcol-loom  " + p.CollectorMetricsURL + "  (otelcol_exporter_send_failed_spans_total, loom_exporter_*)\n\n"
	return b
}
