// Command fuzzall runs every Go fuzz target in the module for a short time
// each, one after another, and prints a table of targets with their
// executions per second: what `make fuzz` (and so `make test`) runs. A
// target that fails stops nothing else; fuzzall prints its output, the
// crasher that `go test` kept under the package's testdata/fuzz/, and exits
// non-zero at the end.
//
// Targets are found in the source (func FuzzXxx(f *testing.F) in any
// _test.go file of the packages `go list` names), so a new target joins
// without a line changed here.
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	default:
		fmt.Fprintln(os.Stderr, "fuzzall:", err)
		os.Exit(1)
	}
}

// target is one fuzz function in one package.
type target struct {
	pkg  string // import path
	name string
}

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("fuzzall", flag.ContinueOnError)
	fuzztime := fs.Duration("fuzztime", 5*time.Second, "how long to fuzz each target")
	// go test minimizes every input that adds coverage, for up to a minute
	// each (-fuzzminimizetime's default): in a run of seconds that is most
	// of the time (FuzzScanner ran 4x fewer inputs in 20 s). A crasher is
	// kept whole or nearly so; rerun it alone to minimize it further.
	minimize := fs.Duration("minimizetime", time.Second, "how long go test may minimize one input")
	goCmd := fs.String("go", envOr("GO", "go"), "the go command")
	match := fs.String("run", "", "only targets whose package/name matches this regexp")
	if err := fs.Parse(args); err != nil {
		return err
	}
	patterns := fs.Args()
	if len(patterns) == 0 {
		patterns = []string{"./..."}
	}
	targets, err := discover(ctx, *goCmd, patterns)
	if err != nil {
		return err
	}
	if *match != "" {
		re, err := regexp.Compile(*match)
		if err != nil {
			return fmt.Errorf("-run: %w", err)
		}
		kept := targets[:0]
		for _, t := range targets {
			if re.MatchString(t.pkg + "/" + t.name) {
				kept = append(kept, t)
			}
		}
		targets = kept
	}
	if len(targets) == 0 {
		return errors.New("no fuzz targets found")
	}
	var failed []string
	fmt.Fprintf(out, "%-54s %-18s %12s %10s\n", "package", "target", "execs", "execs/s")
	for _, t := range targets {
		start := time.Now()
		var buf bytes.Buffer
		var runErr error
		for attempt := 0; attempt < 2; attempt++ {
			buf.Reset()
			cmd := exec.CommandContext(ctx, *goCmd, "test", "-run", "^$", "-fuzz", "^"+t.name+"$",
				"-fuzztime", fuzztime.String(), "-fuzzminimizetime", minimize.String(), t.pkg)
			cmd.Stdout, cmd.Stderr = &buf, &buf
			if runErr = cmd.Run(); runErr == nil || !engineTimedOut(buf.Bytes()) || ctx.Err() != nil {
				break
			}
			fmt.Fprintf(out, "(%s %s: the fuzzing engine timed out stopping its workers, no failing input; running it again)\n", t.pkg, t.name)
		}
		execs, elapsed := progress(buf.Bytes())
		rate := "-"
		if elapsed > 0 {
			rate = strconv.FormatInt(int64(float64(execs)/elapsed.Seconds()), 10)
		}
		status := ""
		if runErr != nil {
			status = "  FAILED"
			failed = append(failed, t.pkg+" "+t.name)
		}
		fmt.Fprintf(out, "%-54s %-18s %12d %10s%s\n", t.pkg, t.name, execs, rate, status)
		if runErr != nil {
			fmt.Fprintf(out, "--- %s %s (%s):\n%s\n", t.pkg, t.name, time.Since(start).Round(time.Second), buf.Bytes())
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("%d fuzz targets failed: %s", len(failed), strings.Join(failed, ", "))
	}
	return nil
}

// engineTimedOut tells a run that failed only because Go's fuzzing engine
// hit its own deadline while stopping its workers (seen on a loaded 2-core
// machine: "context deadline exceeded" when -fuzztime ends) from a real
// failure, which always writes its failing input.
func engineTimedOut(out []byte) bool {
	return bytes.Contains(out, []byte("context deadline exceeded")) && !bytes.Contains(out, []byte("Failing input written to"))
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

var fuzzFunc = regexp.MustCompile(`(?m)^func (Fuzz\w*)\(\w+ \*testing\.F\)`)

// discover lists the fuzz targets of the packages that patterns name, in
// package order.
func discover(ctx context.Context, goCmd string, patterns []string) ([]target, error) {
	args := append([]string{"list", "-f", "{{.ImportPath}}\t{{.Dir}}\t{{join .TestGoFiles \" \"}} {{join .XTestGoFiles \" \"}}"}, patterns...)
	cmd := exec.CommandContext(ctx, goCmd, args...)
	cmd.Stderr = os.Stderr
	listed, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go list: %w", err)
	}
	var targets []target
	sc := bufio.NewScanner(bytes.NewReader(listed))
	for sc.Scan() {
		fields := strings.SplitN(sc.Text(), "\t", 3)
		if len(fields) != 3 {
			continue
		}
		for _, file := range strings.Fields(fields[2]) {
			src, err := os.ReadFile(filepath.Join(fields[1], file))
			if err != nil {
				return nil, fmt.Errorf("read %s: %w", file, err)
			}
			for _, m := range fuzzFunc.FindAllSubmatch(src, -1) {
				targets = append(targets, target{pkg: fields[0], name: string(m[1])})
			}
		}
	}
	return targets, sc.Err()
}

var progressLine = regexp.MustCompile(`fuzz: elapsed: (\d+)s, execs: (\d+) `)

// progress reads the last progress line of `go test -fuzz` output: the
// executions so far and the time they took (baseline coverage included).
func progress(out []byte) (execs int64, elapsed time.Duration) {
	for _, m := range progressLine.FindAllSubmatch(out, -1) {
		s, _ := strconv.Atoi(string(m[1]))
		n, _ := strconv.ParseInt(string(m[2]), 10, 64)
		execs, elapsed = n, time.Duration(s)*time.Second
	}
	return execs, elapsed
}
