package tenant

import (
	"fmt"
	"strings"
	"testing"

	"github.com/loom-gateway/loom/proxy/config"
	"github.com/loom-gateway/loom/proxy/upstream"
)

// directory builds a directory of n tenants with one key each and returns
// it with the keys.
func directory(tb testing.TB, n int) (*Directory, []string) {
	tb.Helper()
	var b strings.Builder
	b.WriteString("deployments:\n  - {name: oa, provider: openai, base_url: \"http://127.0.0.1:1/v1\"}\ntenants:\n")
	keys := make([]string, n)
	for i := range n {
		key, hash, err := NewKey()
		if err != nil {
			tb.Fatal(err)
		}
		keys[i] = key
		fmt.Fprintf(&b, "  - id: t%d\n    keys: [{id: k%d, sha256: %s}]\n    models: [{name: gpt-4o-mini, deployment: oa}]\n", i, i, hash)
	}
	cfg, err := config.Parse([]byte(b.String()))
	if err != nil {
		tb.Fatal(err)
	}
	deps := map[string]*upstream.Deployment{}
	for _, dc := range cfg.Deployments {
		d, err := upstream.New(dc, cfg.Timeouts, nil)
		if err != nil {
			tb.Fatal(err)
		}
		deps[dc.Name] = d
	}
	dir, err := Build(cfg, deps)
	if err != nil {
		tb.Fatal(err)
	}
	return dir, keys
}

func TestAuthenticate_EachKeyFindsItsTenantOnly(t *testing.T) {
	dir, keys := directory(t, 3)
	for i, key := range keys {
		k, ok := dir.Authenticate([]byte(key))
		if !ok || k.Tenant.ID != fmt.Sprintf("t%d", i) || k.ID != fmt.Sprintf("k%d", i) {
			t.Fatalf("key %d: %v %+v", i, ok, k)
		}
	}
	if _, ok := dir.Authenticate([]byte(keys[0] + "x")); ok {
		t.Fatal("a wrong key authenticated")
	}
}

// Authentication is on every request's path: a hash and a map lookup, no
// allocation.
func TestAuthenticate_NoAllocations(t *testing.T) {
	dir, keys := directory(t, 100)
	key := []byte(keys[42])
	if n := testing.AllocsPerRun(200, func() { dir.Authenticate(key) }); n != 0 {
		t.Fatalf("Authenticate allocates %.0f times", n)
	}
}

func BenchmarkAuthenticate(b *testing.B) {
	dir, keys := directory(b, 1000)
	key := []byte(keys[500])
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := dir.Authenticate(key); !ok {
			b.Fatal("key not found")
		}
	}
}
