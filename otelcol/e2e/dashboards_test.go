package e2e_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/loom-gateway/loom/dashboards/queries"
	"github.com/loom-gateway/loom/deploy/pgserver/pgtest"
)

// dashboardPrices prices acme's model (gpt-4o-mini) at 1 per million input
// tokens and 2 per million output tokens; globex's model has no price.
const dashboardPrices = `prices:
  - {model: gpt-4o-mini, effective_from: 2020-01-01, input: "1", output: "2"}
`

// Every dashboard panel, run over what the real pipeline stored (calls
// through Loom, spans through otelcol-loom into Postgres), returns the
// numbers the run produced: each panel's counts, token sums and statuses
// equal what the clients made and the mock sent (checkPanelValues).
func TestDashboards_PanelsOverTheRealPipeline(t *testing.T) {
	pg := pgtest.Start(t)
	dbURL := pgtest.Database(t, pg)
	col := startCollector(t, dbURL)
	g := startGatewayOpts(t, col.grpc, gatewayOptions{prices: dashboardPrices})
	calls := plan(200)
	g.run(t, calls, 8, nil)
	g.flush(60 * time.Second)
	db := connect(t, dbURL)
	checkNothingLost(t, db, g.tracer.InstanceID(), int64(len(calls)), 60*time.Second)

	// What the mock sent, per tenant.
	tenantOf := map[string]string{}
	for _, p := range calls {
		tenantOf[p.tag()] = p.tenant
	}
	type sums struct{ calls, in, out int64 }
	want := map[string]*sums{"": {}, "acme": {}, "globex": {}}
	for _, r := range g.mock.Requests() {
		for _, k := range []string{"", tenantOf[r.Header["x-mock-tag"]]} {
			want[k].calls++
			if r.UsageSent != nil {
				want[k].in += int64(r.UsageSent.PromptTokens)
				want[k].out += int64(r.UsageSent.CompletionTokens)
			}
		}
	}
	from, to := time.Now().Add(-time.Hour), time.Now().Add(time.Minute)
	ctx := context.Background()
	for _, p := range queries.All() {
		vars := map[string][]string{"tenant": {"acme"}}
		if p.Dashboard != queries.Tenant {
			vars = nil
		}
		rows, err := db.Query(ctx, queries.Expand(p.SQL, from, to, time.Minute, vars))
		if err != nil {
			t.Fatalf("panel %s: %v", p.ID, err)
		}
		n := 0
		for rows.Next() {
			n++
		}
		if err := rows.Err(); err != nil {
			t.Fatalf("panel %s: %v", p.ID, err)
		}
		rows.Close()
		t.Logf("panel %-28s %d rows", p.ID, n)
	}
	tokens, _ := queries.ByID("overview_tokens_by")
	for tenant, w := range want {
		var vars map[string][]string
		if tenant != "" {
			vars = map[string][]string{"tenant": {tenant}}
		}
		var got sums
		sql := "SELECT coalesce(sum(calls), 0), coalesce(sum(input_tokens), 0), coalesce(sum(output_tokens), 0) FROM (" +
			queries.Expand(tokens.SQL, from, to, time.Minute, vars) + ") p"
		if err := db.QueryRow(ctx, sql).Scan(&got.calls, &got.in, &got.out); err != nil {
			t.Fatal(err)
		}
		if got != *w {
			t.Errorf("tokens panel for %s: %d calls, %d in, %d out; the mock sent %d calls, %d in, %d out",
				strings.TrimSpace(tenant+" (all if empty)"), got.calls, got.in, got.out, w.calls, w.in, w.out)
		}
	}
	totals := panelTotals{calls: int64(len(calls)), in: want[""].in, out: want[""].out,
		acmeCalls: want["acme"].calls, acmeIn: want["acme"].in, acmeOut: want["acme"].out,
		acmeSpendMicro: want["acme"].in + 2*want["acme"].out,
		byKind:         map[kind]int64{}, instance: g.tracer.InstanceID()}
	for _, p := range calls {
		totals.byKind[p.kind]++
	}
	checkPanelValues(t, db, totals, from, to)
	// Nothing was lost, so the lost-records panel must say so.
	gap, ok := queries.ByID("pipeline_seq_gaps")
	if !ok {
		t.Fatal("no pipeline_seq_gaps panel")
	}
	var missing int64
	sql := "SELECT coalesce(sum(missing), 0) FROM (" + queries.Expand(gap.SQL, from, to, time.Minute, nil) + ") p"
	if err := db.QueryRow(ctx, sql).Scan(&missing); err != nil || missing != 0 {
		t.Errorf("the sequence-gap panel reports %d lost records (%v)", missing, err)
	}
}
