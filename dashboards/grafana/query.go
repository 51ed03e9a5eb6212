package grafana

import (
	"encoding/json"
	"errors"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/variants"
	"github.com/grafana/grafana-foundation-sdk/go/common"
)

// DatasourceType is the plugin id of Grafana's bundled Postgres datasource.
const DatasourceType = "grafana-postgresql-datasource"

// Query formats.
const (
	FormatTimeSeries = "time_series"
	FormatTable      = "table"
)

// ErrNoSQL reports a Postgres query without SQL.
var ErrNoSQL = errors.New("postgres query: rawSql is empty")

// Query is a Postgres panel target, which the foundation SDK has no type
// for. It is always a raw SQL query in the code editor.
type Query struct {
	RefID      string                `json:"refId"`
	Datasource *common.DataSourceRef `json:"datasource,omitempty"`
	RawSQL     string                `json:"rawSql"`
	Format     string                `json:"format"`
	RawQuery   bool                  `json:"rawQuery"`
	EditorMode string                `json:"editorMode"`
	Hide       *bool                 `json:"hide,omitempty"`
}

var (
	_ variants.Dataquery              = Query{}
	_ variants.Dataquery              = (*Query)(nil)
	_ cog.Builder[variants.Dataquery] = (*QueryBuilder)(nil)
)

// ImplementsDataqueryVariant marks Query as a panel target.
func (Query) ImplementsDataqueryVariant() {}

// DataqueryType is the datasource plugin id, which is how the SDK's runtime
// finds the type when it reads a dashboard back (see Register).
func (Query) DataqueryType() string { return DatasourceType }

// Equals reports whether other is the same query, by value or pointer.
func (q Query) Equals(other variants.Dataquery) bool {
	var o Query
	switch v := other.(type) {
	case Query:
		o = v
	case *Query:
		if v == nil {
			return false
		}
		o = *v
	default:
		return false
	}
	if (q.Datasource == nil) != (o.Datasource == nil) || (q.Hide == nil) != (o.Hide == nil) {
		return false
	}
	if q.Datasource != nil && !q.Datasource.Equals(*o.Datasource) {
		return false
	}
	if q.Hide != nil && *q.Hide != *o.Hide {
		return false
	}
	return q.RefID == o.RefID && q.RawSQL == o.RawSQL && q.Format == o.Format &&
		q.RawQuery == o.RawQuery && q.EditorMode == o.EditorMode
}

// Validate reports a query Grafana could not run.
func (q Query) Validate() error {
	var errs []error
	if q.RawSQL == "" {
		errs = append(errs, ErrNoSQL)
	}
	if q.Format != FormatTimeSeries && q.Format != FormatTable {
		errs = append(errs, errors.New("postgres query: format must be time_series or table, not "+q.Format))
	}
	return errors.Join(errs...)
}

// Register teaches the SDK's runtime to read Postgres targets back as Query
// (they are read as variants.UnknownDataquery otherwise). Safe to call more
// than once.
func Register() {
	cog.NewRuntime().RegisterDataqueryVariant(variants.DataqueryConfig{
		Identifier:                 DatasourceType,
		DataqueryUnmarshaler:       unmarshal(false),
		StrictDataqueryUnmarshaler: unmarshal(true),
	})
}

func unmarshal(strict bool) func([]byte) (variants.Dataquery, error) {
	return func(raw []byte) (variants.Dataquery, error) {
		q := &Query{}
		if err := json.Unmarshal(raw, q); err != nil {
			return nil, err
		}
		if strict {
			if err := q.Validate(); err != nil {
				return nil, err
			}
		}
		return q, nil
	}
}

// QueryBuilder builds a Query for the SDK's panel builders (WithTarget).
type QueryBuilder struct{ q Query }

// NewQueryBuilder starts a raw SQL query in the code editor, as a table.
func NewQueryBuilder() *QueryBuilder {
	return &QueryBuilder{q: Query{Format: FormatTable, RawQuery: true, EditorMode: "code"}}
}

func (b *QueryBuilder) RefID(id string) *QueryBuilder { b.q.RefID = id; return b }
func (b *QueryBuilder) SQL(sql string) *QueryBuilder  { b.q.RawSQL = sql; return b }
func (b *QueryBuilder) Format(f string) *QueryBuilder { b.q.Format = f; return b }
func (b *QueryBuilder) Datasource(ref common.DataSourceRef) *QueryBuilder {
	b.q.Datasource = &ref
	return b
}

// Build returns the query, or why it is not valid.
func (b *QueryBuilder) Build() (variants.Dataquery, error) {
	if err := b.q.Validate(); err != nil {
		return nil, cog.MakeBuildErrors("postgres.query", err)
	}
	return b.q, nil
}
