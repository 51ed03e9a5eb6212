package anthropic

import (
	"github.com/loom-gateway/loom/proxy/call"
	"github.com/loom-gateway/loom/proxy/internal/json"
)

// ObserveMessage reads a native Messages answer that the relay passes to
// the client unchanged (POST /v1/messages to an Anthropic deployment): id,
// model, stop reason and usage go into rec, an error body's type into
// rec.ErrorType. Finish reasons are recorded as Anthropic names them,
// since that is what the client got. It never changes body.
func ObserveMessage(rec *call.Record, body []byte) {
	var f messageFields
	if !f.read(body) {
		return
	}
	if string(f.typ) == `"error"` {
		observeError(rec, body)
		return
	}
	f.record(rec)
	if f.stopReason != nil {
		rec.SetFinishReason(0, nativeReason(f.stopReason))
	}
	if f.usage != nil {
		u := usage{final: true}
		u.read(f.usage)
		u.fill(rec)
	}
}

func observeError(rec *call.Record, body []byte) {
	typ, msg := readError(body)
	if len(typ) > 0 {
		rec.ErrorType = call.CleanBytes(typ, 64)
	} else {
		rec.ErrorType = "upstream_error"
	}
	if len(msg) > 0 {
		rec.ErrorMessage = call.CleanBytes(msg, 512)
	}
}

// Observer reads a native Messages stream event by event, beside a relay
// that passes every byte on unchanged: the id and model from
// message_start, usage from message_start and message_delta (whose usage
// is a running total), the stop reason, output pieces for an estimate, and
// an error event. Until message_delta brings the final count, rec holds
// message_start's exact input and an estimated output (UsageEstimated),
// which is what a stream cut short is billed on. Call Reset per stream (the
// zero value is ready); it costs no allocation per event, and fills
// rec.Content with the streamed text when rec captures content.
type Observer struct {
	usage   usage
	scratch []byte
}

// Reset prepares o for a new stream.
func (o *Observer) Reset() { *o = Observer{scratch: o.scratch[:0]} }

// Event reads one event (its SSE event name and data) into rec. It
// reports whether the event was an error event, after which the relay
// ends the stream as Anthropic did.
func (o *Observer) Event(rec *call.Record, name, data []byte) (isError bool) {
	var ev event
	if !ev.read(data) {
		return false
	}
	switch ev.kind(name) {
	case "message_start":
		var f messageFields
		f.read(ev.message)
		f.record(rec)
		if f.usage != nil {
			o.usage.read(f.usage)
			o.usage.fill(rec)
		}
	case "content_block_start":
		var b block
		if ev.block != nil {
			b = readBlock(ev.block)
		}
		if string(b.typ) == `"tool_use"` || len(b.text) > 2 || len(b.thinking) > 2 {
			o.usage.piece(rec)
		}
	case "content_block_delta":
		if ev.delta == nil {
			return false
		}
		var d delta
		d.read(ev.delta)
		if len(d.text) > 2 || len(d.partial) > 2 || len(d.thinking) > 2 {
			o.usage.piece(rec)
		}
		if len(d.text) > 2 && rec.Content.Capture {
			o.scratch, _ = json.AppendString(o.scratch[:0], d.text)
			rec.Content.AppendChoice(0, o.scratch)
		}
	case "message_delta":
		if ev.usage != nil {
			o.usage.read(ev.usage)
			o.usage.final = true
			o.usage.fill(rec)
		}
		if ev.delta != nil {
			var m json.Members
			m.Reset(ev.delta)
			for m.Next() {
				if string(m.Key()) == "stop_reason" && m.Kind() == json.String {
					rec.SetFinishReason(0, nativeReason(m.Value()))
				}
			}
		}
	case "error":
		rec.Outcome = call.OutcomeUpstreamError
		observeError(rec, data)
		return true
	}
	return false
}
