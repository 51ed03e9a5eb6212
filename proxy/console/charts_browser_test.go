package console_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/loom-gateway/loom/deploy/prereq"
)

// TestCharts_InHeadlessChromium runs browser/charts.spec.mjs against a
// console over a real Postgres: the dashboard charts' axes, hover values,
// legend, ranges, auto-refresh and narrow layout. Its screenshots stay in a
// directory under os.TempDir()/loom-console-artifacts, named in the log.
func TestCharts_InHeadlessChromium(t *testing.T) {
	node, npm := tools(t)
	f := newFixture(t)
	dir := "browser"
	// The browser is the system's: playwright must not download one.
	if err := prereq.NPMCI(t.Context(), npm, dir, []string{"PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1"}, "--ignore-scripts"); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(os.TempDir(), "loom-console-artifacts")
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	shots, err := os.MkdirTemp(root, time.Now().UTC().Format("20060102-150405-charts-"))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots in %s", shots)
	cmd := exec.CommandContext(t.Context(), node, "charts.spec.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"CONSOLE_URL="+f.URL,
		"CONSOLE_KEY_A="+keyA,
		"CONSOLE_ADMIN="+adminToken,
		"CONSOLE_SCREENSHOTS="+shots,
	)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = 10 * time.Second
	err = cmd.Run()
	t.Logf("node charts.spec.mjs:\n%s", out.String())
	if err != nil {
		t.Fatalf("charts.spec.mjs: %v", err)
	}
}
