package console_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/loom-gateway/loom/deploy/prereq"
)

// TestCallPage_InHeadlessChromium runs browser/callpage.spec.mjs against a
// console over a real Postgres holding the call page's calls. Its
// screenshots stay in a directory under os.TempDir()/loom-console-artifacts,
// named in the log.
func TestCallPage_InHeadlessChromium(t *testing.T) {
	node, npm := tools(t)
	f := newFixture(t)
	calls := addCallPageCalls(t, f)
	dir := "browser"
	// The browser is the system's: playwright must not download one.
	if err := prereq.NPMCI(t.Context(), npm, dir, []string{"PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1"}, "--ignore-scripts"); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(os.TempDir(), "loom-console-artifacts")
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	shots, err := os.MkdirTemp(root, time.Now().UTC().Format("20060102-150405-call-"))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots in %s", shots)
	cmd := exec.CommandContext(t.Context(), node, "callpage.spec.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"CONSOLE_URL="+f.URL,
		"CONSOLE_KEY_A="+keyA,
		"CALL_FAILED_OVER="+calls.FailedOver,
		"CALL_REFUSED="+calls.StreamedRefusal,
		// The streamed calls, newest first: TracesA[1], FailedOver, StreamedRefusal.
		"CALL_NEWER="+f.TracesA[1],
		"CONSOLE_FORBIDDEN="+strings.Join(append([]string{modelB, "globex", keyB, adminToken}, f.TracesB...), ","),
		"CONSOLE_SCREENSHOTS="+shots,
	)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = 10 * time.Second
	err = cmd.Run()
	t.Logf("node callpage.spec.mjs:\n%s", out.String())
	if err != nil {
		t.Fatalf("callpage.spec.mjs: %v", err)
	}
	if strings.Contains(f.log.String(), keyA) {
		t.Error("tenant A's key is in the console's log")
	}
}
