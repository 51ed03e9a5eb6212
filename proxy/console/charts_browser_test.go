package console_test

import (
	"testing"
)

// TestCharts_InHeadlessChromium runs browser/charts.spec.mjs against a
// console over a real Postgres: the dashboard charts' axes, hover values,
// legend, ranges, auto-refresh and narrow layout. Its screenshots stay in a
// directory under os.TempDir()/loom-console-artifacts, named in the log.
func TestCharts_InHeadlessChromium(t *testing.T) {
	node := specTools(t)
	f := newFixture(t)
	err := runSpec(t, node, "charts.spec.mjs",
		"CONSOLE_URL="+f.URL,
		"CONSOLE_KEY_A="+keyA,
		"CONSOLE_ADMIN="+adminToken,
		"CONSOLE_SCREENSHOTS="+screenshots(t, "charts"),
	)
	if err != nil {
		t.Fatalf("charts.spec.mjs: %v", err)
	}
}
