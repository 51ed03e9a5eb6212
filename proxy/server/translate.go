package server

import (
	"github.com/valyala/fasthttp"

	"github.com/loom-gateway/loom/proxy/apierror"
	"github.com/loom-gateway/loom/proxy/call"
	"github.com/loom-gateway/loom/proxy/relay"
	"github.com/loom-gateway/loom/proxy/upstream"
)

// The seams where a call whose deployment speaks another dialect than its
// client is translated. Until the translations land, every call passes,
// and an Anthropic deployment serves nothing.

// prepare decides how the call is translated for dep, or refuses a call
// dep cannot serve.
func (ex *exchange) prepare(dep *upstream.Deployment, model string) *apierror.Error {
	if !dep.Anthropic() {
		return nil
	}
	what := "This endpoint"
	if ex.kind() == dialectResponses {
		what = "The Responses API"
	}
	return apierror.New(fasthttp.StatusBadRequest, apierror.TypeInvalidRequest, "unsupported_model", "model",
		what+" is not available for model `"+model+"`: it is served by an Anthropic deployment.")
}

// upstreamBody appends to ex.body the request body the deployment gets.
func (ex *exchange) upstreamBody(body []byte, upstreamModel string, _ *upstream.Deployment) ([]byte, error) {
	return ex.req.AppendUpstreamBody(ex.body[:0], body, upstreamModel), nil
}

// observeTranslated taps a translated unary answer; false when the call
// is not translated.
func (ex *exchange) observeTranslated(*call.Record, int, []byte) bool { return false }

// answer is the unary answer the client gets for the upstream's status
// and body.
func (ex *exchange) answer(_ *call.Record, status int, body []byte) (int, []byte) {
	return status, body
}

// writeError answers with e in the client's dialect.
func (ex *exchange) writeError(ctx *fasthttp.RequestCtx, e *apierror.Error) { writeError(ctx, e) }

// setTranslator points a relayed stream at the call's translator, if it
// has one.
func (ex *exchange) setTranslator(*relay.Options) bool { return false }
