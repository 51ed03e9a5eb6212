package upstream_test

import (
	"testing"

	"github.com/loom-gateway/loom/proxy/upstream"
)

func TestNamedByConnection_MatchesEachTokenCaseInsensitively(t *testing.T) {
	for _, c := range []struct {
		connection, name string
		want             bool
	}{
		{"keep-alive, X-Hop", "x-hop", true},
		{"X-Hop", "X-HOP", true},
		{" ,x-a ,  x-hop  ,", "x-hop", true},
		{"keep-alive, X-Hop", "x-ho", false},
		{"keep-alive, X-Hopper", "x-hop", false},
		{"", "x-hop", false},
	} {
		if got := upstream.NamedByConnection([]byte(c.connection), []byte(c.name)); got != c.want {
			t.Errorf("NamedByConnection(%q, %q) = %t, want %t", c.connection, c.name, got, c.want)
		}
	}
	if n := testing.AllocsPerRun(100, func() {
		upstream.NamedByConnection([]byte("keep-alive, x-a, x-b"), []byte("x-b"))
	}); n != 0 {
		t.Errorf("%v allocations per call", n)
	}
}
