package prereq

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// A Need is a program a make target uses and the Debian packages that
// install it. The lookups are the ones the tests and devstack use
// (pgserver.FindBin, redisserver.FindBin, promserver.FindBin, the
// console's Chromium path), written out here since those packages' own
// tests import this one.
type Need struct {
	// What names it for people: "the PostgreSQL server binaries (initdb)".
	What string
	// Packages install it (apt-get install Packages...).
	Packages []string
	// Skips says what skips without it; "" when the target cannot run
	// without it at all.
	Skips string
	// Else is another way out, said with the line that asks for the
	// package ("or set LOOM_DATABASE_URL to a PostgreSQL to use").
	Else string
	// Found reports whether it is installed.
	Found func() bool
}

// Postgres is the PostgreSQL server binaries, found on PATH or under
// /usr/lib/postgresql/<version>/bin (pgserver.FindBin).
func Postgres() Need {
	return Need{What: "the PostgreSQL server binaries (initdb)", Packages: []string{"postgresql"},
		Found: func() bool {
			m, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
			return onPath("initdb") || len(m) > 0
		}}
}

// TestNeeds are what `make test` uses beyond Go: each missing one skips
// the tests that need it (fails them under CI=true, see Check).
func TestNeeds() []Need {
	pg := Postgres()
	pg.Skips = "every test that stores (the collector, the console, the end-to-end tests) skips"
	return []Need{
		pg,
		{What: "redis-server", Packages: []string{"redis-server"},
			Skips: "the shared rate-limit and budget tests skip",
			Found: func() bool { return onPath("redis-server") || executable("/usr/bin/redis-server") }},
		{What: "Node.js and npm", Packages: []string{"nodejs", "npm"},
			Skips: "the TypeScript checks of the k6 scripts and dashboards, and the console's browser test, skip",
			Found: func() bool { return onPath("node") && onPath("npm") }},
		{What: "Chromium (/usr/bin/chromium)", Packages: []string{"chromium"},
			Skips: "the console's browser test skips",
			Found: func() bool { return executable("/usr/bin/chromium") }},
		{What: "Prometheus (prometheus and promtool)", Packages: []string{"prometheus"},
			Skips: "the alert rules' promtool checks and the multi-replica test skip",
			Found: func() bool {
				return (onPath("promtool") || executable("/usr/bin/promtool")) &&
					(onPath("prometheus") || executable("/usr/bin/prometheus"))
			}},
	}
}

func onPath(name string) bool { _, err := exec.LookPath(name); return err == nil }

func executable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

// Decision is what to do about the needs that are not found: install
// Install with apt-get, and say Lines, one per need that stays missing.
type Decision struct {
	Install []string
	// Missing are the needs that cannot be installed here.
	Missing []Need
}

// Decide looks each need up and decides: with canInstall (root, with
// apt-get), every missing need is installed; without, each is a line.
func Decide(needs []Need, canInstall bool) Decision {
	var d Decision
	for _, n := range needs {
		if n.Found() {
			continue
		}
		if canInstall {
			d.Install = append(d.Install, n.Packages...)
		} else {
			d.Missing = append(d.Missing, n)
		}
	}
	return d
}

// CanInstall reports whether missing packages can be installed without
// asking anyone: as root, with apt-get on PATH (lookPath). Never through
// sudo: `make run` must not stop at a password prompt.
func CanInstall(euid int, lookPath func(string) (string, error)) bool {
	if euid != 0 {
		return false
	}
	_, err := lookPath("apt-get")
	return err == nil
}

// Line is the one line that says what to install for n, for target
// ("make run", "make test").
func Line(target string, n Need) string {
	install := "apt-get install " + strings.Join(n.Packages, " ")
	if n.Skips == "" {
		l := fmt.Sprintf("%s needs %s: install it (Debian: %s)", target, n.What, install)
		if n.Else != "" {
			l += ", " + n.Else
		}
		return l
	}
	return fmt.Sprintf("%s: no %s, so %s (Debian: %s)", target, n.What, n.Skips, install)
}

// ErrMissing is what Ensure's error is (errors.Is) when something a target
// cannot run without is missing; the error's text is the one line to show.
var ErrMissing = errors.New("missing")

type missingError string

func (e missingError) Error() string        { return string(e) }
func (e missingError) Is(target error) bool { return target == ErrMissing }

// Runner runs a command, its output to the terminal; apt-get in Ensure.
type Runner func(ctx context.Context, name string, args ...string) error

// Ensure makes the needs of target present: what is missing is installed
// with apt-get when canInstall, and looked up again. What stays missing is
// said in one line each (to out for what only skips tests); a need
// without Skips that stays missing is an error wrapping ErrMissing whose
// text is its line. With everything present it runs nothing (no network).
func Ensure(ctx context.Context, target string, needs []Need, canInstall bool, run Runner, out io.Writer) error {
	d := Decide(needs, canInstall)
	if len(d.Install) > 0 {
		fmt.Fprintf(out, "%s: installing %s (apt-get, as root)\n", target, strings.Join(d.Install, " "))
		err := run(ctx, "apt-get", "update")
		if err == nil {
			err = run(ctx, "apt-get", append([]string{"install", "-y", "--no-install-recommends"}, d.Install...)...)
		}
		if err != nil {
			fmt.Fprintf(out, "%s: apt-get: %v\n", target, err)
		}
		d = Decide(needs, false) // what is still missing, installed or not
	}
	var errs []error
	for _, n := range d.Missing {
		if n.Skips == "" {
			errs = append(errs, missingError(Line(target, n)))
			continue
		}
		fmt.Fprintln(out, Line(target, n))
	}
	return errors.Join(errs...)
}

// Apt runs apt-get as Ensure wants it: no questions, output to w.
func Apt(w io.Writer) Runner {
	return func(ctx context.Context, name string, args ...string) error {
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		cmd.Stdout, cmd.Stderr = w, w
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), err)
		}
		return nil
	}
}
