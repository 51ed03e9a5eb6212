package promserver

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
)

// ErrNotInstalled means prometheus is neither on PATH nor in /usr/bin. Its
// text says what to install.
var ErrNotInstalled = errors.New("prometheus not installed; install it (Debian: apt-get install prometheus)")

// debianBin is where Debian's prometheus package puts the server, in case
// PATH (a minimal one, as some CI runners set) leaves /usr/bin out.
const debianBin = "/usr/bin/prometheus"

// FindBin returns the path of prometheus: the one on PATH, else
// /usr/bin/prometheus.
func FindBin() (string, error) {
	return findBin(exec.LookPath, debianBin)
}

func findBin(lookPath func(string) (string, error), fallback string) (string, error) {
	if p, err := lookPath("prometheus"); err == nil {
		return p, nil
	}
	if fi, err := os.Stat(fallback); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
		return fallback, nil
	}
	return "", fmt.Errorf("find prometheus: %w", ErrNotInstalled)
}
