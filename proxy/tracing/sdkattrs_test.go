package tracing

import (
	"go.opentelemetry.io/otel/attribute"

	"github.com/loom-gateway/loom/proxy/call"
	"github.com/loom-gateway/loom/proxy/price"
	sa "github.com/loom-gateway/loom/proxy/spanattr"
)

// The attribute lists of the SDK path that the encoder replaced, kept as
// the reference the encoder is checked against (sdkref_test.go).

// strAttr is attribute.String with the value cleaned to maxShort.
func strAttr(k, v string) attribute.KeyValue {
	return attribute.String(k, call.Clean(v, maxShort))
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

// serverName follows the HTTP conventions: "{method} {route}". The route
// is one of Loom's own templates; the method is one of a fixed few.
func serverName(r *call.Record) string {
	if r.HTTPRoute == "" {
		return call.Clean(r.HTTPMethod, maxShort)
	}
	return call.Clean(r.HTTPMethod+" "+r.HTTPRoute, maxShort)
}

// clientName follows the GenAI conventions: "{operation} {request model}".
func clientName(r *call.Record) string {
	if r.UpstreamModel == "" {
		return call.Clean(string(r.Operation), maxShort)
	}
	return call.Clean(string(r.Operation)+" "+r.UpstreamModel, maxShort)
}

// appendCall adds what both spans of a call carry.
func appendCall(a []attribute.KeyValue, r *call.Record, seq int64, instance string) []attribute.KeyValue {
	a = append(a,
		attribute.String(sa.InstanceID, instance),
		attribute.Int64(sa.Seq, seq),
		strAttr(sa.Outcome, string(r.Outcome)),
		attribute.Float64(sa.GatewayOverhead, r.Overhead.Seconds()),
	)
	if r.TenantID != "" {
		a = append(a, strAttr(sa.TenantID, r.TenantID), strAttr(sa.APIKeyID, r.KeyID))
	}
	if r.ClientDisconnected {
		a = append(a, attribute.Bool(sa.ClientDisconnected, true))
	}
	return a
}

// appendServer adds the SERVER span's attributes: http.* and loom.*, never
// gen_ai.* (the CLIENT span is the GenAI operation; a GenAI-aware backend
// would otherwise count every call twice).
func appendServer(a []attribute.KeyValue, r *call.Record, seq int64, instance string) []attribute.KeyValue {
	a = appendCall(a, r, seq, instance)
	a = append(a,
		strAttr(sa.HTTPRequestMethod, r.HTTPMethod),
		attribute.Int(sa.HTTPResponseStatusCode, r.Status),
		attribute.Int64(sa.HTTPResponseBodySize, r.ClientBytes),
		attribute.String(sa.URLScheme, "http"),
		attribute.Bool(sa.RequestStream, r.Stream),
	)
	if r.ErrorType != "" {
		a = append(a, strAttr(sa.ErrorType, r.ErrorType))
	}
	if r.HTTPRoute != "" {
		a = append(a, strAttr(sa.HTTPRoute, r.HTTPRoute))
	}
	if r.Params.RequestBodyBytes > 0 {
		a = append(a, attribute.Int(sa.HTTPRequestBodySize, r.Params.RequestBodyBytes))
	}
	if r.Model != "" {
		a = append(a, strAttr(sa.RequestModel, r.Model))
	}
	if r.Stream {
		a = append(a, attribute.Int(sa.ChunksSent, r.ChunksSent))
	}
	return a
}

func appendClient(a []attribute.KeyValue, r *call.Record, seq int64, instance string) []attribute.KeyValue {
	a = appendCall(a, r, seq, instance)
	a = append(a,
		strAttr(sa.GenAIOperationName, string(r.Operation)),
		strAttr(sa.GenAIProviderName, r.Provider),
	)
	if api := OpenAIAPIType(r, r.Provider); api != "" {
		a = append(a, strAttr(sa.OpenAIAPIType, api))
	}
	a = append(a,
		strAttr(sa.GenAIRequestModel, r.UpstreamModel),
		attribute.Bool(sa.GenAIRequestStream, r.Stream),
		strAttr(sa.ServerAddress, r.ServerAddress),
		attribute.Int(sa.ServerPort, r.ServerPort),
		strAttr(sa.Deployment, r.Deployment),
		attribute.Int(sa.UpstreamAttempt, 1),
		attribute.Int64(sa.UpstreamBytes, r.UpstreamBytes),
		attribute.Int64(sa.ClientBytes, r.ClientBytes),
	)
	// error.type on a CLIENT span means the upstream call failed.
	if r.ErrorType != "" && upstreamFailed(r) {
		a = append(a, strAttr(sa.ErrorType, r.ErrorType))
	}
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
		a = append(a, attribute.StringSlice(sa.GenAIRequestEncodingFormats, []string{call.Clean(p.EncodingFormat, maxShort)}))
	}
	if r.UpstreamStatus != 0 {
		a = append(a, attribute.Int(sa.HTTPResponseStatusCode, r.UpstreamStatus))
	}
	if len(r.ResponseID) > 0 {
		a = append(a, attribute.String(sa.GenAIResponseID, call.CleanBytes(r.ResponseID, maxShort)))
	}
	if len(r.ResponseModel) > 0 {
		a = append(a, attribute.String(sa.GenAIResponseModel, call.CleanBytes(r.ResponseModel, maxShort)))
	}
	if len(r.FinishReasons) > 0 {
		a = append(a, attribute.StringSlice(sa.GenAIResponseFinishReasons, cleanSlice(r.FinishReasons, maxReason)))
	}
	if r.UsageSource != call.UsageNone {
		u := &r.Usage
		a = append(a,
			attribute.Int64(sa.GenAIUsageInputTokens, u.InputTokens),
			attribute.Int64(sa.GenAIUsageOutputTokens, u.OutputTokens),
			attribute.Int64(sa.UsageTotalTokens, u.TotalTokens),
			strAttr(sa.UsageSource, string(r.UsageSource)),
		)
		if u.HasCached {
			a = append(a, attribute.Int64(sa.GenAIUsageCacheReadInputTokens, u.CachedInputTokens))
		}
		if u.HasCacheCreation {
			a = append(a, attribute.Int64(sa.GenAIUsageCacheCreationInputTokens, u.CacheCreationInputTokens))
		}
		if u.HasReasoning {
			a = append(a, attribute.Int64(sa.GenAIUsageReasoningOutputTokens, u.ReasoningTokens))
		}
		if r.PriceID != "" {
			a = append(a,
				attribute.Float64(sa.Cost, price.Amount(r.Cost).Float64()),
				strAttr(sa.CostCurrency, r.CostCurrency),
				strAttr(sa.CostPriceID, r.PriceID),
			)
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
