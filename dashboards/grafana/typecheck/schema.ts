// The type every generated dashboard is checked against: Grafana's own Dashboard (@grafana/schema, the
// version package.json pins), with each panel's options and custom field config narrowed from
// Record<string, unknown> to its plugin's types, which @grafana/schema exports beside it.
//
// What is checked, and why it is sound:
// - Every key must exist in Grafana's types (an object literal allows no excess property; tsc names the
//   first of an object's unknown keys only, so fixing one can surface the next) and every value must
//   have its type, string unions included: a literal, not a JSON import, keeps "displayMode": "list" a
//   "list" rather than a string.
// - A panel's options and custom field config are Partial: Grafana fills what a dashboard leaves out
//   with the plugin's defaults when it loads the panel, so a missing key is not an error there.
// - Targets stay DataQuery: @grafana/schema exports no type for the Postgres or Prometheus query.
//
// dashboards/grafana/typecheck_test.go copies this file beside the generated literals and runs tsc.
import type { Dashboard, FieldConfig, FieldConfigSource, Panel, RowPanel } from '@grafana/schema';
import type {
  FieldConfig as TimeSeriesFieldConfig,
  Options as TimeSeriesOptions,
} from '@grafana/schema/dist/esm/raw/composable/timeseries/panelcfg/x/TimeSeriesPanelCfg_types.gen';
import type { Options as StatOptions } from '@grafana/schema/dist/esm/raw/composable/stat/panelcfg/x/StatPanelCfg_types.gen';
import type {
  FieldConfig as TableFieldConfig,
  Options as TableOptions,
} from '@grafana/schema/dist/esm/raw/composable/table/panelcfg/x/TablePanelCfg_types.gen';

/**
 * T as JSON can spell it. The panel types use TypeScript string enums (LegendDisplayMode.List = "list"),
 * and a JSON string is never an enum member, so each string enum becomes the union of its values
 * (`${E}`); everything else keeps its type, string unions and numeric enums included (a number literal
 * that is a member is assignable to a numeric enum, one that is not is an error).
 */
export type JSONOf<T> = T extends string
  ? `${T}`
  : T extends number | boolean | null | undefined
    ? T
    : T extends Array<infer U>
      ? Array<JSONOf<U>>
      : T extends object
        ? { [K in keyof T]: JSONOf<T[K]> }
        : T;

/** A panel of plugin type T, with options O and custom field config C. */
type PluginPanel<T extends string, O, C> = JSONOf<Omit<Panel, 'type' | 'options' | 'fieldConfig'>> & {
  type: T;
  options?: Partial<JSONOf<O>>;
  fieldConfig?: JSONOf<Omit<FieldConfigSource, 'defaults'>> & {
    defaults: JSONOf<Omit<FieldConfig, 'custom'>> & { custom?: Partial<JSONOf<C>> };
  };
};

/** The stat panel has no custom field config: its custom object must stay empty. */
type NoCustomFieldConfig = Record<string, never>;

/** The panel types Loom's generator writes; any other type fails the check. */
export type LoomPanel =
  | PluginPanel<'timeseries', TimeSeriesOptions, TimeSeriesFieldConfig>
  | PluginPanel<'stat', StatOptions, NoCustomFieldConfig>
  | PluginPanel<'table', TableOptions, TableFieldConfig>
  | JSONOf<RowPanel>;

/** A generated dashboard: Grafana's Dashboard, as JSON spells it, with typed panels. */
export type LoomDashboard = JSONOf<Omit<Dashboard, 'panels'>> & { panels?: LoomPanel[] };
