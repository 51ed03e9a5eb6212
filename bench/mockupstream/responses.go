package mockupstream

import (
	"encoding/json"
	"strconv"
	"sync"

	"github.com/valyala/fasthttp"
)

// defaultResponsesKept is how many created responses a mock keeps for GET and DELETE by id when
// Config.ResponsesKept is 0: enough for any test, bounded for a long load run.
const defaultResponsesKept = 4096

type responsesRequest struct {
	Model              string          `json:"model"`
	Input              json.RawMessage `json:"input"`
	Instructions       *string         `json:"instructions"`
	Stream             bool            `json:"stream"`
	Tools              json.RawMessage `json:"tools"`
	ToolChoice         json.RawMessage `json:"tool_choice"`
	Reasoning          json.RawMessage `json:"reasoning"`
	MaxOutputTokens    *int            `json:"max_output_tokens"`
	PreviousResponseID *string         `json:"previous_response_id"`
	Store              *bool           `json:"store"`
	Metadata           json.RawMessage `json:"metadata"`
	User               json.RawMessage `json:"user"`
}

// inputItem is one element of an array "input": a message (role, content), or a tool result (output).
type inputItem struct {
	Type    string          `json:"type"`
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
	Output  json.RawMessage `json:"output"`
}

func (r *responsesRequest) items() ([]json.RawMessage, bool) {
	var s string
	if json.Unmarshal(r.Input, &s) == nil {
		return []json.RawMessage{mustJSON(map[string]any{"type": "message", "role": "user",
			"content": []any{map[string]string{"type": "input_text", "text": s}}})}, true
	}
	var items []json.RawMessage
	if json.Unmarshal(r.Input, &items) != nil {
		return nil, false
	}
	return items, true
}

// inputTokens is deterministic like chat's estimate: text bytes of instructions and input / 4, at least 1.
func (r *responsesRequest) inputTokens(items []json.RawMessage) int {
	n := 0
	if r.Instructions != nil {
		n += len(*r.Instructions)
	}
	for _, raw := range items {
		var it inputItem
		if json.Unmarshal(raw, &it) != nil {
			n += len(raw)
			continue
		}
		n += contentBytes(it.Content) + len(it.Output)
	}
	return max(n/4, 1)
}

// toolName is the function the mock calls: the one tool_choice forces, else the first function tool's; ""
// for a text answer (tool_choice none, or a function_call_output last with tool_choice auto or absent).
func (r *responsesRequest) toolName() string {
	var tools []struct {
		Type string `json:"type"`
		Name string `json:"name"`
	}
	if json.Unmarshal(r.Tools, &tools) != nil || len(tools) == 0 {
		return ""
	}
	var mode string
	if json.Unmarshal(r.ToolChoice, &mode) == nil && mode == "none" {
		return ""
	}
	// A function's output just came back and nothing forces another call: answer it in text, as a model
	// does, so a client's tool loop ends.
	var input []inputItem
	if (len(r.ToolChoice) == 0 || mode == "auto") && json.Unmarshal(r.Input, &input) == nil && len(input) > 0 &&
		input[len(input)-1].Type == "function_call_output" {
		return ""
	}
	var forced struct {
		Type string `json:"type"`
		Name string `json:"name"`
	}
	if json.Unmarshal(r.ToolChoice, &forced) == nil && forced.Type == "function" && forced.Name != "" {
		return forced.Name
	}
	for _, t := range tools {
		if t.Type == "function" && t.Name != "" {
			return t.Name
		}
	}
	return ""
}

// toolArgs is the arguments the mock sends for the function tool named name: generated from its parameters
// schema.
func (r *responsesRequest) toolArgs(name string) string {
	var tools []struct {
		Type       string          `json:"type"`
		Name       string          `json:"name"`
		Parameters json.RawMessage `json:"parameters"`
	}
	_ = json.Unmarshal(r.Tools, &tools) // toolName already found name in them
	for _, t := range tools {
		if t.Type == "function" && t.Name == name {
			return toolArgumentsFor(t.Parameters)
		}
	}
	return emptyArgs
}

// reasons reports whether the request asked a reasoning model to think: reasoning.effort set, not "none".
func (r *responsesRequest) reasons() bool {
	var v struct {
		Effort *string `json:"effort"`
	}
	return json.Unmarshal(r.Reasoning, &v) == nil && v.Effort != nil && *v.Effort != "none"
}

func rawOr(raw json.RawMessage, def string) json.RawMessage {
	if len(raw) == 0 {
		return json.RawMessage(def)
	}
	return raw
}

func (s *Server) createResponse(ctx *fasthttp.RequestCtx, c *call) (*stream, *apiError) {
	var req responsesRequest
	if err := json.Unmarshal(c.rec.Body, &req); err != nil {
		return nil, decodeError(err)
	}
	if req.Model == "" {
		return nil, missingParam("model")
	}
	if len(req.Input) == 0 || string(req.Input) == "null" {
		return nil, missingParam("input")
	}
	items, ok := req.items()
	if !ok {
		return nil, badRequest("Invalid type for 'input': expected a string or an array of input items.", "input",
			"invalid_type")
	}
	if p := req.PreviousResponseID; p != nil && !s.responses.has(*p) {
		return nil, badRequest("Previous response with id '"+*p+"' not found.", "previous_response_id",
			"previous_response_not_found")
	}
	g := responsesGen{c: c, id: "resp_" + s.instance + strconv.FormatInt(c.seq, 10), req: &req,
		tool: req.toolName(), text: c.plan.Chunks, input: req.inputTokens(items)}
	if g.tool != "" {
		g.args = req.toolArgs(g.tool)
	}
	if req.reasons() {
		g.reasoning = c.plan.Chunks
	}
	if c.plan.reasoning > 0 {
		g.reasoning = c.plan.reasoning
	}
	if m := req.MaxOutputTokens; m != nil && *m >= 1 && g.tool == "" {
		// Without x-mock-chunks the limit is the length (reasoning inside it, as OpenAI counts output);
		// with it, the limit cuts the answer short and marks it incomplete, as a real one is.
		if n, cut := c.plan.streamLength(m); !c.plan.chunksSet {
			g.text, g.incomplete = max(n-g.reasoning, 0), g.reasoning > n
		} else if cut || g.text+g.reasoning > *m {
			g.text, g.incomplete = max(*m-g.reasoning, 0), true
		}
	}
	final := mustJSON(g.object(true))
	if req.Store == nil || *req.Store {
		s.responses.put(g.id, final, items)
	}
	if req.Stream {
		ctx.SetContentType("text/event-stream; charset=utf-8")
		return newStream(s, c, g.events()), nil
	}
	s.recordUsage(c, final)
	ctx.SetContentType("application/json")
	ctx.SetBody(final)
	return nil, nil
}

// storedResponse answers GET, DELETE and GET input_items for a response this mock created. An unknown id
// is OpenAI's 404, so a test sees which of several mocks a gateway routed a follow-up call to.
func (s *Server) storedResponse(ctx *fasthttp.RequestCtx, c *call) *apiError {
	id := c.target
	body, items, ok := s.responses.get(id)
	if !ok {
		return openAIErr(fasthttp.StatusNotFound, "Response with id '"+id+"' not found.", "invalid_request_error",
			"", "")
	}
	switch c.ep {
	case epResponseGet:
		s.recordUsage(c, body)
		ctx.SetContentType("application/json")
		ctx.SetBody(body)
	case epResponseDelete:
		s.responses.remove(id)
		writeJSON(ctx, struct {
			ID      string `json:"id"`
			Object  string `json:"object"`
			Deleted bool   `json:"deleted"`
		}{id, "response", true})
	default:
		writeJSON(ctx, inputItemList(id, items, string(ctx.QueryArgs().Peek("order")) == "asc"))
	}
	return nil
}

// inputItemList lists the items a response was created from, newest first unless order=asc, each with the
// id and status the API gives stored items.
func inputItemList(respID string, items []json.RawMessage, asc bool) any {
	data := make([]map[string]any, 0, len(items))
	for i, raw := range items {
		var m map[string]any
		if json.Unmarshal(raw, &m) != nil {
			continue
		}
		if _, ok := m["type"]; !ok {
			m["type"] = "message"
		}
		if _, ok := m["id"]; !ok {
			m["id"] = "msg_" + respID[len("resp_"):] + "_" + strconv.Itoa(i)
		}
		if text, ok := m["content"].(string); ok {
			m["content"] = []any{map[string]string{"type": "input_text", "text": text}}
		}
		if _, ok := m["status"]; !ok {
			m["status"] = "completed"
		}
		data = append(data, m)
	}
	if !asc {
		for i, j := 0, len(data)-1; i < j; i, j = i+1, j-1 {
			data[i], data[j] = data[j], data[i]
		}
	}
	out := map[string]any{"object": "list", "data": data, "has_more": false, "first_id": nil, "last_id": nil}
	if len(data) > 0 {
		out["first_id"], out["last_id"] = data[0]["id"], data[len(data)-1]["id"]
	}
	return out
}

// responseStore keeps created responses by id, oldest evicted first once it holds limit.
type responseStore struct {
	mu    sync.Mutex
	limit int
	byID  map[string]storedResp
	order []string // creation order; may hold ids already deleted
}

type storedResp struct {
	body  []byte
	items []json.RawMessage
}

func (st *responseStore) put(id string, body []byte, items []json.RawMessage) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.byID == nil {
		st.byID = make(map[string]storedResp)
	}
	st.byID[id] = storedResp{body: body, items: items}
	st.order = append(st.order, id)
	for len(st.byID) > st.limit && len(st.order) > 0 {
		delete(st.byID, st.order[0])
		st.order = st.order[1:]
	}
	if len(st.order) > 2*st.limit { // deletes left stale ids behind
		live := st.order[:0:0]
		for _, o := range st.order {
			if _, ok := st.byID[o]; ok {
				live = append(live, o)
			}
		}
		st.order = live
	}
}

func (st *responseStore) get(id string) ([]byte, []json.RawMessage, bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	r, ok := st.byID[id]
	return r.body, r.items, ok
}

func (st *responseStore) has(id string) bool {
	_, _, ok := st.get(id)
	return ok
}

func (st *responseStore) remove(id string) {
	st.mu.Lock()
	delete(st.byID, id)
	st.mu.Unlock()
}

// responsesGen generates one Responses API answer, streamed or not, from the same plan: an optional
// reasoning item, then a message or a function call.
type responsesGen struct {
	c          *call
	id         string
	req        *responsesRequest
	tool       string
	args       string // the tool's arguments when tool is set
	text       int    // visible text tokens
	reasoning  int    // reasoning tokens (no summary text)
	input      int
	incomplete bool
	seq        int // sequence_number of the next stream event
}

type responseObject struct {
	ID                 string            `json:"id"`
	Object             string            `json:"object"`
	CreatedAt          int64             `json:"created_at"`
	Status             string            `json:"status"`
	Background         bool              `json:"background"`
	Error              json.RawMessage   `json:"error"`
	IncompleteDetails  json.RawMessage   `json:"incomplete_details"`
	Instructions       *string           `json:"instructions"`
	MaxOutputTokens    *int              `json:"max_output_tokens"`
	MaxToolCalls       json.RawMessage   `json:"max_tool_calls"`
	Model              string            `json:"model"`
	Output             []json.RawMessage `json:"output"`
	ParallelToolCalls  bool              `json:"parallel_tool_calls"`
	PreviousResponseID *string           `json:"previous_response_id"`
	Reasoning          json.RawMessage   `json:"reasoning"`
	ServiceTier        string            `json:"service_tier"`
	Store              bool              `json:"store"`
	Temperature        float64           `json:"temperature"`
	Text               json.RawMessage   `json:"text"`
	ToolChoice         json.RawMessage   `json:"tool_choice"`
	Tools              json.RawMessage   `json:"tools"`
	TopLogprobs        int               `json:"top_logprobs"`
	TopP               float64           `json:"top_p"`
	Truncation         string            `json:"truncation"`
	Usage              *responseUsage    `json:"usage"`
	User               json.RawMessage   `json:"user"`
	Metadata           json.RawMessage   `json:"metadata"`
}

type responseUsage struct {
	InputTokens        int `json:"input_tokens"`
	InputTokensDetails struct {
		CacheWriteTokens int `json:"cache_write_tokens,omitempty"`
		CachedTokens     int `json:"cached_tokens"`
	} `json:"input_tokens_details"`
	OutputTokens        int `json:"output_tokens"`
	OutputTokensDetails struct {
		ReasoningTokens int `json:"reasoning_tokens"`
	} `json:"output_tokens_details"`
	TotalTokens int `json:"total_tokens"`
}

func (g *responsesGen) usage() *responseUsage {
	u := &responseUsage{InputTokens: g.input + g.c.plan.cacheRead + g.c.plan.cacheWrite}
	u.InputTokensDetails.CachedTokens = g.c.plan.cacheRead
	u.InputTokensDetails.CacheWriteTokens = g.c.plan.cacheWrite
	u.OutputTokens = g.reasoning + g.text
	if g.tool != "" {
		u.OutputTokens = g.reasoning + len(argFragments(g.args, g.c.plan.Chunks))
	}
	u.OutputTokensDetails.ReasoningTokens = g.reasoning
	u.TotalTokens = u.InputTokens + u.OutputTokens
	return u
}

type outputText struct {
	Type        string     `json:"type"`
	Annotations []struct{} `json:"annotations"`
	Logprobs    []struct{} `json:"logprobs"`
	Text        string     `json:"text"`
}

type messageItem struct {
	ID      string       `json:"id"`
	Type    string       `json:"type"`
	Status  string       `json:"status"`
	Content []outputText `json:"content"`
	Role    string       `json:"role"`
}

type functionCallItem struct {
	ID        string `json:"id"`
	Type      string `json:"type"`
	Status    string `json:"status"`
	Arguments string `json:"arguments"`
	CallID    string `json:"call_id"`
	Name      string `json:"name"`
}

type reasoningItem struct {
	ID      string     `json:"id"`
	Type    string     `json:"type"`
	Summary []struct{} `json:"summary"`
}

func (g *responsesGen) itemID(prefix string) string { return prefix + g.id[len("resp_"):] }

func (g *responsesGen) fullText() string {
	var text []byte
	for k := range g.text {
		text = append(text, tokenText(k)...)
	}
	return string(text)
}

func newOutputText(text string) outputText {
	return outputText{Type: "output_text", Annotations: []struct{}{}, Logprobs: []struct{}{}, Text: text}
}

func (g *responsesGen) status() string {
	if g.incomplete {
		return "incomplete"
	}
	return "completed"
}

// items is the output, finished (done) or as first announced in a stream.
func (g *responsesGen) items(done bool) []json.RawMessage {
	status := g.status()
	if !done {
		status = "in_progress"
	}
	var out []json.RawMessage
	if g.reasoning > 0 {
		out = append(out, mustJSON(reasoningItem{ID: g.itemID("rs_"), Type: "reasoning", Summary: []struct{}{}}))
	}
	if g.tool != "" {
		args := ""
		if done {
			args = g.args
		}
		return append(out, mustJSON(functionCallItem{ID: g.itemID("fc_"), Type: "function_call", Status: status,
			Arguments: args, CallID: g.itemID("call_"), Name: g.tool}))
	}
	content := []outputText{}
	if done {
		content = append(content, newOutputText(g.fullText()))
	}
	return append(out, mustJSON(messageItem{ID: g.itemID("msg_"), Type: "message", Status: status,
		Content: content, Role: "assistant"}))
}

// object is the response: finished, or as response.created announces it (in progress, no output, no usage).
func (g *responsesGen) object(done bool) responseObject {
	r := g.req
	o := responseObject{ID: g.id, Object: "response", CreatedAt: g.c.created, Status: "in_progress",
		Error: json.RawMessage("null"), IncompleteDetails: json.RawMessage("null"), Instructions: r.Instructions,
		MaxOutputTokens: r.MaxOutputTokens, MaxToolCalls: json.RawMessage("null"), Model: r.Model,
		Output: []json.RawMessage{}, ParallelToolCalls: true, PreviousResponseID: r.PreviousResponseID,
		Reasoning: rawOr(r.Reasoning, `{"effort":null,"summary":null}`), ServiceTier: "default",
		Store: r.Store == nil || *r.Store, Temperature: 1, Text: json.RawMessage(`{"format":{"type":"text"}}`),
		ToolChoice: rawOr(r.ToolChoice, `"auto"`), Tools: rawOr(r.Tools, `[]`), TopP: 1, Truncation: "disabled",
		User: rawOr(r.User, "null"), Metadata: rawOr(r.Metadata, "{}")}
	if done {
		o.Status, o.Output, o.Usage = g.status(), g.items(true), g.usage()
		if g.incomplete {
			o.IncompleteDetails = json.RawMessage(`{"reason":"max_output_tokens"}`)
		}
	}
	return o
}

// event frames one stream event: {"type":...,"sequence_number":n, <fields>}, with "event: <type>".
func (g *responsesGen) event(typ string, fields any) sseEvent {
	rest := mustJSON(fields)
	b := appendJSONString([]byte(`{"type":`), typ)
	b = append(b, `,"sequence_number":`...)
	b = strconv.AppendInt(b, int64(g.seq), 10)
	g.seq++
	if len(rest) > 2 {
		b = append(b, ',')
		b = append(b, rest[1:]...)
	} else {
		b = append(b, '}')
	}
	return namedEvent(typ, b)
}

type itemEvent struct {
	OutputIndex int             `json:"output_index"`
	Item        json.RawMessage `json:"item"`
}

type partEvent struct {
	ItemID       string     `json:"item_id"`
	OutputIndex  int        `json:"output_index"`
	ContentIndex int        `json:"content_index"`
	Part         outputText `json:"part"`
}

type textDeltaEvent struct {
	ItemID       string     `json:"item_id"`
	OutputIndex  int        `json:"output_index"`
	ContentIndex int        `json:"content_index"`
	Delta        string     `json:"delta"`
	Logprobs     []struct{} `json:"logprobs"`
}

type textDoneEvent struct {
	ItemID       string     `json:"item_id"`
	OutputIndex  int        `json:"output_index"`
	ContentIndex int        `json:"content_index"`
	Text         string     `json:"text"`
	Logprobs     []struct{} `json:"logprobs"`
}

type argsDeltaEvent struct {
	ItemID      string `json:"item_id"`
	OutputIndex int    `json:"output_index"`
	Delta       string `json:"delta"`
}

type argsDoneEvent struct {
	ItemID      string `json:"item_id"`
	OutputIndex int    `json:"output_index"`
	Arguments   string `json:"arguments"`
}

type responseEvent struct {
	Response responseObject `json:"response"`
}

// events is the Responses stream, shaped like fixtures/wire/openai-responses/stream-text-cached-tokens.sse
// and stream-function-call.sse: response.created, response.in_progress, per output item its added / deltas /
// done events, then response.completed (or response.incomplete) with the usage. No [DONE].
func (g *responsesGen) events() []sseEvent {
	out := []sseEvent{
		g.event("response.created", responseEvent{g.object(false)}),
		g.event("response.in_progress", responseEvent{g.object(false)}),
	}
	started, finished := g.items(false), g.items(true)
	for i := range started {
		out = append(out, g.event("response.output_item.added", itemEvent{i, started[i]}))
		var kind struct {
			ID   string `json:"id"`
			Type string `json:"type"`
		}
		_ = json.Unmarshal(started[i], &kind) // the mock's own JSON
		switch kind.Type {
		case "function_call":
			for _, frag := range argFragments(g.args, g.c.plan.Chunks) {
				out = append(out, g.event("response.function_call_arguments.delta", argsDeltaEvent{kind.ID, i, frag}))
			}
			out = append(out, g.event("response.function_call_arguments.done", argsDoneEvent{kind.ID, i, g.args}))
		case "message":
			out = append(out, g.event("response.content_part.added", partEvent{kind.ID, i, 0, newOutputText("")}))
			for k := range g.text {
				out = append(out, g.event("response.output_text.delta",
					textDeltaEvent{kind.ID, i, 0, tokenText(k), []struct{}{}}))
			}
			out = append(out, g.event("response.output_text.done",
				textDoneEvent{kind.ID, i, 0, g.fullText(), []struct{}{}}),
				g.event("response.content_part.done", partEvent{kind.ID, i, 0, newOutputText(g.fullText())}))
		}
		out = append(out, g.event("response.output_item.done", itemEvent{i, finished[i]}))
	}
	terminal := "response.completed"
	if g.incomplete {
		terminal = "response.incomplete"
	}
	ev := g.event(terminal, responseEvent{g.object(true)})
	ev.wire = eventUsage(ev.data)
	return append(out, ev)
}
