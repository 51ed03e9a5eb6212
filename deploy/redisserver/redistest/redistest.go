// Package redistest gives tests a real Redis: a throwaway server per call
// to Start, on a free port, with nothing persisted. Where redis-server is
// missing it skips the test, except in CI (CI=true), where it fails it.
package redistest

import (
	"errors"
	"os"
	"strconv"
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

// check ends the test if err is not nil: a skip if redis-server is missing,
// unless failOnMissing.
func check(t testing.TB, err error) {
	t.Helper()
	switch {
	case errors.Is(err, redisserver.ErrNotInstalled) && failOnMissing(os.Getenv):
		t.Fatalf("%v (CI is set, so this fails instead of skipping)", err)
	case errors.Is(err, redisserver.ErrNotInstalled):
		t.Skip(err)
	case err != nil:
		t.Fatal(err)
	}
}

// failOnMissing reports whether a missing redis-server fails a test rather
// than skips it: in CI, a skip would quietly drop every shared-limit test.
func failOnMissing(getenv func(string) string) bool {
	ci, _ := strconv.ParseBool(getenv("CI"))
	return ci
}
