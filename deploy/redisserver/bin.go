package redisserver

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
)

// ErrNotInstalled means redis-server is neither on PATH nor in /usr/bin.
// Its text says what to install.
var ErrNotInstalled = errors.New("redis-server not installed; install it (Debian: apt-get install redis-server)")

// debianBin is where Debian's redis-server package puts the server, in case
// PATH (a minimal one, as some CI runners set) leaves /usr/bin out.
const debianBin = "/usr/bin/redis-server"

// FindBin returns the path of redis-server: the one on PATH, else
// /usr/bin/redis-server.
func FindBin() (string, error) {
	return findBin(exec.LookPath, debianBin)
}

func findBin(lookPath func(string) (string, error), fallback string) (string, error) {
	if p, err := lookPath("redis-server"); err == nil {
		return p, nil
	}
	if fi, err := os.Stat(fallback); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
		return fallback, nil
	}
	return "", fmt.Errorf("find redis-server: %w", ErrNotInstalled)
}
