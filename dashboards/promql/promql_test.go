package promql_test

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/promql/parser"

	"github.com/loom-gateway/loom/dashboards/promql"
)

// promParser is Prometheus's own PromQL parser, with the default (non-experimental) functions: what a
// stock Prometheus accepts.
var promParser = parser.NewParser(parser.Options{})

// grafanaValues are what Grafana puts in place of the dashboard's variables before Prometheus sees a
// query: each case is one way a viewer can set them (All is the custom all value; a selection of several
// becomes a regex alternation).
var grafanaValues = []struct {
	name string
	vars map[string]string
}{
	{name: "all", vars: map[string]string{"tenant": promql.AllValue, "model": promql.AllValue}},
	// Grafana escapes regex metacharacters in a selected value, and the backslash again for the string:
	// gpt-4.1 becomes gpt-4\\.1 in the query text.
	{name: "selection", vars: map[string]string{"tenant": "(acme|globex)", "model": `(gpt-4o-mini|gpt-4\\.1)`}},
}

// expand substitutes Grafana's variables in expr as Grafana would for this range and values.
func expand(expr string, vars map[string]string) string {
	r := strings.NewReplacer("$__rate_interval", "1m", "$__range", "6h", "$__interval", "15s")
	expr = r.Replace(expr)
	for name, v := range vars {
		expr = strings.ReplaceAll(expr, "$"+name, v)
	}
	return expr
}

// Every expression parses with Prometheus's own parser, under every way the variables can be set, to an
// instant vector (what a time series or stat panel draws), and names no variable the dashboard lacks.
func TestPanels_EveryExpressionParses(t *testing.T) {
	for _, p := range promql.Panels() {
		for i, tg := range p.Targets {
			for _, gv := range grafanaValues {
				src := expand(tg.Expr, gv.vars)
				if strings.Contains(src, "$") {
					t.Errorf("%s target %d: a variable the dashboard does not have: %s", p.ID, i, src)
					continue
				}
				e, err := promParser.ParseExpr(src)
				if err != nil {
					t.Errorf("%s target %d (%s): %v\n%s", p.ID, i, gv.name, err, src)
					continue
				}
				if e.Type() != parser.ValueTypeVector {
					t.Errorf("%s target %d: %s, want an instant vector", p.ID, i, e.Type())
				}
			}
		}
	}
	for _, v := range promql.Variables() {
		inner, ok := strings.CutPrefix(v.Query, "label_values(")
		if !ok || !strings.HasSuffix(inner, ")") {
			t.Errorf("variable %s: %q is not label_values(selector, label)", v.Name, v.Query)
			continue
		}
		sel, label, _ := strings.Cut(strings.TrimSuffix(inner, ")"), ", ")
		e, err := promParser.ParseExpr(expand(sel, grafanaValues[0].vars))
		if err != nil {
			t.Errorf("variable %s: %v", v.Name, err)
			continue
		}
		checkSelectors(t, "variable "+v.Name, e)
		if name := metricOf(e); !slices.Contains(promql.Metrics[name], label) {
			t.Errorf("variable %s lists label %q, which %s does not carry", v.Name, label, name)
		}
	}
}

// Every metric an expression reads is in the shared contract, and every label it matches, groups by or
// shows in a legend is one that metric carries: a renamed metric or label fails here, not as an empty
// panel in front of a user.
func TestPanels_NameOnlyContractMetricsAndLabels(t *testing.T) {
	legendLabel := regexp.MustCompile(`\{\{\s*(\w+)\s*\}\}`)
	ids := map[string]bool{}
	for _, p := range promql.Panels() {
		if ids[p.ID] {
			t.Errorf("panel id %s twice", p.ID)
		}
		ids[p.ID] = true
		if p.Kind != promql.TimeSeries && p.Kind != promql.Stat {
			t.Errorf("%s: kind %q", p.ID, p.Kind)
		}
		for i, tg := range p.Targets {
			e, err := promParser.ParseExpr(expand(tg.Expr, grafanaValues[0].vars))
			if err != nil {
				t.Errorf("%s target %d: %v", p.ID, i, err)
				continue
			}
			what := p.ID + " target " + string(rune('A'+i))
			checkSelectors(t, what, e)
			grouped := map[string]bool{}
			parser.Inspect(e, func(n parser.Node, path []parser.Node) error {
				agg, ok := n.(*parser.AggregateExpr)
				if !ok {
					return nil
				}
				carried := labelsUnder(agg.Expr)
				for _, l := range agg.Grouping {
					grouped[l] = true
					if !carried[l] {
						t.Errorf("%s: groups by %q, which no series under it carries", what, l)
					}
				}
				return nil
			})
			for _, m := range legendLabel.FindAllStringSubmatch(tg.Legend, -1) {
				if !grouped[m[1]] {
					t.Errorf("%s: legend shows {{%s}}, which the expression does not keep (by (...))", what, m[1])
				}
			}
		}
	}
}

// The contract's histograms are read both ways Prometheus may store them, so a quantile panel works
// whether the scrape keeps classic buckets or native histograms.
func TestPanels_QuantilesReadClassicAndNativeHistograms(t *testing.T) {
	for _, p := range promql.Panels() {
		for i, tg := range p.Targets {
			if !strings.Contains(tg.Expr, "histogram_quantile") {
				continue
			}
			e, err := promParser.ParseExpr(expand(tg.Expr, grafanaValues[0].vars))
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
				if vs, ok := n.(*parser.VectorSelector); ok {
					names = append(names, vs.Name)
				}
				return nil
			})
			var base string
			for _, n := range names {
				if b, ok := strings.CutSuffix(n, "_bucket"); ok {
					base = b
				}
			}
			if base == "" || !slices.Contains(names, base) || !slices.Contains(promql.Histograms, base) {
				t.Errorf("%s target %d reads %v: want a contract histogram's _bucket series and the histogram itself", p.ID, i, names)
			}
		}
	}
}

// scrapeLabels are on every series Prometheus stores.
var scrapeLabels = []string{"instance", "job"}

// labels returns the labels a series of metric carries (a histogram's _bucket: le too), and whether
// metric is in the contract.
func labels(metric string) ([]string, bool) {
	if base, ok := strings.CutSuffix(metric, "_bucket"); ok && slices.Contains(promql.Histograms, base) {
		return append(append([]string{"le"}, promql.Metrics[base]...), scrapeLabels...), true
	}
	ls, ok := promql.Metrics[metric]
	return append(slices.Clone(ls), scrapeLabels...), ok
}

// errorer is the part of *testing.T that checkSelectors reports through.
type errorer interface {
	Helper()
	Errorf(format string, args ...any)
}

// checkSelectors reports each selector of e whose metric is not in the contract or that matches on a
// label the metric does not carry.
func checkSelectors(t errorer, what string, e parser.Expr) {
	t.Helper()
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		ls, known := labels(vs.Name)
		if !known {
			t.Errorf("%s: metric %q is not in the shared contract", what, vs.Name)
			return nil
		}
		for _, m := range vs.LabelMatchers {
			if m.Name != "__name__" && !slices.Contains(ls, m.Name) {
				t.Errorf("%s: %s has no label %q (it carries %v)", what, vs.Name, m.Name, ls)
			}
		}
		return nil
	})
}

// labelsUnder is every label some series selected under e carries.
func labelsUnder(e parser.Expr) map[string]bool {
	out := map[string]bool{}
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			ls, _ := labels(vs.Name)
			for _, l := range ls {
				out[l] = true
			}
		}
		return nil
	})
	return out
}

// metricOf is the metric name of a selector expression.
func metricOf(e parser.Expr) string {
	if vs, ok := e.(*parser.VectorSelector); ok {
		return vs.Name
	}
	return ""
}

// The contract check itself catches what it is for: a metric outside the contract, a label the metric
// lacks, and an expression that does not parse.
func TestContractCheck_CatchesMisnamedMetricsAndLabels(t *testing.T) {
	bad := []struct{ expr, want string }{
		{`sum(rate(loom_request_total[1m]))`, "not in the shared contract"},
		{`sum(rate(loom_overhead_seconds_bucket{tenant=~".*"}[1m]))`, `has no label "tenant"`},
	}
	for _, b := range bad {
		e, err := promParser.ParseExpr(b.expr)
		if err != nil {
			t.Fatal(err)
		}
		rec := &recorder{}
		checkSelectors(rec, "expr", e)
		if !slices.ContainsFunc(rec.errs, func(s string) bool { return strings.Contains(s, b.want) }) {
			t.Errorf("%s: errors %q, want one with %q", b.expr, rec.errs, b.want)
		}
	}
	if _, err := promParser.ParseExpr(`sum by (le) (rate(loom_request_duration_seconds_bucket[$__rate_interval]))`); err == nil {
		t.Error("an unexpanded Grafana variable parsed: the parse check would not see unsubstituted variables")
	}
}

// recorder collects what checkSelectors reports.
type recorder struct{ errs []string }

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}
