package pgserver

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// postgresCredential says whom initdb, pg_ctl and postgres run as: nil (the
// current user) unless that is root, which PostgreSQL refuses to run as;
// then the postgres user that Debian's package creates, with its own groups
// only (root's supplementary groups must not leak into the server).
func postgresCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("PostgreSQL refuses to run as root and there is no postgres user to run it as: %w", err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("postgres user id %q: %w", u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("postgres group id %q: %w", u.Gid, err)
	}
	c := &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	ids, _ := u.GroupIds() // best effort: without them the primary group is enough
	for _, id := range ids {
		if g, err := strconv.ParseUint(id, 10, 32); err == nil {
			c.Groups = append(c.Groups, uint32(g))
		}
	}
	return c, nil
}

// chown hands path to the user the server runs as; a no-op unless root.
func chown(path string, c *syscall.Credential) error {
	if c == nil {
		return nil
	}
	if err := os.Chown(path, int(c.Uid), int(c.Gid)); err != nil {
		return fmt.Errorf("hand %s to the postgres user: %w", path, err)
	}
	return nil
}

// reachable checks that user c can search every directory above path: a
// root-owned 0700 parent (t.TempDir's, or a home directory) otherwise shows
// up as a baffling "permission denied" in PostgreSQL's log.
func reachable(path string, c *syscall.Credential) error {
	if c == nil {
		return nil
	}
	for dir := filepath.Dir(path); ; dir = filepath.Dir(dir) {
		fi, err := os.Stat(dir)
		if err != nil {
			return fmt.Errorf("check %s: %w", dir, err)
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		perm := fi.Mode().Perm()
		if ok && !(perm&0o001 != 0 ||
			st.Uid == c.Uid && perm&0o100 != 0 ||
			(st.Gid == c.Gid || slices.Contains(c.Groups, st.Gid)) && perm&0o010 != 0) {
			return fmt.Errorf("the postgres user (uid %d) cannot enter %s (mode %04o): "+
				"chmod o+x it or put the data directory elsewhere", c.Uid, dir, perm)
		}
		if dir == filepath.Dir(dir) {
			return nil
		}
	}
}

// pidState is what a data directory's postmaster.pid says.
type pidState int

const (
	pidNone  pidState = iota // no file: no server
	pidStale                 // garbled, or its process is gone or is another program
	pidLive                  // a postmaster runs on this directory
)

// postmaster reads dir/postmaster.pid. A pid that now belongs to another
// program (after a reboot or in a container) counts as stale: pg_ctl would
// signal that program, and postgres would refuse to start.
func postmaster(dir string) pidState {
	b, err := os.ReadFile(filepath.Join(dir, "postmaster.pid"))
	if errors.Is(err, os.ErrNotExist) {
		return pidNone
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || pid <= 0 {
		return pidStale
	}
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return pidStale
	}
	// Linux names the program; elsewhere a live pid has to do.
	if comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); err == nil {
		if c := strings.TrimSpace(string(comm)); c != "postgres" && c != "postmaster" {
			return pidStale
		}
	}
	return pidLive
}
