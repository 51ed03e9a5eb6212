package schema

import (
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/loom-gateway/loom/deploy/pgserver/pgtest"
)

// A database that has run 0001 and holds spans takes 0002: its events get
// their span's tenant, and running Migrate again changes nothing.
func TestMigrate_TenantsOnTopOfSpans_BackfillsEventTenants(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool, err := pgxpool.New(ctx, pgtest.Database(t, pgtest.Start(t)))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	all, err := Migrations()
	if err != nil || len(all) < 2 || all[1].Version != 2 || all[1].Name != "tenants" {
		t.Fatalf("migrations = %v, %v; want 0002_tenants second", all, err)
	}
	if err := apply(ctx, pool, all[0]); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if err := EnsurePartitions(ctx, pool, now, now); err != nil {
		t.Fatal(err)
	}
	_, err = pool.Exec(ctx, `
INSERT INTO loom.spans (trace_id, span_id, start_time, name, kind, status_code, tenant_id)
VALUES ('t1', 's', $1, 'n', 'client', 'ok', 'acme'), ('t2', 's', $1, 'n', 'client', 'ok', NULL);
`, now)
	if err == nil {
		_, err = pool.Exec(ctx, `INSERT INTO loom.span_events (trace_id, span_id, span_start_time, seq, time, name)
VALUES ('t1', 's', $1, 0, $1, 'e'), ('t2', 's', $1, 0, $1, 'e')`, now)
	}
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := Migrate(ctx, pool); err != nil {
			t.Fatal(err)
		}
	}
	var acme, null int
	err = pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE tenant_id = 'acme'), count(*) FILTER (WHERE tenant_id IS NULL)
FROM loom.span_events`).Scan(&acme, &null)
	if err != nil || acme != 1 || null != 1 {
		t.Errorf("events: %d of acme, %d without tenant (err %v); want 1 and 1", acme, null, err)
	}
	var n int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM loom.schema_migrations").Scan(&n); err != nil || n != len(all) {
		t.Errorf("%d migrations recorded (err %v), want %d", n, err, len(all))
	}
	for _, check := range []string{
		"SELECT count(*) = 4 FROM pg_tables WHERE schemaname = 'loom' AND tablename IN ('tenants', 'tenant_models', 'api_keys', 'tenant_credentials')",
		"SELECT count(*) = 3 FROM pg_class WHERE relnamespace = 'loom'::regnamespace AND relrowsecurity AND relname IN ('spans', 'span_events', 'span_content')",
		"SELECT count(*) = 3 FROM pg_policies WHERE schemaname = 'loom' AND 'loom_tenant_reader' = ANY(roles) AND cmd = 'SELECT' AND tablename IN ('spans', 'span_events', 'span_content')",
		// tenants, tenant_models, api_keys, tenant_credentials, (0004)
		// tenant_model_deployments and (0005) prices: any change to them
		// reloads the gateways.
		"SELECT count(*) = 6 FROM pg_trigger WHERE tgname LIKE '%_notify' AND NOT tgisinternal",
		"SELECT NOT rolcanlogin FROM pg_roles WHERE rolname = 'loom_tenant_reader'",
		"SELECT pg_has_role(current_user, 'loom_tenant_reader', 'MEMBER')",
	} {
		var ok bool
		if err := pool.QueryRow(ctx, check).Scan(&ok); err != nil || !ok {
			t.Errorf("%s: %v (err %v)", check, ok, err)
		}
	}
}

// Roles belong to the server: databases migrating side by side on one
// server each make or find the reader role, and all succeed.
func TestMigrate_DatabasesOfOneServer_ShareTheReaderRole(t *testing.T) {
	t.Parallel()
	srv := pgtest.Start(t)
	urls := []string{pgtest.Database(t, srv), pgtest.Database(t, srv), pgtest.Database(t, srv)}
	var wg sync.WaitGroup
	errs := make([]error, len(urls))
	for i, url := range urls {
		wg.Go(func() {
			pool, err := pgxpool.New(t.Context(), url)
			if err != nil {
				errs[i] = err
				return
			}
			defer pool.Close()
			errs[i] = Migrate(t.Context(), pool)
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("database %d: %v", i, err)
		}
	}
}
