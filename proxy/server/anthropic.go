package server

import (
	"strconv"

	"github.com/valyala/fasthttp"

	"github.com/loom-gateway/loom/proxy/anthropic"
	"github.com/loom-gateway/loom/proxy/apierror"
	"github.com/loom-gateway/loom/proxy/call"
	"github.com/loom-gateway/loom/proxy/messages"
	"github.com/loom-gateway/loom/proxy/relay"
	"github.com/loom-gateway/loom/proxy/sse"
	"github.com/loom-gateway/loom/proxy/tap"
	"github.com/loom-gateway/loom/proxy/upstream"
)

// mode is how a call's answer reaches its client, decided once its
// deployment is known (prepare).
type mode uint8

const (
	// modePass: the deployment speaks the client's dialect; bytes pass.
	modePass mode = iota
	// modeChatFromAnthropic: a chat client, an Anthropic deployment: the
	// request becomes a Messages request and the answer, or each stream
	// event, a chat completion (proxy/anthropic).
	modeChatFromAnthropic
	// modeMessagesFromChat: a Messages client, an OpenAI-compatible
	// deployment: the request becomes a chat request and the answer, or
	// each chunk, Anthropic's (proxy/messages).
	modeMessagesFromChat
	// modeMessagesNative: a Messages client, an Anthropic deployment:
	// bytes pass, read on the side by anthropic.ObserveMessage and
	// anthropic.Observer.
	modeMessagesNative
)

// prepare decides how the call is translated for dep, or refuses a call
// dep cannot serve: an Anthropic deployment speaks only Messages (so it
// serves chat, translated, but neither the Responses API nor completions
// or embeddings), and count_tokens exists only where Anthropic serves it.
func (ex *exchange) prepare(dep *upstream.Deployment, model string) *apierror.Error {
	ex.mode = modePass
	switch {
	case ex.kind() == dialectMessages && dep.Anthropic():
		ex.mode = modeMessagesNative
		return nil
	case ex.kind() == dialectMessages && ex.ep.countTokens:
		return apierror.New(fasthttp.StatusBadRequest, apierror.TypeInvalidRequest, "unsupported_model", "model",
			"Token counting is not available for model `"+model+"`: it is served by an OpenAI-compatible deployment, which has no count_tokens.")
	case ex.kind() == dialectMessages:
		ex.mode = modeMessagesFromChat
		return nil
	case !dep.Anthropic():
		return nil
	case ex.kind() == dialectOpenAI && ex.ep.op == call.OpChat:
		ex.mode = modeChatFromAnthropic
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
// A translation's error is the client's (a 400 to answer with).
func (ex *exchange) upstreamBody(body []byte, upstreamModel string, dep *upstream.Deployment) ([]byte, error) {
	dst := ex.body[:0]
	switch ex.mode {
	case modeChatFromAnthropic:
		if ex.pathModel != nil {
			// An Azure client's body may name no model: the path's goes
			// in first (into ex.out, free until the answer).
			ex.out = ex.req.AppendUpstreamBody(ex.out[:0], body, upstreamModel)
			body = ex.out
		}
		return anthropic.AppendMessagesRequest(dst, body, anthropic.RequestOptions{
			UpstreamModel: upstreamModel, DefaultMaxTokens: int64(dep.DefaultMaxTokens)})
	case modeMessagesFromChat:
		// The Messages API's own rules (and what a chat completion cannot
		// carry) are checked only now that the body is to be translated:
		// relayed to Anthropic, they are Anthropic's to judge.
		if err := ex.translators().mreq.Parse(body); err != nil {
			return dst, err
		}
		return messages.AppendChatRequest(dst, &ex.tr.mreq, body, upstreamModel)
	}
	return ex.req.AppendUpstreamBody(dst, body, upstreamModel), nil
}

// observeTranslated taps a unary answer of a translated or natively
// relayed Messages call; false for the others. A translated success is
// tapped by its translation (answer).
func (ex *exchange) observeTranslated(rec *call.Record, status int, body []byte) bool {
	switch ex.mode {
	case modeChatFromAnthropic:
		if status >= 400 {
			anthropic.ObserveMessage(rec, body)
		}
	case modeMessagesFromChat:
		if status >= 400 {
			tap.Observe(rec, body)
		}
	case modeMessagesNative:
		if !ex.ep.countTokens {
			anthropic.ObserveMessage(rec, body)
		}
	default:
		return false
	}
	return true
}

// answer is the unary answer the client gets for the upstream's status
// and body: the same, or translated into the client's dialect.
func (ex *exchange) answer(rec *call.Record, status int, body []byte) (int, []byte) {
	var out []byte
	var err error
	switch ex.mode {
	case modeChatFromAnthropic:
		if status >= 400 {
			status, ex.out = anthropic.ErrorToOpenAI(ex.out[:0], status, body)
			return status, ex.out
		}
		out, err = anthropic.AppendChatCompletion(ex.out[:0], body, rec)
	case modeMessagesFromChat:
		if status >= 400 {
			status, ex.out = messages.ErrorFromOpenAI(ex.out[:0], status, body)
			return status, ex.out
		}
		out, err = messages.AppendMessage(ex.out[:0], body, ex.req.Model, rec)
	default:
		return status, body
	}
	if err != nil {
		rec.Outcome, rec.ErrorType, rec.ErrorMessage = call.OutcomeUpstreamFailed, "upstream_malformed", err.Error()
		e := apierror.New(fasthttp.StatusBadGateway, apierror.TypeServer, "upstream_malformed", "",
			"The upstream provider's answer could not be read.")
		status, out = ex.appendError(ex.out[:0], e)
	}
	ex.out = out
	return status, out
}

// appendError appends e in the client's dialect: Anthropic's shape on
// /v1/messages, OpenAI's everywhere else.
func (ex *exchange) appendError(dst []byte, e *apierror.Error) (int, []byte) {
	if ex.kind() == dialectMessages {
		return messages.ErrorFromAPIError(dst, e)
	}
	return e.Status, e.AppendJSON(dst)
}

// writeError answers with e in the client's dialect, and returns the
// status it answered with.
func (ex *exchange) writeError(ctx *fasthttp.RequestCtx, e *apierror.Error) int {
	if ex.kind() != dialectMessages {
		writeError(ctx, e)
		return e.Status
	}
	var status int
	status, ex.out = messages.ErrorFromAPIError(ex.out[:0], e)
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	if e.RetryAfter > 0 {
		ctx.Response.Header.Set("Retry-After", strconv.Itoa(e.RetryAfter))
	}
	// A copy: ex goes back to its pool before fasthttp writes the answer.
	ctx.SetBody(ex.out)
	return status
}

// setTranslator points a relayed stream at the call's translator, if its
// mode has one.
func (ex *exchange) setTranslator(o *relay.Options) bool {
	switch ex.mode {
	case modeChatFromAnthropic:
		tr := ex.translators()
		tr.toChat.cs.Reset(&ex.rec, ex.req.IncludeUsage)
		o.Translator = &tr.toChat
	case modeMessagesFromChat:
		tr := ex.translators()
		tr.toMessages.rec = &ex.rec
		tr.toMessages.ms.Reset(&ex.rec, ex.req.Model)
		o.Translator = &tr.toMessages
	case modeMessagesNative:
		tr := ex.translators()
		tr.native.rec = &ex.rec
		tr.native.o.Reset()
		o.Translator = &tr.native
	default:
		return false
	}
	return true
}

// translators are an exchange's translation state (see exchange.tr): a
// Messages request read for an OpenAI-compatible deployment, and the three
// stream translators.
type translators struct {
	mreq       messages.Request
	toChat     chatFromAnthropic
	toMessages messagesFromChat
	native     nativeMessages
}

// translators returns ex's translation state, made on first use.
func (ex *exchange) translators() *translators {
	if ex.tr == nil {
		ex.tr = new(translators)
	}
	return ex.tr
}

// chatFromAnthropic turns an Anthropic deployment's stream into chat
// completion chunks.
type chatFromAnthropic struct{ cs anthropic.ChatStream }

func (t *chatFromAnthropic) Event(dst []byte, ev *sse.Event) ([]byte, error) {
	if !ev.HasData {
		return dst, nil
	}
	return t.cs.Event(dst, ev.Name, ev.Data)
}

func (t *chatFromAnthropic) End(dst, _ []byte) []byte { return t.cs.End(dst) }

func (t *chatFromAnthropic) Error(dst []byte, message, code string) []byte {
	e := apierror.Error{Message: message, Type: apierror.TypeServer, Code: code}
	dst = append(dst, "data: "...)
	dst = e.AppendJSON(dst)
	return append(dst, "\n\n"...)
}

// messagesFromChat turns an OpenAI-compatible deployment's chunks into
// Anthropic's Messages events.
type messagesFromChat struct {
	ms  messages.Stream
	rec *call.Record
}

func (t *messagesFromChat) Event(dst []byte, ev *sse.Event) ([]byte, error) {
	if !ev.HasData {
		return dst, nil
	}
	if t.rec.Content.Capture && !ev.IsDone() {
		tap.ObserveContent(&t.rec.Content, ev.Data)
	}
	return t.ms.Chunk(dst, ev.Data)
}

func (t *messagesFromChat) End(dst, _ []byte) []byte { return t.ms.End(dst) }

func (t *messagesFromChat) Error(dst []byte, message, _ string) []byte {
	return t.ms.Fail(dst, messages.TypeAPI, message)
}

// nativeMessages passes an Anthropic deployment's stream to a Messages
// client byte for byte, reading usage on the side.
type nativeMessages struct {
	o   anthropic.Observer
	rec *call.Record
}

func (t *nativeMessages) Event(dst []byte, ev *sse.Event) ([]byte, error) {
	if ev.HasData {
		t.o.Event(t.rec, ev.Name, ev.Data)
	}
	return append(dst, ev.Raw...), nil
}

func (t *nativeMessages) End(dst, rest []byte) []byte { return append(dst, rest...) }

func (t *nativeMessages) Error(dst []byte, message, _ string) []byte {
	dst = append(dst, "event: error\ndata: "...)
	dst = messages.AppendError(dst, fasthttp.StatusInternalServerError, messages.TypeAPI, message)
	return append(dst, "\n\n"...)
}

var (
	_ relay.Translator = (*chatFromAnthropic)(nil)
	_ relay.Translator = (*messagesFromChat)(nil)
	_ relay.Translator = (*nativeMessages)(nil)
)
