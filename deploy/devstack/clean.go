package devstack

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// pgFallback is where the local cluster lives when the postgres user
// cannot enter the checkout (see postgresHome): one directory per
// checkout, named by clusterID.
const pgFallback = "/var/lib/loom"

// clusterID names a checkout's cluster under pgFallback: a hash of the
// state directory's absolute path.
func clusterID(absStateDir string) string {
	sum := sha256.Sum256([]byte(absStateDir))
	return hex.EncodeToString(sum[:6])
}

// Clean removes everything devstack made for the state directory dir (what
// `make clean` runs): dir itself (keys, configs, logs, spool, queue, kept
// ports, and the cluster when it lives there) and the cluster's home under
// /var/lib/loom when it had to live there. The next run starts afresh, with
// a new demo key. It refuses while a postmaster runs on either cluster,
// since deleting a live cluster's files corrupts it: stop make run first.
func Clean(dir string, out io.Writer) error { return clean(dir, pgFallback, out) }

func clean(dir, fallback string, out io.Writer) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	if err := looksLikeState(abs); err != nil {
		return err
	}
	fallbackHome := filepath.Join(fallback, clusterID(abs))
	homes := []string{abs, fallbackHome}
	for _, h := range homes {
		if pid, ok := livePostmaster(filepath.Join(h, "pg")); ok {
			return fmt.Errorf("postgres (pid %d) still runs on %s: stop make run (Ctrl-C) first", pid, filepath.Join(h, "pg"))
		}
	}
	removed := 0
	for _, h := range homes {
		if _, err := os.Lstat(h); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err := os.RemoveAll(h); err != nil {
			return fmt.Errorf("remove %s: %w", h, err)
		}
		removed++
		fmt.Fprintf(out, "devstack: removed %s\n", h)
	}
	// The parent goes too once no checkout's cluster is left in it.
	if err := os.Remove(fallback); err == nil {
		fmt.Fprintf(out, "devstack: removed %s\n", fallback)
	}
	if removed == 0 {
		fmt.Fprintf(out, "devstack: nothing to remove (no %s)\n", abs)
	}
	return nil
}

// livePostmaster reads dataDir/postmaster.pid and reports whether its
// postmaster still runs (a pid that now belongs to another program, after a
// reboot, does not count).
func livePostmaster(dataDir string) (int, bool) {
	b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		return 0, false
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || pid <= 0 {
		return 0, false
	}
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return 0, false
	}
	if comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); err == nil {
		if c := strings.TrimSpace(string(comm)); c != "postgres" && c != "postmaster" {
			return 0, false
		}
	}
	return pid, true
}

// looksLikeState refuses to clean a directory that holds none of
// devstack's files: a mistyped -dir must not delete a home directory.
func looksLikeState(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if len(entries) == 0 {
		return nil
	}
	for _, name := range []string{"demo.key", "loom.yaml", "otelcol.yaml", PortsFile, PasswordFile, "pg"} {
		if _, err := os.Lstat(filepath.Join(dir, name)); err == nil {
			return nil
		}
	}
	return fmt.Errorf("%s holds none of devstack's files (demo.key, loom.yaml, pg...): not removing it", dir)
}
