// Package promtest gives tests a real Prometheus: a throwaway server per
// call to Start, on a free port, scraping the jobs given. Where prometheus
// is missing it skips the test, except in CI (CI=true), where it fails it.
package promtest

import (
	"testing"
	"time"

	"github.com/loom-gateway/loom/deploy/prereq"
	"github.com/loom-gateway/loom/deploy/promserver"
)

// Start returns a new server for this test alone, scraping jobs every
// interval (zero: promserver.DefaultScrapeInterval), stopped when the test
// ends.
func Start(t testing.TB, interval time.Duration, jobs ...promserver.Job) *promserver.Server {
	t.Helper()
	srv, err := promserver.Start(t.Context(), promserver.Options{Dir: t.TempDir(), ScrapeInterval: interval, Jobs: jobs})
	Check(t, err)
	t.Cleanup(func() {
		if err := srv.Stop(); err != nil {
			t.Errorf("stop prometheus: %v", err)
		}
	})
	return srv
}

// Check ends the test if err is not nil: a missing prometheus skips it
// (fails it under CI=true), any other error fails it. For tests that check
// for the binary before they start what it would scrape.
func Check(t testing.TB, err error) {
	t.Helper()
	prereq.Check(t, err, promserver.ErrNotInstalled)
}
