package mockupstream

import (
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// Usage is the token count the mock reported to the client, in OpenAI's field names.
type Usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

// UsageDetails is what a usage object carried beyond Usage. Usage.PromptTokens follows the GenAI
// conventions: on Anthropic it is input_tokens plus the cache reads and writes, which Anthropic reports
// apart; on the Responses API input_tokens already includes cached_tokens.
type UsageDetails struct {
	CacheReadTokens  int `json:"cache_read_tokens"`  // cached_tokens, cache_read_input_tokens
	CacheWriteTokens int `json:"cache_write_tokens"` // cache_creation_input_tokens, cache_write_tokens
	ReasoningTokens  int `json:"reasoning_tokens"`   // reasoning_tokens (Anthropic counts thinking in output)
}

// Received is what the mock saw of one request and what it did about it. Tests compare it with what the
// gateway claims to have sent and received.
type Received struct {
	Seq    int64             `json:"seq"`
	Method string            `json:"method"`
	Path   string            `json:"path"`
	Query  string            `json:"query"`
	Header map[string]string `json:"header"` // lower-cased names; repeated headers joined with ", "
	Body   []byte            `json:"-"`      // rendered as a string by GET /_mock/requests
	// Arrived is when the mock had read the request; ChunkSentAt[0] minus
	// Arrived is the time to first chunk the mock produced.
	Arrived time.Time `json:"arrived"`

	Stream       bool `json:"stream"`        // the request body had "stream": true
	IncludeUsage bool `json:"include_usage"` // the request body had stream_options.include_usage == true

	UsageSent    *Usage        `json:"usage_sent"`    // nil when the response carried no usage
	UsageDetails *UsageDetails `json:"usage_details"` // with UsageSent, when the usage had cache or reasoning counts
	ChunkSentAt  []time.Time   `json:"chunk_sent_at"` // one per flushed SSE event
	Done         time.Time     `json:"done"`          // zero while the response is in flight
	ClientGone   bool          `json:"client_gone"`   // a write or flush failed mid-stream

	// With a Failure in effect (Config.Fail or x-mock-fail): the key the attempt was counted under, its
	// number under that key (1 for the first), and the FailMode injected ("" when it was served).
	FailKey string `json:"fail_key,omitempty"`
	Attempt int    `json:"attempt,omitempty"`
	Failed  string `json:"failed,omitempty"`
}

// clone copies everything a stream goroutine may still change, so a snapshot never races with it.
// Body is written once, before the entry is published, and is shared.
func (r *Received) clone() Received {
	c := *r
	c.Header = make(map[string]string, len(r.Header))
	for k, v := range r.Header {
		c.Header[k] = v
	}
	c.ChunkSentAt = slices.Clone(r.ChunkSentAt)
	if r.UsageSent != nil {
		u := *r.UsageSent
		c.UsageSent = &u
	}
	if r.UsageDetails != nil {
		d := *r.UsageDetails
		c.UsageDetails = &d
	}
	return c
}

// requestLog holds every request in arrival order. One mutex guards all entries: the mock is a test tool,
// and a stream touches its entry once per event, which is far below where the lock would matter.
type requestLog struct {
	mu      sync.Mutex
	limit   int // <0: unlimited
	entries []*Received
}

const defaultLogLimit = 10_000

func (l *requestLog) add(r *Received) {
	l.mu.Lock()
	l.entries = append(l.entries, r)
	// Trim in batches, so dropping the oldest costs O(1) per request amortised; readers see only the newest.
	if l.limit > 0 && len(l.entries) >= 2*l.limit {
		l.entries = append([]*Received(nil), l.entries[len(l.entries)-l.limit:]...)
	}
	l.mu.Unlock()
}

// visible is the part of the log readers see: at most limit entries, the newest.
func (l *requestLog) visible() []*Received {
	if l.limit > 0 && len(l.entries) > l.limit {
		return l.entries[len(l.entries)-l.limit:]
	}
	return l.entries
}

// update applies f to an entry under the log's lock; entries dropped by Reset may still be updated by the
// streams that own them, harmlessly.
func (l *requestLog) update(r *Received, f func(*Received)) {
	l.mu.Lock()
	f(r)
	l.mu.Unlock()
}

func (l *requestLog) snapshot() []Received {
	l.mu.Lock()
	defer l.mu.Unlock()
	entries := l.visible()
	out := make([]Received, len(entries))
	for i, r := range entries {
		out[i] = r.clone()
	}
	return out
}

func (l *requestLog) last() (Received, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.entries) == 0 {
		return Received{}, false
	}
	return l.entries[len(l.entries)-1].clone(), true
}

func (l *requestLog) reset() {
	l.mu.Lock()
	l.entries = nil
	l.mu.Unlock()
}

// Requests returns a snapshot of every request received since New or the last Reset. It is safe to call
// while streams are in flight; later progress of those streams does not show in the returned copies.
func (s *Server) Requests() []Received { return s.log.snapshot() }

// Last returns the most recent request, or false when none was received.
func (s *Server) Last() (Received, bool) { return s.log.last() }

// Reset clears the log. Sequence numbers keep counting, so request ids stay unique for the server's life.
func (s *Server) Reset() { s.log.reset() }

// newReceived copies what the request carries; the copy must not alias ctx, which fasthttp reuses.
func newReceived(ctx *fasthttp.RequestCtx, seq int64) *Received {
	r := &Received{
		Seq:     seq,
		Arrived: time.Now(),
		Method:  string(ctx.Method()),
		Path:    string(ctx.Path()),
		Query:   string(ctx.QueryArgs().QueryString()),
		Header:  make(map[string]string),
		Body:    slices.Clone(ctx.PostBody()),
	}
	for k, v := range ctx.Request.Header.All() {
		name := strings.ToLower(string(k))
		if prev, ok := r.Header[name]; ok {
			r.Header[name] = prev + ", " + string(v)
			continue
		}
		r.Header[name] = string(v)
	}
	return r
}

// receivedJSON is Received as non-Go tools read it: the body as text rather than base64.
type receivedJSON struct {
	Received
	Body string `json:"body"`
}

// serveLog answers GET and DELETE /_mock/requests. These calls are not logged and take no sequence number,
// so a test that inspects the log does not shift the numbers it is checking.
func (s *Server) serveLog(ctx *fasthttp.RequestCtx) {
	switch string(ctx.Method()) {
	case fasthttp.MethodGet:
		snap := s.Requests()
		out := make([]receivedJSON, len(snap))
		for i, r := range snap {
			out[i] = receivedJSON{Received: r, Body: string(r.Body)}
		}
		b, err := json.Marshal(out)
		if err != nil {
			ctx.Error(err.Error(), fasthttp.StatusInternalServerError)
			return
		}
		ctx.SetContentType("application/json")
		ctx.SetBody(b)
	case fasthttp.MethodDelete:
		s.Reset()
		ctx.SetStatusCode(fasthttp.StatusNoContent)
	default:
		ctx.Response.Header.Set("Allow", "GET, DELETE")
		ctx.SetStatusCode(fasthttp.StatusMethodNotAllowed)
	}
}
