package mockupstream

import (
	"bytes"
	"encoding/json"
)

// wireUsage holds every usage field name of the three dialects (chat completions, Anthropic Messages, the
// Responses API), each a pointer so a partial usage (Anthropic's message_delta) updates only what it names.
type wireUsage struct {
	PromptTokens             *int          `json:"prompt_tokens"`
	CompletionTokens         *int          `json:"completion_tokens"`
	TotalTokens              *int          `json:"total_tokens"`
	InputTokens              *int          `json:"input_tokens"`
	OutputTokens             *int          `json:"output_tokens"`
	CacheCreationInputTokens *int          `json:"cache_creation_input_tokens"`
	CacheReadInputTokens     *int          `json:"cache_read_input_tokens"`
	PromptTokensDetails      *tokenDetails `json:"prompt_tokens_details"`
	CompletionTokensDetails  *tokenDetails `json:"completion_tokens_details"`
	InputTokensDetails       *tokenDetails `json:"input_tokens_details"`
	OutputTokensDetails      *tokenDetails `json:"output_tokens_details"`
}

type tokenDetails struct {
	CachedTokens     *int `json:"cached_tokens"`
	CacheWriteTokens *int `json:"cache_write_tokens"`
	ReasoningTokens  *int `json:"reasoning_tokens"`
}

// usageOf reads the usage a recorded or generated body or event payload carries: top-level "usage" (chat,
// Anthropic message_delta and non-streaming bodies), "message.usage" (Anthropic message_start) or
// "response.usage" (Responses API terminal events). nil if there is none.
func usageOf(b []byte) *wireUsage {
	if !bytes.Contains(b, []byte(`"usage"`)) {
		return nil
	}
	var v struct {
		Usage   *wireUsage `json:"usage"`
		Message *struct {
			Usage *wireUsage `json:"usage"`
		} `json:"message"`
		Response *struct {
			Usage *wireUsage `json:"usage"`
		} `json:"response"`
	}
	if json.Unmarshal(b, &v) != nil {
		return nil
	}
	switch {
	case v.Usage != nil:
		return v.Usage
	case v.Message != nil && v.Message.Usage != nil:
		return v.Message.Usage
	case v.Response != nil:
		return v.Response.Usage
	}
	return nil
}

// eventUsage is usageOf for one framed SSE event: the payload of its data line.
func eventUsage(ev []byte) *wireUsage {
	for line := range bytes.Lines(ev) {
		if payload, ok := bytes.CutPrefix(line, []byte("data:")); ok {
			return usageOf(bytes.TrimSpace(payload))
		}
	}
	return nil
}

// applyUsage folds w into what r records as sent. Anthropic's input_tokens excludes cache reads and writes,
// so they are added to PromptTokens, as the GenAI conventions count input; an Anthropic usage without
// input_tokens (an older message_delta) keeps the input already recorded from message_start.
func applyUsage(r *Received, w *wireUsage) {
	var u Usage
	if r.UsageSent != nil {
		u = *r.UsageSent
	}
	var d UsageDetails
	details := r.UsageDetails != nil
	if details {
		d = *r.UsageDetails
	}
	set := func(dst *int, src *int) bool {
		if src == nil {
			return false
		}
		*dst = *src
		return true
	}
	setDetails := func(td *tokenDetails) {
		if td == nil {
			return
		}
		details = set(&d.CacheReadTokens, td.CachedTokens) || details
		details = set(&d.CacheWriteTokens, td.CacheWriteTokens) || details
		details = set(&d.ReasoningTokens, td.ReasoningTokens) || details
	}
	setDetails(w.PromptTokensDetails)
	setDetails(w.CompletionTokensDetails)
	setDetails(w.InputTokensDetails)
	setDetails(w.OutputTokensDetails)
	anthropic := w.PromptTokens == nil && w.TotalTokens == nil && w.InputTokensDetails == nil
	switch {
	case w.PromptTokens != nil || w.CompletionTokens != nil: // chat completions, legacy completions
		set(&u.PromptTokens, w.PromptTokens)
		set(&u.CompletionTokens, w.CompletionTokens)
	case anthropic:
		details = set(&d.CacheWriteTokens, w.CacheCreationInputTokens) || details
		details = set(&d.CacheReadTokens, w.CacheReadInputTokens) || details
		if w.InputTokens != nil {
			u.PromptTokens = *w.InputTokens + d.CacheReadTokens + d.CacheWriteTokens
		}
		set(&u.CompletionTokens, w.OutputTokens)
	default: // Responses API
		set(&u.PromptTokens, w.InputTokens)
		set(&u.CompletionTokens, w.OutputTokens)
	}
	u.TotalTokens = u.PromptTokens + u.CompletionTokens
	if w.TotalTokens != nil {
		u.TotalTokens = *w.TotalTokens
	}
	r.UsageSent = &u
	if details {
		r.UsageDetails = &d
	}
}
