package promserver

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestFindBin_PathThenDebiansPath_ElseSaysWhatToInstall(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "prometheus")
	if err := os.WriteFile(exe, nil, 0o755); err != nil {
		t.Fatal(err)
	}
	plain := filepath.Join(dir, "not-executable")
	if err := os.WriteFile(plain, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	onPath := func(string) (string, error) { return "/opt/prometheus/prometheus", nil }
	notOnPath := func(string) (string, error) { return "", exec.ErrNotFound }
	for _, tt := range []struct {
		name     string
		lookPath func(string) (string, error)
		fallback string
		want     string
		wantErr  error
	}{
		{"PATH wins", onPath, exe, "/opt/prometheus/prometheus", nil},
		{"not on PATH: Debian's path", notOnPath, exe, exe, nil},
		{"fallback not executable", notOnPath, plain, "", ErrNotInstalled},
		{"nowhere", notOnPath, filepath.Join(dir, "missing"), "", ErrNotInstalled},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := findBin(tt.lookPath, tt.fallback)
			if !errors.Is(err, tt.wantErr) || got != tt.want {
				t.Fatalf("findBin() = %q, %v; want %q, %v", got, err, tt.want, tt.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), "apt-get install prometheus") {
				t.Errorf("error %q does not say what to install", err)
			}
		})
	}
}
