package mockupstream

import (
	"strconv"
	"time"

	"github.com/valyala/fasthttp"
)

// Control header names. They are part of the mock's contract with tests, benchmarks and k6 scripts.
const (
	HeaderLatencyMS    = "x-mock-latency-ms"
	HeaderTTFTMS       = "x-mock-ttft-ms"
	HeaderChunks       = "x-mock-chunks"
	HeaderChunkDelayMS = "x-mock-chunk-delay-ms"
	HeaderStatus       = "x-mock-status"
	HeaderResetAfter   = "x-mock-reset-after"
	HeaderReplay       = "x-mock-replay"
	HeaderUsageNull    = "x-mock-usage-null"
	// HeaderCacheReadTokens and HeaderCacheWriteTokens set the prompt-cache counts a generated usage reports:
	// Anthropic's cache_read_input_tokens / cache_creation_input_tokens (apart from input_tokens), the
	// Responses API's input_tokens_details.cached_tokens / cache_write_tokens and chat's
	// prompt_tokens_details.cached_tokens (inside the input count).
	HeaderCacheReadTokens  = "x-mock-cache-read-tokens"
	HeaderCacheWriteTokens = "x-mock-cache-write-tokens"
	// HeaderReasoningTokens sets the reasoning tokens a generated usage reports, inside the output count as
	// OpenAI counts them: chat's completion_tokens_details.reasoning_tokens (added to completion_tokens)
	// and the Responses API's output_tokens_details.reasoning_tokens (in place of the reasoning a request's
	// reasoning.effort asks for). Anthropic reports no reasoning count (thinking is output): it ignores it.
	HeaderReasoningTokens = "x-mock-reasoning-tokens"

	// HeaderStreamErrorAfter ends a stream after this many events with the dialect's in-stream error
	// event (Anthropic "event: error" overloaded_error, the Responses API's "event: error", a chat
	// "data: {"error":...}"), then a clean end: the upstream failing after the first byte, politely.
	HeaderStreamErrorAfter = "x-mock-stream-error-after"

	// Failure injection (see Failure): HeaderFail is a FailMode ("500", "429", "reset", "timeout",
	// "reset-after-first", or "none" to lift Config.Fail for this request); the first HeaderFailCount
	// attempts (0 or absent: every attempt) counted per HeaderFailKey value fail that way.
	HeaderFail        = "x-mock-fail"
	HeaderFailCount   = "x-mock-fail-count"
	HeaderFailKey     = "x-mock-fail-key"
	HeaderFailDelayMS = "x-mock-fail-delay-ms" // how long "timeout" holds the head
	// HeaderRetryAfter is the Retry-After value (seconds or an HTTP date) of every 429 or 503 the mock
	// answers to this request, injected or from x-mock-status.
	HeaderRetryAfter = "x-mock-retry-after"

	// HeaderServiceMS is on every response: the time the mock deliberately waited, in decimal milliseconds,
	// so a harness can subtract it from what it measured.
	HeaderServiceMS = "x-mock-service-ms"

	// HeaderTiming, "1", makes a stream end (after its last event) with an SSE comment reporting what the
	// mock measured rather than planned (TimingComment). x-mock-service-ms goes out with the head, before
	// the waits, so it can only say what the mock meant to wait; each timer overshoots a little, and over
	// a stream's twenty-odd waits that overshoot is as large as a gateway's own share of the time. SSE
	// clients skip comments, and Loom relays them unchanged, so a load test reads it through Loom.
	HeaderTiming = "x-mock-timing"
)

// TimingComment starts the comment a stream ends with under x-mock-timing: 1, followed by
// "head-ms=H first-event-ms=F service-ms=S" and a blank line. Each is decimal milliseconds from the
// moment the mock had the request: H when the stream began (the head goes out then), F when its
// first event was written, S when its last one was.
const TimingComment = ": x-mock-timing "

const (
	defaultChunks = 5
	maxWaitMS     = 3_600_000 // an hour: anything longer is a typo, not a scenario
	maxChunks     = 1_000_000
)

// plan is Behaviour after Defaults and the request's control headers are applied.
type plan struct {
	Behaviour
	replay     string
	chunksSet  bool // x-mock-chunks was sent: it, not the request's max_tokens, decides the length
	usageNull  bool
	cacheRead  int
	cacheWrite int
	reasoning  int
	fail       Failure
	errorAfter int
	timing     bool
}

// streamLength is how many content chunks (= completion tokens) an answer has, given the request's token
// limit (nil when it sent none): x-mock-chunks when sent, cut to the limit (truncated reports that, and the
// answer ends as a real one cut by max_tokens does); else the limit itself, so a client asking for N tokens
// gets N chunks of one token each; else the default (-chunks, 5).
func (p *plan) streamLength(limit *int) (chunks int, truncated bool) {
	switch {
	case limit == nil || *limit < 1:
		return p.Chunks, false
	case !p.chunksSet:
		return min(*limit, maxChunks), false
	case p.Chunks > *limit:
		return *limit, true
	}
	return p.Chunks, false
}

// resolve applies the control headers over s.cfg.Defaults. A header the mock cannot read is an error rather
// than ignored, so a typo in a scenario fails loudly instead of measuring the wrong thing.
func (s *Server) resolve(h *fasthttp.RequestHeader) (plan, *apiError) {
	p := plan{Behaviour: s.cfg.Defaults, fail: *s.fail.Load()}
	if p.Chunks <= 0 {
		p.Chunks = defaultChunks
	}
	durations := []struct {
		name string
		dst  *time.Duration
	}{
		{HeaderLatencyMS, &p.Latency},
		{HeaderTTFTMS, &p.TTFT},
		{HeaderChunkDelayMS, &p.ChunkDelay},
		{HeaderFailDelayMS, &p.fail.Delay},
	}
	for _, d := range durations {
		v := h.Peek(d.name)
		if v == nil {
			continue
		}
		ms, err := strconv.Atoi(string(v))
		if err != nil || ms < 0 || ms > maxWaitMS {
			return p, badMockHeader(d.name, string(v), "an integer number of milliseconds, 0 to 3600000")
		}
		*d.dst = time.Duration(ms) * time.Millisecond
	}
	counts := []struct {
		name string
		dst  *int
	}{
		{HeaderChunks, &p.Chunks},
		{HeaderResetAfter, &p.ResetAfter},
		{HeaderCacheReadTokens, &p.cacheRead},
		{HeaderCacheWriteTokens, &p.cacheWrite},
		{HeaderReasoningTokens, &p.reasoning},
		{HeaderFailCount, &p.fail.Count},
		{HeaderStreamErrorAfter, &p.errorAfter},
	}
	for _, c := range counts {
		v := h.Peek(c.name)
		if v == nil {
			continue
		}
		n, err := strconv.Atoi(string(v))
		if err != nil || n < 0 || n > maxChunks {
			return p, badMockHeader(c.name, string(v), "an integer from 0 to 1000000")
		}
		*c.dst = n
	}
	p.chunksSet = h.Peek(HeaderChunks) != nil
	if v := h.Peek(HeaderStatus); v != nil {
		n, err := strconv.Atoi(string(v))
		if err != nil || (n != fasthttp.StatusOK && (n < 400 || n > 599)) {
			return p, badMockHeader(HeaderStatus, string(v), "200 or an HTTP error status from 400 to 599")
		}
		p.Status = n
	}
	if v := h.Peek(HeaderUsageNull); v != nil {
		switch string(v) {
		case "1", "true":
			p.usageNull = true
		case "0", "false":
		default:
			return p, badMockHeader(HeaderUsageNull, string(v), "1 or 0")
		}
	}
	if v := h.Peek(HeaderTiming); v != nil {
		switch string(v) {
		case "1", "true":
			p.timing = true
		case "0", "false":
		default:
			return p, badMockHeader(HeaderTiming, string(v), "1 or 0")
		}
	}
	if v := h.Peek(HeaderFail); v != nil {
		mode, ok := ParseFailMode(string(v))
		if !ok && string(v) != "none" {
			return p, badMockHeader(HeaderFail, string(v), `"500", "429", "reset", "timeout", "reset-after-first" or "none"`)
		}
		p.fail.Mode = mode
	}
	if v := h.Peek(HeaderRetryAfter); v != nil {
		if !validRetryAfter(string(v)) {
			return p, badMockHeader(HeaderRetryAfter, string(v), "seconds (0 to 3600) or an HTTP date")
		}
		p.fail.RetryAfter = string(v)
	}
	if p.fail.Delay == 0 {
		p.fail.Delay = defaultFailDelay
	}
	p.replay = string(h.Peek(HeaderReplay))
	return p, nil
}
