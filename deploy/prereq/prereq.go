// Package prereq decides what a test does when a program it needs (a
// PostgreSQL or Redis server, Node.js, Chromium) is not installed: skip on a
// developer's machine, with a message naming what to install, but fail
// under CI=true, where a skip would quietly drop every test that needs it.
package prereq

import (
	"errors"
	"os"
	"strconv"
	"testing"
)

// Check ends the test if err is not nil: a skip (or, in CI, a failure)
// when err is missing, a failure otherwise.
func Check(t testing.TB, err, missing error) {
	t.Helper()
	switch {
	case errors.Is(err, missing) && FailOnMissing(os.Getenv):
		t.Fatalf("%v (CI is set, so this fails instead of skipping)", err)
	case errors.Is(err, missing):
		t.Skip(err)
	case err != nil:
		t.Fatal(err)
	}
}

// FailOnMissing reports whether a missing program fails a test rather
// than skips it.
func FailOnMissing(getenv func(string) string) bool {
	ci, _ := strconv.ParseBool(getenv("CI"))
	return ci
}
