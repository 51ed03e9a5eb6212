package spanattr_test

import (
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.41.0"

	"github.com/loom-gateway/loom/proxy/spanattr"
)

// The names Loom shares with the semantic conventions must be exactly the
// conventions' own: a dashboard or backend that knows GenAI spans reads them.
func TestNames_MatchSemanticConventions(t *testing.T) {
	pins := []struct {
		loom string
		conv attribute.Key
	}{
		{spanattr.ServiceName, semconv.ServiceNameKey},
		{spanattr.ServiceVersion, semconv.ServiceVersionKey},
		{spanattr.ServiceInstanceID, semconv.ServiceInstanceIDKey},
		{spanattr.GenAIOperationName, semconv.GenAIOperationNameKey},
		{spanattr.GenAIProviderName, semconv.GenAIProviderNameKey},
		{spanattr.GenAIRequestModel, semconv.GenAIRequestModelKey},
		{spanattr.GenAIRequestTemperature, semconv.GenAIRequestTemperatureKey},
		{spanattr.GenAIRequestTopP, semconv.GenAIRequestTopPKey},
		{spanattr.GenAIRequestMaxTokens, semconv.GenAIRequestMaxTokensKey},
		{spanattr.GenAIRequestChoiceCount, semconv.GenAIRequestChoiceCountKey},
		{spanattr.GenAIRequestSeed, semconv.GenAIRequestSeedKey},
		{spanattr.GenAIRequestStream, semconv.GenAIRequestStreamKey},
		{spanattr.GenAIRequestEncodingFormats, semconv.GenAIRequestEncodingFormatsKey},
		{spanattr.GenAIResponseModel, semconv.GenAIResponseModelKey},
		{spanattr.GenAIResponseID, semconv.GenAIResponseIDKey},
		{spanattr.GenAIResponseFinishReasons, semconv.GenAIResponseFinishReasonsKey},
		{spanattr.GenAIResponseTimeToFirstChunk, semconv.GenAIResponseTimeToFirstChunkKey},
		{spanattr.GenAIUsageInputTokens, semconv.GenAIUsageInputTokensKey},
		{spanattr.GenAIUsageOutputTokens, semconv.GenAIUsageOutputTokensKey},
		{spanattr.GenAIUsageCacheReadInputTokens, semconv.GenAIUsageCacheReadInputTokensKey},
		{spanattr.GenAIUsageCacheCreationInputTokens, semconv.GenAIUsageCacheCreationInputTokensKey},
		{spanattr.OpenAIAPIType, semconv.OpenAIAPITypeKey},
		{spanattr.GenAIUsageReasoningOutputTokens, semconv.GenAIUsageReasoningOutputTokensKey},
		{spanattr.GenAIInputMessages, semconv.GenAIInputMessagesKey},
		{spanattr.GenAIOutputMessages, semconv.GenAIOutputMessagesKey},
		{spanattr.ErrorType, semconv.ErrorTypeKey},
		{spanattr.ServerAddress, semconv.ServerAddressKey},
		{spanattr.ServerPort, semconv.ServerPortKey},
		{spanattr.HTTPRequestMethod, semconv.HTTPRequestMethodKey},
		{spanattr.HTTPRoute, semconv.HTTPRouteKey},
		{spanattr.HTTPResponseStatusCode, semconv.HTTPResponseStatusCodeKey},
		{spanattr.HTTPRequestBodySize, semconv.HTTPRequestBodySizeKey},
		{spanattr.HTTPResponseBodySize, semconv.HTTPResponseBodySizeKey},
		{spanattr.URLPath, semconv.URLPathKey},
		{spanattr.URLScheme, semconv.URLSchemeKey},
		{spanattr.UserAgentOriginal, semconv.UserAgentOriginalKey},
		{spanattr.NetworkProtocolVersion, semconv.NetworkProtocolVersionKey},
	}
	for _, p := range pins {
		if p.loom != string(p.conv) {
			t.Errorf("spanattr has %q, semantic conventions v1.41 say %q", p.loom, p.conv)
		}
	}
}

// Loom's own names stay in Loom's namespace so they can never collide with a
// future convention.
func TestNames_LoomOwnUnderLoomNamespace(t *testing.T) {
	for _, name := range []string{
		spanattr.TenantID, spanattr.APIKeyID, spanattr.InstanceID, spanattr.RunID, spanattr.Seq, spanattr.RunEvent, spanattr.RunLastSeq,
		spanattr.RunCommitInterval, spanattr.RunLossBound,
		spanattr.Deployment, spanattr.RequestModel, spanattr.RequestStream, spanattr.Outcome, spanattr.GatewayOverhead, spanattr.Chunks,
		spanattr.ChunksSent, spanattr.UsageSource, spanattr.UsageTotalTokens, spanattr.UsageInjected,
		spanattr.ClientDisconnected, spanattr.Drained, spanattr.DrainComplete,
		spanattr.UpstreamAttempt, spanattr.UpstreamAttempts, spanattr.UpstreamFailureReason, spanattr.UpstreamFallbackModel,
		spanattr.UpstreamBytes, spanattr.ClientBytes, spanattr.ContentTruncated,
		spanattr.Cost, spanattr.CostCurrency, spanattr.CostPriceID,
	} {
		if !strings.HasPrefix(name, "loom.") {
			t.Errorf("%q is Loom's own attribute but not under loom.", name)
		}
	}
}
