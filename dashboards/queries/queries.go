// Package queries holds the SQL of every Loom dashboard panel, written once
// and read by two consumers: the Grafana generator (dashboards/grafana), which
// ships it verbatim with Grafana's macros, and anything that runs it outside
// Grafana (a console, the tests), through Expand. It must never hold content
// columns (loom.span_content): dashboards read spans only.
//
// # Template variables
//
// $tenant, $model and $provider are multi-value variables with an "All"
// option whose custom all value is the quoted literal '__all__' (AllValue).
// Grafana substitutes a custom all value verbatim and a selection as a quoted,
// comma-separated list, so every filter is written as
//
//	('__all__' IN ($tenant) OR tenant_id IN ($tenant))
//
// which is true for All (NULL tenants included, and no list of every value in
// the query text) and a plain IN otherwise. Write filters with Filter, never
// by hand.
package queries

import "fmt"

// Kinds of panel.
const (
	TimeSeries = "timeseries"
	Stat       = "stat"
	Table      = "table"
)

// Dashboards, by name: the generator writes grafana/json/<name>.json.
const (
	Overview = "overview"
	Tenant   = "tenant"
	Stream   = "streaming"
	Pipeline = "pipeline"
	Calls    = "calls"
)

// AllValue is the custom all value of every multi-value variable, already
// quoted: Grafana inserts it as is.
const AllValue = "'__all__'"

// Panel is one panel's query. ID is unique across all dashboards and stable:
// it names the panel in tests and becomes its Grafana id within its dashboard.
type Panel struct {
	ID        string
	Title     string
	Dashboard string
	Kind      string // TimeSeries, Stat or Table
	Source
	Unit string // a Grafana unit id ("reqps", "ms", "percentunit", ...)
}

// Source is what a panel runs.
type Source struct {
	SQL string // with Grafana's macros and variables
	// Raw is the panel's query over the spans alone: SQL runs it over
	// short ranges, or with a model or provider chosen, and reads the
	// fact Fact (an ID of Facts) otherwise. Both are "" when SQL always
	// reads the spans.
	Raw, Fact string
}

// Variable is a dashboard template variable: a query against the same
// datasource that lists its values.
type Variable struct {
	Name  string // as used in SQL: $Name
	Label string
	SQL   string
	Multi bool // multi-value with an All option (AllValue); else one value
}

// Filter is the condition that keeps rows whose column is among the values of
// variable v, or every row when v is All.
func Filter(column, v string) string {
	return fmt.Sprintf("(%s IN ($%s) OR %s IN ($%s))", AllValue, v, column, v)
}

// providerOfServer filters SERVER spans (which carry no provider) by the
// provider of their last CLIENT child: the attempt that served the call (or
// failed last), so a call that failed over from one provider to another
// counts once, under the one that answered.
func providerOfServer(alias string) string {
	return fmt.Sprintf("(%s IN ($provider) OR (SELECT c.provider FROM loom.spans c WHERE c.trace_id = %s.trace_id AND c.parent_span_id = %s.span_id AND c.kind = 'client' ORDER BY coalesce(c.upstream_attempt, 1) DESC LIMIT 1) IN ($provider))",
		AllValue, alias, alias)
}

// LastAttempt is the condition that keeps a CLIENT span (alias) only when it
// is its call's last upstream attempt: a call that moved between
// deployments has one CLIENT span per attempt (loom.upstream.attempt, from
// 1; spans from before routing have none and count as 1), and only the
// highest served it or failed last. Every query that counts calls from
// CLIENT spans, or joins a SERVER span to its CLIENT child, uses it so that
// a failed-over call counts once.
//
// The query must keep alias, or its SERVER parent, inside the dashboard's
// time range: the later attempts are looked for between the range's start
// and an hour past its end (CallWindow), so that Postgres reads the range's
// partitions by index instead of every CLIENT span in the store (a later
// attempt starts after the earlier one, and a call's attempts all fit in
// its deadline, far under an hour).
func LastAttempt(alias string) string { return lastAttempt(alias, "$__timeFrom()", "$__timeTo()") }

// lastAttempt is LastAttempt for a range [lo, hi] of SQL expressions.
func lastAttempt(alias, lo, hi string) string {
	return fmt.Sprintf("NOT EXISTS (SELECT 1 FROM loom.spans l WHERE l.trace_id = %[1]s.trace_id AND l.parent_span_id = %[1]s.parent_span_id\n"+
		"    AND l.kind = 'client' AND coalesce(l.upstream_attempt, 1) > coalesce(%[1]s.upstream_attempt, 1)\n"+
		"    AND l.start_time BETWEEN %[3]s AND (%[4]s)::timestamptz + %[2]s)", alias, CallWindow, lo, hi)
}

// CallWindow bounds how long one call's spans can spread (its SERVER span
// and every upstream attempt): joins between a call's spans bound the other
// side's start_time by it, which lets Postgres prune partitions and use
// the (kind, start_time) index. Loom's deadlines end every call well within
// it.
const CallWindow = "interval '1 hour'"

// Variables returns the variables a dashboard uses, in display order.
func Variables(dashboard string) []Variable {
	tenant := Variable{Name: "tenant", Label: "Tenant", Multi: true,
		SQL: "SELECT DISTINCT tenant_id FROM loom.spans WHERE tenant_id IS NOT NULL AND $__timeFilter(start_time) ORDER BY 1"}
	model := Variable{Name: "model", Label: "Model", Multi: true,
		SQL: "SELECT DISTINCT request_model FROM loom.spans WHERE request_model IS NOT NULL AND $__timeFilter(start_time) ORDER BY 1"}
	provider := Variable{Name: "provider", Label: "Provider", Multi: true,
		SQL: "SELECT DISTINCT provider FROM loom.spans WHERE provider IS NOT NULL AND $__timeFilter(start_time) ORDER BY 1"}
	switch dashboard {
	case Overview, Stream, Calls:
		return []Variable{tenant, model, provider}
	case Tenant:
		tenant.Multi = false
		return []Variable{tenant, model}
	default:
		return nil
	}
}

// Dashboards returns every dashboard name, in a stable order.
func Dashboards() []string { return []string{Overview, Tenant, Stream, Pipeline, Calls} }

// Title is a dashboard's human title.
func Title(dashboard string) string {
	switch dashboard {
	case Overview:
		return "Loom / Overview"
	case Tenant:
		return "Loom / Tenant"
	case Stream:
		return "Loom / Streaming"
	case Pipeline:
		return "Loom / Pipeline health"
	case Calls:
		return "Loom / Calls"
	}
	return dashboard
}

// Of returns the panels of one dashboard, in order.
func Of(dashboard string) []Panel {
	var ps []Panel
	for _, p := range All() {
		if p.Dashboard == dashboard {
			ps = append(ps, p)
		}
	}
	return ps
}

// ByID returns the panel with that id.
func ByID(id string) (Panel, bool) {
	for _, p := range All() {
		if p.ID == id {
			return p, true
		}
	}
	return Panel{}, false
}
