// Package redistest gives tests a real Redis: a throwaway server per call
// to Start, on a free port, with nothing persisted. Where redis-server is
// missing it skips the test, except in CI (CI=true), where it fails it.
package redistest

import (
	"github.com/loom-gateway/loom/deploy/prereq"
	"testing"

	"github.com/loom-gateway/loom/deploy/redisserver"
)

// Start returns a new server for this test alone, stopped when the test
// ends.
func Start(t testing.TB) *redisserver.Server {
	t.Helper()
	srv, err := redisserver.Start(t.Context(), redisserver.Options{Dir: t.TempDir()})
	check(t, err)
	t.Cleanup(func() {
		if err := srv.Stop(); err != nil {
			t.Errorf("stop redis: %v", err)
		}
	})
	return srv
}

// check ends the test if err is not nil; see prereq.
func check(t testing.TB, err error) {
	t.Helper()
	prereq.Check(t, err, redisserver.ErrNotInstalled)
}
