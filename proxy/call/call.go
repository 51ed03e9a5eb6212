// Package call holds Record, everything Loom learns about one call through the
// gateway: who made it, where it went, what came back and how long each part
// took. The server fills it, the relay's tap adds what the response says, and
// a Sink receives it once the call is over (the tracing layer turns it into
// spans). It must never hold a client's API key or an upstream credential.
package call

import (
	"time"
	"unicode/utf8"
)

// Operation is the kind of call, named as the GenAI semantic conventions name
// gen_ai.operation.name.
type Operation string

// The operations Loom relays.
const (
	OpChat           Operation = "chat"
	OpTextCompletion Operation = "text_completion"
	OpEmbeddings     Operation = "embeddings"
	OpModels         Operation = "models"
	// The Responses API's lookups of a stored response (GET, DELETE,
	// cancel, input items) generate nothing and carry no usage; the
	// creation of a response (POST /v1/responses) is OpChat.
	OpRetrieveResponse   Operation = "retrieve_response"
	OpDeleteResponse     Operation = "delete_response"
	OpCancelResponse     Operation = "cancel_response"
	OpListResponseInputs Operation = "list_response_input_items"
	// OpCountTokens counts a prompt's tokens (Anthropic's
	// /v1/messages/count_tokens): it generates nothing.
	OpCountTokens Operation = "count_tokens"
)

// Outcome says how a call ended, from the client's point of view.
type Outcome string

// Outcomes. Anything but OutcomeOK comes with an ErrorType.
const (
	OutcomeOK             Outcome = "ok"
	OutcomeRejected       Outcome = "rejected"        // Loom refused it (auth, validation, routing)
	OutcomeRateLimited    Outcome = "rate_limited"    // a tenant or key limit refused it
	OutcomeUpstreamError  Outcome = "upstream_error"  // the upstream answered with an error status
	OutcomeUpstreamFailed Outcome = "upstream_failed" // no usable answer: connect error, timeout, reset
	OutcomeClientGone     Outcome = "client_disconnected"
)

// UsageSource says where the token counts came from.
type UsageSource string

// Usage sources.
const (
	UsageNone      UsageSource = ""
	UsageProvider  UsageSource = "provider"
	UsageEstimated UsageSource = "estimated"
)

// EstimateTokens counts text of n bytes at about four bytes a token, rounded
// up so that any text is at least a token. It is Loom's one guess at a token
// count, used where a call reserves its prompt against a TPM limit and where
// a stream's usage is estimated because the provider never said: the two
// must agree, or a call is billed differently from what it reserved.
func EstimateTokens(n int) int64 { return (int64(n) + 3) / 4 }

// maxChoiceIndex is the highest choice index a Record keeps anything for
// (content, finish reasons): the index comes from the upstream, and a
// hostile one must not make Loom grow a slice that long.
const maxChoiceIndex = 1 << 10

// Usage is the token accounting of one call. Has* flags distinguish "the
// provider said 0" from "the provider did not say".
//
// As the GenAI conventions define gen_ai.usage.input_tokens, InputTokens
// includes the tokens read from and written to a prompt cache:
// CachedInputTokens (cache reads) and CacheCreationInputTokens (cache
// writes, which Anthropic bills apart) are parts of it, never added to it.
type Usage struct {
	InputTokens              int64
	OutputTokens             int64
	TotalTokens              int64
	CachedInputTokens        int64
	CacheCreationInputTokens int64
	ReasoningTokens          int64
	HasCached                bool
	HasCacheCreation         bool
	HasReasoning             bool
}

// Params are the request parameters worth recording; a nil pointer means the
// client did not send it.
type Params struct {
	Temperature      *float64
	TopP             *float64
	MaxTokens        *int64
	N                *int64
	Seed             *int64
	IncludeUsage     bool // the client itself asked for stream_options.include_usage
	EncodingFormat   string
	RequestBodyBytes int
}

// Record is one call. Byte slices are reused between calls by the pool that
// owns the Record; a Sink that keeps data past Record must copy it (Clone).
type Record struct {
	Operation     Operation
	TenantID      string
	KeyID         string
	Model         string // the public model name the client asked for
	Deployment    string
	Provider      string // gen_ai.provider.name: "openai", "azure.ai.openai"
	UpstreamModel string
	ServerAddress string
	ServerPort    int
	Stream        bool
	Params        Params
	// UsageRequested is true when Loom added stream_options.include_usage on
	// the client's behalf and so must keep the usage chunk from the client.
	UsageRequested bool

	HTTPMethod string
	HTTPRoute  string
	// TraceParent is the client's W3C traceparent header, if any: the
	// call's spans join the caller's trace.
	TraceParent    []byte
	Status         int // what the client got
	UpstreamStatus int // 0 when no upstream answer arrived

	ResponseID    []byte
	ResponseModel []byte
	// FinishReasons is indexed by choice index; "" for a choice that has not
	// finished.
	FinishReasons []string
	Usage         Usage
	UsageSource   UsageSource
	// Cost is what Usage cost at the price entry PriceID, exactly, in
	// pico-units (1e-12) of CostCurrency (proxy/price.Amount). It is set,
	// with PriceID, only when the usage is known and an entry priced the
	// serving attempt; PriceID == "" means "no cost known", never 0.
	Cost         int64
	CostCurrency string
	PriceID      string

	Chunks int // SSE data events received from the upstream, [DONE] excluded
	// OutputPieces counts streamed deltas that carried output (text or a
	// tool call fragment): about one token each, the basis of an estimate
	// when the provider never reports usage.
	OutputPieces  int
	ChunksSent    int   // events written to the client
	UpstreamBytes int64 // response body bytes read from the upstream
	ClientBytes   int64 // response body bytes written to the client

	Start          time.Time // request fully read by Loom
	UpstreamStart  time.Time // request handed to the upstream connection
	UpstreamHeader time.Time // upstream response headers read
	FirstChunk     time.Time // first SSE event (or the body, unary) from upstream
	UpstreamEnd    time.Time // upstream response fully read or abandoned
	End            time.Time // last byte handed to the client
	Overhead       time.Duration

	Outcome            Outcome
	ErrorType          string // short, stable: "timeout", "connect", "upstream_reset", "http_429", ...
	ErrorMessage       string // for logs and span status; never contains a credential
	ClientDisconnected bool
	// Content is what the call said, filled only when the tenant's policy
	// captures content.
	Content Content
	// Drained is true when the client vanished and Loom kept reading the
	// upstream to learn the final usage; DrainComplete says it reached the end.
	Drained       bool
	DrainComplete bool

	// FallbackModel is the tenant model whose deployment served, when it is
	// one of Model's fallbacks; "" when Model's own deployment served.
	FallbackModel string
	// Attempts are the upstream attempts that did not serve, in order: each
	// failed before anything reached the client, and the call moved on.
	// The attempt that served (or the last one, when none did) is the
	// record's own Deployment, UpstreamStart... fields, numbered
	// len(Attempts)+1. At most MaxAttempts; the slice is reused.
	Attempts []Attempt

	// TraceID is the trace id of the call's spans, set by the tracing
	// sink when it encodes them (zero before, or without a tracer): what
	// the metrics' exemplars link to.
	TraceID [16]byte
}

// MaxAttempts bounds the upstream attempts of one call (routing's
// max_attempts cannot exceed it), so a Record stays bounded.
const MaxAttempts = 8

// Attempt is one upstream attempt that did not serve the call.
type Attempt struct {
	// FallbackModel is the tenant model whose deployment this was, when
	// it is a fallback of the Record's Model.
	FallbackModel string
	Deployment    string
	Provider      string
	UpstreamModel string
	ServerAddress string
	ServerPort    int
	Start, End    time.Time
	Status        int // the upstream's status; 0 when none arrived
	// ErrorType is short and stable, as Record.ErrorType ("connect",
	// "timeout", "upstream_reset", "500", "429"); Reason says more, for
	// people (it never holds a credential or a response body).
	ErrorType string
	Reason    string
}

// AddAttempt appends a to r.Attempts; past MaxAttempts it is dropped.
func (r *Record) AddAttempt(a Attempt) {
	if len(r.Attempts) < MaxAttempts {
		r.Attempts = append(r.Attempts, a)
	}
}

// Attempt is the 1-based number of the record's own (serving) attempt.
func (r *Record) Attempt() int { return len(r.Attempts) + 1 }

// Content holds a call's prompt and completion for a tenant that captures
// content. Nothing here is read unless Capture is set.
type Content struct {
	Capture bool
	// Max caps the captured text, for the input and the output each.
	Max int
	// Request is the request body as sent upstream. It is not a copy: it is
	// valid only until Sink.Record returns.
	Request []byte
	// Response is a copy of a unary response body.
	Response []byte
	// Choices is the text streamed so far for each choice index, Max bytes
	// in all.
	Choices [][]byte
	// Truncated says Max cut something.
	Truncated bool
}

// reset empties c, keeping its buffers (AppendChoice empties each one it
// takes back into use).
func (c *Content) reset() Content {
	return Content{Response: c.Response[:0], Choices: c.Choices[:0]}
}

// AppendChoice adds streamed text of choice index, within Max. A cut never
// splits a UTF-8 sequence: spans must stay valid UTF-8.
func (c *Content) AppendChoice(index int, text []byte) {
	if index < 0 || index > maxChoiceIndex {
		return
	}
	for len(c.Choices) <= index {
		if len(c.Choices) < cap(c.Choices) {
			c.Choices = c.Choices[:len(c.Choices)+1]
			c.Choices[len(c.Choices)-1] = c.Choices[len(c.Choices)-1][:0]
		} else {
			c.Choices = append(c.Choices, nil)
		}
	}
	used := 0
	for _, ch := range c.Choices {
		used += len(ch)
	}
	if room := c.Max - used; len(text) > room {
		text, c.Truncated = text[:RuneBoundary(text, max(room, 0))], true
	}
	c.Choices[index] = append(c.Choices[index], text...)
}

// RuneBoundary is the largest n' <= n at which b can be cut without
// splitting a UTF-8 sequence.
func RuneBoundary[T ~string | ~[]byte](b T, n int) int {
	if n >= len(b) {
		return len(b)
	}
	for n > 0 && !utf8.RuneStart(b[n]) {
		n--
	}
	return n
}

// Reset empties r for reuse, keeping its buffers.
func (r *Record) Reset() {
	id, model, reasons, tp := r.ResponseID[:0], r.ResponseModel[:0], r.FinishReasons[:0], r.TraceParent[:0]
	content := r.Content.reset()
	clear(r.Attempts) // their strings belong to old snapshots
	attempts := r.Attempts[:0]
	*r = Record{ResponseID: id, ResponseModel: model, FinishReasons: reasons, TraceParent: tp, Content: content,
		Attempts: attempts}
}

// Clone returns a deep copy that owns its slices.
func (r *Record) Clone() *Record {
	c := *r
	c.ResponseID = append([]byte(nil), r.ResponseID...)
	c.ResponseModel = append([]byte(nil), r.ResponseModel...)
	c.FinishReasons = append([]string(nil), r.FinishReasons...)
	c.TraceParent = append([]byte(nil), r.TraceParent...)
	c.Attempts = append([]Attempt(nil), r.Attempts...)
	c.Content.Request = append([]byte(nil), r.Content.Request...)
	c.Content.Response = append([]byte(nil), r.Content.Response...)
	c.Content.Choices = nil
	for _, ch := range r.Content.Choices {
		c.Content.Choices = append(c.Content.Choices, append([]byte(nil), ch...))
	}
	return &c
}

// TimeToFirstChunk is measured from the moment the upstream request went out,
// as gen_ai.response.time_to_first_chunk defines it; 0 if no chunk arrived.
func (r *Record) TimeToFirstChunk() time.Duration {
	if r.FirstChunk.IsZero() || r.UpstreamStart.IsZero() {
		return 0
	}
	return r.FirstChunk.Sub(r.UpstreamStart)
}

// Duration is the whole call as Loom saw it.
func (r *Record) Duration() time.Duration {
	if r.End.IsZero() {
		return 0
	}
	return r.End.Sub(r.Start)
}

// SetFinishReason records the finish reason of choice index.
func (r *Record) SetFinishReason(index int, reason string) {
	if index < 0 || index > maxChoiceIndex {
		return
	}
	for len(r.FinishReasons) <= index {
		r.FinishReasons = append(r.FinishReasons, "")
	}
	r.FinishReasons[index] = reason
}

// Sink receives each finished call. Record is called exactly once per call,
// from the goroutine that finished it, and must not block for long: the
// tracing layer queues, it does not export inline. r is reused after Record
// returns.
type Sink interface {
	Record(r *Record)
}

// SinkFunc adapts a function to Sink.
type SinkFunc func(r *Record)

// Record calls f.
func (f SinkFunc) Record(r *Record) { f(r) }

var _ Sink = SinkFunc(nil)

// Sinks returns a Sink that hands each record to every one of sinks, in
// order; nil sinks are skipped.
func Sinks(sinks ...Sink) Sink {
	var live multi
	for _, s := range sinks {
		if s != nil {
			live = append(live, s)
		}
	}
	if len(live) == 1 {
		return live[0]
	}
	return live
}

type multi []Sink

func (m multi) Record(r *Record) {
	for _, s := range m {
		s.Record(r)
	}
}
