package server

import (
	"runtime"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/loom-gateway/loom/proxy/apierror"
	"github.com/loom-gateway/loom/proxy/call"
)

// unauthReasons are the reason labels of
// loom_rejected_unauthenticated_total: the codes of the errors Loom answers
// before it knows a tenant. The set is fixed, so a client cannot grow the
// metric's series; any other code counts as "other".
var unauthReasons = [...]string{
	"missing_api_key", "invalid_api_key", "unknown_url", "method_not_allowed",
	"malformed_request", "request_too_large", "headers_too_large", "request_timeout", "other",
}

// unauthLogEvery is the least time between two log lines of one reason.
const unauthLogEvery = 10 * time.Second

// unauthCounts counts requests refused before a tenant was known. They are
// not calls: nobody can be billed for them or read them back, and handing
// each to the sink would let anyone without a key fill the span queue and
// the store (and take loom.seq numbers) at line rate. So they are counted
// here, by reason, and logged at most once per reason per unauthLogEvery.
type unauthCounts struct {
	total  [len(unauthReasons)]atomic.Uint64
	logged [len(unauthReasons)]atomic.Uint64 // total at the last log line
	logAt  [len(unauthReasons)]atomic.Int64  // unix nanos of the last log line
}

func unauthReason(code string) int {
	for i, r := range unauthReasons[:len(unauthReasons)-1] {
		if r == code {
			return i
		}
	}
	return len(unauthReasons) - 1
}

// unauthenticated counts one refused request that no tenant owns (rec has
// no TenantID) and logs, rate-limited, how many of its reason came since
// the last line. It never logs what the client sent: no key, no path.
func (s *Server) unauthenticated(rec *call.Record) {
	i := unauthReason(rec.ErrorType)
	c := &s.unauth
	total := c.total[i].Add(1)
	now := time.Now().UnixNano()
	last := c.logAt[i].Load()
	if last != 0 && now-last < int64(unauthLogEvery) || !c.logAt[i].CompareAndSwap(last, now) {
		return
	}
	since := total - c.logged[i].Swap(total)
	s.log.Warn("refused requests without a valid API key; not recorded as calls",
		"reason", unauthReasons[i], "status", rec.Status, "count", since, "total", total,
		"log_interval", unauthLogEvery)
}

// AppendMetrics appends the gateway's counters in the Prometheus text
// format, then Options.Metrics' (the tracer's span totals).
func (s *Server) AppendMetrics(dst []byte) []byte {
	const name = "loom_rejected_unauthenticated_total"
	dst = append(dst, "# HELP "+name+" Requests refused before a tenant was known (not recorded as calls), by reason.\n"+
		"# TYPE "+name+" counter\n"...)
	for i, r := range unauthReasons {
		dst = append(dst, name+`{reason="`...)
		dst = append(dst, r...)
		dst = append(dst, `"} `...)
		dst = strconv.AppendUint(dst, s.unauth.total[i].Load(), 10)
		dst = append(dst, '\n')
	}
	// Streams open and goroutines: with thousands of long streams, what a
	// stream holds shows here first, and both must fall back once they end.
	s.streamsMu.Lock()
	open := len(s.streams)
	s.streamsMu.Unlock()
	dst = append(dst, "# HELP loom_streams_open Streams being relayed now.\n# TYPE loom_streams_open gauge\nloom_streams_open "...)
	dst = strconv.AppendInt(dst, int64(open), 10)
	dst = append(dst, "\n# HELP go_goroutines Goroutines that currently exist.\n# TYPE go_goroutines gauge\ngo_goroutines "...)
	dst = strconv.AppendInt(dst, int64(runtime.NumGoroutine()), 10)
	dst = append(dst, '\n')
	dst = s.appendRoutingMetrics(dst)
	dst = s.appendBudgetMetrics(dst)
	if s.opts.Metrics != nil {
		dst = s.opts.Metrics(dst)
	}
	return dst
}

// OpsHandler serves the operators' listener (config ops.listen): GET
// /metrics, and /healthz and /readyz as the gateway answers them. It is
// meant for a listener apart from the gateway's, reachable by operators and
// scrapers only: the gateway itself does not serve /metrics.
func (s *Server) OpsHandler() fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		switch string(ctx.Path()) {
		case "/metrics":
			if !ctx.IsGet() && !ctx.IsHead() {
				ctx.Response.Header.Set("Allow", "GET, HEAD")
				writeError(ctx, methodNotAllowed(ctx))
				return
			}
			body, contentType, err := s.writeMetrics(ctx.Request.Header.Peek(fasthttp.HeaderAccept))
			if err != nil {
				s.log.Error("metrics exposition failed", "error", err)
				writeError(ctx, apierror.New(fasthttp.StatusInternalServerError, apierror.TypeServer, "internal_error", "",
					"The metrics could not be gathered; the gateway's log says why."))
				return
			}
			ctx.SetContentType(contentType)
			ctx.Response.SetBodyRaw(body)
		case "/healthz":
			s.health(ctx, true, false)
		case "/readyz":
			s.health(ctx, !s.draining.Load(), true)
		default:
			writeError(ctx, apierror.New(fasthttp.StatusNotFound, apierror.TypeInvalidRequest, "unknown_url", "",
				"Invalid URL: the ops listener serves /metrics, /healthz and /readyz."))
		}
	}
}
