package cli_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/loom-gateway/loom/deploy/freeport"
	"github.com/loom-gateway/loom/deploy/pgserver/pgtest"
	"github.com/loom-gateway/loom/proxy/cli"
)

// A model set from a file in the configuration's long form (`tenants models
// -file`) is stored whole, listed, and served by `loom serve` from the
// store: its first tier's deployment refuses connections, so the call
// moves on to the next tier's, which answers under its own upstream model.
//
// Not parallel: the commands read the environment.
func TestServe_StoreModelWithSeveralDeployments_FailsOverToTheNextTier(t *testing.T) {
	url := pgtest.Database(t, pgtest.Start(t))
	key := make([]byte, 32)
	rand.Read(key)
	t.Setenv(cli.EnvDatabaseURL, url)
	t.Setenv(cli.EnvSecretKey, hex.EncodeToString(key))
	dir := t.TempDir()
	mock := startMock(t)
	dead, err := freeport.Addr() // nothing listens there
	if err != nil {
		t.Fatal(err)
	}
	listen, err := freeport.Addr()
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "loom.yaml")
	write(t, cfg, fmt.Sprintf(`listen: %q
store: {database_url_env: %s, secret_key_env: %s, poll: 200ms}
deployments:
  - {name: dead, provider: openai, base_url: "http://%s/v1", api_key: sk-upstream}
  - {name: mock, provider: openai, base_url: "http://%s/v1", api_key: sk-upstream}
`, listen, cli.EnvDatabaseURL, cli.EnvSecretKey, dead, mock))
	modelsFile := filepath.Join(dir, "models.yaml")
	write(t, modelsFile, `
- name: gpt-4o-mini
  deployments:
    - {name: dead, weight: 2}
    - {name: mock, priority: 1, upstream_model: mock-mini}
  fallbacks: [gpt-4o]
  routing: {max_attempts: 3, budget: 20s}
- {name: gpt-4o, deployment: mock}
`)

	ok(t, "", "migrate")
	ok(t, "", "tenants", "create", "acme")
	ok(t, "", "tenants", "models", "acme", "-file", modelsFile, "-config", cfg)
	if list := ok(t, "", "tenants", "list"); !strings.Contains(list, "gpt-4o-mini=dead*2,mock:mock-mini@1>gpt-4o") {
		t.Errorf("tenants list does not show the long form:\n%s", list)
	}
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
	resp, err := chat(t, "http://"+listen, m[1], nil, false)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"model":"mock-mini"`) {
		t.Fatalf("a call to the multi-deployment model: %d %s; want 200 from mock as mock-mini", resp.StatusCode, body)
	}
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// A models file is read as strictly as the configuration: a misspelt field
// is refused by name before the store is touched.
func TestTenantsModels_FileWithUnknownField_RefusedNamingIt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "models.yaml")
	write(t, path, "- name: gpt\n  deployments: [{name: openai, wieght: 2}]\n")
	_, _, err := run(t, "", "tenants", "models", "acme", "-file", path)
	if err == nil || !strings.Contains(err.Error(), "wieght") || !strings.Contains(err.Error(), "models.yaml") {
		t.Fatalf("tenants models -file with a misspelt field: %v; want it refused naming the field and the file", err)
	}
	if _, _, err := run(t, "", "tenants", "models", "acme", "-file", path, "gpt=openai"); !errors.Is(err, cli.ErrUsage) {
		t.Errorf("-file with models on the command line too: %v; want ErrUsage", err)
	}
}
