package cli_test

import (
	"crypto/rand"
	"encoding/hex"
	"regexp"
	"strings"
	"testing"

	"github.com/loom-gateway/loom/deploy/pgserver/pgtest"
	"github.com/loom-gateway/loom/proxy/cli"
	"github.com/loom-gateway/loom/proxy/secret"
)

// Not parallel: the commands read the environment.
func TestTenantsBudgets_SetOnTenantAndKey_ListedThenRemoved(t *testing.T) {
	url := pgtest.Database(t, pgtest.Start(t))
	key := make([]byte, secret.KeySize)
	rand.Read(key)
	t.Setenv(cli.EnvDatabaseURL, url)
	t.Setenv(cli.EnvSecretKey, hex.EncodeToString(key))
	ok(t, "", "migrate")
	ok(t, "", "tenants", "create", "acme")
	ok(t, "", "tenants", "models", "acme", "mini=openai")
	ok(t, "", "keys", "create", "-tenant", "acme", "-id", "acme-ci")

	if out := ok(t, "", "tenants", "budgets", "acme", "day=25.00", "month=500@0.9"); !strings.Contains(out, "day=25.00 month=500@0.9") {
		t.Errorf("tenants budgets said %q", out)
	}
	ok(t, "", "tenants", "budgets", "acme", "-key", "acme-ci", "day=2.50")
	if list := ok(t, "", "tenants", "list"); !regexp.MustCompile(`acme .* day=25\.00 month=500@0\.9 +mini=openai`).MatchString(list) {
		t.Errorf("tenants list:\n%s", list)
	}
	if keys := ok(t, "", "keys", "list", "-tenant", "acme"); !strings.Contains(keys, "day=2.50") {
		t.Errorf("keys list:\n%s", keys)
	}
	if _, _, err := run(t, "", "tenants", "budgets", "acme", "week=1"); err == nil || !strings.Contains(err.Error(), "budgets[0].period") {
		t.Errorf("a bad period: %v", err)
	}
	if _, _, err := run(t, "", "tenants", "budgets", "acme", "-key", "nope", "day=1"); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("an unknown key: %v", err)
	}
	ok(t, "", "tenants", "budgets", "acme", "-none")
	if list := ok(t, "", "tenants", "list"); strings.Contains(list, "day=25.00") {
		t.Errorf("budgets still listed after -none:\n%s", list)
	}
}
