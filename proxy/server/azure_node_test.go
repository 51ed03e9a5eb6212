package server_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/loom-gateway/loom/deploy/prereq"
)

// TestAzureIngress_OpenAINodeAzureClient runs testdata/node/azure.mjs, an
// app on openai-node's AzureOpenAI, against Loom: chat, a stream with
// usage, embeddings and a bad key, through Azure's deployment paths.
func TestAzureIngress_OpenAINodeAzureClient(t *testing.T) {
	dir := filepath.Join("testdata", "node")
	node := prereq.Node(t, dir)
	st := startStack(t, stackOptions{})
	seen := st.count()
	cmd := exec.CommandContext(t.Context(), node, "azure.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "LOOM_URL="+st.url, "LOOM_KEY="+st.keyA)
	cmd.WaitDelay = 10 * time.Second
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node azure.mjs: %v\n%s", err, out)
	}
	var got struct {
		Chat, Stream struct {
			Content string
			Total   int64
		}
		Embeddings int
		BadKey     int
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("azure.mjs printed %s: %v", out, err)
	}
	// The bad key is counted, not recorded: no tenant owns it.
	recs := st.waitRecords(seen + 3)[seen:]
	if got.Chat.Content == "" || got.Chat.Total != recs[0].Usage.TotalTokens ||
		recs[0].HTTPRoute != "/openai/deployments/{deployment-id}/chat/completions" || recs[0].Deployment != "mock-azure" {
		t.Fatalf("chat %+v, record %s %s %+v", got.Chat, recs[0].HTTPRoute, recs[0].Deployment, recs[0].Usage)
	}
	if got.Stream.Content == "" || got.Stream.Total == 0 || got.Stream.Total != recs[1].Usage.TotalTokens || !recs[1].Stream {
		t.Fatalf("stream %+v, record %+v", got.Stream, recs[1].Usage)
	}
	if got.Embeddings != 1 || recs[2].HTTPRoute != "/openai/deployments/{deployment-id}/embeddings" {
		t.Fatalf("embeddings %d, record %s", got.Embeddings, recs[2].HTTPRoute)
	}
	if got.BadKey != 401 {
		t.Fatalf("bad key got %d", got.BadKey)
	}
}
