// Package promql holds the PromQL of Loom's Prometheus dashboard: live
// request, latency, token, cost and pipeline series from the metrics that
// Loom's ops listener (/metrics) and otelcol-loom's own telemetry (:8888)
// expose. The Postgres dashboards (dashboards/queries) answer what happened
// to each call; this one answers how the fleet is doing right now, and
// shows a fan-out exporter that drops data, which no span in Postgres can.
//
// Expressions are written once here and shipped verbatim by the Grafana
// generator (dashboards/grafana). Every metric and label they name is one of
// the shared metric contract's (Metrics), and the tests parse every
// expression with Prometheus's own parser.
package promql

import (
	"fmt"
	"strings"
)

// Dashboard is the generated file's name (grafana/json/<Dashboard>.json) and,
// prefixed with "loom-", its uid.
const Dashboard = "metrics"

// Title is the dashboard's human title.
const Title = "Loom / Live metrics"

// Kinds of panel.
const (
	TimeSeries = "timeseries"
	Stat       = "stat"
)

// AllValue is the custom all value of the tenant and model variables: a
// regex that matches every value, so All never lists every tenant in the
// query text (Grafana substitutes a custom all value verbatim, and a
// selection as a regex alternation for =~).
const AllValue = ".*"

// Panel is one panel: one expression per line it draws.
type Panel struct {
	ID          string // unique and stable: names the panel in tests
	Title       string
	Description string
	Kind        string // TimeSeries or Stat
	Unit        string // a Grafana unit id
	Targets     []Target
}

// Target is one expression and its legend ({{label}} names a label of the
// result).
type Target struct {
	Expr   string
	Legend string
}

// Variable is a dashboard variable listing a label's values
// (label_values(metric, label)).
type Variable struct {
	Name  string // as used in expressions: $Name
	Label string
	Query string
}

// Variables returns the dashboard's variables in display order. Model lists
// the models of the chosen tenants.
func Variables() []Variable {
	return []Variable{
		{Name: "tenant", Label: "Tenant", Query: "label_values(loom_requests_total, tenant)"},
		{Name: "model", Label: "Model", Query: `label_values(loom_requests_total{tenant=~"$tenant"}, model)`},
	}
}

// Grafana's range variables: $__rate_interval is at least four scrape
// intervals (a rate over less can be empty), $__range the whole time range.
const (
	rateWindow  = "[$__rate_interval]"
	rangeWindow = "[$__range]"
)

// byTenantModel and byTenant select the series of the chosen tenants (and
// models): the metrics that carry those labels.
const (
	byTenantModel = `{tenant=~"$tenant", model=~"$model"}`
	byTenant      = `{tenant=~"$tenant"}`
)

func rate(metric, selector string) string { return "rate(" + metric + selector + rateWindow + ")" }

// quantile is the q-quantile of histogram metric across the selected series,
// kept apart by the by labels. It reads classic buckets (metric_bucket) and,
// when there are none, a native histogram (metric itself): which of the two
// Prometheus stores depends on how it scrapes (native histograms are opt-in
// on the Prometheus side), and the dashboard must work either way.
func quantile(q, metric, selector string, by ...string) string {
	classic := strings.Join(append([]string{"le"}, by...), ", ")
	native := ""
	if len(by) > 0 {
		native = " by (" + strings.Join(by, ", ") + ")"
	}
	return fmt.Sprintf("histogram_quantile(%s, sum by (%s) (%s))\nor\nhistogram_quantile(%s, sum%s (%s))",
		q, classic, rate(metric+"_bucket", selector), q, native, rate(metric, selector))
}

// percentiles is the p50 and p99 lines of a latency histogram.
func percentiles(metric, selector string, by ...string) []Target {
	suffix := ""
	for _, l := range by {
		suffix += " {{" + l + "}}"
	}
	return []Target{
		{Expr: quantile("0.5", metric, selector, by...), Legend: "p50" + suffix},
		{Expr: quantile("0.99", metric, selector, by...), Legend: "p99" + suffix},
	}
}

// Panels returns the dashboard's panels in display order.
func Panels() []Panel {
	requests := "sum(" + rate("loom_requests_total", byTenantModel) + ")"
	return []Panel{
		{ID: "metrics_requests", Title: "Requests/s by status class", Kind: TimeSeries, Unit: "reqps",
			Description: "Calls recorded per second (one per SERVER span), by the answer's status class.",
			Targets: []Target{{
				Expr:   "sum by (status_class) (" + rate("loom_requests_total", byTenantModel) + ")",
				Legend: "{{status_class}}",
			}}},
		{ID: "metrics_error_rate", Title: "Error rate by error.type", Kind: TimeSeries, Unit: "percentunit",
			Description: "The share of all calls that failed, split by the span's error.type.",
			Targets: []Target{{
				Expr:   "sum by (error_type) (" + rate("loom_request_errors_total", byTenantModel) + ")\n/ on () group_left ()\n" + requests,
				Legend: "{{error_type}}",
			}}},
		{ID: "metrics_duration", Title: "Request duration", Kind: TimeSeries, Unit: "s",
			Description: "Whole-call duration as the gateway saw it, p50 and p99.",
			Targets:     percentiles("loom_request_duration_seconds", byTenantModel)},
		{ID: "metrics_ttfc", Title: "Time to first chunk", Kind: TimeSeries, Unit: "s",
			Description: "Streams: from the request to the first chunk the client received, p50 and p99.",
			Targets:     percentiles("loom_time_to_first_chunk_seconds", byTenantModel)},
		{ID: "metrics_overhead", Title: "Loom overhead (all tenants)", Kind: TimeSeries, Unit: "s",
			Description: "Loom's own time per call (the span's loom.overhead): the call minus the time waiting on the upstream. Not split by tenant.",
			Targets:     percentiles("loom_overhead_seconds", "", "operation")},
		{ID: "metrics_tokens", Title: "Tokens/s by kind", Kind: TimeSeries, Unit: "short",
			Description: "Tokens per second as the providers reported them (or Loom estimated them).",
			Targets: []Target{{
				Expr:   "sum by (kind) (" + rate("loom_tokens_total", byTenantModel) + ")",
				Legend: "{{kind}}",
			}}},
		{ID: "metrics_cost_rate", Title: "Cost per hour by model", Kind: TimeSeries, Unit: "short",
			Description: "Spend per hour at the current rate, in each price list's currency.",
			Targets: []Target{{
				Expr:   "3600 * sum by (model, currency) (" + rate("loom_cost_total", byTenantModel) + ")",
				Legend: "{{model}} ({{currency}})",
			}}},
		{ID: "metrics_cost_range", Title: "Cost in the time range", Kind: Stat, Unit: "short",
			Description: "What the chosen tenants and models cost over the dashboard's time range.",
			Targets: []Target{{
				Expr:   "sum by (currency) (increase(loom_cost_total" + byTenantModel + rangeWindow + "))",
				Legend: "{{currency}}",
			}}},
		{ID: "metrics_streams", Title: "Active streams", Kind: TimeSeries, Unit: "short",
			Description: "Streams open now, per Loom instance.",
			Targets:     []Target{{Expr: "sum by (instance) (loom_streams_active)", Legend: "{{instance}}"}}},
		{ID: "metrics_upstream_pool", Title: "Upstream connections", Kind: TimeSeries, Unit: "short",
			Description: "Connections to each deployment in use, and calls waiting for one (a full pool).",
			Targets: []Target{
				{Expr: "sum by (deployment) (loom_upstream_connections_in_use)", Legend: "in use {{deployment}}"},
				{Expr: "sum by (deployment) (loom_upstream_connections_waiting)", Legend: "waiting {{deployment}}"},
			}},
		{ID: "metrics_limit_refusals", Title: "Limit refusals/s", Kind: TimeSeries, Unit: "reqps",
			Description: "Calls refused by a tenant's limits, by limit.",
			Targets: []Target{{
				Expr:   "sum by (limit) (" + rate("loom_limit_refusals_total", byTenant) + ")",
				Legend: "{{limit}}",
			}}},
		{ID: "metrics_span_pipeline", Title: "Span pipeline", Kind: TimeSeries, Unit: "short",
			Description: "Calls shipped to otelcol-loom and dropped per second, and failed exports. Dropped must stay at 0.",
			Targets: []Target{
				{Expr: "sum(" + rate("loom_calls_shipped_total", "") + ")", Legend: "shipped/s"},
				{Expr: "sum by (reason) (" + rate("loom_calls_dropped_total", "") + ")", Legend: "dropped/s {{reason}}"},
				{Expr: "sum(" + rate("loom_span_export_failures_total", "") + ")", Legend: "export failures/s"},
			}},
		{ID: "metrics_spool", Title: "Spool bytes", Kind: TimeSeries, Unit: "bytes",
			Description: "Bytes in each instance's durable spool, waiting for the collector: growth means export is behind.",
			Targets:     []Target{{Expr: "sum by (instance) (loom_spool_bytes)", Legend: "{{instance}}"}}},
		{ID: "metrics_collector_queue", Title: "Collector exporter queue", Kind: TimeSeries, Unit: "short",
			Description: "otelcol-loom's sending queue per exporter (postgres and any fan-out exporter).",
			Targets:     []Target{{Expr: "sum by (exporter) (otelcol_exporter_queue_size)", Legend: "{{exporter}}"}}},
		{ID: "metrics_collector_failures", Title: "Collector send failures/s", Kind: TimeSeries, Unit: "short",
			Description: "Spans an exporter failed to send: a fan-out exporter that drops data shows here.",
			Targets: []Target{{
				Expr:   "sum by (exporter) (" + rate("otelcol_exporter_send_failed_spans_total", "") + ")",
				Legend: "{{exporter}}",
			}}},
		{ID: "metrics_postgres_exporter", Title: "Postgres exporter spans/s", Kind: TimeSeries, Unit: "short",
			Description: "Spans the postgres exporter inserted, skipped as duplicates, and dead-lettered.",
			Targets: []Target{
				{Expr: "sum(" + rate("loom_exporter_spans_inserted_total", "") + ")", Legend: "inserted"},
				{Expr: "sum(" + rate("loom_exporter_spans_duplicates_total", "") + ")", Legend: "duplicates"},
				{Expr: "sum(" + rate("loom_exporter_spans_dead_lettered_total", "") + ")", Legend: "dead-lettered"},
			}},
	}
}

// Metrics is the metric contract the expressions are held to: each metric
// they may name, with the labels it carries. It is the shared contract of
// issue 15 (Loom's /metrics and otelcol-loom's :8888); a histogram's
// _bucket series carries le too. Scrape-time labels (instance, job) are on
// every series.
var Metrics = map[string][]string{
	"loom_requests_total":                 {"tenant", "model", "deployment", "provider", "operation", "status_class"},
	"loom_request_errors_total":           {"tenant", "model", "provider", "error_type"},
	"loom_request_duration_seconds":       {"tenant", "model", "operation"},
	"loom_time_to_first_chunk_seconds":    {"tenant", "model"},
	"loom_overhead_seconds":               {"operation"},
	"loom_tokens_total":                   {"tenant", "model", "kind"},
	"loom_cost_total":                     {"tenant", "model", "currency"},
	"loom_streams_active":                 nil,
	"loom_upstream_connections_in_use":    {"deployment"},
	"loom_upstream_connections_waiting":   {"deployment"},
	"loom_limit_refusals_total":           {"tenant", "limit"},
	"loom_calls_total":                    nil,
	"loom_calls_shipped_total":            nil,
	"loom_calls_dropped_total":            {"reason"},
	"loom_spool_bytes":                    nil,
	"loom_spool_pending":                  nil,
	"loom_spool_full_total":               nil,
	"loom_spool_commit_errors_total":      nil,
	"loom_spool_torn_bytes_total":         nil,
	"loom_span_export_failures_total":     nil,
	"loom_spans_rejected_total":           nil,
	"loom_rejected_unauthenticated_total": nil,
	"loom_upstream_failovers_total":       nil,
	// otelcol-loom's internal telemetry.
	"otelcol_exporter_queue_size":              {"exporter"},
	"otelcol_exporter_send_failed_spans_total": {"exporter"},
	"loom_exporter_spans_inserted_total":       nil,
	"loom_exporter_spans_duplicates_total":     nil,
	"loom_exporter_spans_dead_lettered_total":  nil,
	"loom_exporter_ledger_entries_total":       nil,
}

// Histograms are the metrics of Metrics that are histograms.
var Histograms = []string{"loom_request_duration_seconds", "loom_time_to_first_chunk_seconds", "loom_overhead_seconds"}
