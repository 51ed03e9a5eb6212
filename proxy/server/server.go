// Package server is Loom's HTTP front: it authenticates each request, routes
// it to the tenant's deployment, relays the answer and hands a complete
// call.Record to the sink. It speaks OpenAI's API (chat, completions,
// embeddings, the Responses API), Azure OpenAI's paths and Anthropic's
// Messages API; a call whose deployment speaks another dialect than its
// client is translated (anthropic.go), any other is relayed byte for
// byte. Every error it makes itself is in its client's dialect: OpenAI's
// shape, Anthropic's on /v1/messages. It must never log, trace or return a
// client key or an upstream credential, and never touch a RequestCtx after
// its handler returns.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/loom-gateway/loom/proxy/budget"
	"github.com/loom-gateway/loom/proxy/call"
	"github.com/loom-gateway/loom/proxy/config"
	"github.com/loom-gateway/loom/proxy/limit"
	"github.com/loom-gateway/loom/proxy/relay"
	"github.com/loom-gateway/loom/proxy/request"
	"github.com/loom-gateway/loom/proxy/tap"
	"github.com/loom-gateway/loom/proxy/tenancy"
	"github.com/loom-gateway/loom/proxy/tenant"
	"github.com/loom-gateway/loom/proxy/upstream"
)

// Options are what the server needs beyond the configuration.
type Options struct {
	// Sink receives every finished call. Nil discards them.
	Sink call.Sink
	// Logger gets operational messages (never keys). Nil discards them.
	Logger *slog.Logger
	// AddedLatency is a debug knob that makes Loom slower by this much per
	// call, so a test can prove that the benchmark gates catch a regression.
	AddedLatency time.Duration
	// Dial replaces TCP towards upstreams (tests, in-memory benchmarks).
	Dial upstream.DialFunc
	// Limiter enforces the tenants' and keys' rate limits. Nil means an
	// in-memory limiter: right for one replica; several replicas share
	// one through Redis (see the limit package).
	Limiter *limit.Limiter
	// Budgets enforces the tenants' and keys' spend caps. Nil means
	// in-memory budgets: right for one replica; several share them
	// through Redis (see the budget package).
	Budgets *budget.Budgets
	// Metrics, when set, appends the Prometheus text exposition of
	// whoever owns other counters (the tracer's span totals) to the
	// gateway's own, on the ops listener's /metrics (see OpsHandler).
	Metrics func(dst []byte) []byte
	// Recording, when set, says whether a new call can be recorded now;
	// while it says no, calls are answered 503 before they reach an
	// upstream (the tracer's spool is full and its policy is to refuse
	// rather than serve calls that would go unrecorded).
	Recording func() bool
}

// Server is the gateway.
type Server struct {
	// cfg is the configuration New was given: what only a restart changes
	// (listen, body and connection limits, client timeouts). What a call
	// reads is in live, which Reload replaces.
	cfg       *config.Config
	opts      Options
	log       *slog.Logger
	live      atomic.Pointer[live]
	http      *fasthttp.Server
	exchanges sync.Pool
	streamsMu sync.Mutex
	streams   map[*relay.Stream]struct{}
	draining  atomic.Bool
	// listeners are those Serve was given, closed by Shutdown: a Shutdown
	// that comes before Serve has started must still stop it.
	listenersMu sync.Mutex
	listeners   []net.Listener
	// degraded, when set, says why the gateway serves an old snapshot.
	degraded atomic.Pointer[string]
	// lastLimitErr is the last limiter store error logged.
	lastLimitErr atomic.Pointer[string]
	// lastBudgetErr is the last budget store error logged;
	// unpricedModels the models logged as having no price.
	lastBudgetErr  atomic.Pointer[string]
	unpricedModels unpricedModels
	// unauth counts the requests refused before a tenant was known.
	unauth unauthCounts
	// goodTenants is each served tenant's version as served: what a
	// quarantined tenant falls back to; lastTenants the last snapshot
	// given, which Reload re-checks against new deployments. tenantsMu
	// orders SetTenants and Reload.
	tenantsMu   sync.Mutex
	goodTenants map[string]tenancy.Tenant
	lastTenants []tenancy.Tenant
	// lastAuthLog is when (Unix seconds) an upstream credential refusal
	// was last logged.
	lastAuthLog atomic.Int64
	// routing counts upstream attempts, failovers and skips (attempts.go).
	routing routingCounts
	// responseIDs routes lookups of a stored response to the deployment
	// that made it (see responseIndex).
	responseIDs responseIndex
	// prices is the catalog calls are priced with (prices.go).
	prices priceBook
	// metrics are the per-call series of /metrics (metrics.go).
	metrics *callMetrics
}

// New builds a server from a validated configuration.
func New(cfg *config.Config, opts Options) (*Server, error) {
	s := &Server{cfg: cfg, opts: opts, log: opts.Logger, streams: map[*relay.Stream]struct{}{}, metrics: newCallMetrics()}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.opts.Sink == nil {
		s.opts.Sink = call.SinkFunc(func(*call.Record) {})
	}
	if s.opts.Limiter == nil {
		s.opts.Limiter = limit.New(limit.NewMemory(), nil)
	}
	if s.opts.Budgets == nil {
		s.opts.Budgets = budget.New(budget.NewMemory(), nil, s.log)
	}
	if err := s.prices.setFile(cfg); err != nil {
		return nil, err
	}
	deps, built, err := s.buildDeployments(cfg, nil)
	if err != nil {
		return nil, err
	}
	tenants := cfg.ResolveTenants()
	dir, err := tenant.Build(tenants, deps)
	if err != nil {
		return nil, err
	}
	s.live.Store(&live{cfg: cfg, deployments: deps, built: built, dir: dir, models: modelSet(tenants)})
	s.lastTenants = tenants
	s.goodTenants = make(map[string]tenancy.Tenant, len(tenants))
	for _, t := range tenants {
		s.goodTenants[t.ID] = t
	}
	s.metrics.reg.MustRegister(gauges{s})
	s.exchanges.New = func() any {
		ex := &exchange{srv: s, cands: make([]*tenant.Target, 0, maxKeptCandidates)}
		ex.streamDone = ex.streamEnded
		return ex
	}
	t := &cfg.Timeouts
	s.http = &fasthttp.Server{
		Handler:      s.Handle,
		ErrorHandler: s.handleTransportError,
		Name:         "loom",
		// Bodies are read as a stream (see frontdoor.go): fasthttp
		// pre-reads at most 8 KiB of one, and Loom reads the rest into a
		// buffer that grows with what arrives, up to max_body_bytes. A body
		// announced larger is refused from its headers (headerReceived).
		StreamRequestBody:  true,
		MaxRequestBodySize: cfg.MaxBodyBytes,
		HeaderReceived:     s.headerReceived,
		// ClientRead bounds a request from its first byte to the end of its
		// body; ClientWrite a non-streamed answer (a stream sets its own
		// deadline per event: see relay.Options.WriteTimeout).
		ReadTimeout: t.ClientRead,
		// A connection holds its write buffer for as long as a stream
		// runs on it. A stream writes one event per flush (a few hundred
		// bytes), so 2 KiB instead of fasthttp's 4 KiB costs nothing
		// there; an event or a unary answer larger than what is left of
		// the buffer goes out in two writes instead of one, which is what
		// happens past 4 KiB anyway. The read buffer stays at fasthttp's
		// 4 KiB: it bounds a request's headers.
		WriteBufferSize:              serverWriteBuffer,
		WriteTimeout:                 t.ClientWrite,
		IdleTimeout:                  t.ClientIdle,
		NoDefaultServerHeader:        true,
		NoDefaultContentType:         true,
		CloseOnShutdown:              true,
		DisablePreParseMultipartForm: true,
		// fasthttp's own log lines can quote a request, key included; every
		// such failure is answered and recorded by handleTransportError.
		SecureErrorLogMessage: true,
		Logger:                quietLogger{},
	}
	return s, nil
}

// SetTenants replaces the tenants, keys and routes the gateway serves, at
// once: a call sees the old snapshot or the new one, never a mix.
//
// Each tenant is checked on its own, so one bad row (a model naming a
// deployment this gateway lacks, a key clashing with another tenant's)
// cannot hold back every other tenant's changes, revocations above all. A
// bad tenant is quarantined: it keeps serving its last good version (minus
// the keys the new version revokes or removes), or, new, is not served at
// all. The error names each quarantined tenant and why; the tenants it
// does not name are served as given.
func (s *Server) SetTenants(tenants []tenancy.Tenant) error {
	s.tenantsMu.Lock()
	defer s.tenantsMu.Unlock()
	cur := *s.live.Load()
	return s.setTenantsLocked(tenants, &cur)
}

// setTenantsLocked serves tenants on next's configuration and deployments
// (next.dir is replaced).
func (s *Server) setTenantsLocked(tenants []tenancy.Tenant, next *live) error {
	s.lastTenants = tenants
	hasDeployment := func(name string) bool { _, ok := next.deployments[name]; return ok }
	// Pure checks against the deployments this gateway serves: nothing of
	// the file's environment (a variable unset since start) can hold back
	// a snapshot.
	if tenancy.Validate(tenants, hasDeployment) == nil {
		// The usual case, checked whole: a quarter of the time of checking
		// each tenant alone, which only a bad snapshot needs.
		return s.serveTenants(tenants, nil, next)
	}
	taken := claims{tenants: map[string]bool{}, keyIDs: map[string]string{}, hashes: map[string]string{}}
	serve := make([]tenancy.Tenant, 0, len(tenants))
	var quarantined []error
	for _, t := range tenants {
		err := checkTenant(t, &taken, hasDeployment)
		if err == nil {
			taken.add(t)
			serve = append(serve, t)
			continue
		}
		quarantined = append(quarantined, &QuarantineError{Tenant: t.ID, Err: err})
		if prev, ok := s.goodTenants[t.ID]; ok {
			prev = keepRevocations(prev, t)
			if checkTenant(prev, &taken, hasDeployment) == nil {
				taken.add(prev)
				serve = append(serve, prev)
			}
		}
	}
	return s.serveTenants(serve, errors.Join(quarantined...), next)
}

// serveTenants swaps in next with the directory of serve, which become the
// last good versions, and returns quarantined.
func (s *Server) serveTenants(serve []tenancy.Tenant, quarantined error, next *live) error {
	dir, err := tenant.Build(serve, next.deployments)
	if err != nil {
		// Unreachable after validation; kept so that a gap between
		// Validate and Build refuses the snapshot rather than panicking.
		return fmt.Errorf("tenant snapshot: %w", err)
	}
	good := make(map[string]tenancy.Tenant, len(serve))
	for _, t := range serve {
		good[t.ID] = t
	}
	next.dir, next.models = dir, modelSet(serve)
	s.live.Store(next)
	s.goodTenants = good
	return quarantined
}

// QuarantineError says why one tenant of a snapshot is not served as given.
type QuarantineError struct {
	Tenant string
	Err    error
}

func (e *QuarantineError) Error() string {
	return "tenant " + e.Tenant + " quarantined: " + e.Err.Error()
}

func (e *QuarantineError) Unwrap() error { return e.Err }

// claims are the ids and key hashes that the tenants accepted so far hold:
// they are unique across a snapshot, and a later tenant cannot take them.
type claims struct {
	tenants        map[string]bool
	keyIDs, hashes map[string]string // to the tenant holding them
}

func (c *claims) add(t tenancy.Tenant) {
	c.tenants[t.ID] = true
	for _, k := range t.Keys {
		c.keyIDs[k.ID] = t.ID
		c.hashes[strings.ToLower(k.SHA256)] = t.ID
	}
}

// checkTenant validates one tenant against the gateway's deployments, and
// against the ids and keys the tenants accepted before it hold. Its errors
// name fields within the tenant ("models[0].deployment: ...").
func checkTenant(t tenancy.Tenant, taken *claims, hasDeployment func(string) bool) error {
	var errs []error
	if err := tenancy.ValidateTenant(t, hasDeployment); err != nil {
		for line := range strings.SplitSeq(err.Error(), "\n") {
			errs = append(errs, errors.New(line))
		}
	}
	if taken.tenants[t.ID] {
		errs = append(errs, fmt.Errorf("id: %q is defined twice", t.ID))
	}
	for i, k := range t.Keys {
		if owner, ok := taken.keyIDs[k.ID]; ok {
			errs = append(errs, fmt.Errorf("keys[%d].id: %q is already a key of tenant %s", i, k.ID, owner))
		}
		if owner, ok := taken.hashes[strings.ToLower(k.SHA256)]; ok {
			errs = append(errs, fmt.Errorf("keys[%d].sha256: the same key belongs to tenant %s", i, owner))
		}
	}
	if len(errs) == 0 {
		return nil
	}
	// One line, for /readyz and the log.
	msgs := make([]string, len(errs))
	for i, e := range errs {
		msgs[i] = e.Error()
	}
	return errors.New(strings.Join(msgs, "; "))
}

// keepRevocations is a quarantined tenant's last good version with what
// its new version takes away applied: keys revoked or gone are dropped,
// and an earlier expiry wins. Taking access away never waits for a typo to
// be fixed.
func keepRevocations(prev, next tenancy.Tenant) tenancy.Tenant {
	now := make(map[string]tenancy.Key, len(next.Keys))
	for _, k := range next.Keys {
		now[k.ID] = k
	}
	keys := make([]tenancy.Key, 0, len(prev.Keys))
	for _, k := range prev.Keys {
		nk, ok := now[k.ID]
		if !ok || nk.Revoked || !strings.EqualFold(nk.SHA256, k.SHA256) {
			continue
		}
		if !nk.ExpiresAt.IsZero() && (k.ExpiresAt.IsZero() || nk.ExpiresAt.Before(k.ExpiresAt)) {
			k.ExpiresAt = nk.ExpiresAt
		}
		keys = append(keys, k)
	}
	prev.Keys = keys
	return prev
}

// SetDegraded marks the gateway as serving a snapshot it cannot refresh,
// with the reason /readyz shows; "" clears it.
func (s *Server) SetDegraded(reason string) {
	if reason == "" {
		s.degraded.Store(nil)
		return
	}
	s.degraded.Store(&reason)
}

// serverWriteBuffer is each client connection's write buffer (see New).
const serverWriteBuffer = 2 << 10

// quietLogger drops fasthttp's internal log lines (see New).
type quietLogger struct{}

func (quietLogger) Printf(string, ...any) {}

// exchange is the per-call state, pooled: the record, the parsed request,
// the upstream body buffer and the stream relay.
type exchange struct {
	srv *Server
	// live is what the call is served with, taken once when it starts.
	live   *live
	rec    call.Record
	req    request.Request
	in     []byte // the client's request body (see readBody)
	body   []byte
	stream relay.Stream
	uresp  *fasthttp.Response
	// slot is the call's place in its deployment's pool, held until the
	// upstream is done with (for a stream, until the relay ends).
	slot upstream.Slot
	// ep is the route post serves the call on; pathModel the model its URL
	// names (Azure's deployment path), valid only while the handler runs.
	ep        *endpoint
	pathModel []byte
	// mode is how the call is translated (see prepare); out a translated
	// unary answer; tr the translators, made the first time this pooled
	// exchange serves a call of another dialect and kept with it, so that
	// a translated stream allocates nothing and an exchange that never
	// translates (most) does not carry them: each open stream holds one.
	mode mode
	out  []byte
	tr   *translators
	// streamDone is ex.streamEnded, bound once per pooled exchange so that
	// starting a stream allocates no closure.
	streamDone func()
	// admitted says ticket holds what the limiter took for this call, to
	// settle with the real usage when it ends; decision is what the
	// x-ratelimit-* headers report.
	admitted bool
	ticket   limit.Ticket
	decision limit.Decision
	// budget is what the call reserved against its budgets, to settle
	// with its real cost when it ends; budgetDecision what the
	// x-loom-budget-* headers report.
	budget         budget.Reservation
	budgetDecision budget.Decision
	// cands are the call's candidate targets, in the order it tries them;
	// fail is its last failed attempt, until the call moves on or answers
	// with it; waited is the time its failed attempts spent upstream (not
	// Loom's overhead). See attempts.go.
	cands  []*tenant.Target
	fail   failure
	waited time.Duration
	// firstTimer cuts off a stream whose first event is late (see prime);
	// firstBody is the stream it cuts, firstFired says it did, firstRan
	// that its func is done.
	firstMu    sync.Mutex
	firstTimer *time.Timer
	firstBody  relay.Body
	firstFired bool
	firstRan   chan struct{}
}

// streamEnded runs when a relayed stream is over.
func (ex *exchange) streamEnded() {
	s := ex.srv
	s.untrack(&ex.stream)
	fasthttp.ReleaseResponse(ex.uresp)
	ex.uresp = nil
	s.finish(ex)
}

func relayOptions(ex *exchange, client relay.WriteDeadliner) relay.Options {
	o := relay.Options{
		DropUsage:    ex.req.AddsUsage(),
		Drain:        ex.live.cfg.Timeouts.Drain,
		Done:         ex.streamDone,
		Client:       client,
		WriteTimeout: ex.live.cfg.Timeouts.StreamWrite,
	}
	ex.setDialect(&o)
	return o
}

func (s *Server) acquire() *exchange {
	ex := s.exchanges.Get().(*exchange)
	ex.live = s.live.Load()
	ex.rec.Reset()
	if cap(ex.in) > maxKeptBody {
		ex.in = nil
	}
	ex.admitted, ex.decision = false, limit.Decision{}
	ex.budget, ex.budgetDecision = budget.Reservation{}, budget.Decision{}
	ex.waited, ex.fail = 0, failure{}
	ex.ep, ex.pathModel, ex.mode = nil, nil, modePass
	if cap(ex.out) > maxKeptBody {
		ex.out = nil
	}
	return ex
}

// finish completes a call: the sink sees it (when a tenant owns it), then
// its state is reused.
func (s *Server) finish(ex *exchange) {
	rec := &ex.rec
	ex.slot.Release()
	if rec.End.IsZero() {
		rec.End = time.Now()
	}
	if rec.Outcome == "" {
		rec.Outcome = call.OutcomeOK
	}
	if rec.UsageSource == call.UsageNone && rec.Stream && rec.UpstreamStatus == fasthttp.StatusOK &&
		rec.Operation != call.OpEmbeddings && ex.kind() != dialectLookup {
		// The stream began, so the provider did work, but its count never
		// came: the client left before the drain reached it, or the
		// upstream broke off.
		tap.EstimateUsage(rec, ex.body)
	}
	s.priceCall(rec)
	s.settle(ex)
	s.settleBudget(ex)
	s.rememberResponse(ex)
	if rec.TenantID == "" {
		// Refused before any tenant was known: counted and logged, not a
		// call (see unauthCounts).
		s.unauthenticated(rec)
	} else {
		// The sink first: the tracer sets the record's trace id, which
		// the metrics' exemplars carry.
		s.opts.Sink.Record(rec)
		s.metrics.observe(ex)
	}
	ex.live = nil // a pooled exchange must not keep retired deployments alive
	clear(ex.cands)
	ex.cands = ex.cands[:0]
	s.exchanges.Put(ex)
}

// settle replaces the call's token reservation with what it really used
// (unknown usage keeps the reservation) and frees its stream slot.
func (s *Server) settle(ex *exchange) {
	if !ex.admitted {
		return
	}
	// What the call used: the provider's count (or Loom's estimate); none
	// when the upstream never answered or refused (providers do not bill
	// errors); and when a success came without usage, the reservation
	// stands (-1), the safe side for a limit.
	actual := int64(0)
	switch rec := &ex.rec; {
	case rec.UsageSource != call.UsageNone:
		actual = rec.Usage.TotalTokens
	case rec.UpstreamStatus >= 200 && rec.UpstreamStatus < 300:
		actual = -1
	}
	s.opts.Limiter.Settle(context.Background(), ex.ticket, actual)
	ex.admitted = false
}

// Serve accepts connections on ln until Shutdown, within the configured
// connection caps (connections.max_total, connections.max_per_ip).
func (s *Server) Serve(ln net.Listener) error {
	s.listenersMu.Lock()
	if s.draining.Load() {
		s.listenersMu.Unlock()
		return ln.Close()
	}
	s.listeners = append(s.listeners, ln)
	s.listenersMu.Unlock()
	if err := s.http.Serve(newFrontDoor(ln, s)); err != nil {
		if s.draining.Load() && errors.Is(err, net.ErrClosed) {
			return nil // Shutdown closed it
		}
		return fmt.Errorf("serve %s: %w", ln.Addr(), err)
	}
	return nil
}

// Shutdown stops accepting connections and waits for in-flight calls. When ctx
// ends first, the remaining streams are ended with an error event (their
// records still complete) and Shutdown returns ctx's error.
func (s *Server) Shutdown(ctx context.Context) error {
	// Closing the listeners here, not only in fasthttp's Shutdown, stops a
	// Serve that had not yet handed its listener to fasthttp (a Shutdown
	// right after start): it would otherwise serve on, unseen.
	s.listenersMu.Lock()
	s.draining.Store(true)
	for _, ln := range s.listeners {
		_ = ln.Close()
	}
	s.listenersMu.Unlock()
	done := make(chan error, 1)
	go func() { done <- s.http.Shutdown() }()
	select {
	case err := <-done:
		s.closeDeployments()
		if errors.Is(err, net.ErrClosed) {
			err = nil // the listeners were closed above
		}
		return err
	case <-ctx.Done():
	}
	s.streamsMu.Lock()
	n := len(s.streams)
	for st := range s.streams {
		st.Abort()
	}
	s.streamsMu.Unlock()
	s.log.Warn("shutdown deadline reached; ending streams early", "streams", n)
	select {
	case <-done: //nolint:errcheck // past the deadline, the ended streams are the error to report
	case <-time.After(5 * time.Second):
	}
	s.closeDeployments()
	return errors.Join(ctx.Err(), fmt.Errorf("%d streams ended early", n))
}

func (s *Server) closeDeployments() {
	for _, d := range s.live.Load().deployments {
		d.Close()
	}
}

func (s *Server) track(st *relay.Stream) {
	s.streamsMu.Lock()
	s.streams[st] = struct{}{}
	s.streamsMu.Unlock()
}

func (s *Server) untrack(st *relay.Stream) {
	s.streamsMu.Lock()
	delete(s.streams, st)
	s.streamsMu.Unlock()
}

// Authenticate reports the tenant and key id of key in the live snapshot,
// for callers outside the gateway (the console's login). It never keeps or
// logs key.
func (s *Server) Authenticate(key []byte) (tenantID, keyID string, ok bool) {
	k, ok := s.live.Load().dir.Authenticate(key)
	if !ok {
		return "", "", false
	}
	return k.Tenant.ID, k.ID, true
}

// KeyLive reports whether the key keyID of tenantID would still
// authenticate in the live snapshot: not revoked, not expired, its tenant
// still served. The console re-checks its sessions with it on every
// request.
func (s *Server) KeyLive(tenantID, keyID string) bool {
	return s.live.Load().dir.Live(tenantID, keyID)
}
