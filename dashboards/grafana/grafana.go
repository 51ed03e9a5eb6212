// Package grafana turns dashboards/queries into Grafana dashboard JSON with
// the foundation SDK's builders. The SQL is never written here: a panel's
// query is its queries.Panel's SQL, verbatim, so Grafana and anything using
// queries.Expand run the same text.
package grafana

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/stat"
	"github.com/grafana/grafana-foundation-sdk/go/table"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"

	"github.com/loom-gateway/loom/dashboards/promql"
	"github.com/loom-gateway/loom/dashboards/queries"
)

// DatasourceUID is the uid the provisioned Postgres datasource
// (deploy/grafana/provisioning/datasources/loom.yaml) has; every panel and variable names it.
const DatasourceUID = "loom-postgres"

// ConsoleURLVariable names the dashboard variable trace-id links go to;
// DefaultConsoleURL is where `make run` serves the console.
const (
	ConsoleURLVariable = "console_url"
	DefaultConsoleURL  = "http://127.0.0.1:8082"
)

// linksCalls reports whether a dashboard has a table of calls to link.
func linksCalls(panels []queries.Panel) bool {
	for _, p := range panels {
		if p.Kind == queries.Table && selectsTraceID(p.SQL) {
			return true
		}
	}
	return false
}

// traceIDColumn is a trace_id among the columns a query selects: one that
// ends a column, not one a condition or a subquery in the select list
// compares (queries.LastAttempt).
var traceIDColumn = regexp.MustCompile(`trace_id\s*(,|$)`)

// selectsTraceID reports whether sql's first select list has a trace_id
// column, which links to the console's view of the call.
func selectsTraceID(sql string) bool {
	selected, _, _ := strings.Cut(sql, "\nFROM ")
	return traceIDColumn.MatchString(selected)
}

// Datasource is the reference every panel, target and variable carries.
func Datasource() common.DataSourceRef {
	typ, uid := DatasourceType, DatasourceUID
	return common.DataSourceRef{Type: &typ, Uid: &uid}
}

// Build returns one dashboard of queries.Dashboards().
func Build(name string) (dashboard.Dashboard, error) {
	b := dashboard.NewDashboardBuilder(queries.Title(name)).
		Uid("loom-"+name).
		Tags([]string{"loom"}).
		Editable().
		Timezone("browser").
		Time("now-6h", "now").
		Refresh("30s")
	for _, v := range queries.Variables(name) {
		b = b.WithVariable(variable(v))
	}
	panels := queries.Of(name)
	if linksCalls(panels) {
		url := DefaultConsoleURL
		b = b.WithVariable(dashboard.NewTextBoxVariableBuilder(ConsoleURLVariable).
			Label("Loom console").
			Description("Where trace ids link to: the console that shows a call's spans and captured content.").
			DefaultValue(dashboard.StringOrMap{String: &url}).
			Current(dashboard.VariableOption{
				Text:  dashboard.StringOrArrayOfString{String: &url},
				Value: dashboard.StringOrArrayOfString{String: &url},
			}))
	}
	if len(panels) == 0 {
		return dashboard.Dashboard{}, fmt.Errorf("dashboard %q: no panels", name)
	}
	for i, p := range panels {
		pb, err := panel(p, uint32(i+1))
		if err != nil {
			return dashboard.Dashboard{}, err
		}
		b = b.WithPanel(pb)
	}
	d, err := b.Build()
	if err != nil {
		return dashboard.Dashboard{}, fmt.Errorf("build dashboard %s: %w", name, err)
	}
	clearIntervalSettings(&d)
	clearTableFooters(&d)
	return d, nil
}

// clearTableFooters drops the footer the SDK's table builder puts in every
// table's options (shown: false). Grafana's table panel has no footer option
// any more (@grafana/schema's table Options; a footer is a field config
// setting now), and a hidden footer is what a table without one shows.
func clearTableFooters(d *dashboard.Dashboard) {
	for _, p := range d.Panels {
		if p.Panel == nil {
			continue
		}
		switch o := p.Panel.Options.(type) {
		case *table.Options:
			o.Footer = nil
		case table.Options:
			o.Footer = nil
			p.Panel.Options = o
		}
	}
}

// clearIntervalSettings drops auto, auto_min and auto_count from every
// variable that is not an interval variable. The SDK's VariableModel sets
// them on every variable it builds, but they belong to interval variables
// alone: Grafana's own schema (@grafana/schema's VariableModel) has none of
// them, and a dashboard that carries one does not type-check against it.
// (Nor does it have definition, a copy of the query that Grafana's editor
// shows in the variables list: the generator does not write one.)
func clearIntervalSettings(d *dashboard.Dashboard) {
	for i := range d.Templating.List {
		v := &d.Templating.List[i]
		if v.Type != dashboard.VariableTypeInterval {
			v.Auto, v.AutoMin, v.AutoCount = nil, nil, nil
		}
	}
}

// JSON is a dashboard as Grafana reads it: indented, with a final newline,
// the same bytes for the same queries. name is one of queries.Dashboards()
// or promql.Dashboard.
func JSON(name string) ([]byte, error) {
	build := func() (dashboard.Dashboard, error) { return Build(name) }
	if name == promql.Dashboard {
		build = BuildMetrics
	}
	d, err := build()
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false) // SQL has < and >: keep it readable
	if err := enc.Encode(d); err != nil {
		return nil, fmt.Errorf("encode dashboard %s: %w", name, err)
	}
	return buf.Bytes(), nil
}

func target(p queries.Panel) *QueryBuilder {
	format := FormatTable
	if p.Kind == queries.TimeSeries {
		format = FormatTimeSeries
	}
	return NewQueryBuilder().RefID("A").Datasource(Datasource()).SQL(p.SQL).Format(format)
}

func panel(p queries.Panel, id uint32) (cog.Builder[dashboard.Panel], error) {
	switch p.Kind {
	case queries.TimeSeries:
		return timeseries.NewPanelBuilder().Id(id).Title(p.Title).
			Datasource(Datasource()).WithTarget(target(p)).Unit(p.Unit).
			Legend(common.NewVizLegendOptionsBuilder().DisplayMode(common.LegendDisplayModeList).
				Placement(common.LegendPlacementBottom).ShowLegend(true).Calcs([]string{})).
			Tooltip(common.NewVizTooltipOptionsBuilder().Mode(common.TooltipDisplayModeMulti).Sort(common.SortOrderNone)).
			Height(8).Span(12), nil
	case queries.Stat:
		return stat.NewPanelBuilder().Id(id).Title(p.Title).
			Datasource(Datasource()).WithTarget(target(p)).Unit(p.Unit).
			ReduceOptions(common.NewReduceDataOptionsBuilder().Calcs([]string{"lastNotNull"}).Values(false)).
			Orientation(common.VizOrientationAuto).
			Height(6).Span(6), nil
	case queries.Table:
		b := table.NewPanelBuilder().Id(id).Title(p.Title).
			Datasource(Datasource()).WithTarget(target(p)).
			Height(10).Span(24)
		if p.Unit != "" {
			b = b.Unit(p.Unit)
		}
		if selectsTraceID(p.SQL) {
			// Each call links to its spans (and captured content) in the
			// console, which reads them with the viewer's own rights.
			b = b.OverrideByName("trace_id", []dashboard.DynamicConfigValue{{Id: "links", Value: []map[string]any{{
				"title":       "Open the call in the Loom console",
				"url":         "${" + ConsoleURLVariable + "}/console/calls/${__value.raw}",
				"targetBlank": true,
			}}}})
		}
		return b, nil
	}
	return nil, fmt.Errorf("panel %s: unknown kind %q", p.ID, p.Kind)
}

func variable(v queries.Variable) *dashboard.QueryVariableBuilder {
	b := dashboard.NewQueryVariableBuilder(v.Name).
		Label(v.Label).
		Datasource(Datasource()).
		Query(dashboard.StringOrMap{String: &v.SQL}).
		Refresh(dashboard.VariableRefreshOnTimeRangeChanged).
		Sort(dashboard.VariableSortAlphabeticalAsc)
	if v.Multi {
		all, allValue := "All", "$__all"
		b = b.Multi(true).IncludeAll(true).AllValue(queries.AllValue).
			Current(dashboard.VariableOption{
				Text:  dashboard.StringOrArrayOfString{ArrayOfString: []string{all}},
				Value: dashboard.StringOrArrayOfString{ArrayOfString: []string{allValue}},
			})
	}
	return b
}

// Names returns every dashboard's name: the Postgres ones
// (queries.Dashboards()), then the Prometheus one (promql.Dashboard).
func Names() []string { return append(queries.Dashboards(), promql.Dashboard) }

// Files returns every dashboard's JSON by file name (<name>.json).
func Files() (map[string][]byte, error) {
	files := make(map[string][]byte)
	for _, name := range Names() {
		b, err := JSON(name)
		if err != nil {
			return nil, err
		}
		files[name+".json"] = b
	}
	return files, nil
}
