// Package config loads and validates Loom's YAML configuration. It only
// describes; the server and the tenant directory turn it into live objects.
// Tenants are not config's own: the file's tenants load into the tenancy
// types the tenant store also speaks (see Config.ResolveTenants).
//
// Validation reports every problem at once, each naming its field, in a
// stable order. It comes in two halves: Validate is pure (it reads neither
// the environment nor a file), and CheckEnvironment checks what the file
// names outside itself (variables set, files present); Load and Parse run
// both.
package config

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/loom-gateway/loom/proxy/tenancy"
)

// Provider types a deployment may have.
const (
	ProviderOpenAI      = "openai"       // api.openai.com and every OpenAI-compatible server
	ProviderAzureOpenAI = "azure_openai" // Azure OpenAI: deployments in the path, api-key header
	ProviderAnthropic   = "anthropic"    // Anthropic's Messages API (and servers that speak it): x-api-key header
)

// Config is the whole file.
type Config struct {
	// Listen is the address the gateway serves on.
	Listen string `yaml:"listen"`
	// MaxBodyBytes bounds a request body; larger ones get 413, refused
	// from the Content-Length header before any of the body is read.
	MaxBodyBytes int `yaml:"max_body_bytes"`
	// MaxResponseBytes bounds an upstream's non-streamed answer; a larger
	// one is cut off and answered with Loom's own 502.
	MaxResponseBytes int `yaml:"max_response_bytes"`
	// DefaultOutputTokens is what the token limiter reserves for each of n
	// choices when a request sets no max_tokens, capped at what the tightest
	// tokens-per-minute limit leaves after the prompt (so a small TPM still
	// admits one call at a time).
	DefaultOutputTokens int `yaml:"default_output_tokens"`
	// Connections bounds what clients may hold open on the gateway.
	Connections Connections `yaml:"connections"`
	// Timeouts apply to every deployment that does not set its own.
	Timeouts Timeouts `yaml:"timeouts"`
	// Routing is how hard a call tries its model's deployments and
	// fallbacks, and when a failing deployment is left alone.
	Routing     Routing      `yaml:"routing"`
	Deployments []Deployment `yaml:"deployments"`
	Tenants     []Tenant     `yaml:"tenants"`
	// Prices are the price catalog's entries (see Price); with a store,
	// its loom.prices rows add to them.
	Prices []Price `yaml:"prices"`
	// Tracing sends every call as OpenTelemetry spans over OTLP.
	Tracing Tracing `yaml:"tracing"`
	// Store, when it names a database, makes Postgres the source of
	// tenants, keys, routes, credentials and limits; Tenants above are then
	// not used.
	Store Store `yaml:"store"`
	// Redis, when set, shares rate-limit counters between Loom replicas.
	Redis Redis `yaml:"redis"`
	// Admin is the administration API's own listener.
	Admin Admin `yaml:"admin"`
	// Console is the built-in web console's own listener.
	Console Console `yaml:"console"`
	// Ops is the operators' listener: /metrics (and /healthz, /readyz).
	Ops Ops `yaml:"ops"`
}

// Connections caps the client connections the gateway holds, so one client
// (or one address) cannot take the memory and sockets every other needs.
type Connections struct {
	// MaxTotal is the most client connections served at once; more are
	// answered 503 and closed.
	MaxTotal int `yaml:"max_total"`
	// MaxPerIP is the most client connections one address may hold.
	MaxPerIP int `yaml:"max_per_ip"`
}

// Ops configures the operators' listener. It listens apart from the
// gateway, so metrics are not served to the world.
type Ops struct {
	// Listen is the ops listener's address; empty turns it off.
	Listen string `yaml:"listen"`
	// Pprof serves Go's profiles under /debug/pprof/ on the ops listener.
	// Off by default: a CPU profile costs CPU while it runs, and the heap
	// profile shows what the process holds.
	Pprof bool `yaml:"pprof"`
}

// Console configures the built-in web console (proxy/console): calls,
// latency and tokens read from loom.spans, for a tenant (logged in with one
// of its API keys) or an administrator (the admin token).
type Console struct {
	// Listen is the console's address; empty turns it off.
	Listen string `yaml:"listen"`
	// DatabaseURLEnv names the variable holding the URL of the Postgres
	// that holds loom.spans. It is read when the console starts, not here:
	// a generated configuration may name a variable only its service sets.
	DatabaseURLEnv string `yaml:"database_url_env"`
	// SessionKeyEnv names a variable holding the 32-byte key (hex or
	// base64) that signs console sessions; SessionKeyFile is a file holding
	// it. With neither, the key is derived from the store's credential key,
	// so sessions survive a restart and work on every replica that shares
	// it; without that either, it is made at start (sessions end with the
	// process).
	SessionKeyEnv  string `yaml:"session_key_env"`
	SessionKeyFile string `yaml:"session_key_file"`
}

// DatabaseURL is the console's database URL from the environment. Never
// log it.
func (c *Console) DatabaseURL() string { return os.Getenv(c.DatabaseURLEnv) }

// Store locates the Postgres tenant store and the key that encrypts the
// provider credentials kept in it.
type Store struct {
	// DatabaseURLEnv names the variable holding the Postgres URL (URLs
	// carry passwords, so they live in the environment, not the file).
	DatabaseURLEnv string `yaml:"database_url_env"`
	// SecretKeyEnv names a variable holding the 32-byte credential
	// encryption key (hex or base64); SecretKeyFile is a file holding it.
	SecretKeyEnv  string `yaml:"secret_key_env"`
	SecretKeyFile string `yaml:"secret_key_file"`
	// Poll is how often the snapshot is reloaded even without a NOTIFY.
	Poll time.Duration `yaml:"poll"`
}

// Enabled reports whether tenants come from Postgres.
func (s *Store) Enabled() bool { return s.DatabaseURLEnv != "" }

// DatabaseURL is the store's URL from the environment. Never log it.
func (s *Store) DatabaseURL() string { return os.Getenv(s.DatabaseURLEnv) }

// Redis locates the shared limit counters.
type Redis struct {
	// URLEnv names the variable holding redis://[:password@]host:port/db.
	URLEnv string `yaml:"url_env"`
}

// Enabled reports whether limits are shared through Redis.
func (r *Redis) Enabled() bool { return r.URLEnv != "" }

// Admin configures the administration API. It listens apart from the
// gateway, so it can stay off the public network.
type Admin struct {
	// Listen is the admin API's address; empty turns it off.
	Listen string `yaml:"listen"`
	// TokenSHA256 is the hex SHA-256 of the admin token (see `loom keys
	// hash`); TokenEnv names a variable holding the token itself.
	TokenSHA256 string `yaml:"token_sha256"`
	TokenEnv    string `yaml:"token_env"`
}

// Credential is a tenant's own credential for a deployment, as the file
// gives it: the secret itself, or the name of a variable holding it.
type Credential struct {
	Deployment string `yaml:"deployment"`
	APIKey     string `yaml:"api_key"`
	APIKeyEnv  string `yaml:"api_key_env"`
}

// Secret is the credential itself, from the file or the environment. It
// must never be logged.
func (c *Credential) Secret() string {
	if c.APIKeyEnv != "" {
		return os.Getenv(c.APIKeyEnv)
	}
	return c.APIKey
}

// Tracing configures span export. An empty Endpoint turns tracing off.
//
// The timings nest so that a collector restart loses nothing: the OTLP
// exporter retries for up to RetryMaxElapsed, inside one export bounded by
// ExportTimeout; a batch that still fails stays at the head of Loom's queue
// and is tried again, while new spans wait in a queue of QueueSize (and of
// QueueBytes). Only a full queue, shutdown with the collector still away, or
// a span the collector refuses as malformed or too large (the batch is split
// so that only that span is set aside) drops spans, and every drop is
// counted and logged.
type Tracing struct {
	// Endpoint is the collector's OTLP URL: "http://127.0.0.1:4317" for gRPC,
	// "http://127.0.0.1:4318" for HTTP. http:// means no TLS.
	Endpoint string `yaml:"endpoint"`
	// Protocol is "grpc" (default) or "http" (OTLP/HTTP protobuf).
	Protocol string `yaml:"protocol"`
	// Headers go with every export (a remote collector's auth token).
	Headers map[string]string `yaml:"headers"`
	// InstanceID names this instance in service.instance.id and
	// loom.instance.id; empty means the id kept in the spool directory
	// (made once, the same for as long as the directory lives). Each
	// process start is a run of the instance with its own loom.run.id.
	InstanceID string `yaml:"instance_id"`
	// QueueSize bounds the calls waiting in memory for the spool's next
	// commit: the most a crash of the process can lose (the run's
	// loom.run.loss_bound). A commit comes every Spool.CommitInterval, so
	// only a stalled disk ever fills it.
	QueueSize int `yaml:"queue_size"`
	// BatchSize is the most calls per export.
	BatchSize int `yaml:"batch_size"`
	// BatchTimeout is how long the shipper lets a batch gather after
	// sending a small one (a backlog ships at once). Calls are durable in
	// the spool already, so it only delays their arrival in Postgres; each
	// export costs an ack fdatasync here and a persistent-queue commit in
	// the collector, which at a few ms apart cost more CPU than the calls.
	BatchTimeout time.Duration `yaml:"batch_timeout"`
	// ExportTimeout bounds one export attempt; a failed one is retried
	// with backoff for as long as it takes (the calls wait in the spool).
	ExportTimeout time.Duration `yaml:"export_timeout"`
	// RetryMaxElapsed is no longer used (exports are retried for ever from
	// the spool). Accepted so that older files still load.
	RetryMaxElapsed time.Duration `yaml:"retry_max_elapsed"`
	// QueueBytes bounds the encoded calls waiting in memory for the
	// spool's next commit, beside QueueSize's count.
	QueueBytes int64 `yaml:"queue_bytes"`
	// BatchBytes bounds one export by encoded size; it must stay under the
	// collector's receive limit (4 MiB for OTLP/gRPC by default). A call
	// bigger than that on its own goes alone.
	BatchBytes int `yaml:"batch_bytes"`
	// Spool is where finished calls wait, on disk, for the collector.
	Spool Spool `yaml:"spool"`
}

// Spool is the durable log between a finished call and the collector: each
// call is encoded once, appended in memory, and group-committed to segment
// files (one write and one fdatasync per commit), so a crash loses at most
// the calls of the last commit window, and an unreachable collector costs
// disk, not calls.
type Spool struct {
	// Dir holds the segments, the shipping cursor and the instance id (which
	// stays the same for as long as the directory does). Empty means a
	// temporary directory removed at stop: nothing then survives a crash,
	// and each start is a new instance.
	Dir string `yaml:"dir"`
	// MaxBytes bounds the spool on disk (committed, not yet shipped) plus
	// what waits in memory for the next commit.
	MaxBytes int64 `yaml:"max_bytes"`
	// SegmentBytes is the size at which a segment file is closed and a new
	// one started; shipped segments are deleted whole.
	SegmentBytes int64 `yaml:"segment_bytes"`
	// CommitInterval is the group-commit window: the longest a finished
	// call waits in memory before it is written and synced, and so the
	// most a crash can lose.
	CommitInterval time.Duration `yaml:"commit_interval"`
	// WhenFull says what happens when MaxBytes is reached: "drop" (keep
	// serving, count every call not recorded) or "refuse" (answer new calls
	// with a 503 until the collector catches up).
	WhenFull string `yaml:"when_full"`
}

// Spool policies when full.
const (
	SpoolDrop   = "drop"
	SpoolRefuse = "refuse"
)

// Tracing protocols.
const (
	TracingGRPC = "grpc"
	TracingHTTP = "http"
)

// DefaultTracing rides out a collector outage for as long as 4 GiB of
// spool lasts (hours at 1,000 calls/s), and a crash loses at most the
// calls of one 5 ms commit window.
var DefaultTracing = Tracing{
	Protocol:  TracingGRPC,
	QueueSize: 1 << 16,
	// Export batches: the shipper sends what each commit made durable, in
	// requests of at most this many calls and BatchBytes.
	BatchSize:       1024,
	BatchTimeout:    200 * time.Millisecond,
	ExportTimeout:   30 * time.Second,
	RetryMaxElapsed: 25 * time.Second,
	QueueBytes:      64 << 20,
	BatchBytes:      3 << 20,
	Spool: Spool{
		MaxBytes:       4 << 30,
		SegmentBytes:   64 << 20,
		CommitInterval: 5 * time.Millisecond,
		WhenFull:       SpoolDrop,
	},
}

// Timeouts bound each phase of a call.
type Timeouts struct {
	// Connect bounds dialling an upstream (TCP and TLS).
	Connect time.Duration `yaml:"connect"`
	// FirstByte bounds the wait from sending a request to the first byte of
	// the upstream's answer.
	FirstByte time.Duration `yaml:"first_byte"`
	// StreamIdle bounds the silence between two reads of an upstream answer.
	StreamIdle time.Duration `yaml:"stream_idle"`
	// IdleConn is how long an unused upstream connection stays in the pool.
	IdleConn time.Duration `yaml:"idle_conn"`
	// Drain is how long Loom keeps reading a stream after its client left,
	// to learn the final usage.
	Drain time.Duration `yaml:"drain"`
	// Shutdown is how long in-flight calls may run on after SIGTERM.
	Shutdown time.Duration `yaml:"shutdown"`
	// PoolWait bounds how long a call waits for a free connection of its
	// deployment (its tenant's share of it) before a 429 or 503.
	PoolWait time.Duration `yaml:"pool_wait"`
	// ClientRead bounds reading a client's request (headers and body).
	ClientRead time.Duration `yaml:"client_read"`
	// ClientWrite bounds writing a non-streamed answer to a client.
	ClientWrite time.Duration `yaml:"client_write"`
	// ClientIdle is how long a kept-alive client connection may sit idle.
	ClientIdle time.Duration `yaml:"client_idle"`
	// StreamWrite bounds each write of a stream's event to a client: one
	// that stops reading is cut off after this (its call is still
	// recorded, as a client that left).
	StreamWrite time.Duration `yaml:"stream_write"`
}

// Routing is the gateway's routing policy. A call moves to its next
// candidate deployment only while nothing has reached its client, on a
// connect error, a timeout (timeouts.first_byte: to the response head, and
// for a stream to its first event), a reset, a 429 or a 5xx; never on
// another 4xx.
type Routing struct {
	// MaxAttempts and Budget are every model's, unless the model sets its
	// own (tenants[].models[].routing).
	MaxAttempts int           `yaml:"max_attempts"`
	Budget      time.Duration `yaml:"budget"`
	// CircuitFailures consecutive failures of a deployment open its
	// circuit: calls skip it for CircuitCooldown, then one probe call is
	// let through (half-open); the probe's success closes the circuit, its
	// failure opens it again.
	CircuitFailures int           `yaml:"circuit_failures"`
	CircuitCooldown time.Duration `yaml:"circuit_cooldown"`
	// MaxRetryAfter caps how long an upstream's Retry-After keeps its
	// deployment skipped.
	MaxRetryAfter time.Duration `yaml:"max_retry_after"`
}

// DefaultRouting tries three deployments within five minutes, and leaves a
// deployment alone for 30 s after five failures in a row.
var DefaultRouting = Routing{
	MaxAttempts:     3,
	Budget:          5 * time.Minute,
	CircuitFailures: 5,
	CircuitCooldown: 30 * time.Second,
	MaxRetryAfter:   5 * time.Minute,
}

// Policy is r with a model's overrides applied.
func (r Routing) Policy(m tenancy.Routing) tenancy.Routing {
	p := tenancy.Routing{MaxAttempts: r.MaxAttempts, Budget: r.Budget}
	if m.MaxAttempts > 0 {
		p.MaxAttempts = m.MaxAttempts
	}
	if m.Budget > 0 {
		p.Budget = m.Budget
	}
	return p
}

// Deployment is one upstream endpoint with its credentials.
type Deployment struct {
	Name     string `yaml:"name"`
	Provider string `yaml:"provider"`
	// BaseURL is the API root: "https://api.openai.com/v1" for OpenAI (and
	// ".../v1" for OpenAI-compatible servers), "https://NAME.openai.azure.com"
	// for Azure OpenAI.
	BaseURL string `yaml:"base_url"`
	// APIKey is the credential itself; APIKeyEnv names an environment
	// variable that holds it. Set at most one.
	APIKey    string `yaml:"api_key"`
	APIKeyEnv string `yaml:"api_key_env"`
	// APIVersion is Azure's api-version query parameter.
	APIVersion string `yaml:"api_version"`
	// DefaultMaxTokens is the max_tokens an Anthropic deployment gets for
	// a chat request that sets none (the Messages API requires one); 0
	// means Loom's own default (anthropic.FallbackMaxTokens).
	DefaultMaxTokens int `yaml:"default_max_tokens"`
	// CAFile is a PEM bundle trusted for this deployment's TLS, beside the
	// system roots (a self-hosted server with a private CA).
	CAFile string `yaml:"ca_file"`
	// MaxConns caps the pool of connections to this deployment.
	MaxConns int `yaml:"max_conns"`
	// TenantShare is the fraction of MaxConns one tenant may hold at once,
	// so a tenant that floods a deployment leaves the others served.
	TenantShare float64 `yaml:"tenant_share"`
	// ForwardHeaders lists request headers, beyond Loom's own short list,
	// that may go upstream; a trailing * matches a prefix.
	ForwardHeaders []string `yaml:"forward_headers"`
	// ForwardResponseHeaders lists upstream response headers, beyond Loom's
	// own list, that may reach the client.
	ForwardResponseHeaders []string `yaml:"forward_response_headers"`
}

// Tenant is one customer of the gateway, as the file describes it: a
// tenancy.Tenant whose credentials may name environment variables.
type Tenant struct {
	ID     string          `yaml:"id"`
	Keys   []tenancy.Key   `yaml:"keys"`
	Models []tenancy.Model `yaml:"models"`
	// Content is the tenant's prompt and completion capture policy.
	Content tenancy.ContentPolicy `yaml:"content"`
	// Limits apply to the tenant as a whole, all its keys together.
	Limits tenancy.Limits `yaml:"limits"`
	// Budgets cap the tenant's spend per day or month (UTC).
	Budgets []tenancy.Budget `yaml:"budgets"`
	// Credentials are the tenant's own provider credentials.
	Credentials []Credential `yaml:"credentials"`
}

// ResolveTenants is the file's tenants as the gateway serves them, each
// credential read from the file or the environment. The result holds
// secrets: it must never be logged.
func (c *Config) ResolveTenants() []tenancy.Tenant {
	out := make([]tenancy.Tenant, len(c.Tenants))
	for i, t := range c.Tenants {
		out[i] = t.withoutCredentials()
		for _, cr := range t.Credentials {
			out[i].Credentials = append(out[i].Credentials, tenancy.Credential{Deployment: cr.Deployment, APIKey: cr.Secret()})
		}
	}
	return out
}

// withoutCredentials is t less its credentials, whose secrets only the
// environment may know: the part that pure validation hands to tenancy.
func (t *Tenant) withoutCredentials() tenancy.Tenant {
	return tenancy.Tenant{ID: t.ID, Keys: t.Keys, Models: t.Models, Content: t.Content, Limits: t.Limits, Budgets: t.Budgets}
}

// Defaults applied by Load to fields left empty.
const (
	DefaultListen              = "127.0.0.1:8080"
	DefaultMaxBodyBytes        = 16 << 20
	DefaultMaxResponseBytes    = 128 << 20
	DefaultOutputTokens        = 4096
	DefaultMaxConns            = 512 // fasthttp's own default per host
	DefaultTenantShare         = 0.5
	DefaultMaxClientConns      = 16384
	DefaultMaxClientConnsPerIP = 1024
)

// DefaultTimeouts are generous enough for slow reasoning models and tight
// enough that a dead upstream is noticed.
var DefaultTimeouts = Timeouts{
	Connect:     5 * time.Second,
	FirstByte:   120 * time.Second,
	StreamIdle:  120 * time.Second,
	IdleConn:    60 * time.Second,
	Drain:       5 * time.Second,
	Shutdown:    30 * time.Second,
	PoolWait:    5 * time.Second,
	ClientRead:  60 * time.Second,
	ClientWrite: 60 * time.Second,
	ClientIdle:  90 * time.Second,
	StreamWrite: 30 * time.Second,
}

// Load reads, defaults and validates the file at path.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(b)
}

// Parse decodes, defaults and validates a configuration.
func Parse(b []byte) (*Config, error) {
	var c Config
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("parse config: %w", err)
	}
	c.applyDefaults()
	if err := errors.Join(c.Validate(), c.CheckEnvironment()); err != nil {
		return nil, err
	}
	return &c, nil
}

func (c *Config) applyDefaults() {
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	for _, f := range []struct {
		v   *int
		def int
	}{
		{&c.MaxResponseBytes, DefaultMaxResponseBytes}, {&c.DefaultOutputTokens, DefaultOutputTokens},
		{&c.Connections.MaxTotal, DefaultMaxClientConns}, {&c.Connections.MaxPerIP, DefaultMaxClientConnsPerIP},
	} {
		if *f.v == 0 {
			*f.v = f.def
		}
	}
	t, d := &c.Timeouts, DefaultTimeouts
	for _, f := range []struct {
		v   *time.Duration
		def time.Duration
	}{
		{&t.Connect, d.Connect}, {&t.FirstByte, d.FirstByte}, {&t.StreamIdle, d.StreamIdle},
		{&t.IdleConn, d.IdleConn}, {&t.Drain, d.Drain}, {&t.Shutdown, d.Shutdown},
		{&t.PoolWait, d.PoolWait}, {&t.ClientRead, d.ClientRead}, {&t.ClientWrite, d.ClientWrite},
		{&t.ClientIdle, d.ClientIdle}, {&t.StreamWrite, d.StreamWrite},
	} {
		if *f.v == 0 {
			*f.v = f.def
		}
	}
	ro, dr := &c.Routing, DefaultRouting
	if ro.MaxAttempts == 0 {
		ro.MaxAttempts = dr.MaxAttempts
	}
	if ro.CircuitFailures == 0 {
		ro.CircuitFailures = dr.CircuitFailures
	}
	for _, f := range []struct{ v, def *time.Duration }{
		{&ro.Budget, &dr.Budget}, {&ro.CircuitCooldown, &dr.CircuitCooldown}, {&ro.MaxRetryAfter, &dr.MaxRetryAfter},
	} {
		if *f.v == 0 {
			*f.v = *f.def
		}
	}
	tr, dt := &c.Tracing, DefaultTracing
	if tr.Protocol == "" {
		tr.Protocol = dt.Protocol
	}
	for _, f := range []struct{ v, def *int }{{&tr.QueueSize, &dt.QueueSize}, {&tr.BatchSize, &dt.BatchSize}} {
		if *f.v == 0 {
			*f.v = *f.def
		}
	}
	for _, f := range []struct{ v, def *time.Duration }{
		{&tr.BatchTimeout, &dt.BatchTimeout}, {&tr.ExportTimeout, &dt.ExportTimeout}, {&tr.RetryMaxElapsed, &dt.RetryMaxElapsed},
	} {
		if *f.v == 0 {
			*f.v = *f.def
		}
	}
	if tr.QueueBytes == 0 {
		tr.QueueBytes = dt.QueueBytes
	}
	if tr.BatchBytes == 0 {
		tr.BatchBytes = dt.BatchBytes
	}
	{
		sp := &tr.Spool
		if sp.MaxBytes == 0 {
			sp.MaxBytes = dt.Spool.MaxBytes
		}
		if sp.SegmentBytes == 0 {
			sp.SegmentBytes = dt.Spool.SegmentBytes
		}
		if sp.CommitInterval == 0 {
			sp.CommitInterval = dt.Spool.CommitInterval
		}
		if sp.WhenFull == "" {
			sp.WhenFull = dt.Spool.WhenFull
		}
	}
	if c.Store.Enabled() && c.Store.Poll == 0 {
		c.Store.Poll = 10 * time.Second
	}
	for i := range c.Tenants {
		if p := &c.Tenants[i].Content; p.MaxBytes == 0 {
			p.MaxBytes = tenancy.DefaultContentMaxBytes
		}
	}
	for i := range c.Deployments {
		dep := &c.Deployments[i]
		if dep.Provider == ProviderAzureOpenAI && dep.APIVersion == "" {
			dep.APIVersion = "2024-10-21"
		}
		if dep.MaxConns == 0 {
			dep.MaxConns = DefaultMaxConns
		}
		if dep.TenantShare == 0 {
			dep.TenantShare = DefaultTenantShare
		}
	}
}

// Validate reports every problem in c that the file alone shows, each
// naming its field, in the file's order (the tenants' credentials last).
// It is pure: what the file names outside itself is CheckEnvironment's.
func (c *Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	if c.MaxBodyBytes < 1024 {
		bad("max_body_bytes", "must be at least 1024, got %d", c.MaxBodyBytes)
	}
	if c.MaxResponseBytes < 1024 {
		bad("max_response_bytes", "must be at least 1024, got %d", c.MaxResponseBytes)
	}
	if c.DefaultOutputTokens < 1 {
		bad("default_output_tokens", "must be positive, got %d", c.DefaultOutputTokens)
	}
	if c.Connections.MaxTotal < 1 {
		bad("connections.max_total", "must be positive, got %d", c.Connections.MaxTotal)
	}
	if c.Connections.MaxPerIP < 1 {
		bad("connections.max_per_ip", "must be positive, got %d", c.Connections.MaxPerIP)
	}
	if c.Ops.Listen != "" {
		if _, _, err := net.SplitHostPort(c.Ops.Listen); err != nil {
			bad("ops.listen", "must be host:port, got %q", c.Ops.Listen)
		}
	}
	// A slice, not a map: errors come out in the same order every time.
	t := &c.Timeouts
	for _, f := range []struct {
		name string
		v    time.Duration
	}{
		{"connect", t.Connect}, {"first_byte", t.FirstByte}, {"stream_idle", t.StreamIdle},
		{"idle_conn", t.IdleConn}, {"drain", t.Drain}, {"shutdown", t.Shutdown}, {"pool_wait", t.PoolWait},
		{"client_read", t.ClientRead}, {"client_write", t.ClientWrite}, {"client_idle", t.ClientIdle},
		{"stream_write", t.StreamWrite},
	} {
		if f.v < 0 {
			bad("timeouts."+f.name, "must not be negative")
		}
	}
	c.Tracing.validate(bad)
	tenancy.ValidateRouting("routing", tenancy.Routing{MaxAttempts: c.Routing.MaxAttempts, Budget: c.Routing.Budget}, bad)
	if c.Routing.CircuitFailures < 1 {
		bad("routing.circuit_failures", "must be positive, got %d", c.Routing.CircuitFailures)
	}
	if c.Routing.CircuitCooldown < 0 {
		bad("routing.circuit_cooldown", "must not be negative")
	}
	if c.Routing.MaxRetryAfter < 0 {
		bad("routing.max_retry_after", "must not be negative")
	}
	if c.Store.Poll < 0 {
		bad("store.poll", "must not be negative")
	}
	if c.Admin.Listen != "" {
		if c.Admin.TokenSHA256 == "" && c.Admin.TokenEnv == "" {
			bad("admin", "an admin listener needs token_sha256 or token_env")
		}
		if h, err := hex.DecodeString(c.Admin.TokenSHA256); c.Admin.TokenSHA256 != "" && (err != nil || len(h) != 32) {
			bad("admin.token_sha256", "must be 64 hex characters")
		}
	}
	if c.Console.Listen != "" {
		if _, _, err := net.SplitHostPort(c.Console.Listen); err != nil {
			bad("console.listen", "must be host:port, got %q", c.Console.Listen)
		}
		if c.Console.DatabaseURLEnv == "" {
			bad("console.database_url_env", "is required when console.listen is set")
		}
	} else if c.Console.DatabaseURLEnv != "" {
		bad("console.listen", "is required when console.database_url_env is set")
	}
	deployments := map[string]bool{}
	for i, d := range c.Deployments {
		f := fmt.Sprintf("deployments[%d]", i)
		switch {
		case d.Name == "":
			bad(f+".name", "is required")
		case deployments[d.Name]:
			bad(f+".name", "%q is defined twice", d.Name)
		}
		deployments[d.Name] = true
		if d.Provider != ProviderOpenAI && d.Provider != ProviderAzureOpenAI && d.Provider != ProviderAnthropic {
			bad(f+".provider", "must be %q, %q or %q, got %q", ProviderOpenAI, ProviderAzureOpenAI, ProviderAnthropic, d.Provider)
		}
		if u, err := url.Parse(d.BaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad(f+".base_url", "must be an absolute http or https URL, got %q", d.BaseURL)
		} else if u.RawQuery != "" || u.Fragment != "" {
			bad(f+".base_url", "must not have a query or fragment")
		} else if d.Provider == ProviderAnthropic && !strings.HasSuffix(strings.TrimRight(u.Path, "/"), "/v1") {
			// Loom appends /messages, as to an OpenAI base URL it appends
			// /chat/completions: the API root, like https://api.anthropic.com/v1.
			bad(f+".base_url", "of an anthropic deployment must end in /v1 (like https://api.anthropic.com/v1), got %q", d.BaseURL)
		}
		if d.DefaultMaxTokens < 0 {
			bad(f+".default_max_tokens", "must not be negative")
		}
		if d.APIKey != "" && d.APIKeyEnv != "" {
			bad(f, "set api_key or api_key_env, not both")
		}
		// An api_key_env that names an unset variable is CheckEnvironment's.
		if d.Provider == ProviderAzureOpenAI && d.APIKey == "" && d.APIKeyEnv == "" {
			bad(f, "azure_openai needs api_key or api_key_env")
		}
		if d.MaxConns < 0 {
			bad(f+".max_conns", "must not be negative")
		}
		if d.TenantShare < 0 || d.TenantShare > 1 {
			bad(f+".tenant_share", "must be between 0 and 1, got %v", d.TenantShare)
		}
	}
	hasDeployment := func(name string) bool { return deployments[name] }
	tenants := make([]tenancy.Tenant, len(c.Tenants))
	for i := range c.Tenants {
		tenants[i] = c.Tenants[i].withoutCredentials()
	}
	if err := tenancy.Validate(tenants, hasDeployment); err != nil {
		errs = append(errs, err)
	}
	if err := c.validatePrices(); err != nil {
		errs = append(errs, err)
	}
	for i, t := range c.Tenants {
		for j, cr := range t.Credentials {
			cf := fmt.Sprintf("tenants[%d].credentials[%d]", i, j)
			if !hasDeployment(cr.Deployment) {
				bad(cf+".deployment", "no deployment named %q", cr.Deployment)
			}
			if (cr.APIKey == "") == (cr.APIKeyEnv == "") {
				bad(cf, "set exactly one of api_key and api_key_env")
			}
		}
	}
	return errors.Join(errs...)
}

// CheckEnvironment reports what c names outside the file that is missing:
// environment variables empty or unset, files that cannot be read. Only
// loading a configuration runs it; tenants from the store are checked by
// tenancy.Validate alone.
func (c *Config) CheckEnvironment() error {
	var errs []error
	unset := func(field, name string) {
		if os.Getenv(name) == "" {
			errs = append(errs, fmt.Errorf("%s: environment variable %s is empty or unset", field, name))
		}
	}
	if c.Store.Enabled() {
		unset("store.database_url_env", c.Store.DatabaseURLEnv)
	}
	if c.Redis.Enabled() {
		unset("redis.url_env", c.Redis.URLEnv)
	}
	if c.Admin.Listen != "" && c.Admin.TokenEnv != "" {
		unset("admin.token_env", c.Admin.TokenEnv)
	}
	for i, d := range c.Deployments {
		f := fmt.Sprintf("deployments[%d]", i)
		if d.APIKeyEnv != "" {
			unset(f+".api_key_env", d.APIKeyEnv)
		}
		if d.CAFile != "" {
			if _, err := os.Stat(d.CAFile); err != nil {
				errs = append(errs, fmt.Errorf("%s.ca_file: %w", f, err))
			}
		}
	}
	for i, t := range c.Tenants {
		for j, cr := range t.Credentials {
			if cr.APIKey == "" && cr.APIKeyEnv != "" {
				unset(fmt.Sprintf("tenants[%d].credentials[%d].api_key_env", i, j), cr.APIKeyEnv)
			}
		}
	}
	return errors.Join(errs...)
}

func (t *Tracing) validate(bad func(field, format string, args ...any)) {
	if t.Endpoint != "" {
		if u, err := url.Parse(t.Endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("tracing.endpoint", "must be an http or https URL such as http://127.0.0.1:4317, got %q", t.Endpoint)
		}
	}
	if t.Protocol != TracingGRPC && t.Protocol != TracingHTTP {
		bad("tracing.protocol", "must be %q or %q, got %q", TracingGRPC, TracingHTTP, t.Protocol)
	}
	if t.QueueSize < 1 {
		bad("tracing.queue_size", "must be positive")
	}
	if t.BatchSize < 1 {
		bad("tracing.batch_size", "must be positive")
	}
	if t.BatchTimeout < 0 || t.BatchTimeout > time.Minute {
		bad("tracing.batch_timeout", "must be between 0 and 1m, got %v", t.BatchTimeout)
	}
	if t.BatchBytes < 64<<10 {
		bad("tracing.batch_bytes", "must be at least 65536, got %d", t.BatchBytes)
	}
	if t.QueueBytes < int64(t.BatchBytes) {
		bad("tracing.queue_bytes", "must be at least tracing.batch_bytes (%d), got %d", t.BatchBytes, t.QueueBytes)
	}
	sp := &t.Spool
	if sp.SegmentBytes < 1<<20 {
		bad("tracing.spool.segment_bytes", "must be at least 1 MiB, got %d", sp.SegmentBytes)
	}
	if sp.MaxBytes < 2*sp.SegmentBytes {
		bad("tracing.spool.max_bytes", "must be at least twice tracing.spool.segment_bytes (%d), got %d", sp.SegmentBytes, sp.MaxBytes)
	}
	if sp.CommitInterval < 0 || sp.CommitInterval > time.Second {
		bad("tracing.spool.commit_interval", "must be between 0 and 1s, got %v", sp.CommitInterval)
	}
	if sp.WhenFull != SpoolDrop && sp.WhenFull != SpoolRefuse {
		bad("tracing.spool.when_full", "must be %q or %q, got %q", SpoolDrop, SpoolRefuse, sp.WhenFull)
	}
	if t.ExportTimeout <= 0 {
		bad("tracing.export_timeout", "must be positive, got %v", t.ExportTimeout)
	}
}

// Credential is the deployment's upstream API key, from the file or the
// environment. It must never be logged.
func (d *Deployment) Credential() string {
	if d.APIKeyEnv != "" {
		return os.Getenv(d.APIKeyEnv)
	}
	return d.APIKey
}
