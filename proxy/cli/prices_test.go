package cli_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/loom-gateway/loom/deploy/pgserver/pgtest"
	"github.com/loom-gateway/loom/proxy/cli"
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
