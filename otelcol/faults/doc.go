// Package faults holds the fault suite (`make test-faults`) and the soak
// (`make soak`): Loom's real binaries, the real otelcol-loom and a real
// PostgreSQL under mixed load, while the suite kills and restarts them on a
// schedule (the suite) or leaves them alone for a long time (the soak). The
// suite proves that every call a client saw answered is stored exactly once,
// except what a SIGKILL's commit window may lose, and that `loom audit
// completeness` reports those runs as crashed within their bound; the soak
// proves that memory, goroutines, open files and the spool stay flat.
//
// Both are slow and are skipped unless asked for: LOOM_FAULTS=full|short
// runs TestFaults, LOOM_SOAK=DURATION runs TestSoak. Everything lives in
// _test.go files; this file only names the package.
package faults
