// Package e2e holds the end-to-end tests of Loom's telemetry path: calls
// through a real Loom, spans over OTLP to a real otelcol-loom process, rows
// in a real PostgreSQL. They prove that nothing is lost and nothing is
// duplicated, also when the collector is killed or Postgres goes away.
package e2e
