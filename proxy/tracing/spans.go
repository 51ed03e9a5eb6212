package tracing

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/loom-gateway/loom/proxy/call"
	sa "github.com/loom-gateway/loom/proxy/spanattr"
)

// Record turns r into spans: a SERVER span for the request and, when Loom
// reached an upstream, a CLIENT span for that attempt. It numbers the call
// (loom.seq) and never blocks on export.
func (t *Tracer) Record(r *call.Record) {
	seq := int64(t.seq.Add(1))
	ctx := context.Background()
	if len(r.TraceParent) > 0 {
		ctx = propagation.TraceContext{}.Extract(ctx, traceParent(r.TraceParent))
	}
	bufp := t.attrs.Get().(*[]attribute.KeyValue)
	attrs := appendServer((*bufp)[:0], r, seq, t.instance)
	ctx, server := t.tracer.Start(ctx, serverName(r),
		trace.WithSpanKind(trace.SpanKindServer), trace.WithTimestamp(r.Start), trace.WithAttributes(attrs...))
	if r.Status >= 500 || r.Outcome == call.OutcomeClientGone || r.Outcome == call.OutcomeUpstreamFailed {
		server.SetStatus(codes.Error, r.ErrorMessage)
	}
	if !r.UpstreamStart.IsZero() {
		attrs = appendClient(attrs[:0], r, seq, t.instance)
		_, client := t.tracer.Start(ctx, clientName(r),
			trace.WithSpanKind(trace.SpanKindClient), trace.WithTimestamp(r.UpstreamStart), trace.WithAttributes(attrs...))
		if r.Outcome != call.OutcomeOK {
			client.SetStatus(codes.Error, r.ErrorMessage)
		}
		end := r.UpstreamEnd
		if end.IsZero() {
			end = r.End
		}
		client.End(trace.WithTimestamp(end))
	}
	server.End(trace.WithTimestamp(r.End))
	clear(attrs)
	*bufp = attrs[:0]
	t.attrs.Put(bufp)
}

// traceParent carries a client's traceparent header to the W3C propagator.
type traceParent []byte

func (c traceParent) Get(key string) string {
	if key == "traceparent" {
		return string(c)
	}
	return ""
}
func (traceParent) Set(string, string) {}
func (traceParent) Keys() []string     { return []string{"traceparent"} }

// serverName follows the HTTP conventions: "{method} {route}".
func serverName(r *call.Record) string {
	if r.HTTPRoute == "" {
		return r.HTTPMethod
	}
	return r.HTTPMethod + " " + r.HTTPRoute
}

// clientName follows the GenAI conventions: "{operation} {request model}".
func clientName(r *call.Record) string {
	if r.UpstreamModel == "" {
		return string(r.Operation)
	}
	return string(r.Operation) + " " + r.UpstreamModel
}

// appendCall adds what both spans of a call carry.
func appendCall(a []attribute.KeyValue, r *call.Record, seq int64, instance string) []attribute.KeyValue {
	a = append(a,
		attribute.String(sa.InstanceID, instance),
		attribute.Int64(sa.Seq, seq),
		attribute.String(sa.Outcome, string(r.Outcome)),
		attribute.Float64(sa.GatewayOverhead, r.Overhead.Seconds()),
	)
	if r.Operation != "" {
		a = append(a, attribute.String(sa.GenAIOperationName, string(r.Operation)))
	}
	if r.TenantID != "" {
		a = append(a, attribute.String(sa.TenantID, r.TenantID), attribute.String(sa.APIKeyID, r.KeyID))
	}
	if r.ErrorType != "" {
		a = append(a, attribute.String(sa.ErrorType, r.ErrorType))
	}
	if r.ClientDisconnected {
		a = append(a, attribute.Bool(sa.ClientDisconnected, true))
	}
	return a
}

func appendServer(a []attribute.KeyValue, r *call.Record, seq int64, instance string) []attribute.KeyValue {
	a = appendCall(a, r, seq, instance)
	a = append(a,
		attribute.String(sa.HTTPRequestMethod, r.HTTPMethod),
		attribute.Int(sa.HTTPResponseStatusCode, r.Status),
		attribute.Int64(sa.HTTPResponseBodySize, r.ClientBytes),
		attribute.String(sa.URLScheme, "http"),
	)
	if r.HTTPRoute != "" {
		a = append(a, attribute.String(sa.HTTPRoute, r.HTTPRoute))
	}
	if r.Params.RequestBodyBytes > 0 {
		a = append(a, attribute.Int(sa.HTTPRequestBodySize, r.Params.RequestBodyBytes))
	}
	if r.Model != "" {
		a = append(a, attribute.String(sa.GenAIRequestModel, r.Model))
	}
	if r.Stream {
		a = append(a, attribute.Bool(sa.GenAIRequestStream, true), attribute.Int(sa.ChunksSent, r.ChunksSent))
	}
	return a
}

func appendClient(a []attribute.KeyValue, r *call.Record, seq int64, instance string) []attribute.KeyValue {
	a = appendCall(a, r, seq, instance)
	a = append(a,
		attribute.String(sa.GenAIProviderName, r.Provider),
		attribute.String(sa.GenAIRequestModel, r.UpstreamModel),
		attribute.Bool(sa.GenAIRequestStream, r.Stream),
		attribute.String(sa.ServerAddress, r.ServerAddress),
		attribute.Int(sa.ServerPort, r.ServerPort),
		attribute.String(sa.Deployment, r.Deployment),
		attribute.Int(sa.UpstreamAttempt, 1),
		attribute.Int64(sa.UpstreamBytes, r.UpstreamBytes),
		attribute.Int64(sa.ClientBytes, r.ClientBytes),
	)
	p := &r.Params
	if p.Temperature != nil {
		a = append(a, attribute.Float64(sa.GenAIRequestTemperature, *p.Temperature))
	}
	if p.TopP != nil {
		a = append(a, attribute.Float64(sa.GenAIRequestTopP, *p.TopP))
	}
	if p.MaxTokens != nil {
		a = append(a, attribute.Int64(sa.GenAIRequestMaxTokens, *p.MaxTokens))
	}
	if p.N != nil {
		a = append(a, attribute.Int64(sa.GenAIRequestChoiceCount, *p.N))
	}
	if p.Seed != nil {
		a = append(a, attribute.Int64(sa.GenAIRequestSeed, *p.Seed))
	}
	if p.EncodingFormat != "" {
		a = append(a, attribute.StringSlice(sa.GenAIRequestEncodingFormats, []string{p.EncodingFormat}))
	}
	if r.UpstreamStatus != 0 {
		a = append(a, attribute.Int(sa.HTTPResponseStatusCode, r.UpstreamStatus))
	}
	if len(r.ResponseID) > 0 {
		a = append(a, attribute.String(sa.GenAIResponseID, string(r.ResponseID)))
	}
	if len(r.ResponseModel) > 0 {
		a = append(a, attribute.String(sa.GenAIResponseModel, string(r.ResponseModel)))
	}
	if len(r.FinishReasons) > 0 {
		a = append(a, attribute.StringSlice(sa.GenAIResponseFinishReasons, r.FinishReasons))
	}
	if r.UsageSource != call.UsageNone {
		u := &r.Usage
		a = append(a,
			attribute.Int64(sa.GenAIUsageInputTokens, u.InputTokens),
			attribute.Int64(sa.GenAIUsageOutputTokens, u.OutputTokens),
			attribute.Int64(sa.UsageTotalTokens, u.TotalTokens),
			attribute.String(sa.UsageSource, string(r.UsageSource)),
		)
		if u.HasCached {
			a = append(a, attribute.Int64(sa.GenAIUsageCacheReadInputTokens, u.CachedInputTokens))
		}
		if u.HasReasoning {
			a = append(a, attribute.Int64(sa.GenAIUsageReasoningOutputTokens, u.ReasoningTokens))
		}
	}
	if r.Stream {
		a = append(a, attribute.Int(sa.Chunks, r.Chunks), attribute.Int(sa.ChunksSent, r.ChunksSent))
		if ttfc := r.TimeToFirstChunk(); ttfc > 0 {
			a = append(a, attribute.Float64(sa.GenAIResponseTimeToFirstChunk, ttfc.Seconds()))
		}
		if r.UsageRequested {
			a = append(a, attribute.Bool(sa.UsageInjected, true))
		}
	}
	if r.Drained {
		a = append(a, attribute.Bool(sa.Drained, true), attribute.Bool(sa.DrainComplete, r.DrainComplete))
	}
	if r.Content.Capture {
		a = appendContent(a, r)
	}
	return a
}
