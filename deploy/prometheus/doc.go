// Package prometheus holds Loom's Prometheus alert rules
// (loom-alerts.yaml, used as is by compose's Prometheus and the Helm
// chart's PrometheusRule) and their unit tests (loom-alerts_test.yaml),
// which its Go test runs with promtool.
package prometheus
