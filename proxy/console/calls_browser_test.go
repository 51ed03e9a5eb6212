package console_test

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestCalls_InHeadlessChromium runs browser/calls.spec.mjs against a
// console over a real Postgres holding more of tenant A's calls than a few
// pages show. Its screenshots stay in a directory under
// os.TempDir()/loom-console-artifacts, named in the log.
func TestCalls_InHeadlessChromium(t *testing.T) {
	node := specTools(t)
	f := newFixture(t)
	// Seven more calls with A's model: nine in all, three pages of three.
	for i := range 7 {
		insertCall(t.Context(), t, f.pool, call{tenant: "acme", key: "acme-key", model: modelA, stream: i%2 == 0,
			in: int64(1000 * (i + 1)), out: 12345, durMs: 100 + float64(i), overMs: 0.3},
			time.Now().UTC().Add(-time.Duration(20+i)*time.Minute))
	}
	err := runSpec(t, node, "calls.spec.mjs",
		"CONSOLE_URL="+f.URL,
		"CONSOLE_KEY_A="+keyA,
		"CONSOLE_MODEL="+modelA,
		"CONSOLE_MODEL_CALLS="+strconv.Itoa(2+7),
		"CONSOLE_FORBIDDEN="+strings.Join(append([]string{modelB, "globex"}, f.TracesB...), ","),
		"CONSOLE_SCREENSHOTS="+screenshots(t, "calls"),
	)
	if err != nil {
		t.Fatalf("calls.spec.mjs: %v", err)
	}
}
