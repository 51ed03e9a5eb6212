package server

import (
	"bytes"

	"github.com/valyala/fasthttp"

	"github.com/loom-gateway/loom/proxy/apierror"
	"github.com/loom-gateway/loom/proxy/call"
)

// Azure OpenAI's own paths, so that an app built on an Azure client
// (openai-go's azure package, openai-node's AzureOpenAI, openai-python's
// AzureOpenAI) points at Loom unchanged:
//
//   - /openai/deployments/{name}/chat/completions, /completions and
//     /embeddings, where {name} is the tenant's model name and the body's
//     model may be absent (Azure clients leave it out);
//   - /openai/responses (and /openai/responses/{id}...), where Azure
//     clients send the Responses API, the deployment as the body's model;
//   - /openai/v1/..., Azure's v1 API, the same as Loom's /v1/.
//
// The dated paths require the api-version query parameter, as Azure does;
// any value is accepted, since what Loom sends upstream is its own
// deployment's (api_version in the configuration). The key comes as
// "api-key" (or Bearer), as authenticate reads it.

// Azure-path routes: the span's http.route is the route the client used.
var (
	epAzureChat        = &endpoint{op: call.OpChat, route: "/openai/deployments/{deployment-id}/chat/completions"}
	epAzureCompletions = &endpoint{op: call.OpTextCompletion, route: "/openai/deployments/{deployment-id}/completions"}
	epAzureEmbeddings  = &endpoint{op: call.OpEmbeddings, route: "/openai/deployments/{deployment-id}/embeddings"}
	epAzureResponses   = &endpoint{op: call.OpChat, route: "/openai/responses", dialect: dialectResponses}

	epAzureV1Chat        = &endpoint{op: call.OpChat, route: "/openai/v1/chat/completions"}
	epAzureV1Completions = &endpoint{op: call.OpTextCompletion, route: "/openai/v1/completions"}
	epAzureV1Embeddings  = &endpoint{op: call.OpEmbeddings, route: "/openai/v1/embeddings"}
	epAzureV1Responses   = &endpoint{op: call.OpChat, route: "/openai/v1/responses", dialect: dialectResponses}
)

// routeAzure serves path if it is one of Azure's, and says whether it was.
func (s *Server) routeAzure(ctx *fasthttp.RequestCtx, path []byte) bool {
	rest, ok := bytes.CutPrefix(path, []byte("/openai/"))
	if !ok {
		return false
	}
	if v1, ok := bytes.CutPrefix(rest, []byte("v1/")); ok {
		switch string(v1) {
		case "chat/completions":
			s.post(ctx, epAzureV1Chat, nil)
		case "completions":
			s.post(ctx, epAzureV1Completions, nil)
		case "embeddings":
			s.post(ctx, epAzureV1Embeddings, nil)
		case "responses":
			s.post(ctx, epAzureV1Responses, nil)
		case "models":
			s.models(ctx, nil)
		default:
			if id, ok := bytes.CutPrefix(v1, []byte("responses/")); ok {
				s.responseLookup(ctx, id)
				return true
			}
			return false
		}
		return true
	}
	var ep *endpoint
	var name []byte
	lookup := false
	if d, ok := bytes.CutPrefix(rest, []byte("deployments/")); ok {
		var op []byte
		if name, op, ok = bytes.Cut(d, []byte("/")); !ok || len(name) == 0 {
			return false
		}
		switch string(op) {
		case "chat/completions":
			ep = epAzureChat
		case "completions":
			ep = epAzureCompletions
		case "embeddings":
			ep = epAzureEmbeddings
		default:
			return false
		}
	} else if string(rest) == "responses" {
		ep = epAzureResponses
	} else if rest, ok = bytes.CutPrefix(rest, []byte("responses/")); ok {
		lookup = true
	} else {
		return false
	}
	if len(ctx.QueryArgs().Peek("api-version")) == 0 {
		route := "/openai/responses/{response_id}"
		if ep != nil {
			route = ep.route
		}
		ex := s.begin(ctx, "", route)
		s.attribute(ctx, ex)
		s.reject(ctx, ex, apierror.New(fasthttp.StatusBadRequest, apierror.TypeInvalidRequest, "missing_api_version",
			"api-version", "The api-version query parameter (?api-version=) is required on Azure OpenAI paths."))
		return true
	}
	if lookup {
		s.responseLookup(ctx, rest)
	} else {
		s.post(ctx, ep, name)
	}
	return true
}
