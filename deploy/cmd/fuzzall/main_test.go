package main

import (
	"context"
	"slices"
	"testing"
	"time"
)

func TestProgress_ReadsTheLastLine(t *testing.T) {
	out := []byte("fuzz: elapsed: 0s, gathering baseline coverage: 0/12 completed\n" +
		"fuzz: elapsed: 3s, execs: 1200 (400/sec), new interesting: 1 (total: 13)\n" +
		"fuzz: elapsed: 5s, execs: 2000 (266/sec), new interesting: 2 (total: 14)\nPASS\n")
	if n, d := progress(out); n != 2000 || d != 5*time.Second {
		t.Fatalf("progress = %d, %v", n, d)
	}
	if n, d := progress([]byte("ok  \tx\t0.1s\n")); n != 0 || d != 0 {
		t.Fatalf("no progress line read as %d, %v", n, d)
	}
}

func TestDiscover_FindsTargetsInTestFiles(t *testing.T) {
	got, err := discover(context.Background(), "go", []string{"github.com/loom-gateway/loom/proxy/sse", "github.com/loom-gateway/loom/proxy/internal/json"})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []target{
		{"github.com/loom-gateway/loom/proxy/sse", "FuzzScanner"},
		{"github.com/loom-gateway/loom/proxy/internal/json", "FuzzWalk"},
		{"github.com/loom-gateway/loom/proxy/internal/json", "FuzzAppendQuote"},
	} {
		if !slices.Contains(got, want) {
			t.Errorf("%v not found in %v", want, got)
		}
	}
}

// The engine's own timeout is told from a real failure, which always
// names its failing input.
func TestEngineTimedOut_OnlyWithoutAFailingInput(t *testing.T) {
	timeout := "fuzz: elapsed: 5s, execs: 127052 (30487/sec), new interesting: 0 (total: 109)\n--- FAIL: FuzzAppendQuote (5.09s)\n    context deadline exceeded\nFAIL\n"
	if !engineTimedOut([]byte(timeout)) {
		t.Error("the engine's timeout (seen in CI) not recognised")
	}
	crash := "--- FAIL: FuzzX (0.10s)\n    x_test.go:9: boom\n    Failing input written to testdata/fuzz/FuzzX/abc\n    context deadline exceeded\n"
	if engineTimedOut([]byte(crash)) {
		t.Error("a failure with a failing input taken for the engine's timeout")
	}
	if engineTimedOut([]byte("--- FAIL: FuzzX\n    panic: runtime error\n")) {
		t.Error("a panic taken for the engine's timeout")
	}
}
