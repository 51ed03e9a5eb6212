// Command loom is the Loom gateway. See `loom help`.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/loom-gateway/loom/proxy/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := cli.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(cli.ExitCode(err, os.Stderr))
}
