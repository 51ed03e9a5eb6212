// Package upstream holds the deployments Loom relays to: one pool of kept-alive
// connections per deployment, the provider's request shape (paths,
// credentials) and the timeouts of each phase. It must never expose a
// deployment's credential: not in errors, not in logs, not to a client.
package upstream

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/loom-gateway/loom/proxy/call"
	"github.com/loom-gateway/loom/proxy/config"
)

// Failure kinds, for errors.Is: a call that never got an answer.
var (
	ErrConnect = errors.New("upstream connect failed")
	ErrTimeout = errors.New("upstream timed out")
	ErrReset   = errors.New("upstream closed the connection")
	// ErrTooLarge: a non-streamed answer over max_response_bytes. Loom
	// never buffers an upstream's body without a bound.
	ErrTooLarge = errors.New("upstream answer exceeds max_response_bytes")
)

// Deployment is one upstream endpoint with its pool and credentials.
type Deployment struct {
	Name string
	// Provider is gen_ai.provider.name: "openai" or "azure.ai.openai".
	Provider string
	Host     string // host name, for server.address
	Port     int
	Timeouts config.Timeouts

	azure      bool
	anthropic  bool
	scheme     string
	hostHeader string
	basePath   string
	apiVersion string
	auth       Auth // the deployment's own credential
	client     *fasthttp.HostClient
	reqHeaders headerSet
	resHeaders headerSet
	share      *share
	// maxResponse bounds a non-streamed answer (see LimitResponse).
	maxResponse int
	// health is the deployment's circuit breaker (see Admit).
	health breaker
	// responsesPath is where the Responses API lives (see ResponsesPath).
	responsesPath string
	// DefaultMaxTokens is an Anthropic deployment's max_tokens for a chat
	// request that sets none; 0 leaves it to the translation's default.
	DefaultMaxTokens int
}

// AnthropicVersion is the anthropic-version header Loom sends to an
// Anthropic deployment when its client sent none: the Messages API's one
// version.
const AnthropicVersion = "2023-06-01"

// DialFunc opens a connection to addr ("host:port") within timeout.
type DialFunc func(addr string, timeout time.Duration) (net.Conn, error)

// New builds a deployment from its configuration, with the global timeouts.
// dial replaces TCP for tests and benchmarks (in-memory listeners); nil
// means TCP.
func New(c config.Deployment, t config.Timeouts, dial DialFunc) (*Deployment, error) {
	if dial == nil {
		dial = fasthttp.DialTimeout
	}
	u, err := url.Parse(c.BaseURL)
	if err != nil {
		return nil, fmt.Errorf("deployment %s: base_url: %w", c.Name, err)
	}
	port := 80
	if u.Scheme == "https" {
		port = 443
	}
	if p := u.Port(); p != "" {
		if port, err = strconv.Atoi(p); err != nil {
			return nil, fmt.Errorf("deployment %s: base_url port: %w", c.Name, err)
		}
	}
	d := &Deployment{
		Name:       c.Name,
		Provider:   "openai",
		Host:       u.Hostname(),
		Port:       port,
		Timeouts:   t,
		azure:      c.Provider == config.ProviderAzureOpenAI,
		anthropic:  c.Provider == config.ProviderAnthropic,
		scheme:     u.Scheme,
		hostHeader: u.Host,
		basePath:   strings.TrimRight(u.EscapedPath(), "/"),
		apiVersion: c.APIVersion,
		reqHeaders: newHeaderSet(defaultRequestHeaders, c.ForwardHeaders),
		resHeaders: newHeaderSet(defaultResponseHeaders, c.ForwardResponseHeaders),
		share:      newShare(c.MaxConns, c.TenantShare),
	}
	d.responsesPath = d.basePath + "/responses"
	switch {
	case d.azure:
		d.Provider = "azure.ai.openai"
		d.responsesPath = d.basePath + "/openai/v1/responses"
	case d.anthropic:
		d.Provider = "anthropic"
		d.DefaultMaxTokens = c.DefaultMaxTokens
	}
	d.auth = d.Auth(c.Credential())
	var tlsConfig *tls.Config
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("deployment %s: ca_file: %w", c.Name, err)
		}
		roots, err := x509.SystemCertPool()
		if err != nil {
			roots = x509.NewCertPool()
		}
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("deployment %s: ca_file %s: no PEM certificates", c.Name, c.CAFile)
		}
		tlsConfig = &tls.Config{RootCAs: roots, ServerName: d.Host, MinVersion: tls.VersionTLS12}
	}
	addr := net.JoinHostPort(d.Host, strconv.Itoa(port))
	connect, firstByte, idle := t.Connect, t.FirstByte, t.StreamIdle
	d.client = &fasthttp.HostClient{
		Addr:      addr,
		Name:      "loom",
		IsTLS:     u.Scheme == "https",
		TLSConfig: tlsConfig,
		MaxConns:  d.share.capacity(),
		// Acquire keeps calls within MaxConns; the wait is a backstop for
		// the moment between a connection's release and its place's.
		MaxConnWaitTimeout:       t.PoolWait,
		MaxIdleConnDuration:      t.IdleConn,
		NoDefaultUserAgentHeader: true,
		// Loom never retries a POST on its own: the upstream may already have
		// started (and billed) the call.
		RetryIfErr: func(*fasthttp.Request, int, error) (bool, bool) { return false, false },
		Dial: func(addr string) (net.Conn, error) {
			conn, err := dial(addr, connect)
			if err != nil {
				return nil, &dialError{err: err}
			}
			return &timedConn{Conn: conn, firstByte: firstByte, idle: idle}, nil
		},
	}
	return d, nil
}

// Anthropic reports whether the deployment speaks Anthropic's Messages API
// (provider: anthropic): chat requests to it are translated.
func (d *Deployment) Anthropic() bool { return d.anthropic }

// Path is the upstream request path (and query) for op on upstreamModel.
// Routes compute it once, so the hot path only copies it. An Anthropic
// deployment serves chat at /messages and nothing else.
func (d *Deployment) Path(op call.Operation, upstreamModel string) string {
	if d.anthropic {
		return d.basePath + "/messages"
	}
	suffix := "/chat/completions"
	switch op {
	case call.OpTextCompletion:
		suffix = "/completions"
	case call.OpEmbeddings:
		suffix = "/embeddings"
	case call.OpModels:
		suffix = "/models"
	}
	if d.azure {
		return d.basePath + "/openai/deployments/" + url.PathEscape(upstreamModel) + suffix +
			"?api-version=" + url.QueryEscape(d.apiVersion)
	}
	return d.basePath + suffix
}

// ResponsesPath is the upstream path of the Responses API, followed by
// rest ("", "/{id}", "/{id}/input_items"...). On Azure it is the v1 API's
// /openai/v1/responses, which takes the deployment as the body's model
// and needs no api-version (the dated /openai/responses?api-version=
// path only ever served previews of it).
func (d *Deployment) ResponsesPath(rest string) string {
	if rest == "" {
		return d.responsesPath
	}
	return d.responsesPath + rest
}

// Auth is a credential in the form its header carries it, built once so
// that a request never pays to format it. Its String never shows the secret.
type Auth struct {
	name  string
	value []byte
}

// String hides the credential from any log or error that prints an Auth.
func (Auth) String() string { return "Auth(redacted)" }

// Auth renders credential for this deployment's provider: a Bearer token,
// Azure's api-key header or Anthropic's x-api-key. An empty credential
// sends none.
func (d *Deployment) Auth(credential string) Auth {
	switch {
	case credential == "":
		return Auth{}
	case d.azure:
		return Auth{name: "api-key", value: []byte(credential)}
	case d.anthropic:
		return Auth{name: "x-api-key", value: []byte(credential)}
	}
	return Auth{name: fasthttp.HeaderAuthorization, value: []byte("Bearer " + credential)}
}

// Prepare sets the request line, Host and credentials of req for path. auth
// is a tenant's own credential for this deployment (from Auth); the zero
// Auth means the deployment's.
func (d *Deployment) Prepare(req *fasthttp.Request, path string, auth Auth) {
	req.Header.SetMethod(fasthttp.MethodPost)
	req.SetRequestURI(path)
	req.URI().SetScheme(d.scheme)
	req.URI().SetHost(d.hostHeader)
	req.Header.SetHost(d.hostHeader)
	if auth.name == "" {
		auth = d.auth
	}
	if auth.name != "" {
		req.Header.SetBytesV(auth.name, auth.value)
	}
	if d.anthropic {
		req.Header.Set("anthropic-version", AnthropicVersion)
	}
}

// ForwardRequestHeader reports whether a client request header may go
// upstream.
func (d *Deployment) ForwardRequestHeader(name []byte) bool { return d.reqHeaders.has(name) }

// ForwardResponseHeader reports whether an upstream response header may reach
// the client. The provider's x-ratelimit-* headers never do, whatever the
// configuration says: they describe the gateway's provider account (its
// capacity, shared by every tenant), not the caller; Loom sends its own.
func (d *Deployment) ForwardResponseHeader(name []byte) bool {
	const rate = "x-ratelimit-"
	if len(name) >= len(rate) && bytes.EqualFold(name[:len(rate)], []byte(rate)) {
		return false
	}
	return d.resHeaders.has(name)
}

// Do sends req and reads the response head (and, unless resp.StreamBody is
// set, the body). Errors wrap ErrConnect, ErrTimeout or ErrReset.
func (d *Deployment) Do(req *fasthttp.Request, resp *fasthttp.Response) error {
	err := d.client.Do(req, resp)
	if err == nil {
		return nil
	}
	return Classify(err)
}

// Classify maps a transport error to ErrConnect, ErrTimeout, ErrSaturated
// or ErrReset.
func Classify(err error) error {
	var de *dialError
	switch {
	case errors.As(err, &de):
		if isTimeout(de.err) {
			return fmt.Errorf("%w: connect: %w", ErrTimeout, de.err)
		}
		return fmt.Errorf("%w: %w", ErrConnect, de.err)
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		return fmt.Errorf("%w: %w", ErrTooLarge, err)
	case errors.Is(err, fasthttp.ErrNoFreeConns):
		return fmt.Errorf("%w: %w", ErrSaturated, err)
	case isTimeout(err):
		return fmt.Errorf("%w: %w", ErrTimeout, err)
	default:
		return fmt.Errorf("%w: %w", ErrReset, err)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, fasthttp.ErrTimeout) ||
		errors.Is(err, fasthttp.ErrDialTimeout) || (errors.As(err, &ne) && ne.Timeout())
}

// LimitResponse bounds a non-streamed answer to n bytes (max_response_bytes):
// Do fails with ErrTooLarge past it. Call it before the deployment serves.
func (d *Deployment) LimitResponse(n int) {
	d.maxResponse = n
	d.client.MaxResponseBodySize = n
}

// ReadAnswer returns resp's whole body within the LimitResponse bound. Do
// already read a non-streamed body; a streamed request answered with
// something other than an event stream (an error, or JSON) is read here,
// and its stream closed. The bytes are valid until resp is released.
func (d *Deployment) ReadAnswer(resp *fasthttp.Response) ([]byte, error) {
	if !resp.IsBodyStream() {
		return resp.Body(), nil
	}
	r := resp.BodyStream()
	if d.maxResponse > 0 {
		r = io.LimitReader(r, int64(d.maxResponse)+1)
	}
	body, err := io.ReadAll(r)
	// Closing a stream not read to its end discards the connection.
	_ = resp.CloseBodyStream()
	switch {
	case err != nil:
		return nil, Classify(err)
	case d.maxResponse > 0 && len(body) > d.maxResponse:
		return nil, fmt.Errorf("%w (%d bytes)", ErrTooLarge, d.maxResponse)
	}
	return body, nil
}

// Close drops the pool's idle connections.
func (d *Deployment) Close() { d.client.CloseIdleConnections() }

type dialError struct{ err error }

func (e *dialError) Error() string { return "dial: " + e.err.Error() }
func (e *dialError) Unwrap() error { return e.err }

// timedConn enforces the first-byte and stream-idle timeouts. fasthttp has one
// read deadline for a whole response, which would cut long streams; here the
// first read after a request waits at most firstByte from when the request
// was written, and every later read at least idle (at most idle plus an
// eighth). A connection serves one request at a time, so "first read after
// a write" is the response's start.
//
// Moving a read deadline is a timer operation in the runtime's netpoller;
// a stream reads once per event, and at thousands of streams one timer
// operation per read was a measurable share of the gateway's CPU and tail
// latency. So an idle deadline is set idle plus an eighth ahead and moved
// only once less than idle is left: about once every idle/8 on a busy
// stream instead of on every read.
type timedConn struct {
	net.Conn
	firstByte, idle time.Duration
	awaiting        bool
	firstDeadline   time.Time
	// deadline is the read deadline last set.
	deadline time.Time
}

func (c *timedConn) Write(p []byte) (int, error) {
	if !c.awaiting {
		c.awaiting = true
		if c.firstByte > 0 {
			c.firstDeadline = time.Now().Add(c.firstByte)
		}
	}
	return c.Conn.Write(p)
}

func (c *timedConn) Read(p []byte) (int, error) {
	switch {
	case c.awaiting && c.firstByte > 0:
		if !c.deadline.Equal(c.firstDeadline) {
			c.deadline = c.firstDeadline
			_ = c.Conn.SetReadDeadline(c.deadline)
		}
	case !c.awaiting && c.idle > 0:
		if now := time.Now(); c.deadline.Sub(now) < c.idle {
			c.deadline = now.Add(c.idle + c.idle/8)
			_ = c.Conn.SetReadDeadline(c.deadline)
		}
	}
	n, err := c.Conn.Read(p)
	if n > 0 && c.awaiting {
		c.awaiting = false
		// The first-byte deadline may lie far beyond idle: the next read
		// sets the idle one whatever is left of it.
		c.deadline = time.Time{}
	}
	return n, err
}

// Headers that pass by default. Everything else is dropped: hop-by-hop
// headers, the client's credentials, cookies, the upstream organisation.
var (
	defaultRequestHeaders = []string{
		"content-type", "accept", "user-agent", "openai-beta", "idempotency-key", "x-client-request-id",
		"anthropic-beta",
	}
	defaultResponseHeaders = []string{
		"content-type", "x-request-id", "openai-processing-ms", "openai-version", "retry-after",
		"retry-after-ms", "apim-request-id", "x-ms-region", "x-ms-client-request-id", "azureml-model-session",
		"x-should-retry", "request-id",
	}
	// hopByHop never passes, whatever the configuration says (RFC 9110 7.6.1).
	hopByHop = newHeaderSet([]string{
		"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade",
		"proxy-authenticate", "proxy-authorization", "authorization", "api-key", "x-api-key", "host",
		"content-length", "cookie", "set-cookie",
	}).exact
)

// headerSet matches header names case-insensitively against exact names and
// prefixes ("x-ratelimit-*"), without allocating.
type headerSet struct {
	exact    [][]byte
	prefixes [][]byte
}

func newHeaderSet(lists ...[]string) headerSet {
	var s headerSet
	for _, list := range lists {
		for _, n := range list {
			n = strings.ToLower(strings.TrimSpace(n))
			if p, ok := strings.CutSuffix(n, "*"); ok {
				s.prefixes = append(s.prefixes, []byte(p))
			} else if n != "" {
				s.exact = append(s.exact, []byte(n))
			}
		}
	}
	return s
}

func (s *headerSet) has(name []byte) bool {
	for _, h := range hopByHop {
		if len(h) == len(name) && bytes.EqualFold(h, name) {
			return false
		}
	}
	for _, e := range s.exact {
		if bytes.EqualFold(e, name) {
			return true
		}
	}
	for _, p := range s.prefixes {
		if len(name) >= len(p) && bytes.EqualFold(p, name[:len(p)]) {
			return true
		}
	}
	return false
}
