package mockupstream

import (
	"bytes"
	"encoding/json"
	"strconv"

	"github.com/valyala/fasthttp"
)

const systemFingerprint = "fp_mock"

type chatRequest struct {
	Model         string          `json:"model"`
	Messages      []chatMessage   `json:"messages"`
	Stream        bool            `json:"stream"`
	StreamOptions json.RawMessage `json:"stream_options"`
	N             *int            `json:"n"`
	Tools         []chatTool      `json:"tools"`
	MaxTokens     *int            `json:"max_tokens"`
	MaxCompletion *int            `json:"max_completion_tokens"`
	ToolChoice    json.RawMessage `json:"tool_choice"`
}

type chatMessage struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"` // a string or an array of parts
}

type chatTool struct {
	Type     string `json:"type"`
	Function struct {
		Name       string          `json:"name"`
		Parameters json.RawMessage `json:"parameters"`
	} `json:"function"`
}

// toolArgs is the arguments the mock sends for the tool named name: generated from its parameters schema.
func (r *chatRequest) toolArgs(name string) string {
	for _, t := range r.Tools {
		if t.Function.Name == name {
			return toolArgumentsFor(t.Function.Parameters)
		}
	}
	return emptyArgs
}

// toolName is the function the mock calls: the one tool_choice forces, else the first tool's; "" for a
// plain text answer (tool_choice none, or a tool result last with tool_choice auto or absent).
func (r *chatRequest) toolName() string {
	if len(r.Tools) == 0 {
		return ""
	}
	var mode string
	if json.Unmarshal(r.ToolChoice, &mode) == nil && mode == "none" {
		return ""
	}
	// A tool's result just came back and nothing forces another call: answer it in text, as a model does,
	// so a client's tool loop ends.
	if (len(r.ToolChoice) == 0 || mode == "auto") && r.Messages[len(r.Messages)-1].Role == "tool" {
		return ""
	}
	var forced struct {
		Function struct {
			Name string `json:"name"`
		} `json:"function"`
	}
	if json.Unmarshal(r.ToolChoice, &forced) == nil && forced.Function.Name != "" {
		return forced.Function.Name
	}
	for _, t := range r.Tools {
		if t.Function.Name != "" {
			return t.Function.Name
		}
	}
	return ""
}

// promptTokens is deterministic so tests can predict it: content bytes / 4, at least 1.
func (r *chatRequest) promptTokens() int {
	n := 0
	for _, m := range r.Messages {
		n += contentBytes(m.Content)
	}
	return max(n/4, 1)
}

func contentBytes(raw json.RawMessage) int {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return len(s)
	}
	var parts []struct {
		Text string `json:"text"`
	}
	if json.Unmarshal(raw, &parts) == nil {
		n := 0
		for _, p := range parts {
			n += len(p.Text)
		}
		return n
	}
	return len(raw)
}

// parseStreamRequest checks what chat and legacy completions share: n, and stream_options only with stream.
func parseStreamRequest(stream bool, streamOptions json.RawMessage, n *int) (choices int, includeUsage bool, e *apiError) {
	if len(streamOptions) > 0 && !bytes.Equal(streamOptions, []byte("null")) {
		if !stream {
			return 0, false, badRequest("The 'stream_options' parameter is only allowed when 'stream' is enabled.",
				"stream_options", "")
		}
		var so struct {
			IncludeUsage bool `json:"include_usage"`
		}
		if err := json.Unmarshal(streamOptions, &so); err != nil {
			return 0, false, decodeError(err)
		}
		includeUsage = so.IncludeUsage
	}
	choices = 1
	if n != nil {
		if *n < 1 || *n > 128 {
			return 0, false, badRequest("Invalid 'n': integer out of range. Expected a value between 1 and 128, "+
				"but got "+strconv.Itoa(*n)+" instead.", "n", "integer_out_of_range")
		}
		choices = *n
	}
	return choices, includeUsage, nil
}

func (s *Server) chat(ctx *fasthttp.RequestCtx, c *call) (*stream, *apiError) {
	var req chatRequest
	if err := json.Unmarshal(c.rec.Body, &req); err != nil {
		return nil, decodeError(err)
	}
	if req.Model == "" && c.p == providerOpenAI {
		return nil, badRequest("you must provide a model parameter", "", "")
	}
	if req.Messages == nil {
		return nil, missingParam("messages")
	}
	if len(req.Messages) == 0 {
		return nil, badRequest("Invalid 'messages': empty array. Expected an array with minimum length 1, but got "+
			"an empty array instead.", "messages", "empty_array")
	}
	n, includeUsage, e := parseStreamRequest(req.Stream, req.StreamOptions, req.N)
	if e != nil {
		return nil, e
	}
	g := chatGen{c: c, model: c.modelFor(req.Model), n: n, tokens: c.plan.Chunks, tool: req.toolName(),
		prompt: req.promptTokens() + c.plan.cacheRead, finish: "stop"}
	if g.tool != "" {
		g.args = req.toolArgs(g.tool)
	} else {
		limit := req.MaxCompletion // the newer name wins, as OpenAI's docs say max_tokens is deprecated for it
		if limit == nil {
			limit = req.MaxTokens
		}
		// An explicit x-mock-chunks is exact in chat, past max_tokens too:
		// tests use it to play a provider that overruns what Loom reserved
		// for the call (its limits must charge the overage). Without it the
		// limit decides, as a real provider's does.
		var cut bool
		if !c.plan.chunksSet {
			if g.tokens, cut = c.plan.streamLength(limit); cut {
				g.finish = "length"
			}
		}
	}
	if req.Stream {
		ctx.SetContentType("text/event-stream; charset=utf-8")
		return newStream(s, c, g.events(includeUsage, c.plan.usageNull)), nil
	}
	body, usage := g.completion()
	s.log.update(c.rec, func(r *Received) {
		r.UsageSent = &usage
		if p := &c.plan; p.cacheRead > 0 || p.reasoning > 0 {
			r.UsageDetails = &UsageDetails{CacheReadTokens: p.cacheRead, ReasoningTokens: p.reasoning}
		}
	})
	writeJSON(ctx, body)
	return nil, nil
}

// chatGen generates one chat answer, streamed or not, from the same plan, so both modes agree on content
// and usage.
type chatGen struct {
	c      *call
	model  string
	n      int
	tokens int
	tool   string
	args   string // the tool's arguments when tool is set
	prompt int
	finish string // finish_reason of a text answer: stop, or length when max_tokens cut it
}

// argFragments splits the tool arguments into as many deltas as the plan has chunks (at least one, at most
// one per byte), the way a model streams them; joined, they are args again.
func argFragments(args string, chunks int) []string {
	k := min(max(chunks, 1), max(len(args), 1))
	out := make([]string, k)
	for i := range k {
		out[i] = args[i*len(args)/k : (i+1)*len(args)/k]
	}
	return out
}

func tokenText(i int) string { return "tok" + strconv.Itoa(i+1) + " " }

func (g *chatGen) callID(choice int) string { return g.c.id("call_") + "_" + strconv.Itoa(choice) }

func (g *chatGen) completionTokensPerChoice() int {
	if g.tool != "" {
		return len(argFragments(g.args, g.tokens))
	}
	return g.tokens
}

// usage counts x-mock-reasoning-tokens inside the completion tokens, as OpenAI counts reasoning.
func (g *chatGen) usage() Usage {
	out := g.completionTokensPerChoice()*g.n + g.c.plan.reasoning
	return Usage{PromptTokens: g.prompt, CompletionTokens: out, TotalTokens: g.prompt + out}
}

// chatUsage is OpenAI's usage object with the detail blocks current models send.
type chatUsage struct {
	PromptTokens        int `json:"prompt_tokens"`
	CompletionTokens    int `json:"completion_tokens"`
	TotalTokens         int `json:"total_tokens"`
	PromptTokensDetails struct {
		CachedTokens int `json:"cached_tokens"`
		AudioTokens  int `json:"audio_tokens"`
	} `json:"prompt_tokens_details"`
	CompletionTokensDetails struct {
		ReasoningTokens          int `json:"reasoning_tokens"`
		AudioTokens              int `json:"audio_tokens"`
		AcceptedPredictionTokens int `json:"accepted_prediction_tokens"`
		RejectedPredictionTokens int `json:"rejected_prediction_tokens"`
	} `json:"completion_tokens_details"`
}

func newChatUsage(u Usage) chatUsage {
	return chatUsage{PromptTokens: u.PromptTokens, CompletionTokens: u.CompletionTokens, TotalTokens: u.TotalTokens}
}

// chatUsage is g's usage with the cached prompt tokens x-mock-cache-read-tokens asked for (inside
// prompt_tokens, as OpenAI counts them) and the reasoning tokens x-mock-reasoning-tokens asked for (inside
// completion_tokens).
func (g *chatGen) chatUsage() chatUsage {
	cu := newChatUsage(g.usage())
	cu.PromptTokensDetails.CachedTokens = g.c.plan.cacheRead
	cu.CompletionTokensDetails.ReasoningTokens = g.c.plan.reasoning
	return cu
}

type chatCompletion struct {
	ID                string       `json:"id"`
	Object            string       `json:"object"`
	Created           int64        `json:"created"`
	Model             string       `json:"model"`
	Choices           []chatChoice `json:"choices"`
	Usage             chatUsage    `json:"usage"`
	SystemFingerprint string       `json:"system_fingerprint"`
}

type chatChoice struct {
	Index        int             `json:"index"`
	Message      chatMessageOut  `json:"message"`
	Logprobs     json.RawMessage `json:"logprobs"`
	FinishReason string          `json:"finish_reason"`
}

type chatMessageOut struct {
	Role        string     `json:"role"`
	Content     *string    `json:"content"`
	ToolCalls   []toolCall `json:"tool_calls,omitempty"`
	Refusal     *string    `json:"refusal"`
	Annotations []struct{} `json:"annotations"`
}

type toolCall struct {
	ID       string `json:"id"`
	Type     string `json:"type"`
	Function struct {
		Name      string `json:"name"`
		Arguments string `json:"arguments"`
	} `json:"function"`
}

func (g *chatGen) completion() (chatCompletion, Usage) {
	u := g.usage()
	out := chatCompletion{ID: g.c.id("chatcmpl-"), Object: "chat.completion", Created: g.c.created, Model: g.model,
		Usage: g.chatUsage(), SystemFingerprint: systemFingerprint}
	for i := range g.n {
		ch := chatChoice{Index: i, Logprobs: json.RawMessage("null"), FinishReason: g.finish,
			Message: chatMessageOut{Role: "assistant", Annotations: []struct{}{}}}
		if g.tool != "" {
			tc := toolCall{ID: g.callID(i), Type: "function"}
			tc.Function.Name, tc.Function.Arguments = g.tool, g.args
			ch.Message.ToolCalls, ch.FinishReason = []toolCall{tc}, "tool_calls"
		} else {
			var text []byte
			for k := range g.tokens {
				text = append(text, tokenText(k)...)
			}
			content := string(text)
			ch.Message.Content = &content
		}
		out.Choices = append(out.Choices, ch)
	}
	return out, u
}
