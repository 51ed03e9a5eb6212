package postgresexporter

import (
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/loom-gateway/loom/proxy/spanattr"
)

// deadLetter is a span that can never be inserted, and why.
type deadLetter struct {
	reason string
	src    source
}

// window is the range of start times the exporter accepts: spans older than
// retention would land in a partition about to be dropped (or already
// dropped); spans further ahead than the partitions kept ready are a broken
// clock. Neither is retried: they go to dead letters, where they can be
// looked at and replayed.
type window struct {
	from, to time.Time // from is zero when retention is off
}

func (c *Config) window(now time.Time) window {
	w := window{to: now.Add(time.Duration(c.PartitionsAhead+1) * 24 * time.Hour)}
	if c.Retention > 0 {
		w.from = now.Add(-c.Retention)
	}
	return w
}

// reject says why a span's start time is outside w, or "".
func (w window) reject(start pcommon.Timestamp) string {
	t := start.AsTime()
	switch {
	case start == 0:
		return "start time is zero"
	case !w.from.IsZero() && t.Before(w.from):
		return fmt.Sprintf("start time %s is older than retention allows (%s)", t.Format(time.RFC3339Nano), w.from.Format(time.RFC3339))
	case t.After(w.to):
		return fmt.Sprintf("start time %s is past the last partition kept ready (%s)", t.Format(time.RFC3339Nano), w.to.Format(time.RFC3339))
	}
	return ""
}

// convert turns td into rows, and into dead letters for the spans that can
// never be inserted. It only reads td.
func (e *pgExporter) convert(td ptrace.Traces, now time.Time) ([]spanRow, []deadLetter) {
	w := e.cfg.window(now)
	rows := make([]spanRow, 0, td.SpanCount())
	var dead []deadLetter
	for _, rs := range td.ResourceSpans().All() {
		res := rs.Resource()
		resJSON := appendMap(nil, res.Attributes(), nil)
		var service pgtype.Text
		if v, ok := res.Attributes().Get(spanattr.ServiceName); ok && v.Type() == pcommon.ValueTypeStr {
			service = optText(v.Str())
		}
		for _, ss := range rs.ScopeSpans().All() {
			origin := e.check.origin(res, ss.Scope())
			for _, s := range ss.Spans().All() {
				src := source{res: rs, scope: ss, span: s}
				reason := origin
				if reason == "" {
					reason = e.check.span(s)
				}
				if reason == "" && (s.TraceID().IsEmpty() || s.SpanID().IsEmpty()) {
					reason = "empty trace id or span id"
				}
				if reason == "" {
					reason = w.reject(s.StartTimestamp())
				}
				if reason != "" {
					dead = append(dead, deadLetter{reason: reason, src: src})
					continue
				}
				rows = append(rows, spanRow{resource: resJSON, serviceName: service, src: src})
				fillRow(&rows[len(rows)-1], ss.Scope(), s)
			}
		}
	}
	return rows, dead
}

// fillRow sets every column of r from span s.
func fillRow(r *spanRow, scope pcommon.InstrumentationScope, s ptrace.Span) {
	r.traceID = s.TraceID().String()
	r.spanID = s.SpanID().String()
	if !s.ParentSpanID().IsEmpty() {
		r.parentSpanID = pgtype.Text{String: s.ParentSpanID().String(), Valid: true}
	}
	r.start = s.StartTimestamp().AsTime()
	if s.EndTimestamp() != 0 {
		r.end = pgtype.Timestamptz{Time: s.EndTimestamp().AsTime(), Valid: true}
		ms := float64(int64(s.EndTimestamp())-int64(s.StartTimestamp())) / float64(time.Millisecond)
		r.durationMS = pgtype.Float8{Float64: ms, Valid: true}
	}
	r.name = s.Name()
	r.kind = kindName(s.Kind())
	r.statusCode = statusName(s.Status().Code())
	r.statusMessage = optText(s.Status().Message())
	r.scopeName = optText(scope.Name())

	// One pass over the attributes: typed columns, content, and the JSON of
	// the rest. unmapped is appended to as we go, so a value a setter refuses
	// lands in the JSON in the same pass.
	attrs := append(make([]byte, 0, 256), '{')
	var content contentRow
	for k, v := range s.Attributes().All() {
		switch {
		case k == spanattr.GenAIInputMessages:
			content.input = contentJSON(v)
			continue
		case k == spanattr.GenAIOutputMessages:
			content.output = contentJSON(v)
			continue
		}
		if set, ok := typedColumns[k]; ok && set(r, v) {
			continue
		}
		if len(attrs) > 1 {
			attrs = append(attrs, ',')
		}
		attrs = appendString(attrs, k)
		attrs = append(attrs, ':')
		attrs = appendValue(attrs, v)
	}
	r.attributes = append(attrs, '}')
	// A Loom call's SERVER span from a proxy before loom.request.stream
	// said gen_ai.request.stream only when true: absent means false, so
	// that "where not stream" finds every unary call.
	if !r.stream.Valid && r.kind == "server" && r.seq.Valid {
		r.stream = pgtype.Bool{Valid: true}
	}
	if content.input != nil || content.output != nil {
		content.traceID, content.spanID, content.start, content.tenantID = r.traceID, r.spanID, r.start, r.tenantID
		r.content = &content
	}

	if n := s.Events().Len(); n > 0 {
		r.events = make([]eventRow, n)
		for i, ev := range s.Events().All() {
			r.events[i] = eventRow{
				traceID: r.traceID, spanID: r.spanID, spanStart: r.start, tenantID: r.tenantID,
				seq: int32(i), time: ev.Timestamp().AsTime(), name: ev.Name(),
				attributes: appendMap(nil, ev.Attributes(), nil),
			}
		}
	}
	if s.Links().Len() > 0 {
		r.links = appendLinks(nil, s.Links())
	}
}

// appendLinks appends links as a JSON array of objects.
func appendLinks(dst []byte, links ptrace.SpanLinkSlice) []byte {
	dst = append(dst, '[')
	for i, l := range links.All() {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"trace_id":`...)
		dst = appendString(dst, l.TraceID().String())
		dst = append(dst, `,"span_id":`...)
		dst = appendString(dst, l.SpanID().String())
		if ts := l.TraceState().AsRaw(); ts != "" {
			dst = append(dst, `,"trace_state":`...)
			dst = appendString(dst, ts)
		}
		dst = append(dst, `,"attributes":`...)
		dst = appendMap(dst, l.Attributes(), nil)
		dst = append(dst, '}')
	}
	return append(dst, ']')
}

// payload re-encodes the span alone, with its resource and scope, as an OTLP
// protobuf request that can be replayed to any OTLP endpoint.
func (s source) payload() ([]byte, error) {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	s.res.Resource().CopyTo(rs.Resource())
	rs.SetSchemaUrl(s.res.SchemaUrl())
	ss := rs.ScopeSpans().AppendEmpty()
	s.scope.Scope().CopyTo(ss.Scope())
	ss.SetSchemaUrl(s.scope.SchemaUrl())
	s.span.CopyTo(ss.Spans().AppendEmpty())
	return (&ptrace.ProtoMarshaler{}).MarshalTraces(td)
}
