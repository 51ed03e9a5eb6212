package prereq

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestProgram_Missing_WrapsErrNotInstalled(t *testing.T) {
	_, err := Program(filepath.Join(t.TempDir(), "no-such-program"))
	if !errors.Is(err, ErrNotInstalled) {
		t.Fatalf("Program(missing) = %v, want an error wrapping ErrNotInstalled", err)
	}
}

func TestNPMInstalled_ComparesNodeModulesWithTheLock(t *testing.T) {
	const lock = `{"packages": {"": {}, "node_modules/a": {"version": "1.0.0", "integrity": "sha-a"},
		"node_modules/b": {"version": "2.0.0", "integrity": "sha-b", "optional": true}}}`
	tests := []struct {
		name      string
		installed string // node_modules/.package-lock.json; "" for none
		want      bool
		why       string
	}{
		{"nothing installed", "", false, ".package-lock.json"},
		{"exactly the lock", `{"packages": {"node_modules/a": {"version": "1.0.0", "integrity": "sha-a"},
			"node_modules/b": {"version": "2.0.0", "integrity": "sha-b"}}}`, true, ""},
		{"an optional package absent", `{"packages": {"node_modules/a": {"version": "1.0.0", "integrity": "sha-a"}}}`, true, ""},
		{"another version", `{"packages": {"node_modules/a": {"version": "1.0.1", "integrity": "sha-x"}}}`, false, "pins 1.0.0"},
		{"a package missing", `{"packages": {}}`, false, "node_modules/a is not installed"},
		{"a package the lock does not name", `{"packages": {"node_modules/a": {"version": "1.0.0", "integrity": "sha-a"},
			"node_modules/c": {"version": "3.0.0"}}}`, false, "node_modules/c is installed but not in package-lock.json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			write(t, filepath.Join(dir, "package-lock.json"), lock)
			if tt.installed != "" {
				write(t, filepath.Join(dir, "node_modules", ".package-lock.json"), tt.installed)
			}
			got, why := NPMInstalled(dir)
			if got != tt.want || !strings.Contains(why, tt.why) {
				t.Errorf("NPMInstalled = %v, %q; want %v, a reason containing %q", got, why, tt.want, tt.why)
			}
		})
	}
}

func write(t *testing.T, path, s string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}
