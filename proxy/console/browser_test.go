package console_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// chromiumPath is the browser the script drives: the system's, never one
// that playwright downloads.
const chromiumPath = "/usr/bin/chromium"

// TestConsole_InHeadlessChromium runs browser/console.spec.mjs against a
// console over a real Postgres. Its screenshots stay in a directory under
// os.TempDir()/loom-console-artifacts, named in the log.
func TestConsole_InHeadlessChromium(t *testing.T) {
	node, npm := tools(t)
	f := newFixture(t)
	dir := "browser"
	if ok, why := installed(dir); !ok {
		t.Logf("npm ci: %s", why)
		cmd := exec.CommandContext(t.Context(), npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts")
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("npm ci: %v\n%s", err, out)
		}
	}
	root := filepath.Join(os.TempDir(), "loom-console-artifacts")
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	shots, err := os.MkdirTemp(root, time.Now().UTC().Format("20060102-150405-"))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots in %s", shots)
	cmd := exec.CommandContext(t.Context(), node, "console.spec.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"CONSOLE_URL="+f.URL,
		"CONSOLE_KEY_A="+keyA,
		"CONSOLE_TRACES_A="+strings.Join(f.TracesA, ","),
		"CONSOLE_TRACES_B="+strings.Join(f.TracesB, ","),
		"CONSOLE_FORBIDDEN="+modelB+",globex",
		"CONSOLE_SCREENSHOTS="+shots,
	)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = 10 * time.Second
	err = cmd.Run()
	t.Logf("node console.spec.mjs:\n%s", out.String())
	if err != nil {
		t.Fatalf("console.spec.mjs: %v", err)
	}
	if strings.Contains(f.log.String(), keyA) {
		t.Error("tenant A's key is in the console's log")
	}
}

// tools finds node and npm and the browser, or skips (fails under CI=true).
func tools(t *testing.T) (node, npm string) {
	t.Helper()
	node, err1 := exec.LookPath("node")
	npm, err2 := exec.LookPath("npm")
	_, err3 := os.Stat(chromiumPath)
	if err := firstErr(err1, err2, err3); err != nil {
		if ci, _ := strconv.ParseBool(os.Getenv("CI")); ci {
			t.Fatalf("CI=true but the browser test cannot run: %v (install nodejs, npm and chromium)", err)
		}
		t.Skipf("browser test skipped: %v (install nodejs, npm and chromium; with CI=true this fails)", err)
	}
	return node, npm
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// installed reports whether dir/node_modules holds what package-lock.json
// pins, and if not, why.
func installed(dir string) (bool, string) {
	type lock struct {
		Packages map[string]struct {
			Version   string `json:"version"`
			Integrity string `json:"integrity"`
		} `json:"packages"`
	}
	var want, have lock
	for p, v := range map[string]*lock{"package-lock.json": &want, "node_modules/.package-lock.json": &have} {
		b, err := os.ReadFile(filepath.Join(dir, p))
		if err != nil {
			return false, err.Error()
		}
		if err := json.Unmarshal(b, v); err != nil {
			return false, fmt.Sprintf("%s: %v", p, err)
		}
	}
	for p, w := range want.Packages {
		if p == "" {
			continue
		}
		if h, ok := have.Packages[p]; !ok || h.Version != w.Version || h.Integrity != w.Integrity {
			return false, p + " is missing or not the locked version"
		}
	}
	if len(have.Packages) != len(want.Packages)-1 {
		return false, "node_modules holds packages package-lock.json does not name"
	}
	return true, ""
}
