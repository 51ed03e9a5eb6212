package cli_test

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/loom-gateway/loom/deploy/pgserver/pgtest"
	"github.com/loom-gateway/loom/proxy/cli"
	"github.com/loom-gateway/loom/proxy/secret"
	"github.com/loom-gateway/loom/proxy/store"
	"github.com/loom-gateway/loom/proxy/tenant"
)

// run runs a loom command with stdin and returns what it printed.
func run(t *testing.T, stdin string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errb bytes.Buffer
	err = cli.Run(t.Context(), args, cli.Stdio{In: strings.NewReader(stdin), Out: &out, Err: &errb})
	return out.String(), errb.String(), err
}

// ok runs a command that must succeed and returns its output.
func ok(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	out, errs, err := run(t, stdin, args...)
	if err != nil {
		t.Fatalf("loom %s: %v\n%s", strings.Join(args, " "), err, errs)
	}
	return out + errs
}

// Not parallel: the commands read the environment.
func TestTenantsAndKeys_AgainstTheStore(t *testing.T) {
	url := pgtest.Database(t, pgtest.Start(t))
	key := make([]byte, secret.KeySize)
	rand.Read(key)
	t.Setenv(cli.EnvDatabaseURL, url)
	t.Setenv(cli.EnvSecretKey, hex.EncodeToString(key))
	const credential = "sk-upstream-never-printed"
	var printed strings.Builder
	ok(t, "", "migrate")

	printed.WriteString(ok(t, "", "tenants", "create", "acme", "-rpm", "60", "-capture"))
	printed.WriteString(ok(t, "", "tenants", "create", "-max-bytes", "100", "globex"))
	printed.WriteString(ok(t, "", "tenants", "update", "acme", "-tpm", "1000"))
	printed.WriteString(ok(t, "", "tenants", "models", "acme", "gpt-4o=azure:my-4o", "mini=openai"))
	printed.WriteString(ok(t, credential+"\n", "tenants", "credential", "acme", "openai"))
	created := ok(t, "", "keys", "create", "--tenant", "acme", "--id", "acme-ci", "--models", "mini", "--expires", "720h", "--rpm", "5")
	printed.WriteString(created)
	m := regexp.MustCompile(`key: +(sk-loom-\S+)`).FindStringSubmatch(created)
	if m == nil {
		t.Fatalf("keys create printed no key:\n%s", created)
	}
	apiKey := m[1]
	other := ok(t, "", "keys", "create", "-tenant", "globex")
	printed.WriteString(other)
	list := ok(t, "", "tenants", "list")
	keys := ok(t, "", "keys", "list", "-tenant", "acme")
	printed.WriteString(list + keys)
	if !strings.Contains(list, "gpt-4o=azure:my-4o mini=openai") || !strings.Contains(list, "openai") ||
		!regexp.MustCompile(`acme +true +0 +60 +1000`).MatchString(list) {
		t.Errorf("tenants list:\n%s", list)
	}
	if !strings.Contains(keys, "acme-ci") || !strings.Contains(keys, apiKey[:12]) || strings.Contains(keys, apiKey) {
		t.Errorf("keys list (want the id and prefix, never the key):\n%s", keys)
	}
	printed.WriteString(ok(t, "", "keys", "revoke", "acme-ci"))

	// What the proxy would load.
	box, _ := secret.New(key)
	st, err := store.Open(t.Context(), url, box)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	loaded, err := st.Load(t.Context())
	if err != nil || len(loaded) != 2 {
		t.Fatalf("Load = %+v, %v", loaded, err)
	}
	acme := loaded[0]
	if acme.Limits.RequestsPerMinute != 60 || acme.Limits.TokensPerMinute != 1000 || !acme.Content.Capture ||
		len(acme.Models) != 2 || len(acme.Credentials) != 1 || acme.Credentials[0].APIKey != credential ||
		len(acme.Keys) != 1 || acme.Keys[0].SHA256 != tenant.Hash(apiKey) || !acme.Keys[0].Revoked {
		t.Errorf("acme as loaded: %+v", acme)
	}
	if g := loaded[1]; g.Content.MaxBytes != 100 || len(g.Keys) != 1 || !strings.Contains(other, g.Keys[0].ID) {
		t.Errorf("globex as loaded: %+v", g)
	}

	if strings.Contains(printed.String(), credential) {
		t.Error("a command printed the credential")
	}
	if n := strings.Count(printed.String(), apiKey); n != 1 {
		t.Errorf("the key was printed %d times, want once", n)
	}
	if strings.Contains(printed.String(), url) {
		t.Error("a command printed the database URL")
	}

	_, _, err = run(t, "", "tenants", "create", "acme")
	if !errors.Is(err, store.ErrExists) {
		t.Errorf("creating acme again: %v, want ErrExists", err)
	}
	if _, _, err := run(t, "", "tenants", "credential", "acme", "openai"); err == nil || strings.Contains(err.Error(), credential) {
		t.Errorf("credential with empty stdin: %v", err)
	}
}

func TestTenants_ConfigFileNamesTheStore(t *testing.T) {
	url := pgtest.Database(t, pgtest.Start(t))
	t.Setenv("LOOM_TEST_STORE_URL", url)
	t.Setenv(cli.EnvDatabaseURL, "")
	cfg := filepath.Join(t.TempDir(), "loom.yaml")
	if err := os.WriteFile(cfg, []byte("store:\n  database_url_env: LOOM_TEST_STORE_URL\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ok(t, "", "migrate", "-config", cfg)
	ok(t, "", "tenants", "create", "acme", "-config", cfg)
	if out := ok(t, "", "tenants", "list", "-config", cfg); !strings.Contains(out, "acme") {
		t.Errorf("list:\n%s", out)
	}
	// No key configured: credentials are refused, plainly.
	t.Setenv(cli.EnvSecretKey, "")
	_, _, err := run(t, "x", "tenants", "credential", "acme", "openai", "-config", cfg)
	if !errors.Is(err, store.ErrNoSecretKey) {
		t.Errorf("credential without a key: %v, want ErrNoSecretKey", err)
	}
	if _, _, err := run(t, "", "tenants", "list"); err == nil || !strings.Contains(err.Error(), cli.EnvDatabaseURL) {
		t.Errorf("no database configured: %v", err)
	}
}

func TestUsage_BadCommandLines(t *testing.T) {
	for _, args := range [][]string{
		{"tenants"}, {"tenants", "frob"}, {"tenants", "create"}, {"tenants", "create", "a", "b"},
		{"tenants", "models", "acme"}, {"tenants", "models", "acme", "nodeployment"}, {"keys", "create"},
		{"keys", "list"}, {"keys", "revoke"}, {"keys", "create", "-tenant", "a", "-bogus"},
		{"tenants", "budgets", "acme"}, {"tenants", "budgets", "acme", "day"}, {"tenants", "budgets", "acme", "day=1@x"},
		{"tenants", "budgets", "acme", "-none", "day=1"},
	} {
		if _, _, err := run(t, "", args...); !errors.Is(err, cli.ErrUsage) {
			t.Errorf("loom %s: %v, want ErrUsage", strings.Join(args, " "), err)
		}
	}
}

func TestKeysNewAndHash_StillWork(t *testing.T) {
	out := ok(t, "", "keys", "new")
	m := regexp.MustCompile(`key: +(\S+)\nsha256: ([0-9a-f]{64})`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("keys new:\n%s", out)
	}
	if got := strings.TrimSpace(ok(t, "", "keys", "hash", m[1])); got != m[2] {
		t.Errorf("keys hash = %s, want %s", got, m[2])
	}
	var help bytes.Buffer
	if err := cli.Main(t.Context(), []string{"help"}, &help, &help); err != nil || !strings.Contains(help.String(), "loom tenants create") {
		t.Errorf("help: %v\n%s", err, help.String())
	}
}

func TestTenantsModels_UnknownDeployment_ExitsNonZeroNamingIt(t *testing.T) {
	url := pgtest.Database(t, pgtest.Start(t))
	t.Setenv("LOOM_TEST_STORE_URL", url)
	t.Setenv(cli.EnvDatabaseURL, "")
	cfg := filepath.Join(t.TempDir(), "loom.yaml")
	if err := os.WriteFile(cfg, []byte(`store:
  database_url_env: LOOM_TEST_STORE_URL
deployments: [{name: openai, provider: openai, base_url: "https://api.openai.com/v1", api_key: sk-x}]
`), 0o600); err != nil {
		t.Fatal(err)
	}
	ok(t, "", "migrate", "-config", cfg)
	ok(t, "", "tenants", "create", "acme", "-config", cfg)
	_, _, err := run(t, "", "tenants", "models", "acme", "mini=openai", "big=opnai", "-config", cfg)
	var stderr bytes.Buffer
	if code := cli.ExitCode(err, &stderr); code == 0 || !strings.Contains(stderr.String(), `models[1].deployment: no deployment named "opnai"`) {
		t.Fatalf("models naming an unknown deployment: exit %d, %q; want non-zero naming models[1].deployment", code, stderr.String())
	}
	if out := ok(t, "", "tenants", "list", "-config", cfg); strings.Contains(out, "opnai") {
		t.Errorf("the refused model was stored:\n%s", out)
	}
	ok(t, "", "tenants", "models", "acme", "mini=openai", "-config", cfg)
}
