package mockupstream

import (
	"encoding/json"
	"strconv"

	"github.com/valyala/fasthttp"
)

type completionRequest struct {
	Model         string          `json:"model"`
	Prompt        json.RawMessage `json:"prompt"`
	Stream        bool            `json:"stream"`
	StreamOptions json.RawMessage `json:"stream_options"`
	N             *int            `json:"n"`
}

// textCompletion is the legacy /v1/completions object.
type textCompletion struct {
	ID      string             `json:"id"`
	Object  string             `json:"object"`
	Created int64              `json:"created"`
	Model   string             `json:"model"`
	Choices []completionChoice `json:"choices"`
	Usage   Usage              `json:"usage"`
}

type completionChoice struct {
	Text         string          `json:"text"`
	Index        int             `json:"index"`
	Logprobs     json.RawMessage `json:"logprobs"`
	FinishReason string          `json:"finish_reason"`
}

func (s *Server) completions(ctx *fasthttp.RequestCtx, c *call) (*stream, *apiError) {
	var req completionRequest
	if err := json.Unmarshal(c.rec.Body, &req); err != nil {
		return nil, decodeError(err)
	}
	if req.Model == "" && c.p == providerOpenAI {
		return nil, badRequest("you must provide a model parameter", "", "")
	}
	if len(req.Prompt) == 0 || string(req.Prompt) == "null" {
		return nil, missingParam("prompt")
	}
	prompts, ok := parseInputs(req.Prompt)
	if !ok {
		return nil, badRequest("Invalid type for 'prompt': expected a string, an array of strings, an array of "+
			"integers or an array of arrays of integers.", "prompt", "invalid_type")
	}
	n, includeUsage, e := parseStreamRequest(req.Stream, req.StreamOptions, req.N)
	if e != nil {
		return nil, e
	}
	// OpenAI answers n completions for each prompt.
	choices := max(len(prompts), 1) * n
	promptTokens := 0
	for _, p := range prompts {
		promptTokens += p.tokenCount()
	}
	out := c.plan.Chunks * choices
	u := Usage{PromptTokens: promptTokens, CompletionTokens: out, TotalTokens: promptTokens + out}
	model := c.modelFor(req.Model)

	if req.Stream {
		ctx.SetContentType("text/event-stream; charset=utf-8")
		return newStream(s, c, completionEvents(c, model, choices, includeUsage, u)), nil
	}
	var text []byte
	for k := range c.plan.Chunks {
		text = append(text, tokenText(k)...)
	}
	body := textCompletion{ID: c.id("cmpl-"), Object: "text_completion", Created: c.created, Model: model, Usage: u}
	for i := range choices {
		body.Choices = append(body.Choices, completionChoice{Text: string(text), Index: i,
			Logprobs: json.RawMessage("null"), FinishReason: "stop"})
	}
	s.log.update(c.rec, func(r *Received) { r.UsageSent = &u })
	writeJSON(ctx, body)
	return nil, nil
}

// completionEvents is the legacy stream: text deltas per choice, a final empty delta with finish_reason,
// the usage chunk if asked for, [DONE]. Legacy chunks put "model" after "choices".
func completionEvents(c *call, model string, choices int, includeUsage bool, u Usage) []sseEvent {
	var p []byte
	p = append(p, `{"id":`...)
	p = appendJSONString(p, c.id("cmpl-"))
	p = append(p, `,"object":"text_completion","created":`...)
	p = strconv.AppendInt(p, c.created, 10)
	p = append(p, `,"choices":[`...)
	f := chunkFrame{prefix: string(p), suffix: string(appendJSONString([]byte(`],"model":`), model)),
		usageNull: includeUsage && c.plan.usageNull}

	perChoice := make([][]sseEvent, choices)
	for i := range choices {
		idx := `,"index":` + strconv.Itoa(i) + `,"logprobs":null,"finish_reason":`
		for k := range c.plan.Chunks {
			perChoice[i] = append(perChoice[i], f.event([]byte(`{"text":"`+tokenText(k)+`"`+idx+`null}`)))
		}
		perChoice[i] = append(perChoice[i], f.event([]byte(`{"text":""`+idx+`"stop"}`)))
	}
	out := interleave(perChoice)
	if includeUsage {
		out = append(out, f.usageEvent(u, mustJSON(u)))
	}
	return append(out, doneEvent())
}
