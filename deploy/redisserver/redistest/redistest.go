// Package redistest gives tests a real Redis: a throwaway server per call
// to Start, on a free port, with nothing persisted. Where redis-server is
// missing it skips the test, except in CI (CI=true), where it fails it.
package redistest

import (
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/loom-gateway/loom/deploy/prereq"
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

// Client returns a go-redis client of srv, closed when the test ends. Its
// timeouts are short, as a gateway's should be: a dead server must cost a
// request milliseconds, not seconds (go-redis's defaults dial five times,
// 100ms apart, even when the connection is refused).
func Client(t testing.TB, srv *redisserver.Server) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{
		Addr:          srv.Addr(),
		DialTimeout:   200 * time.Millisecond,
		ReadTimeout:   200 * time.Millisecond,
		WriteTimeout:  200 * time.Millisecond,
		MaxRetries:    -1,
		DialerRetries: 1,
	})
	t.Cleanup(func() { c.Close() })
	return c
}

// Prefix is a key prefix unique to the test, so tests sharing a server do
// not see each other's keys.
func Prefix(t testing.TB) string {
	return "test:" + strings.ReplaceAll(t.Name(), "/", ":") + ":"
}
