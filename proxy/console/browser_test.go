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

// chromiumPath is the browser the script drives: the system's, never one
// that playwright downloads.
const chromiumPath = "/usr/bin/chromium"

// TestConsole_InHeadlessChromium runs browser/console.spec.mjs against a
// console over a real Postgres. Its screenshots stay in a directory under
// os.TempDir()/loom-console-artifacts, named in the log.
func TestConsole_InHeadlessChromium(t *testing.T) {
	node := specTools(t)
	f := newFixture(t)
	err := runSpec(t, node, "console.spec.mjs",
		"CONSOLE_URL="+f.URL,
		"CONSOLE_KEY_A="+keyA,
		"CONSOLE_TRACES_A="+strings.Join(f.TracesA, ","),
		"CONSOLE_TRACES_B="+strings.Join(f.TracesB, ","),
		"CONSOLE_FORBIDDEN="+modelB+",globex",
		"CONSOLE_SCREENSHOTS="+screenshots(t, "console"),
	)
	if err != nil {
		t.Fatalf("console.spec.mjs: %v", err)
	}
	if strings.Contains(f.log.String(), keyA) {
		t.Error("tenant A's key is in the console's log")
	}
}

// specTools finds node, npm and the browser (see tools) and installs the
// specs' packages: playwright-core, never a browser of its own.
func specTools(t *testing.T) (node string) {
	t.Helper()
	node, npm := tools(t)
	if err := prereq.NPMCI(t.Context(), npm, "browser", []string{"PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1"}, "--ignore-scripts"); err != nil {
		t.Fatal(err)
	}
	return node
}

// screenshots is a new directory for one spec's screenshots, under
// os.TempDir()/loom-console-artifacts (kept after the test), named in the
// log.
func screenshots(t *testing.T, tag string) string {
	t.Helper()
	root := filepath.Join(os.TempDir(), "loom-console-artifacts")
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp(root, time.Now().UTC().Format("20060102-150405-")+tag+"-")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots in %s", dir)
	return dir
}

// runSpec runs browser/<script> under node with env added to the test's
// environment; its output goes to the log.
func runSpec(t *testing.T, node, script string, env ...string) error {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), node, script)
	cmd.Dir = "browser"
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = 10 * time.Second
	err := cmd.Run()
	t.Logf("node %s:\n%s", script, out.String())
	return err
}

// tools finds node and npm and the browser, or skips (fails under CI=true:
// install nodejs, npm and chromium).
func tools(t *testing.T) (node, npm string) {
	t.Helper()
	node, err := prereq.Program("node")
	if err == nil {
		npm, err = prereq.Program("npm")
	}
	if err == nil {
		_, err = prereq.Program(chromiumPath)
	}
	prereq.Check(t, err, prereq.ErrNotInstalled)
	return node, npm
}
