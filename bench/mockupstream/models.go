package mockupstream

import "github.com/valyala/fasthttp"

type model struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
}

// models is what GET /v1/models lists. Chat and embeddings accept any model name; this list only has to look
// like OpenAI's for clients that enumerate models.
func models() []model {
	return []model{
		{ID: "gpt-4o", Object: "model", Created: 1715367049, OwnedBy: "system"},
		{ID: "gpt-4o-mini", Object: "model", Created: 1721172741, OwnedBy: "system"},
		{ID: "gpt-4.1-nano", Object: "model", Created: 1744321707, OwnedBy: "system"},
		{ID: "gpt-3.5-turbo-instruct", Object: "model", Created: 1692901427, OwnedBy: "system"},
		{ID: "text-embedding-3-small", Object: "model", Created: 1705948997, OwnedBy: "system"},
	}
}

func modelList() any {
	return struct {
		Object string  `json:"object"`
		Data   []model `json:"data"`
	}{Object: "list", Data: models()}
}

// serveModel answers GET /v1/models/{id}; an unknown id gets OpenAI's model_not_found 404.
func serveModel(ctx *fasthttp.RequestCtx, id string) *apiError {
	for _, m := range models() {
		if m.ID == id {
			writeJSON(ctx, m)
			return nil
		}
	}
	return modelNotFound(id)
}
