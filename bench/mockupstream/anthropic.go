package mockupstream

import (
	"encoding/json"
	"errors"
	"strconv"

	"github.com/valyala/fasthttp"
)

// anthropicSignature is what every generated thinking block is signed with.
const anthropicSignature = "EqQBCkYIBRgCIkBtb2NrLXNpZ25hdHVyZQ=="

type messagesRequest struct {
	Model     string          `json:"model"`
	MaxTokens *int            `json:"max_tokens"`
	Messages  []chatMessage   `json:"messages"` // role + content (a string or blocks), as in chat
	System    json.RawMessage `json:"system"`   // a string or text blocks
	Stream    bool            `json:"stream"`
	Tools     []struct {
		Name        string          `json:"name"`
		InputSchema json.RawMessage `json:"input_schema"`
	} `json:"tools"`
	ToolChoice *struct {
		Type string `json:"type"` // auto, any, tool, none
		Name string `json:"name"`
	} `json:"tool_choice"`
	Thinking *struct {
		Type string `json:"type"` // enabled, disabled, adaptive
	} `json:"thinking"`
}

// parseMessages reads and checks a Messages request the way Anthropic does (the messages it sends for a
// missing field are "<field>: Field required"); countOnly is count_tokens, which takes no max_tokens.
func parseMessages(body []byte, countOnly bool) (messagesRequest, *apiError) {
	var req messagesRequest
	if err := json.Unmarshal(body, &req); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return req, anthropicErr(fasthttp.StatusBadRequest, "invalid_request_error",
				te.Field+": Input should be a valid "+te.Type.String())
		}
		return req, anthropicErr(fasthttp.StatusBadRequest, "invalid_request_error",
			"There was an error parsing the body of your request: "+err.Error())
	}
	switch {
	case req.Model == "":
		return req, anthropicErr(fasthttp.StatusBadRequest, "invalid_request_error", "model: Field required")
	case req.Messages == nil:
		return req, anthropicErr(fasthttp.StatusBadRequest, "invalid_request_error", "messages: Field required")
	case req.MaxTokens == nil && !countOnly:
		return req, anthropicErr(fasthttp.StatusBadRequest, "invalid_request_error", "max_tokens: Field required")
	case req.MaxTokens != nil && *req.MaxTokens < 1 && !countOnly:
		return req, anthropicErr(fasthttp.StatusBadRequest, "invalid_request_error",
			"max_tokens: Input should be greater than or equal to 1")
	}
	return req, nil
}

// inputTokens is deterministic, like chat's prompt estimate: text bytes of system and messages / 4, at
// least 1. It excludes cache reads and writes, as Anthropic's input_tokens does.
func (r *messagesRequest) inputTokens() int {
	n := 0
	if len(r.System) > 0 {
		n += contentBytes(r.System)
	}
	for _, m := range r.Messages {
		n += contentBytes(m.Content)
	}
	return max(n/4, 1)
}

// toolName is the tool the mock calls: the one tool_choice names, else the first; "" for a text answer
// (tool_choice none, or a tool_result last with tool_choice auto or absent).
func (r *messagesRequest) toolName() string {
	if len(r.Tools) == 0 || (r.ToolChoice != nil && r.ToolChoice.Type == "none") {
		return ""
	}
	// A tool's result just came back and nothing forces another call: answer it in text, as Claude does,
	// so a client's tool loop ends.
	if (r.ToolChoice == nil || r.ToolChoice.Type == "auto") && len(r.Messages) > 0 {
		var blocks []struct {
			Type string `json:"type"`
		}
		last := r.Messages[len(r.Messages)-1]
		if last.Role == "user" && json.Unmarshal(last.Content, &blocks) == nil {
			for _, b := range blocks {
				if b.Type == "tool_result" {
					return ""
				}
			}
		}
	}
	if r.ToolChoice != nil && r.ToolChoice.Type == "tool" && r.ToolChoice.Name != "" {
		return r.ToolChoice.Name
	}
	return r.Tools[0].Name
}

// toolArgs is the input the mock sends for the tool named name: generated from its input_schema.
func (r *messagesRequest) toolArgs(name string) string {
	for _, t := range r.Tools {
		if t.Name == name {
			return toolArgumentsFor(t.InputSchema)
		}
	}
	return emptyArgs
}

func (r *messagesRequest) thinking() bool {
	return r.Thinking != nil && (r.Thinking.Type == "enabled" || r.Thinking.Type == "adaptive")
}

func (s *Server) countTokens(ctx *fasthttp.RequestCtx, c *call) *apiError {
	req, e := parseMessages(c.rec.Body, true)
	if e != nil {
		return e
	}
	writeJSON(ctx, struct {
		InputTokens int `json:"input_tokens"`
	}{req.inputTokens()})
	return nil
}

func (s *Server) messages(ctx *fasthttp.RequestCtx, c *call) (*stream, *apiError) {
	req, e := parseMessages(c.rec.Body, false)
	if e != nil {
		return nil, e
	}
	g := messagesGen{c: c, model: req.Model, tool: req.toolName(), thinking: req.thinking(),
		input: req.inputTokens(), text: c.plan.Chunks, stop: "end_turn"}
	if g.tool != "" {
		g.stop, g.args = "tool_use", req.toolArgs(g.tool)
	} else if g.text > *req.MaxTokens {
		g.text, g.stop = *req.MaxTokens, "max_tokens"
	}
	if req.Stream {
		ctx.SetContentType("text/event-stream; charset=utf-8")
		return newStream(s, c, g.events()), nil
	}
	body := mustJSON(g.message())
	s.recordUsage(c, body)
	ctx.SetContentType("application/json")
	ctx.SetBody(body)
	return nil, nil
}

// recordUsage records the usage of a non-streaming body the mock generated.
func (s *Server) recordUsage(c *call, body []byte) {
	if w := usageOf(body); w != nil {
		s.log.update(c.rec, func(r *Received) { applyUsage(r, w) })
	}
}

// messagesGen generates one Messages answer, streamed or not, from the same plan: an optional thinking
// block, then a text block or a tool_use block.
type messagesGen struct {
	c        *call
	model    string
	tool     string
	args     string // the tool's input when tool is set
	thinking bool
	input    int
	text     int // text tokens
	stop     string
}

func (g *messagesGen) thinkingTokens() int {
	if g.thinking {
		return g.c.plan.Chunks
	}
	return 0
}

func (g *messagesGen) outputTokens() int {
	if g.tool != "" {
		return g.thinkingTokens() + len(argFragments(g.args, g.c.plan.Chunks))
	}
	return g.thinkingTokens() + g.text
}

func thinkingText(i int) string { return "think" + strconv.Itoa(i+1) + " " }

func (g *messagesGen) toolID() string { return g.c.id("toolu_") }

type anthropicUsage struct {
	InputTokens              int `json:"input_tokens"`
	CacheCreationInputTokens int `json:"cache_creation_input_tokens"`
	CacheReadInputTokens     int `json:"cache_read_input_tokens"`
	CacheCreation            *struct {
		Ephemeral5m int `json:"ephemeral_5m_input_tokens"`
		Ephemeral1h int `json:"ephemeral_1h_input_tokens"`
	} `json:"cache_creation,omitempty"`
	OutputTokens int    `json:"output_tokens"`
	ServiceTier  string `json:"service_tier,omitempty"`
}

func (g *messagesGen) usage(output int) anthropicUsage {
	u := anthropicUsage{InputTokens: g.input, CacheCreationInputTokens: g.c.plan.cacheWrite,
		CacheReadInputTokens: g.c.plan.cacheRead, OutputTokens: output, ServiceTier: "standard"}
	u.CacheCreation = &struct {
		Ephemeral5m int `json:"ephemeral_5m_input_tokens"`
		Ephemeral1h int `json:"ephemeral_1h_input_tokens"`
	}{Ephemeral5m: g.c.plan.cacheWrite}
	return u
}

type anthropicMessage struct {
	ID           string            `json:"id"`
	Type         string            `json:"type"`
	Role         string            `json:"role"`
	Model        string            `json:"model"`
	Content      []json.RawMessage `json:"content"`
	StopReason   *string           `json:"stop_reason"`
	StopSequence *string           `json:"stop_sequence"`
	Usage        anthropicUsage    `json:"usage"`
}

func (g *messagesGen) message() anthropicMessage {
	m := anthropicMessage{ID: g.c.id("msg_"), Type: "message", Role: "assistant", Model: g.model,
		Content: []json.RawMessage{}, StopReason: &g.stop, Usage: g.usage(g.outputTokens())}
	if g.thinking {
		var text []byte
		for k := range g.thinkingTokens() {
			text = append(text, thinkingText(k)...)
		}
		m.Content = append(m.Content, mustJSON(struct {
			Type      string `json:"type"`
			Thinking  string `json:"thinking"`
			Signature string `json:"signature"`
		}{"thinking", string(text), anthropicSignature}))
	}
	if g.tool != "" {
		m.Content = append(m.Content, mustJSON(struct {
			Type  string          `json:"type"`
			ID    string          `json:"id"`
			Name  string          `json:"name"`
			Input json.RawMessage `json:"input"`
		}{"tool_use", g.toolID(), g.tool, json.RawMessage(g.args)}))
		return m
	}
	var text []byte
	for k := range g.text {
		text = append(text, tokenText(k)...)
	}
	m.Content = append(m.Content, mustJSON(struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}{"text", string(text)}))
	return m
}

// namedEvent frames a payload the way Anthropic and the Responses API do: "event: <type>\ndata: <json>\n\n".
func namedEvent(typ string, payload []byte) sseEvent {
	b := make([]byte, 0, len(typ)+len(payload)+16)
	b = append(b, "event: "...)
	b = append(b, typ...)
	b = append(b, "\ndata: "...)
	b = append(b, payload...)
	return sseEvent{data: append(b, "\n\n"...)}
}

// events is the Messages stream, shaped like fixtures/wire/anthropic/messages-stream-*.sse: message_start
// (input usage, output_tokens 1), per block content_block_start / deltas / content_block_stop with a ping
// after the first block starts, message_delta with the stop reason and the cumulative usage (the newer
// format, messages-stream-delta-usage-cumulative.sse), message_stop.
func (g *messagesGen) events() []sseEvent {
	var out []sseEvent
	start := g.message()
	start.Content, start.StopReason = []json.RawMessage{}, nil
	start.Usage = g.usage(1)
	start.Usage.CacheCreation = nil
	ev := namedEvent("message_start", mustJSON(struct {
		Type    string           `json:"type"`
		Message anthropicMessage `json:"message"`
	}{"message_start", start}))
	ev.wire = eventUsage(ev.data)
	out = append(out, ev)

	index := 0
	block := func(startBlock string, deltas []string, extra ...string) {
		idx := strconv.Itoa(index)
		out = append(out, namedEvent("content_block_start",
			[]byte(`{"type":"content_block_start","index":`+idx+`,"content_block":`+startBlock+`}`)))
		if index == 0 {
			out = append(out, namedEvent("ping", []byte(`{"type": "ping"}`)))
		}
		for _, d := range append(deltas, extra...) {
			out = append(out, namedEvent("content_block_delta",
				[]byte(`{"type":"content_block_delta","index":`+idx+`,"delta":`+d+`}`)))
		}
		out = append(out, namedEvent("content_block_stop", []byte(`{"type":"content_block_stop","index":`+idx+`}`)))
		index++
	}
	if g.thinking {
		var deltas []string
		for k := range g.thinkingTokens() {
			deltas = append(deltas, `{"type":"thinking_delta","thinking":"`+thinkingText(k)+`"}`)
		}
		block(`{"type":"thinking","thinking":"","signature":""}`, deltas,
			`{"type":"signature_delta","signature":"`+anthropicSignature+`"}`)
	}
	if g.tool != "" {
		var deltas []string
		for _, frag := range argFragments(g.args, g.c.plan.Chunks) {
			deltas = append(deltas, string(appendJSONString([]byte(`{"type":"input_json_delta","partial_json":`), frag))+"}")
		}
		start := string(appendJSONString([]byte(`{"type":"tool_use","id":`), g.toolID())) +
			string(appendJSONString([]byte(`,"name":`), g.tool)) + `,"input":{}}`
		block(start, append([]string{`{"type":"input_json_delta","partial_json":""}`}, deltas...))
	} else {
		var deltas []string
		for k := range g.text {
			deltas = append(deltas, `{"type":"text_delta","text":"`+tokenText(k)+`"}`)
		}
		block(`{"type":"text","text":""}`, deltas)
	}
	u := g.usage(g.outputTokens())
	var md messageDelta
	md.Type, md.Delta.StopReason = "message_delta", g.stop
	md.Usage.InputTokens, md.Usage.CacheCreationInputTokens = u.InputTokens, u.CacheCreationInputTokens
	md.Usage.CacheReadInputTokens, md.Usage.OutputTokens = u.CacheReadInputTokens, u.OutputTokens
	ev = namedEvent("message_delta", mustJSON(md))
	ev.wire = eventUsage(ev.data)
	out = append(out, ev)
	return append(out, namedEvent("message_stop", []byte(`{"type":"message_stop"}`)))
}

type messageDelta struct {
	Type  string `json:"type"`
	Delta struct {
		StopReason   string  `json:"stop_reason"`
		StopSequence *string `json:"stop_sequence"`
	} `json:"delta"`
	Usage struct {
		InputTokens              int `json:"input_tokens"`
		CacheCreationInputTokens int `json:"cache_creation_input_tokens"`
		CacheReadInputTokens     int `json:"cache_read_input_tokens"`
		OutputTokens             int `json:"output_tokens"`
	} `json:"usage"`
}
