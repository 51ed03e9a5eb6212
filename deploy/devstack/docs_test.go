package devstack

import (
	"flag"
	"os"
	"os/exec"
	"path"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/loom-gateway/loom/deploy/prereq"
)

// readmeSection is the README's text under heading (a line that starts with
// it) up to the next heading of any level.
func readmeSection(t *testing.T, heading string) string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "\n"+heading)
	if !ok {
		t.Fatalf("README.md has no heading %q", heading)
	}
	if i := strings.Index(rest, "\n#"); i >= 0 {
		rest = rest[:i]
	}
	return rest
}

// firstColumn is the backquoted first cell of each row of the markdown
// tables in s.
func firstColumn(s string) []string {
	var out []string
	for _, m := range regexp.MustCompile("(?m)^\\| `([^`]+)` \\|").FindAllStringSubmatch(s, -1) {
		out = append(out, m[1])
	}
	return out
}

func TestReadme_ListsEveryDevstackFlag(t *testing.T) {
	var o Options
	fs := Flags(&o)
	want := []string{"-clean"} // Main's own
	fs.VisitAll(func(f *flag.Flag) { want = append(want, "-"+f.Name) })
	got := firstColumn(readmeSection(t, "### `make run`'s flags"))
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("README's flags %v, devstack's %v", got, want)
	}
	// And each default as the README says it.
	section := readmeSection(t, "### `make run`'s flags")
	fs.VisitAll(func(f *flag.Flag) {
		if !strings.Contains(section, "| `-"+f.Name+"` | `"+f.DefValue+"` |") {
			t.Errorf("README: -%s's default is not `%s`", f.Name, f.DefValue)
		}
	})
}

// makefileBinaries is the Makefile's BINARIES, as bin/ names.
func makefileBinaries(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^BINARIES := (.+)$`).FindSubmatch(b)
	if m == nil {
		t.Fatal("Makefile has no BINARIES := line")
	}
	var names []string
	for _, pkg := range strings.Fields(string(m[1])) {
		if _, err := os.Stat("../../" + pkg); err != nil {
			t.Errorf("Makefile's BINARIES names %s: %v", pkg, err)
		}
		names = append(names, path.Base(pkg))
	}
	if !regexp.MustCompile(`(?m)^build:.*\n\t\$\(GO\) build -o bin/ \$\(addprefix \./,\$\(BINARIES\)\)$`).Match(b) {
		t.Error("make build does not build $(BINARIES)")
	}
	return names
}

// make build, make help and the README name the same binaries.
func TestReadmeAndMakeHelp_ListEveryBuiltBinary(t *testing.T) {
	built := makefileBinaries(t)
	var readme []string
	for _, c := range firstColumn(readmeSection(t, "### What `make build` builds")) {
		readme = append(readme, strings.TrimPrefix(c, "bin/"))
	}
	if !slices.Equal(readme, built) {
		t.Errorf("README's binaries %v, make build's %v", readme, built)
	}
	mk, err := prereq.Program("make")
	prereq.Check(t, err, prereq.ErrNotInstalled)
	cmd := exec.Command(mk, "-s", "help")
	cmd.Dir = "../.."
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make help: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "bin/: "+strings.Join(built, " ")+" ") {
		t.Errorf("make help does not list %v:\n%s", built, out)
	}
	for _, target := range []string{"run", "test", "clean", "build"} {
		if !strings.Contains(string(out), "make "+target+" ") {
			t.Errorf("make help lacks make %s:\n%s", target, out)
		}
	}
}

// The README documents every LOOM_OTLP_* variable that ChooseFanout reads.
func TestReadme_ListsEveryFanoutVariable(t *testing.T) {
	got := firstColumn(readmeSection(t, "### Fan the traces out to your own OTel backend"))
	for _, v := range []string{EnvOTLPEndpoint, EnvOTLPProtocol, EnvOTLPInsecure, EnvOTLPCAFile, EnvOTLPCompression, EnvOTLPHeaders} {
		if !slices.Contains(got, v) {
			t.Errorf("README's fan-out table lacks %s (has %v)", v, got)
		}
	}
}
