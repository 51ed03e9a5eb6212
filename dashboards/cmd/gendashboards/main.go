// Command gendashboards writes Loom's Grafana dashboards
// (dashboards/grafana/json/<name>.json) from dashboards/queries (SQL) and
// dashboards/promql (PromQL). Run it
// through `make dashboards` and commit what changes.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"os/signal"
	"path/filepath"
	"slices"

	"github.com/loom-gateway/loom/dashboards/grafana"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := Main(ctx, os.Args[1:], os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "gendashboards:", err)
		os.Exit(1)
	}
}

// Main writes every dashboard into -out and names each file it wrote.
func Main(_ context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("gendashboards", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", filepath.Join("dashboards", "grafana", "json"), "directory for the dashboard JSON files")
	if err := fs.Parse(args); err != nil {
		return err
	}
	files, err := grafana.Files()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return fmt.Errorf("make %s: %w", *out, err)
	}
	for _, name := range slices.Sorted(maps.Keys(files)) {
		path := filepath.Join(*out, name)
		if err := os.WriteFile(path, files[name], 0o644); err != nil {
			return fmt.Errorf("write dashboard: %w", err)
		}
		fmt.Fprintln(stderr, "wrote", path)
	}
	return nil
}
