package tenant

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/loom-gateway/loom/proxy/config"
	"github.com/loom-gateway/loom/proxy/limit"
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
		fmt.Fprintf(&b, "  - id: t%d\n    keys: [{id: k%d, sha256: %s, limits: {requests_per_minute: 1000000000, tokens_per_minute: 1000000000000}}]\n"+
			"    models: [{name: gpt-4o-mini, deployment: oa}]\n    limits: {requests_per_minute: 1000000000, tokens_per_minute: 1000000000000, concurrent_streams: 1000000}\n", i, i, hash)
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
	dir, err := Build(cfg.ResolveTenants(), deps)
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

func TestBuild_KeyRestrictionsExpiryRevocationAndOwnCredentials(t *testing.T) {
	live, liveHash, _ := NewKey()
	narrow, narrowHash, _ := NewKey()
	old, oldHash, _ := NewKey()
	gone, goneHash, _ := NewKey()
	cfg, err := config.Parse([]byte(fmt.Sprintf(`
deployments:
  - {name: oa, provider: openai, base_url: "http://127.0.0.1:1/v1", api_key: sk-shared}
tenants:
  - id: acme
    credentials: [{deployment: oa, api_key: sk-acme-own}]
    models: [{name: a, deployment: oa}, {name: b, deployment: oa}]
    keys:
      - {id: live, sha256: %s}
      - {id: narrow, sha256: %s, models: [b]}
      - {id: old, sha256: %s, expires_at: 2001-01-01T00:00:00Z}
      - {id: gone, sha256: %s, revoked: true}
`, liveHash, narrowHash, oldHash, goneHash)))
	if err != nil {
		t.Fatal(err)
	}
	dep, err := upstream.New(cfg.Deployments[0], cfg.Timeouts, nil)
	if err != nil {
		t.Fatal(err)
	}
	dir, err := Build(cfg.ResolveTenants(), map[string]*upstream.Deployment{"oa": dep})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{old, gone} {
		if _, ok := dir.Authenticate([]byte(k)); ok {
			t.Error("an expired or revoked key authenticated")
		}
	}
	lk, ok := dir.Authenticate([]byte(live))
	if !ok {
		t.Fatal("live key refused")
	}
	nk, ok := dir.Authenticate([]byte(narrow))
	if !ok {
		t.Fatal("restricted key refused")
	}
	if _, ok := nk.Route([]byte("a")); ok {
		t.Error("a restricted key reached a model outside its list")
	}
	if _, ok := lk.Route([]byte("a")); !ok {
		t.Error("an unrestricted key lost a model")
	}
	if got := string(nk.ModelsJSON()); strings.Contains(got, `"a"`) || !strings.Contains(got, `"b"`) {
		t.Errorf("restricted key's /v1/models: %s", got)
	}
	if _, ok := nk.ModelJSON([]byte("a")); ok {
		t.Error("restricted key sees /v1/models/a")
	}
	rt, _ := lk.Route([]byte("b"))
	req := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(req)
	dep.Prepare(req, "/v1/chat/completions", rt.Auth)
	if got := string(req.Header.Peek("Authorization")); got != "Bearer sk-acme-own" {
		t.Errorf("tenant's call carries %q, want its own credential", got)
	}
	if s := fmt.Sprint(rt.Auth); strings.Contains(s, "sk-acme-own") {
		t.Errorf("printing an Auth shows the credential: %s", s)
	}
}

// The per-request tenancy work: find the key by its hash, then check and
// reserve its and its tenant's limits (in memory), and settle. Budget: no
// allocation (pinned here), well under a microsecond (BenchmarkAuthAndLimit).
func TestAuthAndLimit_NoAllocations(t *testing.T) {
	dir, keys := directory(t, 100)
	lim := limit.New(limit.NewMemory(), nil)
	key := []byte(keys[42])
	ctx := context.Background()
	n := testing.AllocsPerRun(500, func() {
		k, _ := dir.Authenticate(key)
		tk, d := lim.Admit(ctx, &k.Limit, &k.Tenant.Limit, 200, true)
		if !d.OK {
			t.Fatal("refused")
		}
		lim.Settle(ctx, tk, 180)
	})
	if n != 0 {
		t.Fatalf("auth + limit check allocates %.0f times per request", n)
	}
}

func BenchmarkAuthAndLimit(b *testing.B) {
	dir, keys := directory(b, 1000)
	lim := limit.New(limit.NewMemory(), nil)
	key := []byte(keys[500])
	ctx := context.Background()
	for _, stream := range []bool{false, true} {
		b.Run(map[bool]string{false: "unary", true: "stream"}[stream], func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				k, ok := dir.Authenticate(key)
				if !ok {
					b.Fatal("key not found")
				}
				tk, d := lim.Admit(ctx, &k.Limit, &k.Tenant.Limit, 200, stream)
				if !d.OK {
					b.Fatal("refused")
				}
				lim.Settle(ctx, tk, 180)
			}
		})
	}
}
