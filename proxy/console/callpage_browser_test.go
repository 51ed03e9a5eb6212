package console_test

import (
	"strings"
	"testing"
)

// TestCallPage_InHeadlessChromium runs browser/callpage.spec.mjs against a
// console over a real Postgres holding the call page's calls. Its
// screenshots stay in a directory under os.TempDir()/loom-console-artifacts,
// named in the log.
func TestCallPage_InHeadlessChromium(t *testing.T) {
	node := specTools(t)
	f := newFixture(t)
	calls := addCallPageCalls(t, f)
	err := runSpec(t, node, "callpage.spec.mjs",
		"CONSOLE_URL="+f.URL,
		"CONSOLE_KEY_A="+keyA,
		"CALL_FAILED_OVER="+calls.FailedOver,
		"CALL_REFUSED="+calls.StreamedRefusal,
		// The streamed calls, newest first: TracesA[1], FailedOver, StreamedRefusal.
		"CALL_NEWER="+f.TracesA[1],
		"CONSOLE_FORBIDDEN="+strings.Join(append([]string{modelB, "globex", keyB, adminToken}, f.TracesB...), ","),
		"CONSOLE_SCREENSHOTS="+screenshots(t, "call"),
	)
	if err != nil {
		t.Fatalf("callpage.spec.mjs: %v", err)
	}
	if strings.Contains(f.log.String(), keyA) {
		t.Error("tenant A's key is in the console's log")
	}
}
