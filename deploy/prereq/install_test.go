package prereq

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// machine is a fake machine: which packages are installed, and the
// commands Ensure ran on it. apt-get install installs, unless broken.
type machine struct {
	installed map[string]bool
	ran       []string
	broken    bool // apt-get fails (offline, no space)
}

func (m *machine) need(what string, skips string, pkgs ...string) Need {
	return Need{What: what, Packages: pkgs, Skips: skips, Else: "or set LOOM_DATABASE_URL",
		Found: func() bool {
			for _, p := range pkgs {
				if !m.installed[p] {
					return false
				}
			}
			return true
		}}
}

func (m *machine) run(_ context.Context, name string, args ...string) error {
	m.ran = append(m.ran, strings.Join(append([]string{name}, args...), " "))
	if m.broken {
		return errors.New("exit status 100")
	}
	if len(args) > 0 && args[0] == "install" {
		for _, a := range args[1:] {
			if !strings.HasPrefix(a, "-") {
				m.installed[a] = true
			}
		}
	}
	return nil
}

func TestEnsure_WhatIsMissing_IsInstalledOrNamedInOneLine(t *testing.T) {
	tests := []struct {
		name       string
		installed  []string
		canInstall bool
		broken     bool
		wantRan    []string
		wantErr    string   // "" for none; else a part of the one line
		wantOut    []string // parts of the output, in order
	}{
		{name: "everything present: nothing runs, nothing said, no network",
			installed: []string{"postgresql", "redis-server", "nodejs", "npm"}, canInstall: true},
		{name: "root with apt-get: everything missing in one install",
			installed: []string{"nodejs"}, canInstall: true,
			wantRan: []string{"apt-get update", "apt-get install -y --no-install-recommends postgresql redis-server nodejs npm"},
			wantOut: []string{"installing postgresql redis-server nodejs npm"}},
		{name: "not root: the required one stops the target in one line naming its package",
			installed: []string{"redis-server", "nodejs", "npm"},
			wantErr:   "make run needs the PostgreSQL server binaries: install it (Debian: apt-get install postgresql), or set LOOM_DATABASE_URL"},
		{name: "not root: an optional one is a line saying what skips, and the target goes on",
			installed: []string{"postgresql", "nodejs"},
			wantOut: []string{"make run: no redis-server, so the shared-limit tests skip (Debian: apt-get install redis-server)",
				"make run: no Node.js and npm, so the TypeScript checks skip (Debian: apt-get install nodejs npm)"}},
		{name: "root, but apt-get fails: the same lines as without root",
			installed: []string{"nodejs", "npm"}, canInstall: true, broken: true,
			wantRan: []string{"apt-get update"},
			wantOut: []string{"installing postgresql redis-server", "apt-get: exit status 100",
				"make run: no redis-server, so the shared-limit tests skip"},
			wantErr: "apt-get install postgresql"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := &machine{installed: map[string]bool{}, broken: tt.broken}
			for _, p := range tt.installed {
				m.installed[p] = true
			}
			needs := []Need{
				m.need("the PostgreSQL server binaries", "", "postgresql"),
				m.need("redis-server", "the shared-limit tests skip", "redis-server"),
				m.need("Node.js and npm", "the TypeScript checks skip", "nodejs", "npm"),
			}
			var out bytes.Buffer
			err := Ensure(t.Context(), "make run", needs, tt.canInstall, m.run, &out)
			if !slices.Equal(m.ran, tt.wantRan) {
				t.Errorf("ran %q, want %q", m.ran, tt.wantRan)
			}
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("Ensure = %v, want nil", err)
			case tt.wantErr != "" && (err == nil || !errors.Is(err, ErrMissing) || !strings.Contains(err.Error(), tt.wantErr) ||
				strings.Count(err.Error(), "\n") != 0):
				t.Errorf("Ensure = %v, want one line (ErrMissing) with %q", err, tt.wantErr)
			}
			rest := out.String()
			for _, w := range tt.wantOut {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("output lacks %q (in order):\n%s", w, out.String())
				}
				rest = rest[i+len(w):]
			}
			if len(tt.wantOut) == 0 && out.Len() != 0 {
				t.Errorf("output = %q, want none", out.String())
			}
		})
	}
}

func TestCanInstall_OnlyRootWithAptGet(t *testing.T) {
	apt := func(string) (string, error) { return "/usr/bin/apt-get", nil }
	noApt := func(string) (string, error) { return "", exec.ErrNotFound }
	for _, tt := range []struct {
		name     string
		euid     int
		lookPath func(string) (string, error)
		want     bool
	}{
		{"root with apt-get", 0, apt, true},
		{"root without apt-get (not Debian)", 0, noApt, false},
		{"a user: never sudo, never a password prompt", 1000, apt, false},
	} {
		if got := CanInstall(tt.euid, tt.lookPath); got != tt.want {
			t.Errorf("%s: CanInstall = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// Every need of make test names a package, says what skips, and finds
// its program the way the tests do (a smoke check that the lookups run).
func TestTestNeeds_EachNamesItsPackageAndWhatSkips(t *testing.T) {
	var pkgs []string
	for _, n := range TestNeeds() {
		if len(n.Packages) == 0 || n.Skips == "" || n.What == "" || n.Found == nil {
			t.Errorf("need %+v lacks a package, a skip, a name or a lookup", n)
			continue
		}
		pkgs = append(pkgs, n.Packages...)
		t.Logf("%s: found %v", n.What, n.Found())
	}
	for _, want := range []string{"postgresql", "redis-server", "nodejs", "npm", "chromium", "prometheus"} {
		if !slices.Contains(pkgs, want) {
			t.Errorf("make test's needs lack %s", want)
		}
	}
	if p := Postgres(); p.Skips != "" {
		t.Errorf("Postgres().Skips = %q: make run cannot run without it", p.Skips)
	}
}
