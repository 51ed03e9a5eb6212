package logtest

import (
	"strings"
	"sync"
	"testing"
)

func TestBuffer_ConcurrentWritersAndReader(t *testing.T) {
	var b Buffer
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 100 {
				_, _ = b.Write([]byte("x\n"))
				_ = b.String()
			}
		})
	}
	wg.Wait()
	if n := strings.Count(b.String(), "x\n"); n != 400 {
		t.Fatalf("%d lines, want 400", n)
	}
}
