package prereq

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// ErrNotInstalled marks a program a test needs that this machine lacks;
// pass it to Check as missing.
var ErrNotInstalled = errors.New("not installed")

// Program finds name on PATH (or at name, if it is a path) and returns its
// path; the error wraps ErrNotInstalled when it is not there.
func Program(name string) (string, error) {
	path, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%s %w: %w", name, ErrNotInstalled, err)
	}
	return path, nil
}

// NPMCI makes dir/node_modules hold exactly what dir/package-lock.json
// pins, running `npm ci` (with args added, env added to this process's
// environment) only when it does not already: a test that installs its
// npm packages stays fast on its second run and never drifts from the lock.
func NPMCI(ctx context.Context, npm, dir string, env []string, args ...string) error {
	ok, why := NPMInstalled(dir)
	if ok {
		return nil
	}
	cmd := exec.CommandContext(ctx, npm, append([]string{"ci", "--no-audit", "--no-fund"}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(append(os.Environ(), "npm_config_update_notifier=false"), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("npm ci in %s (%s): %w\n%s", dir, why, err, out)
	}
	return nil
}

// npmLock is the part of package-lock.json (and of npm's record of what it
// installed, node_modules/.package-lock.json) that says which package is
// where.
type npmLock struct {
	Packages map[string]struct {
		Version   string `json:"version"`
		Integrity string `json:"integrity"`
		Optional  bool   `json:"optional"`
	} `json:"packages"`
}

// NPMInstalled reports whether dir/node_modules holds exactly what
// dir/package-lock.json pins (an optional package for another platform may
// be absent), and if not, why.
func NPMInstalled(dir string) (bool, string) {
	var want, have npmLock
	if err := readLock(filepath.Join(dir, "package-lock.json"), &want); err != nil {
		return false, err.Error()
	}
	if err := readLock(filepath.Join(dir, "node_modules", ".package-lock.json"), &have); err != nil {
		return false, err.Error()
	}
	for path, w := range want.Packages {
		if path == "" { // the project itself
			continue
		}
		h, ok := have.Packages[path]
		switch {
		case !ok && w.Optional:
		case !ok:
			return false, path + " is not installed"
		case h.Version != w.Version || h.Integrity != w.Integrity:
			return false, fmt.Sprintf("%s is %s, package-lock.json pins %s", path, h.Version, w.Version)
		}
	}
	for path := range have.Packages {
		if _, ok := want.Packages[path]; !ok {
			return false, path + " is installed but not in package-lock.json"
		}
	}
	return true, ""
}

func readLock(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// Node finds node and npm, and makes dir/node_modules hold what its lock
// pins (NPMCI, install scripts off): what a test that runs a script of dir
// with node needs first. A missing program skips the test (fails it under
// CI, see Check); it returns node's path.
func Node(t testing.TB, dir string) string {
	t.Helper()
	node, err := Program("node")
	var npm string
	if err == nil {
		npm, err = Program("npm")
	}
	Check(t, err, ErrNotInstalled)
	if err := NPMCI(t.Context(), npm, dir, nil, "--ignore-scripts"); err != nil {
		t.Fatal(err)
	}
	return node
}

// TypeScript installs what dir/package-lock.json pins into dir/node_modules
// (npm ci, args added, only when it is not there already) and returns the
// absolute path of the tsc it brought. The error wraps ErrNotInstalled when
// this machine has no node or npm.
func TypeScript(dir string, args ...string) (string, error) {
	npm, err := Program("npm")
	if err != nil {
		return "", err
	}
	if _, err := Program("node"); err != nil {
		return "", err
	}
	tsc, err := filepath.Abs(filepath.Join(dir, "node_modules", ".bin", "tsc"))
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if err := NPMCI(ctx, npm, dir, nil, args...); err != nil {
		return "", err
	}
	if _, err := os.Stat(tsc); err != nil {
		return "", fmt.Errorf("npm ci installed no tsc: %w", err)
	}
	return tsc, nil
}
