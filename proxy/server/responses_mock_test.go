package server_test

import (
	"context"
	"testing"

	"github.com/openai/openai-go/v3/responses"

	"github.com/loom-gateway/loom/proxy/call"
)

// openai-go's Responses client through Loom to the mock's Responses API,
// streaming and not, and a lookup of what it made: the usage on the record
// is what the mock sent in response.completed.
func TestResponses_SDKThroughTheMock(t *testing.T) {
	st := startStack(t, stackOptions{})
	c := sdkClient(st, st.keyA)
	seen := st.count()
	resp, err := c.Responses.New(context.Background(), responseParams("gpt-4o-mini"))
	if err != nil {
		t.Fatal(err)
	}
	up, _ := st.mock.Last()
	rec := st.lastRecord(seen)
	if up.Path != "/v1/responses" || up.UsageSent == nil || rec.Usage.InputTokens != int64(up.UsageSent.PromptTokens) ||
		rec.Usage.OutputTokens != int64(up.UsageSent.CompletionTokens) || resp.Usage.OutputTokens != rec.Usage.OutputTokens ||
		string(rec.ResponseID) != resp.ID || rec.Operation != call.OpChat {
		t.Fatalf("upstream %s %+v, record %+v", up.Path, up.UsageSent, rec.Usage)
	}

	seen = st.count()
	stream := c.Responses.NewStreaming(context.Background(), responseParams("gpt-4o-mini"))
	var completed responses.Response
	text := ""
	for stream.Next() {
		switch ev := stream.Current(); ev.Type {
		case "response.output_text.delta":
			text += ev.Delta
		case "response.completed":
			completed = ev.Response
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	up, _ = st.mock.Last()
	rec = st.lastRecord(seen)
	if text == "" || completed.ID == "" || rec.Usage.InputTokens != completed.Usage.InputTokens ||
		rec.Usage.OutputTokens != completed.Usage.OutputTokens || rec.Usage.TotalTokens != int64(up.UsageSent.TotalTokens) || !rec.Stream {
		t.Fatalf("streamed %q, completed %+v, record %+v", text, completed.Usage, rec.Usage)
	}

	seen = st.count()
	got, err := c.Responses.Get(context.Background(), completed.ID, responses.ResponseGetParams{})
	if err != nil || got.ID != completed.ID {
		t.Fatalf("get: %v", err)
	}
	if rec := st.lastRecord(seen); rec.Deployment != "mock-openai" || rec.UsageSource != call.UsageNone {
		t.Fatalf("lookup record %s %s", rec.Deployment, rec.UsageSource)
	}
}
