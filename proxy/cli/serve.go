package cli

import (
	"bytes"
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/pprofhandler"

	"github.com/loom-gateway/loom/proxy/admin"
	"github.com/loom-gateway/loom/proxy/budget"
	"github.com/loom-gateway/loom/proxy/call"
	"github.com/loom-gateway/loom/proxy/config"
	"github.com/loom-gateway/loom/proxy/console"
	"github.com/loom-gateway/loom/proxy/limit"
	"github.com/loom-gateway/loom/proxy/secret"
	"github.com/loom-gateway/loom/proxy/server"
	"github.com/loom-gateway/loom/proxy/snapshot"
	"github.com/loom-gateway/loom/proxy/store"
	"github.com/loom-gateway/loom/proxy/tenancy"
	"github.com/loom-gateway/loom/proxy/tracing"
)

// closers run in reverse order at shutdown, each with what is left of the
// shutdown deadline.
type closers []func(ctx context.Context) error

func (c closers) close(ctx context.Context) error {
	var errs []error
	for i := len(c) - 1; i >= 0; i-- {
		errs = append(errs, c[i](ctx))
	}
	return errors.Join(errs...)
}

func serve(ctx context.Context, args []string, stderr io.Writer) (err error) {
	fs := flag.NewFlagSet("loom serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "loom.yaml", "configuration file")
	listen := fs.String("listen", "", "listen address (overrides the config's listen)")
	logCalls := fs.Bool("log-calls", false, "log one line per finished call")
	migrate := fs.Bool("migrate", false, "apply the schema's migrations to the store's and the console's database before serving (as loom migrate)")
	addedLatency := fs.Duration("debug-added-latency", 0, "debug: add this much latency inside Loom to every call")
	if err := fs.Parse(args); err != nil {
		return ErrUsage
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return err
	}
	if *listen != "" {
		cfg.Listen = *listen
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	if os.Getenv("GOGC") == "" {
		// A gateway's live heap is small and its garbage is per call: the
		// default GOGC=100 runs a collection every few MB, and each one
		// steals CPU from requests in flight. 400 trades a few MB of memory
		// for a quarter of the cycles (p99 overhead with tracing on fell
		// ~0.5 ms in make bench). GOGC in the environment still wins.
		debug.SetGCPercent(400)
	}
	var done closers
	defer func() {
		// Whatever started is stopped, in reverse, also when starting failed.
		// The tracer gets this long to ship what the spool holds; what is
		// left then ships at the next start.
		cctx, cancel := context.WithTimeout(context.Background(), cfg.Timeouts.Shutdown)
		defer cancel()
		err = errors.Join(err, done.close(cctx))
	}()

	opts := server.Options{Logger: log, AddedLatency: *addedLatency}
	var sinks []call.Sink
	if *logCalls {
		sinks = append(sinks, call.SinkFunc(func(r *call.Record) { logRecord(log, r) }))
	}
	if cfg.Tracing.Endpoint != "" {
		tracer, err := tracing.New(ctx, cfg.Tracing, tracing.Options{ServiceVersion: Version, Logger: log})
		if err != nil {
			return err
		}
		// Registered first, so it closes last: the calls are over by then,
		// so the run's stop marker carries its true last number.
		done = append(done, tracer.Shutdown)
		sinks = append(sinks, tracer)
		opts.Metrics = tracer.AppendMetrics
		if cfg.Tracing.Spool.WhenFull == config.SpoolRefuse {
			opts.Recording = tracer.Admit
		}
		log.Info("tracing on", "endpoint", cfg.Tracing.Endpoint, "protocol", cfg.Tracing.Protocol,
			"instance_id", tracer.InstanceID(), "run_id", tracer.RunID(), "spool", cfg.Tracing.Spool.Dir)
	} else {
		log.Warn("tracing off: set tracing.endpoint to record calls as spans")
	}
	opts.Sink = call.Sinks(sinks...)
	if cfg.Redis.Enabled() {
		rc, err := redisClient(cfg.Redis)
		if err != nil {
			return err
		}
		rs := limit.NewRedis(rc, "loom:")
		// Closed in reverse: the limiter's slots are given back, then the
		// client they share with the budgets closes.
		done = append(done, func(context.Context) error { return rc.Close() }, rs.Close)
		opts.Limiter = limit.New(limit.Fallback(rs, limit.NewMemory()), nil)
		opts.Budgets = budget.New(budget.Fallback(budget.NewRedis(rc, "loom:budget:"), budget.NewMemory()), nil, log)
		log.Info("rate limits and budgets shared through Redis")
	} else {
		opts.Budgets = budget.New(budget.NewMemory(), nil, log)
	}
	if *migrate {
		// Before the store opens (it refuses a database it would have to
		// migrate) and before the console reads.
		if err := migrateAll(ctx, cfg, log); err != nil {
			return err
		}
	}
	var st *store.Store
	if cfg.Store.Enabled() {
		if st, err = openStore(ctx, cfg, log); err != nil {
			return err
		}
		done = append(done, func(context.Context) error { st.Close(); return nil })
	}
	srv, err := server.New(cfg, opts)
	if err != nil {
		return err
	}
	if st != nil {
		src := pricedStore{Store: st, srv: srv, log: log}
		tenants, err := src.Load(ctx)
		if err != nil {
			return fmt.Errorf("load tenants from the store: %w", err)
		}
		// A bad tenant row is quarantined, not fatal: the others serve.
		quarantined := srv.SetTenants(tenants)
		if quarantined != nil {
			reason := snapshot.Reason(quarantined)
			srv.SetDegraded(reason)
			log.Warn("tenants quarantined: not served until fixed", "reason", reason)
		}
		go snapshot.Follow(ctx, src, srv, cfg.Store.Poll, log, quarantined)
		log.Info("tenants from the store", "tenants", len(tenants), "poll", cfg.Store.Poll)
	}
	if cfg.Ops.Listen != "" {
		stop, err := startOps(cfg.Ops, srv, log)
		if err != nil {
			return err
		}
		done = append(done, stop)
	} else {
		log.Info("ops listener off: set ops.listen to serve /metrics")
	}
	if cfg.Admin.Listen != "" {
		stop, err := startAdmin(cfg, st, log)
		if err != nil {
			return err
		}
		done = append(done, stop)
	}
	if cfg.Console.Listen != "" {
		stop, err := startConsole(ctx, cfg, srv, st, log)
		if err != nil {
			return err
		}
		done = append(done, stop)
	}
	// SIGHUP reloads the file (see reload.go).
	(&reloader{path: *path, listen: *listen, srv: srv, fileTenants: st == nil, log: log, cur: cfg}).watch(ctx)
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	log.Info("loom serving", "addr", ln.Addr().String(), "tenants", len(cfg.Tenants), "deployments", len(cfg.Deployments))
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down", "deadline", cfg.Timeouts.Shutdown)
	sctx, cancel := context.WithTimeout(context.Background(), cfg.Timeouts.Shutdown)
	defer cancel()
	err = srv.Shutdown(sctx)
	if serr := <-errc; err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// openStore connects to the tenant store with the credential key, if one
// is configured (without one, a store holding credentials refuses to load).
func openStore(ctx context.Context, full *config.Config, log *slog.Logger) (*store.Store, error) {
	cfg := full.Store
	box, err := secret.Load(cfg)
	if errors.Is(err, secret.ErrNoKey) {
		box, err = nil, nil
	}
	if err != nil {
		return nil, err
	}
	st, err := store.Open(ctx, cfg.DatabaseURL(), box, store.WithLogger(log), store.WithDeployments(deploymentNames(full)))
	if err != nil {
		return nil, fmt.Errorf("open the tenant store: %w", err)
	}
	return st, nil
}

// redisClient connects the shared limit counters and budgets. Timeouts are
// short and retries off: a Redis outage must cost a request milliseconds,
// then the limiter and the budgets count locally until Redis is back.
func redisClient(cfg config.Redis) (*redis.Client, error) {
	o, err := redis.ParseURL(os.Getenv(cfg.URLEnv))
	if err != nil {
		return nil, fmt.Errorf("redis.url_env %s: %w", cfg.URLEnv, err)
	}
	o.DialTimeout, o.ReadTimeout, o.WriteTimeout = 200*time.Millisecond, 200*time.Millisecond, 200*time.Millisecond
	o.MaxRetries, o.DialerRetries = -1, 1
	return redis.NewClient(o), nil
}

// startOps serves /metrics, /healthz and /readyz on the operators' own
// listener, apart from the gateway's: its metrics are not for the world.
// Its requests are small GETs, so its timeouts and body limit are tight.
func startOps(cfg config.Ops, srv *server.Server, log *slog.Logger) (func(context.Context) error, error) {
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("ops listen: %w", err)
	}
	handler := srv.OpsHandler()
	writeTimeout := 10 * time.Second
	if cfg.Pprof {
		handler = withPprof(handler)
		// A CPU profile or trace answers only after its ?seconds=.
		writeTimeout = 5 * time.Minute
	}
	hs := &fasthttp.Server{
		Handler:               handler,
		Name:                  "loom-ops",
		ReadTimeout:           10 * time.Second,
		WriteTimeout:          writeTimeout,
		IdleTimeout:           60 * time.Second,
		MaxRequestBodySize:    4 << 10,
		NoDefaultServerHeader: true,
		SecureErrorLogMessage: true,
	}
	go func() {
		if err := hs.Serve(ln); err != nil {
			log.Error("ops listener stopped", "error", err)
		}
	}()
	log.Info("ops listener serving", "addr", ln.Addr().String(), "metrics", "http://"+ln.Addr().String()+"/metrics")
	return hs.ShutdownWithContext, nil
}

// withPprof serves Go's profiles under /debug/pprof/ beside the ops
// handler's own paths (ops.pprof).
func withPprof(ops fasthttp.RequestHandler) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		if bytes.HasPrefix(ctx.Path(), []byte("/debug/pprof/")) {
			pprofhandler.PprofHandler(ctx)
			return
		}
		ops(ctx)
	}
}

// httpServer is the net/http server of the admin API and the console, with
// the gateway's client timeouts: a client that sends its headers slowly,
// never finishes a body, never reads the answer or idles on a keep-alive
// cannot hold a goroutine and a socket for ever.
func httpServer(t config.Timeouts, h http.Handler) *http.Server {
	d := config.DefaultTimeouts
	read, write, idle := cmp.Or(t.ClientRead, d.ClientRead), cmp.Or(t.ClientWrite, d.ClientWrite), cmp.Or(t.ClientIdle, d.ClientIdle)
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: min(10*time.Second, read),
		ReadTimeout:       read,
		WriteTimeout:      write,
		IdleTimeout:       idle,
		MaxHeaderBytes:    maxHeaderBytes,
	}
}

// maxHeaderBytes caps a request's headers on the admin and console
// listeners (net/http's default is 1 MiB; a session cookie is ~100 bytes).
const maxHeaderBytes = 32 << 10

// startAdmin serves the admin API on its own listener.
func startAdmin(full *config.Config, st *store.Store, log *slog.Logger) (func(context.Context) error, error) {
	cfg := full.Admin
	if st == nil {
		return nil, errors.New("admin.listen: the admin API manages the tenant store; set store.database_url_env")
	}
	token, err := admin.TokenSHA256(cfg)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("admin listen: %w", err)
	}
	hs := httpServer(full.Timeouts, admin.New(st, token, log))
	go func() {
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("admin API stopped", "error", err)
		}
	}()
	log.Info("admin API serving", "addr", ln.Addr().String())
	return hs.Shutdown, nil
}

// startConsole serves the web console on its own listener, reading spans
// from console.database_url_env's Postgres and logging tenants in with the
// keys of the gateway's live snapshot. With the tenant store (st not nil)
// its Tenants and Keys pages manage tenants and keys through the admin API
// in process; without it they say the store is not configured.
func startConsole(ctx context.Context, cfg *config.Config, srv *server.Server, st *store.Store, log *slog.Logger) (func(context.Context) error, error) {
	dbURL := cfg.Console.DatabaseURL()
	if dbURL == "" {
		return nil, fmt.Errorf("console.database_url_env: environment variable %s is empty or unset", cfg.Console.DatabaseURLEnv)
	}
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		return nil, fmt.Errorf("console database: %w", err)
	}
	var adminToken [32]byte
	if cfg.Admin.TokenSHA256 != "" || cfg.Admin.TokenEnv != "" {
		if adminToken, err = admin.TokenSHA256(cfg.Admin); err != nil {
			pool.Close()
			return nil, err
		}
	}
	sessionKey, from, err := consoleSessionKey(cfg)
	if err != nil {
		pool.Close()
		return nil, err
	}
	if from == sessionKeyMadeAtStart {
		log.Warn("console sessions are signed with a key made at start: they end when Loom restarts and hold on this replica only; set console.session_key_file (or the store's secret key)")
	}
	ln, err := net.Listen("tcp", cfg.Console.Listen)
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("console listen: %w", err)
	}
	var adminAPI func(admin.Caller) http.Handler
	if st != nil {
		adminAPI = admin.NewInternal(st, adminToken, log).As
	}
	h := console.New(console.Options{
		DB:          pool,
		Admin:       adminAPI,
		Deployments: deploymentNames(cfg),
		Authenticate: func(key string) (string, string, bool) {
			return srv.Authenticate([]byte(key))
		},
		KeyLive:          srv.KeyLive,
		AdminTokenSHA256: adminToken,
		SessionKey:       sessionKey,
		Log:              log,
	})
	hs := httpServer(cfg.Timeouts, h)
	go func() {
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("console stopped", "error", err)
		}
	}()
	log.Info("console serving", "url", "http://"+ln.Addr().String()+"/console/", "admin_login", adminToken != [32]byte{})
	return func(ctx context.Context) error {
		err := hs.Shutdown(ctx)
		pool.Close()
		return err
	}, nil
}

// pricedStore is the tenant store as the gateway follows it: each snapshot
// of the tenants also reloads the store's price entries (loom.prices
// notifies on the tenants' channel), so prices change the way tenants do.
// Prices that cannot be read keep the catalog served until now; a store
// entry that clashes with the file's is left out (see
// server.SetStorePrices). Either is logged, and neither holds back the
// tenants.
type pricedStore struct {
	*store.Store
	srv *server.Server
	log *slog.Logger
}

func (p pricedStore) Load(ctx context.Context) ([]tenancy.Tenant, error) {
	tenants, err := p.Store.Load(ctx)
	if err != nil {
		return nil, err
	}
	entries, err := p.Prices(ctx)
	if err == nil {
		err = p.srv.SetStorePrices(entries)
	}
	if err != nil {
		p.log.Error("store prices: not all applied", "error", err)
	}
	return tenants, nil
}

// Where the console's session key came from.
const (
	sessionKeyConfigured  = "console.session_key_env or session_key_file"
	sessionKeyFromStore   = "derived from the store's credential key"
	sessionKeyMadeAtStart = "made at start"
)

// consoleSessionKey is the key that signs console sessions: the one the
// console section names, else one derived from the store's credential key
// (every replica sharing that key signs alike, and a restart keeps
// sessions), else a random one. The derivation is an HMAC of a fixed label,
// so the session key reveals nothing of the credential key.
func consoleSessionKey(cfg *config.Config) (key []byte, from string, err error) {
	c := cfg.Console
	if c.SessionKeyEnv != "" || c.SessionKeyFile != "" {
		key, err := secret.ReadKey(c.SessionKeyEnv, c.SessionKeyFile)
		if err != nil {
			return nil, "", fmt.Errorf("console session key: %w", err)
		}
		return key, sessionKeyConfigured, nil
	}
	if cfg.Store.SecretKeyEnv != "" || cfg.Store.SecretKeyFile != "" {
		if sk, err := secret.ReadKey(cfg.Store.SecretKeyEnv, cfg.Store.SecretKeyFile); err == nil {
			m := hmac.New(sha256.New, sk)
			m.Write([]byte("loom console session key v1"))
			return m.Sum(nil), sessionKeyFromStore, nil
		}
	}
	key = make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, "", fmt.Errorf("console session key: %w", err)
	}
	return key, sessionKeyMadeAtStart, nil
}
