// Package compose holds Loom's docker compose stack: compose.yaml (Postgres,
// Redis, otelcol-loom, Loom, the mock upstream, Prometheus and Grafana) and
// the files it mounts (loom.yaml, otelcol.yaml, prometheus.yml,
// demo-models.yaml, grafana-role.sql), with .env.example naming the secrets
// it reads from .env. It has no code of its own. Its test loads compose.yaml
// with compose-spec's own loader (schema validation, interpolation,
// normalization) and checks it against the binaries, as the Helm chart's
// test does: the Loom config loads with proxy/config's strict loader in the
// service's environment, the collector config validates as otelcol-loom
// would, healthcheck and scrape paths are answered by the real handlers,
// ports, volumes and variables line up. No Docker daemon is needed.
package compose
