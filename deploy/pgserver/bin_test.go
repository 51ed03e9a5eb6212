package pgserver

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

func TestFindBin(t *testing.T) {
	root := t.TempDir()
	for _, v := range []string{"9.6", "10", "15", "beta"} {
		dir := filepath.Join(root, v, "bin")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "initdb"), nil, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "9.6", "bin", "pg_old"), nil, 0o755); err != nil {
		t.Fatal(err)
	}
	onPath := func(string) (string, error) { return "/opt/pg/bin/initdb", nil }
	notOnPath := func(string) (string, error) { return "", exec.ErrNotFound }
	tests := []struct {
		name, bin string
		lookPath  func(string) (string, error)
		want      string
		wantErr   error
	}{
		{"PATH wins", "initdb", onPath, "/opt/pg/bin/initdb", nil},
		{"newest major, compared as numbers", "initdb", notOnPath, filepath.Join(root, "15", "bin", "initdb"), nil},
		{"only an old version has it", "pg_old", notOnPath, filepath.Join(root, "9.6", "bin", "pg_old"), nil},
		{"nowhere", "pg_ctl", notOnPath, "", ErrNotInstalled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := findBin(tt.bin, tt.lookPath, root)
			if !errors.Is(err, tt.wantErr) || got != tt.want {
				t.Fatalf("findBin(%q) = %q, %v; want %q, %v", tt.bin, got, err, tt.want, tt.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), "apt-get install postgresql") {
				t.Errorf("error %q does not say what to install", err)
			}
		})
	}
}

func TestPostmaster(t *testing.T) {
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		pidFile string // "" = no file
		want    pidState
	}{
		{"no file", "", pidNone},
		{"garbled", "not a pid\n", pidStale},
		{"process gone", strconv.Itoa(dead.Process.Pid) + "\n/data\n", pidStale},
	}
	if runtime.GOOS == "linux" {
		tests = append(tests, struct {
			name    string
			pidFile string
			want    pidState
		}{"pid reused by another program", strconv.Itoa(os.Getpid()) + "\n/data\n", pidStale})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if tt.pidFile != "" {
				if err := os.WriteFile(filepath.Join(dir, "postmaster.pid"), []byte(tt.pidFile), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if got := postmaster(dir); got != tt.want {
				t.Errorf("postmaster() = %d, want %d (none, stale, live)", got, tt.want)
			}
		})
	}
}

func TestReachable(t *testing.T) {
	base, err := os.MkdirTemp("", "pgserver-reach-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	other := &syscall.Credential{Uid: 54321, Gid: 54321}
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := reachable(filepath.Join(base, "x"), other); err != nil {
		t.Skipf("the temp dir is not searchable by other users here: %v", err)
	}
	closed := filepath.Join(base, "closed")
	if err := os.Mkdir(closed, 0o750); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(closed, "data")
	me := &syscall.Credential{Uid: uint32(os.Getuid()), Gid: 54321}
	myGroup := &syscall.Credential{Uid: 54321, Gid: 54320, Groups: []uint32{uint32(os.Getgid())}}
	tests := []struct {
		name    string
		cred    *syscall.Credential
		wantErr bool
	}{
		{"not root: nothing to check", nil, false},
		{"another user, no permission", other, true},
		{"the owner", me, false},
		{"a member of the group", myGroup, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := reachable(data, tt.cred)
			if (err != nil) != tt.wantErr {
				t.Fatalf("reachable() = %v, want error: %v", err, tt.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), closed) {
				t.Errorf("error %q does not name %s", err, closed)
			}
		})
	}
}

func TestShellQuote(t *testing.T) {
	for _, s := range []string{"", "plain", "it's", `a "b" $HOME \n`, "'"} {
		out, err := exec.Command("/bin/sh", "-c", "printf %s "+shellQuote(s)).Output()
		if err != nil || string(out) != s {
			t.Errorf("sh saw %q (%v), want %q", out, err, s)
		}
	}
}
