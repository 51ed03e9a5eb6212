package console_test

import (
	"strings"
	"testing"
)

// TestUsage_InHeadlessChromium runs browser/usage.spec.mjs against a
// console over a real Postgres holding the fixture's calls and the usage
// tests' (seedUsage). Its screenshots stay in a directory under
// os.TempDir()/loom-console-artifacts, named in the log.
func TestUsage_InHeadlessChromium(t *testing.T) {
	node := specTools(t)
	f := newFixture(t)
	seedUsage(t, f.pool)
	err := runSpec(t, node, "usage.spec.mjs",
		"USAGE_URL="+f.URL,
		"USAGE_ADMIN_TOKEN="+adminToken,
		"USAGE_KEY_A="+keyA,
		"USAGE_FORBIDDEN="+strings.Join([]string{"globex", modelB, "EUR", "1234.5", "1,234"}, "|"),
		"USAGE_SCREENSHOTS="+screenshots(t, "usage"),
	)
	if err != nil {
		t.Fatalf("usage.spec.mjs: %v", err)
	}
	for _, secret := range []string{keyA, adminToken} {
		if strings.Contains(f.log.String(), secret) {
			t.Error("a key or token is in the console's log")
		}
	}
}
