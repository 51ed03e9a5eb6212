package grafana_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"

	"github.com/loom-gateway/loom/dashboards/grafana"
	"github.com/loom-gateway/loom/dashboards/promql"
	"github.com/loom-gateway/loom/dashboards/queries"
)

const dir = "json"

func TestJSON_Committed_MatchesGenerated(t *testing.T) {
	files, err := grafana.Files()
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range files {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Errorf("%s: %v: run `make dashboards` and commit the result", name, err)
			continue
		}
		if string(got) != string(want) {
			t.Errorf("%s is not what the generator writes: run `make dashboards` and commit the result", name)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if _, ok := files[e.Name()]; !ok {
			t.Errorf("%s: no dashboard generates it: delete it, or run `make dashboards`", e.Name())
		}
	}
}

func TestJSON_Twice_SameBytes(t *testing.T) {
	for _, name := range grafana.Names() {
		a, err := grafana.JSON(name)
		if err != nil {
			t.Fatal(err)
		}
		b, err := grafana.JSON(name)
		if err != nil {
			t.Fatal(err)
		}
		if string(a) != string(b) {
			t.Errorf("%s: two runs differ", name)
		}
	}
}

func TestJSON_LoadsIntoSDK_EveryPanelHasDatasourceAndQuery(t *testing.T) {
	grafana.Register()
	for _, name := range queries.Dashboards() {
		t.Run(name, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join(dir, name+".json"))
			if err != nil {
				t.Fatal(err)
			}
			var d dashboard.Dashboard
			if err := json.Unmarshal(raw, &d); err != nil {
				t.Fatalf("unmarshal into dashboard.Dashboard: %v", err)
			}
			if d.Uid == nil || *d.Uid != "loom-"+name {
				t.Errorf("uid = %v, want loom-%s", d.Uid, name)
			}
			want := queries.Of(name)
			if len(d.Panels) != len(want) {
				t.Fatalf("%d panels, want %d", len(d.Panels), len(want))
			}
			for i, pr := range d.Panels {
				p := pr.Panel
				if p == nil {
					t.Fatalf("panel %d is not a panel", i)
				}
				if p.Type != want[i].Kind {
					t.Errorf("panel %d: type %q, want %q", i, p.Type, want[i].Kind)
				}
				checkRef(t, want[i].ID+" datasource", p.Datasource)
				if len(p.Targets) != 1 {
					t.Fatalf("panel %s: %d targets, want 1", want[i].ID, len(p.Targets))
				}
				q, ok := p.Targets[0].(*grafana.Query)
				if !ok {
					t.Fatalf("panel %s: target is %T, want *grafana.Query", want[i].ID, p.Targets[0])
				}
				checkRef(t, want[i].ID+" target datasource", q.Datasource)
				if strings.TrimSpace(q.RawSQL) == "" || q.RawSQL != want[i].SQL {
					t.Errorf("panel %s: rawSql is not the query's SQL", want[i].ID)
				}
				if !q.RawQuery || q.EditorMode != "code" || q.RefID == "" {
					t.Errorf("panel %s: target %+v is not a raw code query with a refId", want[i].ID, q)
				}
				if err := q.Validate(); err != nil {
					t.Errorf("panel %s: %v", want[i].ID, err)
				}
			}
			var names []string
			for _, v := range d.Templating.List {
				names = append(names, v.Name)
				if v.Name != grafana.ConsoleURLVariable { // a textbox: no datasource
					checkRef(t, "variable "+v.Name, v.Datasource)
				}
			}
			var wantNames []string
			for _, v := range queries.Variables(name) {
				wantNames = append(wantNames, v.Name)
			}
			if name == queries.Calls {
				wantNames = append(wantNames, grafana.ConsoleURLVariable)
			}
			if !slices.Equal(names, wantNames) {
				t.Errorf("variables %v, want %v", names, wantNames)
			}
		})
	}
}

func TestQuery_UnregisteredRuntime_StillHasSQL(t *testing.T) {
	// Without Register the SDK keeps the target as an UnknownDataquery map:
	// what Grafana itself reads must still carry rawSql and the datasource.
	raw, err := grafana.JSON(queries.Overview)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Panels []struct {
			Targets []map[string]any `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	for i, p := range doc.Panels {
		for _, tg := range p.Targets {
			ds, _ := tg["datasource"].(map[string]any)
			if tg["rawSql"] == "" || ds["uid"] != grafana.DatasourceUID || ds["type"] != grafana.DatasourceType {
				t.Errorf("panel %d: target %v", i, tg)
			}
			if f := tg["format"]; f != grafana.FormatTable && f != grafana.FormatTimeSeries {
				t.Errorf("panel %d: format %v", i, f)
			}
		}
	}
}

func TestQuery_EqualsAndValidate(t *testing.T) {
	ref := grafana.Datasource()
	a := grafana.Query{RefID: "A", Datasource: &ref, RawSQL: "SELECT 1", Format: grafana.FormatTable, RawQuery: true, EditorMode: "code"}
	b := a
	if !a.Equals(b) || !a.Equals(&b) {
		t.Error("a query does not equal its copy")
	}
	b.RawSQL = "SELECT 2"
	if a.Equals(b) {
		t.Error("queries with different SQL are equal")
	}
	if a.Equals(nil) {
		t.Error("a query equals nil")
	}
	if err := (grafana.Query{Format: grafana.FormatTable}).Validate(); err == nil {
		t.Error("a query without SQL is valid")
	}
	if err := (grafana.Query{RawSQL: "SELECT 1", Format: "logs"}).Validate(); err == nil {
		t.Error("a query with format logs is valid")
	}
	if _, err := grafana.NewQueryBuilder().Build(); err == nil {
		t.Error("the builder built a query without SQL")
	}
}

func checkRef(t *testing.T, what string, ref *common.DataSourceRef) {
	t.Helper()
	if ref == nil || ref.Type == nil || ref.Uid == nil ||
		*ref.Type != grafana.DatasourceType || *ref.Uid != grafana.DatasourceUID {
		b, _ := json.Marshal(ref)
		t.Errorf("%s: %s, want type %s uid %s", what, b, grafana.DatasourceType, grafana.DatasourceUID)
	}
}

// Every call in the Calls table links to its spans in the console.
func TestCalls_TraceIDsLinkToTheConsole(t *testing.T) {
	b, err := grafana.JSON(queries.Calls)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"url": "${console_url}/console/calls/${__value.raw}"`) {
		t.Fatal("the calls table's trace_id has no link to the console")
	}
}

// The Prometheus dashboard ships promql's expressions verbatim, each panel and target naming the
// provisioned Prometheus datasource, with the tenant and model variables listing label values.
func TestMetricsJSON_EveryPanelRunsItsPromQLOnThePrometheusDatasource(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(dir, promql.Dashboard+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		UID    string `json:"uid"`
		Panels []struct {
			Type       string                `json:"type"`
			Title      string                `json:"title"`
			Datasource *common.DataSourceRef `json:"datasource"`
			Targets    []struct {
				RefID        string                `json:"refId"`
				Expr         string                `json:"expr"`
				LegendFormat string                `json:"legendFormat"`
				Datasource   *common.DataSourceRef `json:"datasource"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Name       string                `json:"name"`
				Query      string                `json:"query"`
				AllValue   string                `json:"allValue"`
				Datasource *common.DataSourceRef `json:"datasource"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatal(err)
	}
	if d.UID != "loom-"+promql.Dashboard {
		t.Errorf("uid %q, want loom-%s", d.UID, promql.Dashboard)
	}
	want := promql.Panels()
	if len(d.Panels) != len(want) {
		t.Fatalf("%d panels, want %d", len(d.Panels), len(want))
	}
	for i, p := range d.Panels {
		w := want[i]
		if p.Type != w.Kind || p.Title != w.Title {
			t.Errorf("panel %d: %s %q, want %s %q", i, p.Type, p.Title, w.Kind, w.Title)
		}
		checkPromRef(t, w.ID+" datasource", p.Datasource)
		if len(p.Targets) != len(w.Targets) {
			t.Fatalf("panel %s: %d targets, want %d", w.ID, len(p.Targets), len(w.Targets))
		}
		refs := map[string]bool{}
		for j, tg := range p.Targets {
			if tg.Expr != w.Targets[j].Expr || tg.LegendFormat != w.Targets[j].Legend {
				t.Errorf("panel %s target %d: %q %q, want promql's expression and legend", w.ID, j, tg.Expr, tg.LegendFormat)
			}
			if tg.RefID == "" || refs[tg.RefID] {
				t.Errorf("panel %s target %d: refId %q is empty or repeated", w.ID, j, tg.RefID)
			}
			refs[tg.RefID] = true
			checkPromRef(t, w.ID+" target datasource", tg.Datasource)
		}
	}
	vars := promql.Variables()
	if len(d.Templating.List) != len(vars) {
		t.Fatalf("%d variables, want %d", len(d.Templating.List), len(vars))
	}
	for i, v := range d.Templating.List {
		if v.Name != vars[i].Name || v.Query != vars[i].Query || v.AllValue != promql.AllValue {
			t.Errorf("variable %d: %s %q all=%q, want %s %q all=%q", i, v.Name, v.Query, v.AllValue, vars[i].Name, vars[i].Query, promql.AllValue)
		}
		checkPromRef(t, "variable "+v.Name, v.Datasource)
	}
}

// No variable carries the interval-variable settings the SDK writes on every variable (auto, auto_min,
// auto_count): Grafana's schema has no auto key on a query or textbox variable.
func TestJSON_NoIntervalSettingsOnOtherVariables(t *testing.T) {
	for _, name := range grafana.Names() {
		raw, err := grafana.JSON(name)
		if err != nil {
			t.Fatal(err)
		}
		var d struct {
			Templating struct {
				List []map[string]any `json:"list"`
			} `json:"templating"`
		}
		if err := json.Unmarshal(raw, &d); err != nil {
			t.Fatal(err)
		}
		for _, v := range d.Templating.List {
			for _, k := range []string{"auto", "auto_min", "auto_count"} {
				if _, ok := v[k]; ok && v["type"] != "interval" {
					t.Errorf("%s: %s variable %v has %q", name, v["type"], v["name"], k)
				}
			}
		}
	}
}

func checkPromRef(t *testing.T, what string, ref *common.DataSourceRef) {
	t.Helper()
	if ref == nil || ref.Type == nil || ref.Uid == nil ||
		*ref.Type != grafana.PrometheusDatasourceType || *ref.Uid != grafana.PrometheusDatasourceUID {
		b, _ := json.Marshal(ref)
		t.Errorf("%s: %s, want type %s uid %s", what, b, grafana.PrometheusDatasourceType, grafana.PrometheusDatasourceUID)
	}
}
