package grafana

import (
	"fmt"
	"strings"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/variants"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/grafana/grafana-foundation-sdk/go/stat"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"

	"github.com/loom-gateway/loom/dashboards/promql"
)

// PrometheusDatasourceUID is the uid of the provisioned Prometheus datasource
// (deploy/grafana/provisioning/datasources/prometheus.yaml); the metrics
// dashboard's panels and variables name it. PrometheusDatasourceType is
// Grafana's bundled Prometheus plugin.
const (
	PrometheusDatasourceUID  = "loom-prometheus"
	PrometheusDatasourceType = "prometheus"
)

// PrometheusDatasource is the reference the metrics dashboard's panels,
// targets and variables carry.
func PrometheusDatasource() common.DataSourceRef {
	typ, uid := PrometheusDatasourceType, PrometheusDatasourceUID
	return common.DataSourceRef{Type: &typ, Uid: &uid}
}

// BuildMetrics returns the Prometheus dashboard (promql.Dashboard).
func BuildMetrics() (dashboard.Dashboard, error) {
	b := dashboard.NewDashboardBuilder(promql.Title).
		Uid("loom-"+promql.Dashboard).
		Tags([]string{"loom", "prometheus"}).
		Editable().
		Timezone("browser").
		Time("now-1h", "now").
		Refresh("30s")
	for _, v := range promql.Variables() {
		b = b.WithVariable(promVariable(v))
	}
	for i, p := range promql.Panels() {
		pb, err := promPanel(p, uint32(i+1))
		if err != nil {
			return dashboard.Dashboard{}, err
		}
		b = b.WithPanel(pb)
	}
	d, err := b.Build()
	if err != nil {
		return dashboard.Dashboard{}, fmt.Errorf("build dashboard %s: %w", promql.Dashboard, err)
	}
	clearIntervalSettings(&d)
	return d, nil
}

func promTargets(p promql.Panel) []cog.Builder[variants.Dataquery] {
	var ts []cog.Builder[variants.Dataquery]
	for i, t := range p.Targets {
		q := prometheus.NewDataqueryBuilder().
			RefId(string(rune('A' + i))).
			Datasource(PrometheusDatasource()).
			Expr(t.Expr).
			LegendFormat(t.Legend).
			EditorMode(prometheus.QueryEditorModeCode)
		if strings.Contains(t.Expr, "histogram_quantile") {
			// Loom's histograms carry the trace id as an exemplar: the panel
			// shows the calls behind a slow percentile.
			q = q.Exemplar(true)
		}
		// A stat shows the value at the end of the range, one per series
		// (per currency): an instant query, as series rather than one
		// table whose rows the stat would reduce to the last.
		if p.Kind == promql.Stat {
			q = q.Instant()
		} else {
			q = q.Range()
		}
		q = q.Format(prometheus.PromQueryFormatTimeSeries)
		ts = append(ts, q)
	}
	return ts
}

func promPanel(p promql.Panel, id uint32) (cog.Builder[dashboard.Panel], error) {
	if len(p.Targets) == 0 {
		return nil, fmt.Errorf("panel %s: no expressions", p.ID)
	}
	switch p.Kind {
	case promql.TimeSeries:
		return timeseries.NewPanelBuilder().Id(id).Title(p.Title).Description(p.Description).
			Datasource(PrometheusDatasource()).Targets(promTargets(p)).Unit(p.Unit).
			Legend(common.NewVizLegendOptionsBuilder().DisplayMode(common.LegendDisplayModeList).
				Placement(common.LegendPlacementBottom).ShowLegend(true).Calcs([]string{})).
			Tooltip(common.NewVizTooltipOptionsBuilder().Mode(common.TooltipDisplayModeMulti).Sort(common.SortOrderNone)).
			Height(8).Span(12), nil
	case promql.Stat:
		return stat.NewPanelBuilder().Id(id).Title(p.Title).Description(p.Description).
			Datasource(PrometheusDatasource()).Targets(promTargets(p)).Unit(p.Unit).
			ReduceOptions(common.NewReduceDataOptionsBuilder().Calcs([]string{"lastNotNull"}).Values(false)).
			Orientation(common.VizOrientationAuto).
			Height(8).Span(12), nil
	}
	return nil, fmt.Errorf("panel %s: unknown kind %q", p.ID, p.Kind)
}

func promVariable(v promql.Variable) *dashboard.QueryVariableBuilder {
	all, allValue := "All", "$__all"
	return dashboard.NewQueryVariableBuilder(v.Name).
		Label(v.Label).
		Datasource(PrometheusDatasource()).
		Query(dashboard.StringOrMap{String: &v.Query}).
		Refresh(dashboard.VariableRefreshOnTimeRangeChanged).
		Sort(dashboard.VariableSortAlphabeticalAsc).
		Multi(true).IncludeAll(true).AllValue(promql.AllValue).
		Current(dashboard.VariableOption{
			Text:  dashboard.StringOrArrayOfString{ArrayOfString: []string{all}},
			Value: dashboard.StringOrArrayOfString{ArrayOfString: []string{allValue}},
		})
}
