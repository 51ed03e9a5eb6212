package console_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/loom-gateway/loom/deploy/prereq"
)

// TestCalls_InHeadlessChromium runs browser/calls.spec.mjs against a
// console over a real Postgres holding more of tenant A's calls than a few
// pages show. Its screenshots stay in a directory under
// os.TempDir()/loom-console-artifacts, named in the log.
func TestCalls_InHeadlessChromium(t *testing.T) {
	node, npm := tools(t)
	f := newFixture(t)
	// Seven more calls with A's model: nine in all, three pages of three.
	for i := range 7 {
		insertCall(t.Context(), t, f.pool, call{tenant: "acme", key: "acme-key", model: modelA, stream: i%2 == 0,
			in: int64(1000 * (i + 1)), out: 12345, durMs: 100 + float64(i), overMs: 0.3},
			time.Now().UTC().Add(-time.Duration(20+i)*time.Minute))
	}
	if err := prereq.NPMCI(t.Context(), npm, "browser", []string{"PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1"}, "--ignore-scripts"); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(os.TempDir(), "loom-console-artifacts")
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	shots, err := os.MkdirTemp(root, time.Now().UTC().Format("20060102-150405-calls-"))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots in %s", shots)
	cmd := exec.CommandContext(t.Context(), node, "calls.spec.mjs")
	cmd.Dir = "browser"
	cmd.Env = append(os.Environ(),
		"CONSOLE_URL="+f.URL,
		"CONSOLE_KEY_A="+keyA,
		"CONSOLE_MODEL="+modelA,
		"CONSOLE_MODEL_CALLS="+strconv.Itoa(2+7),
		"CONSOLE_FORBIDDEN="+strings.Join(append([]string{modelB, "globex"}, f.TracesB...), ","),
		"CONSOLE_SCREENSHOTS="+shots,
	)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = 10 * time.Second
	err = cmd.Run()
	t.Logf("node calls.spec.mjs:\n%s", out.String())
	if err != nil {
		t.Fatalf("calls.spec.mjs: %v", err)
	}
}
