// Command prereqs is what `make test` runs first: it installs the programs
// the tests use (PostgreSQL, redis-server, Node.js and npm, Chromium,
// promtool) when they are missing and it can (as root, with apt-get), and
// otherwise says in one line each which package to install and which tests
// skip without it. With everything present it does nothing, offline.
package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"

	"github.com/loom-gateway/loom/deploy/prereq"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := prereq.Ensure(ctx, "make test", prereq.TestNeeds(), prereq.CanInstall(os.Geteuid(), exec.LookPath),
		prereq.Apt(os.Stderr), os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
