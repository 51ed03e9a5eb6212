// Package loadtest holds Loom's k6 load scenarios: plain k6 JavaScript files (steady-nonstream.js,
// steady-stream.js, spike.js, soak.js, multi-tenant.js, sharing lib/) that drive `make run`'s stack open
// loop and whose thresholds assert the overhead budget: p99 under 20 ms and errors under 0.1 %.
//
// k6 is AGPL and is installed on its own: no Go code in this module may import it or depend on it. The
// package has no Go API. Its tests, run by `make test`, type-check the scenarios against the pinned
// @types/k6 with TypeScript (Node.js and npm; skipped without them unless CI=true), prove that the check
// catches misuse of the k6 API, and fail when a scenario drops its budget or leaves open-loop arrival
// rates. README.md says how to run the scenarios.
package loadtest
