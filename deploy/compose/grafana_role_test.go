package compose

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/loom-gateway/loom/dashboards/queries"
	"github.com/loom-gateway/loom/deploy/pgserver"
	"github.com/loom-gateway/loom/deploy/pgserver/pgtest"
	"github.com/loom-gateway/loom/deploy/prereq"
	"github.com/loom-gateway/loom/proxy/schema"
)

// grafanaTimeGroup is the bucket macro as the panels write it.
var grafanaTimeGroup = regexp.MustCompile(`\$__timeGroupAlias\(\s*([^,()]+?)\s*,\s*\$__interval\s*\)`)

// TestCompose_GrafanaRoleScript_OnTheMigratedSchema_ReadsTheDashboardTablesOnly
// runs grafana-db-role's psql command, as compose.yaml gives it, against a
// real Postgres with Loom's schema, twice (compose runs it on every up),
// then logs in as the role Grafana's datasource uses.
func TestCompose_GrafanaRoleScript_OnTheMigratedSchema_ReadsTheDashboardTablesOnly(t *testing.T) {
	p := project(t)
	role := service(t, p, "grafana-db-role")
	psql, err := pgserver.FindBin("psql")
	prereq.Check(t, err, pgserver.ErrNotInstalled)

	srv := pgtest.Start(t)
	dbURL := pgtest.Database(t, srv)
	ctx := t.Context()
	admin, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	if err := schema.Migrate(ctx, admin); err != nil {
		t.Fatal(err)
	}

	// The entrypoint, with the mounted script's repository path and this
	// server in place of the compose network's.
	script := bindSource(t, role, "/grafana-role.sql")
	args := slices.Clone([]string(role.Entrypoint))
	if len(args) == 0 || args[0] != "psql" {
		t.Fatalf("grafana-db-role entrypoint %v, want psql", args)
	}
	for i, a := range args {
		if a == "/grafana-role.sql" {
			args[i] = filepath.Join(root, script)
		}
	}
	run := func(password string) {
		t.Helper()
		cmd := exec.CommandContext(ctx, psql, append(args[1:], "-d", dbURL)...)
		cmd.Env = append(os.Environ(), "GRAFANA_PG_PASSWORD="+password, "PGCONNECT_TIMEOUT=10")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("psql %v: %v\n%s", args[1:], err, out)
		}
	}
	run("first0password")
	run("second1password") // idempotent, and the password follows .env

	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(*service(t, p, "grafana").Environment["LOOM_GRAFANA_PG_USER"], "second1password")
	g, err := pgx.Connect(ctx, u.String())
	if err != nil {
		t.Fatalf("log in as grafana: %v", err)
	}
	defer g.Close(ctx)
	for _, table := range []string{"loom.spans", "loom.span_events", "loom.dead_letters"} {
		var n int
		if err := g.QueryRow(ctx, "SELECT count(*) FROM "+table).Scan(&n); err != nil {
			t.Errorf("grafana SELECT %s: %v", table, err)
		}
	}
	denied := func(sql string) {
		t.Helper()
		_, err := g.Exec(ctx, sql)
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "42501" {
			t.Errorf("grafana %q: %v, want permission denied (42501)", sql, err)
		}
	}
	// Every panel runs as grafana, with its macros expanded as Grafana's
	// Postgres datasource does (a bucket is epoch seconds, a numeric,
	// where queries.Expand makes a timestamptz), over a week (the
	// panels' rollup) and an hour (the spans).
	now := time.Now()
	for _, p := range queries.All() {
		for _, r := range []struct{ span, interval time.Duration }{{7 * 24 * time.Hour, 10 * time.Minute}, {time.Hour, time.Minute}} {
			secs := int64(r.interval / time.Second)
			sql := grafanaTimeGroup.ReplaceAllString(p.SQL, fmt.Sprintf(`floor(extract(epoch FROM $1) / %d) * %d AS "time"`, secs, secs))
			rows, err := g.Query(ctx, queries.Expand(sql, now.Add(-r.span), now, r.interval, nil))
			if err == nil {
				rows.Close()
				err = rows.Err()
			}
			if err != nil {
				t.Errorf("grafana: panel %s over %v: %v", p.ID, r.span, err)
			}
		}
	}
	denied("SELECT count(*) FROM loom.span_content") // captured prompts: not the dashboards'
	denied("SELECT count(*) FROM loom.api_keys")
	denied("DELETE FROM loom.spans")
	var bypass, super bool
	if err := admin.QueryRow(ctx, "SELECT rolbypassrls, rolsuper FROM pg_roles WHERE rolname = 'grafana'").Scan(&bypass, &super); err != nil {
		t.Fatal(err)
	}
	if !bypass || super {
		t.Errorf("grafana: bypassrls %v superuser %v, want BYPASSRLS (every tenant's rows) and no superuser", bypass, super)
	}
}
