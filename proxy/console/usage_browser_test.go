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

// TestUsage_InHeadlessChromium runs browser/usage.spec.mjs against a
// console over a real Postgres holding the fixture's calls and the usage
// tests' (seedUsage). Its screenshots stay in a directory under
// os.TempDir()/loom-console-artifacts, named in the log.
func TestUsage_InHeadlessChromium(t *testing.T) {
	node, npm := tools(t)
	f := newFixture(t)
	seedUsage(t, f.pool)
	dir := "browser"
	// The browser is the system's: playwright must not download one.
	if err := prereq.NPMCI(t.Context(), npm, dir, []string{"PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1"}, "--ignore-scripts"); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(os.TempDir(), "loom-console-artifacts")
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	shots, err := os.MkdirTemp(root, time.Now().UTC().Format("20060102-150405-usage-"))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots in %s", shots)
	cmd := exec.CommandContext(t.Context(), node, "usage.spec.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"USAGE_URL="+f.URL,
		"USAGE_ADMIN_TOKEN="+adminToken,
		"USAGE_KEY_A="+keyA,
		"USAGE_FORBIDDEN="+strings.Join([]string{"globex", modelB, "EUR", "1234.5", "1,234"}, "|"),
		"USAGE_SCREENSHOTS="+shots,
	)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = 10 * time.Second
	err = cmd.Run()
	t.Logf("node usage.spec.mjs:\n%s", out.String())
	if err != nil {
		t.Fatalf("usage.spec.mjs: %v", err)
	}
	for _, secret := range []string{keyA, adminToken} {
		if strings.Contains(f.log.String(), secret) {
			t.Error("a key or token is in the console's log")
		}
	}
}
