package anthropic

import (
	"encoding/json"
	"testing"

	sdk "github.com/anthropics/anthropic-sdk-go/v2"
)

// TestAppendMessagesRequest_ReadsAsAnthropicSDKParams decodes a translated
// request with anthropic-sdk-go's own MessageNewParams: every field and
// block lands where the Messages API defines it, so a name or a shape the
// API does not know would show up here as a field left empty. (SDK v2
// speaks API version 2026-10-21, which dropped temperature, top_p and
// top_k; Loom sends APIVersion, where they are still read, so those are
// checked in the JSON itself.)
func TestAppendMessagesRequest_ReadsAsAnthropicSDKParams(t *testing.T) {
	chat := `{"model":"claude","max_completion_tokens":900,"temperature":0.3,"top_p":0.8,"top_k":20,"user":"u-7","stop":["END"],
	"thinking":{"type":"enabled","budget_tokens":1024},
	"response_format":{"type":"json_schema","json_schema":{"name":"w","schema":{"type":"object","properties":{"t":{"type":"number"}},"required":["t"],"additionalProperties":false}}},
	"messages":[
		{"role":"system","content":"Be brief."},
		{"role":"user","content":[{"type":"text","text":"Look","cache_control":{"type":"ephemeral"}},
			{"type":"image_url","image_url":{"url":"data:image/jpeg;base64,/9j/4AAQ"}},
			{"type":"image_url","image_url":{"url":"https://example.com/a.png"}},
			{"type":"file","file":{"file_data":"data:application/pdf;base64,JVBERi0="}}]},
		{"role":"assistant","content":"Checking.","tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]},
		{"role":"tool","tool_call_id":"call_1","content":"18C"}],
	"tools":[{"type":"function","function":{"name":"get_weather","description":"Weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}],
	"tool_choice":"required","parallel_tool_calls":false}`
	out, err := AppendMessagesRequest(nil, []byte(chat), RequestOptions{UpstreamModel: "claude-sonnet-4-5"})
	if err != nil {
		t.Fatal(err)
	}
	var p sdk.MessageNewParams
	if err := json.Unmarshal(out, &p); err != nil {
		t.Fatalf("anthropic-sdk-go cannot read %s: %v", out, err)
	}
	if p.Model != "claude-sonnet-4-5" || p.MaxTokens != 900 || p.Metadata.UserID.Value != "u-7" ||
		len(p.StopSequences) != 1 || p.StopSequences[0] != "END" {
		t.Errorf("parameters %+v", p)
	}
	var sampling struct {
		Temperature float64
		TopP        float64 `json:"top_p"`
		TopK        int64   `json:"top_k"`
	}
	if err := json.Unmarshal(out, &sampling); err != nil || sampling.Temperature != 0.3 || sampling.TopP != 0.8 || sampling.TopK != 20 {
		t.Errorf("sampling %+v: %v", sampling, err)
	}
	if len(p.System) != 1 || p.System[0].Text != "Be brief." {
		t.Errorf("system %+v", p.System)
	}
	if p.Thinking.OfEnabled == nil || p.Thinking.OfEnabled.BudgetTokens != 1024 {
		t.Errorf("thinking %+v", p.Thinking)
	}
	if p.OutputConfig.Format.Schema["type"] != "object" {
		t.Errorf("output_config %+v", p.OutputConfig)
	}
	if len(p.Tools) != 1 || p.Tools[0].OfTool == nil || p.Tools[0].OfTool.Name != "get_weather" ||
		p.Tools[0].OfTool.Description.Value != "Weather" || p.Tools[0].OfTool.InputSchema.Properties == nil {
		t.Errorf("tools %+v", p.Tools)
	}
	if p.ToolChoice.OfAny == nil || !p.ToolChoice.OfAny.DisableParallelToolUse.Value {
		t.Errorf("tool_choice %+v", p.ToolChoice)
	}
	if len(p.Messages) != 3 {
		t.Fatalf("%d messages: %s", len(p.Messages), out)
	}
	user, assistant, results := p.Messages[0].OfUser, p.Messages[1].OfAssistant, p.Messages[2].OfUser
	if user == nil || assistant == nil || results == nil {
		t.Fatalf("turns %+v", p.Messages)
	}
	if len(user.Content) != 4 {
		t.Fatalf("user turn %+v", user)
	}
	if b := user.Content[0].OfText; b == nil || b.Text != "Look" || b.CacheControl.Type != "ephemeral" {
		t.Errorf("text block %+v", user.Content[0])
	}
	if b := user.Content[1].OfImage; b == nil || b.Source.OfBase64 == nil || b.Source.OfBase64.MediaType != "image/jpeg" || b.Source.OfBase64.Data != "/9j/4AAQ" {
		t.Errorf("base64 image %+v", user.Content[1])
	}
	if b := user.Content[2].OfImage; b == nil || b.Source.OfURL == nil || b.Source.OfURL.URL != "https://example.com/a.png" {
		t.Errorf("url image %+v", user.Content[2])
	}
	if b := user.Content[3].OfDocument; b == nil || b.Source.OfBase64 == nil || b.Source.OfBase64.Data != "JVBERi0=" {
		t.Errorf("document %+v", user.Content[3])
	}
	if len(assistant.Content) != 2 || assistant.Content[0].OfText == nil {
		t.Fatalf("assistant turn %+v", assistant)
	}
	if b := assistant.Content[1].OfToolUse; b == nil || b.ID != "call_1" || b.Name != "get_weather" || b.Input.(map[string]any)["city"] != "Paris" {
		t.Errorf("tool_use %+v", assistant.Content[1])
	}
	if len(results.Content) != 1 {
		t.Fatalf("tool results %+v", results)
	}
	if b := results.Content[0].OfToolResult; b == nil || b.ToolUseID != "call_1" || len(b.Content) != 1 || b.Content[0].OfText == nil || b.Content[0].OfText.Text != "18C" {
		t.Errorf("tool_result %+v", results.Content[0])
	}
}
