// Package replicas holds the multi-replica test: Loom scaled out as a
// deployment runs it, from the real binaries of `make build`. Two Loom
// instances share one Redis for their rate limits, each ships its spans to
// its own otelcol-loom, both collectors write one PostgreSQL, and a real
// Prometheus scrapes all four. Mixed calls spread over both instances prove
// that a tenant's limit holds across them, that each instance's record is
// complete, and that what Prometheus counts is what Postgres stores.
//
// Everything lives in _test.go files; this file only names the package.
package replicas
