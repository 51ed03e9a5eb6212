package devstack

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/loom-gateway/loom/deploy/freeport"
	"github.com/loom-gateway/loom/deploy/pgserver"
	"github.com/loom-gateway/loom/deploy/pgserver/pgtest"
	"github.com/loom-gateway/loom/deploy/prereq"
	"github.com/loom-gateway/loom/proxy/config"
	"github.com/loom-gateway/loom/proxy/schema"
)

// fakeBin is a bin/ whose binaries Prepare finds but nothing runs.
func fakeBin(t *testing.T) string {
	t.Helper()
	bin := t.TempDir()
	for _, b := range []string{"loom", "mockupstream", "otelcol-loom"} {
		if err := os.WriteFile(filepath.Join(bin, b), nil, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return bin
}

func TestStartPostgres_LocalCluster_KeepsDataAndPortAcrossRuns(t *testing.T) {
	dir := filepath.Join(pgtest.TempDir(t), ".loom")
	port := freePort(t)
	o := Options{Dir: dir, Bin: fakeBin(t), Listen: "127.0.0.1:0", MockAddr: "127.0.0.1:0",
		OTLPAddr: "127.0.0.1:0", HealthAddr: "127.0.0.1:0", PostgresPort: port,
		Getenv: func(string) string { return "" }}
	run := func(sql string) {
		t.Helper()
		p, err := Prepare(o)
		if err != nil {
			t.Fatal(err)
		}
		if p.Postgres == nil || p.Postgres.Port != port || !p.Postgres.Fsync ||
			p.Postgres.LogFile != filepath.Join(dir, "postgres.log") {
			t.Fatalf("plan's Postgres = %+v, want port %d, fsync, log in %s", p.Postgres, port, dir)
		}
		defer startPostgres(t, p)()
		if !strings.Contains(p.DatabaseURL, "127.0.0.1:"+strconv.Itoa(port)) {
			t.Errorf("DatabaseURL = %q, want port %d", p.DatabaseURL, port)
		}
		for _, s := range p.Services {
			if (s.Name == collectorName || s.Name == "loom") && !slices.Contains(s.Env, EnvDatabaseURL+"="+p.DatabaseURL) {
				t.Errorf("%s env = %v, want %s", s.Name, s.Env, EnvDatabaseURL)
			}
		}
		conn, err := pgx.Connect(t.Context(), p.DatabaseURL)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(context.Background())
		if _, err := conn.Exec(t.Context(), sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	run("CREATE TABLE kept (v int); INSERT INTO kept VALUES (42)")
	run("DO $$ BEGIN IF (SELECT v FROM kept) IS DISTINCT FROM 42 THEN RAISE 'lost'; END IF; END $$")

	if os.Geteuid() == 0 {
		// The postgres user must enter .loom; the key stays private.
		for path, want := range map[string]os.FileMode{dir: 0o711, filepath.Join(dir, "demo.key"): 0o600} {
			if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != want {
				t.Errorf("%s: %v, %v; want mode %04o", path, fi.Mode(), err, want)
			}
		}
	}
}

func TestStartPostgres_DatabaseURLSet_StartsNothing(t *testing.T) {
	const url = "postgres://loom:secret@db.example.com:5432/loom"
	p, err := Prepare(Options{Dir: t.TempDir(), Bin: fakeBin(t), Listen: "127.0.0.1:0", MockAddr: "127.0.0.1:0",
		OTLPAddr: "127.0.0.1:0", HealthAddr: "127.0.0.1:0",
		Getenv: func(k string) string { return map[string]string{EnvDatabaseURL: url}[k] }})
	if err != nil {
		t.Fatal(err)
	}
	if p.Postgres != nil {
		t.Errorf("plan runs a local Postgres although %s is set", EnvDatabaseURL)
	}
	stop, err := p.StartPostgres(t.Context())
	if err != nil || stop() != nil {
		t.Fatalf("StartPostgres = %v", err)
	}
	if p.DatabaseURL != url {
		t.Errorf("DatabaseURL = %q", p.DatabaseURL)
	}
	b := p.Banner("dir")
	if strings.Contains(b, "secret") {
		t.Errorf("the banner shows the password:\n%s", b)
	}
	if !strings.Contains(b, `psql "$LOOM_DATABASE_URL" -c`) || !strings.Contains(b, "db.example.com:5432/loom") {
		t.Errorf("banner lacks the psql line from $%s or the database's address:\n%s", EnvDatabaseURL, b)
	}
	for _, s := range p.Services {
		if (s.Name == collectorName || s.Name == "loom") && !slices.Contains(s.Env, EnvDatabaseURL+"="+url) {
			t.Errorf("%s env = %v, want %s", s.Name, s.Env, EnvDatabaseURL)
		}
	}
	if !strings.Contains(b, "open "+p.ConsoleURL+" and log in with the demo key") || !strings.HasSuffix(p.ConsoleURL, "/console/") {
		t.Errorf("banner lacks the console line (%q):\n%s", p.ConsoleURL, b)
	}
	t.Setenv(EnvDatabaseURL, url) // as Loom's environment has it
	cfg, err := config.Load(p.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	if "http://"+cfg.Console.Listen+"/console/" != p.ConsoleURL || cfg.Console.DatabaseURLEnv != EnvDatabaseURL {
		t.Errorf("loom.yaml console = %+v, want %s from %s", cfg.Console, p.ConsoleURL, EnvDatabaseURL)
	}
}

func TestPsqlLine_ShellSeesURLAndQuery(t *testing.T) {
	const url = "postgres://postgres@127.0.0.1:54329/postgres?sslmode=disable"
	out, err := exec.Command("/bin/sh", "-c", psqlLine("echo", url)).Output()
	if err != nil {
		t.Fatal(err)
	}
	if want := url + " -c " + SpansQuery + "\n"; string(out) != want {
		t.Errorf("the shell saw %q, want %q", out, want)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	port, err := freeport.Port()
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// As root in a checkout under a 0700 directory (a clone in /root), the
// postgres user could not reach .loom/pg: the cluster moves to a fallback
// home, one per checkout, instead of failing.
func TestPostgresHome_UnreachableCheckout_UsesFallback(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("only root runs PostgreSQL as another user")
	}
	open := pgtest.TempDir(t) // 0755
	if home, note, err := postgresHome(filepath.Join(open, ".loom"), t.TempDir()); err != nil || home != filepath.Join(open, ".loom") || note != "" {
		t.Fatalf("reachable checkout: home %q note %q err %v", home, note, err)
	}
	closed := filepath.Join(open, "private")
	if err := os.Mkdir(closed, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"loom", "other"} {
		if err := os.MkdirAll(filepath.Join(closed, c, ".loom"), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	fallback := t.TempDir()
	home, note, err := postgresHome(filepath.Join(closed, "loom", ".loom"), fallback)
	if err != nil || filepath.Dir(home) != fallback || !strings.Contains(note, closed) {
		t.Fatalf("unreachable checkout: home %q note %q err %v", home, note, err)
	}
	again, _, _ := postgresHome(filepath.Join(closed, "loom", ".loom"), fallback)
	other, _, _ := postgresHome(filepath.Join(closed, "other", ".loom"), fallback)
	if again != home || other == home {
		t.Fatalf("homes not one per checkout: %q %q %q", home, again, other)
	}
}

func TestStartPostgres_LocalCluster_AsksForAPasswordKeptInA0600File(t *testing.T) {
	dir := filepath.Join(pgtest.TempDir(t), ".loom")
	o := Options{Dir: dir, Bin: fakeBin(t), Listen: "127.0.0.1:0", MockAddr: "127.0.0.1:0",
		OTLPAddr: "127.0.0.1:0", HealthAddr: "127.0.0.1:0", PostgresPort: freePort(t),
		Getenv: func(string) string { return "" }}
	p, err := Prepare(o)
	if err != nil {
		t.Fatal(err)
	}
	defer startPostgres(t, p)()
	passfile := filepath.Join(dir, PasswordFile)
	if fi, err := os.Stat(passfile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("%s: %v, %v; want mode 0600", passfile, fi, err)
	}
	pw, err := PostgresPassword(passfile)
	if err != nil || len(pw) < 32 {
		t.Fatalf("password %q, %v", pw, err)
	}
	u, err := url.Parse(p.DatabaseURL)
	if got, _ := u.User.Password(); err != nil || got != pw {
		t.Fatalf("DatabaseURL carries password %q; want the file's", got)
	}
	for _, s := range p.Services {
		if (s.Name == collectorName || s.Name == "loom") && !slices.Contains(s.Env, EnvDatabaseURL+"="+p.DatabaseURL) {
			t.Errorf("%s is not handed the URL with the password", s.Name)
		}
	}
	// With the password: in. Without it, or with another: refused.
	conn, err := pgx.Connect(t.Context(), p.DatabaseURL)
	if err != nil {
		t.Fatalf("with the password: %v", err)
	}
	conn.Close(context.Background())
	t.Setenv("PGPASSFILE", filepath.Join(t.TempDir(), "none"))
	u.User = url.User("postgres")
	if conn, err := pgx.Connect(t.Context(), u.String()); err == nil {
		conn.Close(context.Background())
		t.Fatal("a connection without the password got in")
	} else if !strings.Contains(err.Error(), "password") {
		t.Errorf("without the password: %v; want refused for the password", err)
	}
	u.User = url.UserPassword("postgres", "guess")
	if conn, err := pgx.Connect(t.Context(), u.String()); err == nil {
		conn.Close(context.Background())
		t.Fatal("a wrong password got in")
	}
	// The banner's psql line works as printed and shows no password.
	b := p.Banner(dir)
	if strings.Contains(b, pw) {
		t.Fatalf("the banner shows the password:\n%s", b)
	}
	psql, err := pgserver.FindBin("psql")
	if err != nil {
		t.Fatal(err)
	}
	line := strings.Replace(psqlLine(psql, p.psqlURL()), SpansQuery, "SELECT 'in'", 1)
	cmd := exec.Command("/bin/sh", "-c", line+" -X -A -t -w")
	cmd.Env = append(os.Environ(), "PGPASSWORD=")
	if out, err := cmd.CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != "in" {
		t.Errorf("the banner's psql line (%s): %v %s", line, err, out)
	}

	// The next run keeps the password.
	p2, err := Prepare(o)
	if err != nil {
		t.Fatal(err)
	}
	if p2.Postgres.Password != pw {
		t.Error("a second run made a new password: the cluster would refuse it")
	}
}

// startPostgres starts the plan's Postgres and returns what stops it (for
// a defer); without PostgreSQL installed it skips (fails under CI=true).
func startPostgres(t *testing.T, p *Plan) func() {
	t.Helper()
	stop, err := p.StartPostgres(t.Context())
	prereq.Check(t, err, pgserver.ErrNotInstalled)
	return func() {
		if err := stop(); err != nil {
			t.Error(err)
		}
	}
}

// The banner's query lists a call that failed over once, as its last
// attempt.
func TestSpansQuery_FailedOverCall_OneRowTheLastAttempt(t *testing.T) {
	db, err := pgxpool.New(t.Context(), pgtest.Database(t, pgtest.Start(t)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	ctx := t.Context()
	now := time.Now().UTC()
	if err := schema.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	if err := schema.EnsurePartitions(ctx, db, now.Add(-time.Hour), now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	// t1 failed over (attempt 1 answered 500); t2 predates routing (no
	// attempt number).
	_, err = db.Exec(ctx, `INSERT INTO loom.spans (trace_id, span_id, parent_span_id, start_time, end_time, name, kind, status_code,
  upstream_attempt, error_type, input_tokens)
VALUES (repeat('1', 32), repeat('a', 16), NULL, $1, $1, 'POST', 'server', 'unset', NULL, NULL, NULL),
       (repeat('1', 32), repeat('b', 16), repeat('a', 16), $1, $1, 'chat', 'client', 'error', 1, '500', NULL),
       (repeat('1', 32), repeat('c', 16), repeat('a', 16), $1, $1, 'chat', 'client', 'unset', 2, NULL, 7),
       (repeat('2', 32), repeat('a', 16), NULL, $1, $1, 'POST', 'server', 'unset', NULL, NULL, NULL),
       (repeat('2', 32), repeat('b', 16), repeat('a', 16), $1, $1, 'chat', 'client', 'unset', NULL, NULL, 3)`, now)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := db.Query(ctx, SpansQuery)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rows.Next() {
		v, err := rows.Values()
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("tokens=%v attempt=%v", v[4], v[len(v)-1]))
	}
	slices.Sort(got)
	if want := []string{"tokens=3 attempt=1", "tokens=7 attempt=2"}; !slices.Equal(got, want) {
		t.Errorf("SpansQuery rows %v, want %v", got, want)
	}
}
