package cli_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	stdjson "encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

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
	t.Setenv(cli.EnvActor, "ops-alice")
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
	printed.WriteString(ok(t, "", "keys", "revoke", "acme-ci", "-actor", "bob"))

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

	// Every change above is in the audit log, as its operator's, and
	// nothing secret is: not in the log's output, not in the ledger.
	globexKey := regexp.MustCompile(`id: +(\S+)`).FindStringSubmatch(other)[1]
	want := []string{"operator:ops-alice tenant.create acme", "operator:ops-alice tenant.create globex",
		"operator:ops-alice tenant.update acme", "operator:ops-alice models.set acme/models",
		"operator:ops-alice credential.set acme/credentials/openai", "operator:ops-alice key.create acme/keys/acme-ci",
		"operator:ops-alice key.create globex/keys/" + globexKey, "operator:bob key.revoke acme/keys/acme-ci"}
	out := ok(t, "", "audit", "log", "-json")
	got := auditLines(t, out)
	if !slices.Equal(got, want) {
		t.Errorf("audit log, oldest first:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if text := ok(t, "", "audit", "log", "-tenant", "globex"); strings.Count(text, "before:") != 2 || strings.Contains(text, "acme") {
		t.Errorf("audit log -tenant globex:\n%s", text)
	}
	ledger := ledgerDump(t, url)
	for what, s := range map[string]string{"credential": credential, "key": apiKey, "random part of the key": apiKey[12:],
		"key hash": tenant.Hash(apiKey), "encryption key": hex.EncodeToString(key)} {
		if strings.Contains(out, s) || strings.Contains(ledger, s) {
			t.Errorf("the audit log or the ledger holds the %s", what)
		}
	}
	if !strings.Contains(out, `"api_key":"[redacted]"`) {
		t.Errorf("the credential's entry does not say it was set, redacted:\n%s", out)
	}
}

// auditLines reads `audit log -json` as "actor action target" lines,
// oldest first.
func auditLines(t *testing.T, out string) []string {
	t.Helper()
	var lines []string
	for line := range strings.Lines(out) {
		var e struct {
			ActorKind string `json:"actor_kind"`
			ActorID   string `json:"actor_id"`
			RequestID string `json:"request_id"`
			Action    string `json:"action"`
			Target    string `json:"target"`
		}
		if err := stdjson.Unmarshal([]byte(line), &e); err != nil || e.RequestID == "" {
			t.Fatalf("audit log -json line %q: %v (or no request id)", line, err)
		}
		lines = append(lines, e.ActorKind+":"+e.ActorID+" "+e.Action+" "+e.Target)
	}
	slices.Reverse(lines)
	return lines
}

// ledgerDump is every ledger table's rows as JSON, and each entry's
// canonical bytes raw (row_to_json writes bytea in hex, past which a scan
// for a plaintext would read).
func ledgerDump(t *testing.T, url string) string {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var dump string
	err = conn.QueryRow(t.Context(), `SELECT coalesce(string_agg(row_to_json(e)::text, E'\n'), '') FROM loom.ledger_entries e`).Scan(&dump)
	if err != nil {
		t.Fatal(err)
	}
	rows, _ := conn.Query(t.Context(), `SELECT canonical FROM loom.ledger_entries`)
	canon, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	if err != nil || len(canon) == 0 {
		t.Fatalf("ledger entries: %d, %v", len(canon), err)
	}
	for _, c := range canon {
		dump += string(c)
	}
	return dump
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
