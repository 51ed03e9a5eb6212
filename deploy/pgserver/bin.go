package pgserver

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// ErrNotInstalled means a PostgreSQL program is neither on PATH nor in
// Debian's versioned directories. Its text says what to install.
var ErrNotInstalled = errors.New("not installed; install PostgreSQL server binaries (Debian: apt-get install postgresql)")

// debianRoot holds Debian's versioned installs (/usr/lib/postgresql/15/bin),
// which the postgresql package keeps off PATH.
const debianRoot = "/usr/lib/postgresql"

// FindBin returns the path of a PostgreSQL program: the one on PATH, else
// the newest /usr/lib/postgresql/<version>/bin/<name>.
func FindBin(name string) (string, error) {
	return findBin(name, exec.LookPath, debianRoot)
}

func findBin(name string, lookPath func(string) (string, error), root string) (string, error) {
	if p, err := lookPath(name); err == nil {
		return p, nil
	}
	matches, _ := filepath.Glob(filepath.Join(root, "*", "bin", name))
	best, bestVersion := "", []int(nil)
	for _, m := range matches {
		v, ok := parseVersion(filepath.Base(filepath.Dir(filepath.Dir(m))))
		if ok && slices.Compare(v, bestVersion) > 0 {
			best, bestVersion = m, v
		}
	}
	if best == "" {
		return "", fmt.Errorf("find %s: %w", name, ErrNotInstalled)
	}
	return best, nil
}

// parseVersion reads "15" or "9.6" as numbers, so that 10 sorts above 9.6.
func parseVersion(s string) ([]int, bool) {
	var v []int
	for part := range strings.SplitSeq(s, ".") {
		n, err := strconv.Atoi(part)
		if err != nil {
			return nil, false
		}
		v = append(v, n)
	}
	return v, true
}

// sibling returns the program name from the installation that bin belongs
// to (after symlinks), falling back to FindBin. initdb and psql must match
// the major version of the pg_ctl and postgres that run the cluster; pg_ctl
// finds postgres the same way.
func sibling(bin, name string) (string, error) {
	if real, err := filepath.EvalSymlinks(bin); err == nil {
		p := filepath.Join(filepath.Dir(real), name)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return FindBin(name)
}
