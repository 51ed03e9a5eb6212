package cli_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/loom-gateway/loom/deploy/pgserver/pgtest"
	"github.com/loom-gateway/loom/proxy/cli"
	"github.com/loom-gateway/loom/proxy/logtest"
	"github.com/loom-gateway/loom/proxy/schema"
)

// applied returns how many migrations url's database records and when the
// last was applied.
func applied(t *testing.T, url string) (int, time.Time) {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var ok bool
	if err := conn.QueryRow(t.Context(), "SELECT to_regclass('loom.schema_migrations') IS NOT NULL").Scan(&ok); err != nil || !ok {
		return 0, time.Time{}
	}
	var n int
	var last time.Time
	if err := conn.QueryRow(t.Context(), "SELECT count(*), coalesce(max(applied_at), 'epoch') FROM loom.schema_migrations").Scan(&n, &last); err != nil {
		t.Fatal(err)
	}
	return n, last
}

// Not parallel: the command reads the environment.
func TestMigrate_FreshDatabase_MigratedOnceThenNothingToDo(t *testing.T) {
	url := pgtest.Database(t, pgtest.Start(t))
	t.Setenv(cli.EnvDatabaseURL, url)
	all, err := schema.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	out := ok(t, "", "migrate")
	n, first := applied(t, url)
	if n != len(all) {
		t.Fatalf("after loom migrate: %d migrations recorded, want %d\n%s", n, len(all), out)
	}
	if !strings.Contains(out, "$"+cli.EnvDatabaseURL+": schema up to date") || strings.Contains(out, url) {
		t.Errorf("loom migrate printed %q: want the variable named, never the URL", out)
	}
	// The store commands now work on it.
	ok(t, "", "tenants", "create", "acme")

	ok(t, "", "migrate")
	if n, last := applied(t, url); n != len(all) || !last.Equal(first) {
		t.Errorf("a second loom migrate: %d migrations, last applied %v; want %d, %v (nothing re-applied)", n, last, len(all), first)
	}
	if out := ok(t, "", "tenants", "list"); !strings.Contains(out, "acme") {
		t.Errorf("the second migrate lost the tenant:\n%s", out)
	}
}

// With -config, both databases Loom reads get the schema: the store's and
// the console's.
func TestMigrate_ConfigFile_MigratesTheStoreAndTheConsoleDatabases(t *testing.T) {
	srv := pgtest.Start(t)
	storeURL, consoleURL := pgtest.Database(t, srv), pgtest.Database(t, srv)
	t.Setenv(cli.EnvDatabaseURL, "")
	t.Setenv("LOOM_TEST_STORE_URL", storeURL)
	t.Setenv("LOOM_TEST_CONSOLE_URL", consoleURL)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "loom.yaml")
	if err := os.WriteFile(cfg, []byte(`store: {database_url_env: LOOM_TEST_STORE_URL}
console: {listen: "127.0.0.1:0", database_url_env: LOOM_TEST_CONSOLE_URL}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	out := ok(t, "", "migrate", "-config", cfg)
	all, _ := schema.Migrations()
	for _, url := range []string{storeURL, consoleURL} {
		if n, _ := applied(t, url); n != len(all) {
			t.Errorf("%d migrations recorded, want %d\n%s", n, len(all), out)
		}
	}
	if !strings.Contains(out, "LOOM_TEST_STORE_URL") || !strings.Contains(out, "LOOM_TEST_CONSOLE_URL") {
		t.Errorf("loom migrate printed %q: want both databases named", out)
	}

	none := filepath.Join(dir, "none.yaml")
	if err := os.WriteFile(none, []byte("deployments: []\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := run(t, "", "migrate", "-config", none); err == nil || !strings.Contains(err.Error(), "no database to migrate") {
		t.Errorf("migrate with no database configured: %v, want an error saying so", err)
	}
	t.Setenv("LOOM_TEST_STORE_URL", "")
	if _, _, err := run(t, "", "migrate", "-config", cfg); err == nil || !strings.Contains(err.Error(), "LOOM_TEST_STORE_URL") {
		t.Errorf("migrate with the store's variable unset: %v, want an error naming it", err)
	}
	if _, _, err := run(t, "", "migrate", "extra"); !errors.Is(err, cli.ErrUsage) {
		t.Errorf("migrate with an argument: %v, want ErrUsage", err)
	}
}

// The store commands refuse an unmigrated database, saying what to run,
// and leave it as it was.
func TestTenants_UnmigratedDatabase_RefusedNamingLoomMigrate(t *testing.T) {
	url := pgtest.Database(t, pgtest.Start(t))
	t.Setenv(cli.EnvDatabaseURL, url)
	_, _, err := run(t, "", "tenants", "list")
	if !errors.Is(err, schema.ErrNotMigrated) || !strings.Contains(err.Error(), "loom migrate") {
		t.Errorf("tenants list on an unmigrated database: %v, want ErrNotMigrated naming loom migrate", err)
	}
	if n, _ := applied(t, url); n != 0 {
		t.Errorf("a store command migrated the database (%d migrations): only loom migrate may", n)
	}
}

// serve -migrate brings a fresh store's database up to date and serves;
// without it, serve refuses the database, naming loom migrate.
func TestServe_MigrateFlag_ServesOnAFreshDatabase(t *testing.T) {
	url := pgtest.Database(t, pgtest.Start(t))
	t.Setenv("LOOM_TEST_STORE_URL", url)
	cfg := filepath.Join(t.TempDir(), "loom.yaml")
	if err := os.WriteFile(cfg, []byte(`listen: "127.0.0.1:0"
store: {database_url_env: LOOM_TEST_STORE_URL}
deployments:
  - {name: openai, provider: openai, base_url: "http://127.0.0.1:1/v1", api_key: sk-x}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err := run(t, "", "serve", "-config", cfg)
	if !errors.Is(err, schema.ErrNotMigrated) || !strings.Contains(err.Error(), "loom migrate") {
		t.Fatalf("serve on an unmigrated database: %v, want ErrNotMigrated naming loom migrate", err)
	}

	var log logtest.Buffer
	ctx, cancel := context.WithCancel(t.Context())
	served := make(chan error, 1)
	go func() { served <- cli.Main(ctx, []string{"serve", "-migrate", "-config", cfg}, &log, &log) }()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(log.String(), "loom serving") {
		select {
		case err := <-served:
			cancel()
			t.Fatalf("serve -migrate stopped: %v\n%s", err, log.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("serve -migrate did not start in 30 s:\n%s", log.String())
		}
	}
	cancel()
	if err := <-served; err != nil {
		t.Errorf("serve -migrate: %v\n%s", err, log.String())
	}
	all, _ := schema.Migrations()
	if n, _ := applied(t, url); n != len(all) {
		t.Errorf("after serve -migrate: %d migrations recorded, want %d", n, len(all))
	}
	if !strings.Contains(log.String(), "schema up to date") {
		t.Errorf("serve -migrate logged no migration:\n%s", log.String())
	}
}
