package cli_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/loom-gateway/loom/deploy/freeport"
	"github.com/loom-gateway/loom/deploy/pgserver/pgtest"
	"github.com/loom-gateway/loom/proxy/cli"
	"github.com/loom-gateway/loom/proxy/price"
	"github.com/loom-gateway/loom/proxy/store"
)

// Not parallel: the commands read the environment.
func TestPrices_AddListDelete_AgainstTheStore(t *testing.T) {
	t.Setenv(cli.EnvDatabaseURL, pgtest.Database(t, pgtest.Start(t)))
	t.Setenv(cli.EnvSecretKey, "")
	ok(t, "", "migrate")
	out := ok(t, "", "prices", "add", "gpt-4o", "-from", "2025-01-01", "-input", "2.50", "-cached-input", "1.25", "-output", "10")
	if !strings.Contains(out, "price gpt-4o:2025-01-01T00:00:00Z added") {
		t.Fatalf("add printed %q", out)
	}
	ok(t, "", "prices", "add", "o3", "-id", "o3-later", "-deployment", "east", "-from", "2999-01-01", "-input", "2", "-output", "8", "-reasoning", "12")
	list := ok(t, "", "prices", "list")
	for _, want := range []string{"gpt-4o:2025-01-01T00:00:00Z", "2.5", "1.25", "o3-later", "east", "2999-01-01T00:00:00Z", "12"} {
		if !strings.Contains(list, want) {
			t.Errorf("list lacks %q:\n%s", want, list)
		}
	}
	if _, _, err := run(t, "", "prices", "delete", "gpt-4o:2025-01-01T00:00:00Z"); !errors.Is(err, store.ErrPriceInForce) {
		t.Errorf("deleting an entry in force: %v, want ErrPriceInForce", err)
	}
	ok(t, "", "prices", "delete", "o3-later")
	if _, _, err := run(t, "", "prices", "add", "m", "-from", "2025-01-01", "-input", "1.0000001", "-output", "1"); err == nil ||
		!strings.Contains(err.Error(), "-input") {
		t.Errorf("a price with seven places: %v, want an error naming -input", err)
	}
	if _, _, err := run(t, "", "prices", "add", "m", "-input", "1", "-output", "1"); err == nil || !strings.Contains(err.Error(), "-from") {
		t.Errorf("no -from: %v", err)
	}
}

// `loom serve` prices calls with the file's prices and the store's
// together, and picks up a price added to the store (`loom prices add`)
// the way it picks up tenant changes: the next call is priced by it.
//
// Not parallel: the commands read the environment.
func TestServe_FilePricesAndStorePrices_NewStorePriceAppliesToLaterCalls(t *testing.T) {
	url := pgtest.Database(t, pgtest.Start(t))
	key := make([]byte, 32)
	rand.Read(key)
	t.Setenv(cli.EnvDatabaseURL, url)
	t.Setenv(cli.EnvSecretKey, hex.EncodeToString(key))
	mock := startMock(t)
	listen, err := freeport.Addr()
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(t.TempDir(), "loom.yaml")
	write(t, cfg, fmt.Sprintf(`listen: %q
store: {database_url_env: %s, secret_key_env: %s, poll: 200ms}
deployments:
  - {name: mock, provider: openai, base_url: "http://%s/v1", api_key: sk-upstream}
prices:
  - {id: file-mini, model: gpt-4o-mini, effective_from: 2020-01-01, input: "1", output: "2"}
`, listen, cli.EnvDatabaseURL, cli.EnvSecretKey, mock))
	ok(t, "", "migrate")
	ok(t, "", "tenants", "create", "acme")
	ok(t, "", "tenants", "models", "acme", "gpt-4o-mini=mock")
	m := regexp.MustCompile(`key: +(sk-loom-\S+)`).FindStringSubmatch(ok(t, "", "keys", "create", "-tenant", "acme"))
	if m == nil {
		t.Fatal("keys create printed no key")
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- cli.Main(ctx, []string{"serve", "-config", cfg}, io.Discard, io.Discard) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("loom serve: %v", err)
		}
	})
	eventually(t, "loom serving the store's key", func() bool { s, _ := models(t, listen, m[1]); return s == 200 })
	cost := func() price.Amount {
		t.Helper()
		resp, err := chat(t, "http://"+listen, m[1], nil, false)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		io.Copy(io.Discard, resp.Body)
		a, err := price.ParseAmount(resp.Header.Get("X-Loom-Cost"))
		if resp.StatusCode != 200 || err != nil || resp.Header.Get("X-Loom-Cost-Currency") != "USD" {
			t.Fatalf("status %d, X-Loom-Cost %q (%v) %q", resp.StatusCode, resp.Header.Get("X-Loom-Cost"), err,
				resp.Header.Get("X-Loom-Cost-Currency"))
		}
		return a
	}
	first := cost()
	if first <= 0 {
		t.Fatalf("cost %s at the file's price", first)
	}
	// The same call (same prompt, same usage) at 100 times the price.
	ok(t, "", "prices", "add", "gpt-4o-mini", "-id", "store-mini", "-from", time.Now().UTC().Format(time.RFC3339), "-input", "100", "-output", "200")
	eventually(t, "the store's price applied", func() bool { return cost() == 100*first })
}
