// Package spanattr names every span attribute Loom emits. The names are a
// public contract: the proxy writes them, otelcol-loom's postgres exporter
// reads them into typed columns, and dashboards query those columns. Where
// the OpenTelemetry GenAI semantic conventions (v1.41) define a name, Loom
// uses it unchanged (a test pins them); Loom's own names live under "loom.".
//
// This package must stay a list of constants: no dependencies, so that any
// part of Loom (and anyone reading Loom's spans) can import it for free.
package spanattr

// Resource attributes, set once per process.
const (
	ServiceName       = "service.name"
	ServiceVersion    = "service.version"
	ServiceInstanceID = "service.instance.id"
)

// ServiceNameLoom is service.name of every span the proxy emits.
const ServiceNameLoom = "loom"

// GenAI semantic conventions, v1.41 shape. Times are in seconds, as the
// conventions define them.
const (
	GenAIOperationName                 = "gen_ai.operation.name"
	GenAIProviderName                  = "gen_ai.provider.name"
	GenAIRequestModel                  = "gen_ai.request.model"
	GenAIRequestTemperature            = "gen_ai.request.temperature"
	GenAIRequestTopP                   = "gen_ai.request.top_p"
	GenAIRequestMaxTokens              = "gen_ai.request.max_tokens"
	GenAIRequestChoiceCount            = "gen_ai.request.choice.count" // the request's n
	GenAIRequestSeed                   = "gen_ai.request.seed"
	GenAIRequestStream                 = "gen_ai.request.stream"
	GenAIRequestEncodingFormats        = "gen_ai.request.encoding_formats"
	GenAIResponseModel                 = "gen_ai.response.model"
	GenAIResponseID                    = "gen_ai.response.id"
	GenAIResponseFinishReasons         = "gen_ai.response.finish_reasons"
	GenAIResponseTimeToFirstChunk      = "gen_ai.response.time_to_first_chunk"
	GenAIUsageInputTokens              = "gen_ai.usage.input_tokens"
	GenAIUsageOutputTokens             = "gen_ai.usage.output_tokens"
	GenAIUsageCacheReadInputTokens     = "gen_ai.usage.cache_read.input_tokens"
	GenAIUsageCacheCreationInputTokens = "gen_ai.usage.cache_creation.input_tokens"
	// OpenAIAPIType says which OpenAI API an upstream call used:
	// "chat_completions" or "responses" (GenAI OpenAI conventions).
	OpenAIAPIType                   = "openai.api.type"
	GenAIUsageReasoningOutputTokens = "gen_ai.usage.reasoning.output_tokens"
	GenAIInputMessages              = "gen_ai.input.messages"
	GenAIOutputMessages             = "gen_ai.output.messages"
)

// General semantic conventions used on Loom's spans.
const (
	ErrorType              = "error.type"
	ServerAddress          = "server.address"
	ServerPort             = "server.port"
	HTTPRequestMethod      = "http.request.method"
	HTTPRoute              = "http.route"
	HTTPResponseStatusCode = "http.response.status_code"
	HTTPRequestBodySize    = "http.request.body.size"
	HTTPResponseBodySize   = "http.response.body.size"
	URLPath                = "url.path"
	URLScheme              = "url.scheme"
	UserAgentOriginal      = "user_agent.original"
	NetworkProtocolVersion = "network.protocol.version"
)

// Loom's own attributes. Those marked "call" are on both the SERVER and the
// CLIENT span of a call; tokens are only ever on CLIENT spans, so sums over
// rows never double count.
const (
	TenantID   = "loom.tenant.id"   // call
	APIKeyID   = "loom.api_key.id"  // call; the key's id, never the key
	InstanceID = "loom.instance.id" // call; equals service.instance.id
	// RunID names one process start of an instance; Seq numbers the calls
	// of one run 1, 2, 3... with no gaps, so a missing number among a run's
	// SERVER spans is a lost record.
	RunID      = "loom.run.id" // call
	Seq        = "loom.seq"    // call
	Deployment = "loom.deployment"
	// RequestModel and RequestStream are the public model the client asked
	// for and whether it asked for a stream, on the SERVER span: gen_ai.*
	// lives only on CLIENT spans, so GenAI-aware backends count each
	// upstream call once. RequestStream is always set (false included), so
	// "where not stream" finds every unary call.
	RequestModel  = "loom.request.model"
	RequestStream = "loom.request.stream"
	Outcome       = "loom.outcome" // call.Outcome: ok, rejected, upstream_error, ...
	// GatewayOverhead is the time Loom itself spent on the call, in seconds.
	GatewayOverhead    = "loom.gateway.overhead"
	Chunks             = "loom.chunks"       // SSE data events received from the upstream
	ChunksSent         = "loom.chunks.sent"  // events written to the client
	UsageSource        = "loom.usage.source" // provider or estimated
	UsageTotalTokens   = "loom.usage.total_tokens"
	UsageInjected      = "loom.usage.injected" // Loom asked for stream usage on the client's behalf
	ClientDisconnected = "loom.client.disconnected"
	Drained            = "loom.upstream.drained"
	DrainComplete      = "loom.upstream.drain_complete"
	// UpstreamAttempt numbers a call's CLIENT spans, one per upstream
	// attempt, from 1. An attempt that failed before anything reached the
	// client carries error.type and UpstreamFailureReason; the attempt that
	// served carries the usage. UpstreamAttempts, on the SERVER span, is how
	// many there were (set only when more than one). All spans of a call
	// share its trace id and loom.seq.
	UpstreamAttempt       = "loom.upstream.attempt"
	UpstreamAttempts      = "loom.upstream.attempts"
	UpstreamFailureReason = "loom.upstream.failure_reason"
	// UpstreamFallbackModel is, on a CLIENT span, the tenant model whose
	// deployment the attempt went to, when it is a fallback of the model
	// the client asked for (loom.request.model on the SERVER span).
	UpstreamFallbackModel = "loom.upstream.fallback_model"
	UpstreamBytes         = "loom.upstream.bytes"
	ClientBytes           = "loom.client.bytes"
	// ContentTruncated is true when captured content hit the size cap.
	ContentTruncated = "loom.content.truncated"
	// Cost is, on the CLIENT span of the attempt that served, what its
	// usage cost in currency units (a double; the exact amount is
	// recovered from its shortest decimal form, which the exporter stores
	// as numeric), CostCurrency the ISO 4217 code of its price entry and
	// CostPriceID that entry's id. All three or none: a call with no
	// known usage or no matching price has no cost, never a cost of 0.
	Cost         = "loom.cost"
	CostCurrency = "loom.cost.currency"
	CostPriceID  = "loom.cost.price_id"
)

// Run markers: each run of an instance opens with an INTERNAL span named
// RunSpanName whose RunEvent is RunStart, and a clean stop closes it with
// one whose RunEvent is RunStop and RunLastSeq the run's last loom.seq. A
// run with no stop marker crashed; it can have lost at most the calls
// finished in its last commit window (RunCommitInterval, in seconds) and
// never more than RunLossBound calls (what the spool holds in memory).
// Both markers carry InstanceID and RunID.
const (
	RunSpanName       = "loom run"
	RunEvent          = "loom.run.event" // RunStart or RunStop
	RunStart          = "start"
	RunStop           = "stop"
	RunLastSeq        = "loom.run.last_seq"
	RunCommitInterval = "loom.run.commit_interval"
	RunLossBound      = "loom.run.loss_bound"
)
