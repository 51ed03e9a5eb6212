package grafana_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/loom-gateway/loom/dashboards/grafana"
	"github.com/loom-gateway/loom/deploy/prereq"
)

// typeCheckDir is the npm project that pins TypeScript and @grafana/schema, with the LoomDashboard type
// (schema.ts) and the compiler options (tsconfig.json) the dashboards are checked under.
const typeCheckDir = "typecheck"

// Every committed dashboard, written as a typed literal, type-checks against Grafana's own schema types:
// an unknown key, a value of the wrong type or outside its union (a legend displayMode, a variable's
// refresh, a panel type Loom does not write) fails, with the line of json/<name>.json it is on.
func TestJSON_TypeChecksAgainstGrafanaSchema(t *testing.T) {
	tsc := typeScript(t)
	files := map[string][]byte{}
	for _, name := range grafana.Names() {
		raw, err := os.ReadFile(filepath.Join(dir, name+".json"))
		if err != nil {
			t.Fatal(err)
		}
		files[name] = raw
	}
	diags, out, err := typeCheck(t, tsc, files)
	for _, d := range diags {
		t.Errorf("json/%s.json:%d: %s\n\t%s", d.file, d.line, d.msg, d.source)
	}
	if err != nil && len(diags) == 0 {
		t.Fatalf("tsc: %v\n%s", err, out)
	}
	if err == nil && len(diags) > 0 {
		t.Fatalf("tsc reported errors but exited 0:\n%s", out)
	}
}

// TestTypeCheck_CatchesMisuse keeps the check honest: testdata/misuse.jsonc is a dashboard (JSON once
// its comments are gone) that breaks Grafana's types on every line marked "want error", and goes
// through the same literal and the same compiler options as the generated ones. Each marked line must
// be reported, and nothing else.
func TestTypeCheck_CatchesMisuse(t *testing.T) {
	tsc := typeScript(t)
	src, err := os.ReadFile(filepath.Join("testdata", "misuse.jsonc"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[int]string{}
	lines := strings.Split(string(src), "\n")
	for i, line := range lines {
		if code, why, ok := strings.Cut(line, "// want error"); ok {
			want[i+1] = strings.TrimPrefix(why, ": ")
			lines[i] = strings.TrimRight(code, " ")
		}
	}
	raw := []byte(strings.Join(lines, "\n"))
	if !json.Valid(raw) {
		t.Fatal("testdata/misuse.jsonc is not JSON without its comments: the check must see what the generator writes")
	}
	diags, out, err := typeCheck(t, tsc, map[string][]byte{"misuse": raw})
	if err == nil {
		t.Fatalf("tsc accepted testdata/misuse.jsonc: the type-check no longer catches misuse of Grafana's schema\n%s", out)
	}
	if len(diags) == 0 {
		t.Fatalf("tsc failed without a diagnostic on misuse.jsonc: %v\n%s", err, out)
	}
	got := map[int]bool{}
	for _, d := range diags {
		if d.file != "misuse" {
			t.Errorf("error outside misuse.jsonc: %s:%d: %s", d.file, d.line, d.msg)
			continue
		}
		got[d.line] = true
	}
	for _, n := range slices.Sorted(maps.Keys(want)) {
		if !got[n] {
			t.Errorf("misuse.jsonc:%d (%s) type-checks: the check has gone soft", n, want[n])
		}
	}
	for _, n := range slices.Sorted(maps.Keys(got)) {
		if _, ok := want[n]; !ok {
			t.Errorf("misuse.jsonc:%d fails to type-check but is not marked \"want error\"", n)
		}
	}
	if t.Failed() {
		t.Logf("tsc output:\n%s", out)
	}
}

// The literal keeps the JSON's lines: a dashboard's line n is the module's line n+literalHeader.
func TestLiteral_KeepsTheJSONsLines(t *testing.T) {
	raw := []byte("{\n  \"title\": \"x\",\n  \"panels\": []\n}\n")
	mod := strings.Split(string(literal(raw)), "\n")
	for i, line := range strings.Split(strings.TrimSuffix(string(raw), "\n"), "\n") {
		if !strings.Contains(mod[i+literalHeader], line) {
			t.Errorf("JSON line %d %q is module line %d %q", i+1, line, i+1+literalHeader, mod[i+literalHeader])
		}
	}
}

// literalHeader is how many lines literal writes before the JSON's first.
const literalHeader = 1

// literal is dashboard JSON as a TypeScript module: the JSON, line for line, as the initializer of a
// LoomDashboard constant. A typed literal rather than a JSON import, which would widen every string
// union to string and let a misspelt enum value through.
func literal(raw []byte) []byte {
	var b bytes.Buffer
	b.WriteString("import type { LoomDashboard } from './schema';\n")
	b.WriteString("export const dashboard: LoomDashboard = ")
	b.Write(bytes.TrimRight(raw, "\n"))
	b.WriteString(";\n")
	return b.Bytes()
}

// diag is one tsc error, on a line of the dashboard JSON it came from.
type diag struct {
	file   string // the dashboard's name, or the path tsc named outside the literals
	line   int
	msg    string
	source string // the JSON line
}

// tscError matches one diagnostic of tsc --pretty false: file(line,col): error TSnnnn: message.
var tscError = regexp.MustCompile(`(?m)^(\S+)\((\d+),\d+\): error (TS\d+: .*)$`)

// typeCheck writes each dashboard (by name) as a literal into a fresh folder, beside schema.ts and a
// tsconfig.json that extends typecheck/tsconfig.json, and runs tsc there. It returns tsc's errors,
// each on its dashboard's JSON line, its output, and its error.
func typeCheck(t *testing.T, tsc string, dashboards map[string][]byte) ([]diag, []byte, error) {
	t.Helper()
	project, err := filepath.Abs(typeCheckDir)
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	// Modules resolve from the importing file's folder upwards: a link makes the pinned packages visible.
	if err := os.Symlink(filepath.Join(project, "node_modules"), filepath.Join(tmp, "node_modules")); err != nil {
		t.Fatal(err)
	}
	schema, err := os.ReadFile(filepath.Join(project, "schema.ts"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := json.Marshal(map[string]any{
		"extends": filepath.Join(project, "tsconfig.json"),
		"include": []string{"*.ts"},
	})
	if err != nil {
		t.Fatal(err)
	}
	write := map[string][]byte{"schema.ts": schema, "tsconfig.json": cfg}
	for name, raw := range dashboards {
		write[name+".ts"] = literal(raw)
	}
	for name, b := range write {
		if err := os.WriteFile(filepath.Join(tmp, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, tsc, "-p", ".", "--pretty", "false")
	cmd.Dir = tmp
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	runErr := cmd.Run()
	if runErr != nil {
		if _, ok := errors.AsType[*exec.ExitError](runErr); !ok {
			t.Fatalf("tsc: %v\n%s", runErr, out.Bytes())
		}
	}

	var diags []diag
	for _, m := range tscError.FindAllStringSubmatch(out.String(), -1) {
		d := diag{file: filepath.ToSlash(m[1]), msg: m[3]}
		n, _ := strconv.Atoi(m[2])
		d.line = n
		if name, ok := strings.CutSuffix(d.file, ".ts"); ok && dashboards[name] != nil {
			d.file, d.line = name, n-literalHeader
			if lines := strings.Split(string(dashboards[name]), "\n"); d.line >= 1 && d.line <= len(lines) {
				d.source = strings.TrimSpace(lines[d.line-1])
			}
		}
		diags = append(diags, d)
	}
	return diags, out.Bytes(), runErr
}

// tsSetup installs the pinned TypeScript and @grafana/schema into typecheck/node_modules (npm ci)
// unless they are there already, and returns the tsc to run. It runs once for all the tests.
var tsSetup = sync.OnceValues(func() (string, error) { return prereq.TypeScript(typeCheckDir, "--ignore-scripts") })

// typeScript is tsSetup's tsc, or the end of a test that cannot have one: a skip on a machine without
// Node.js and npm (install them to type-check the dashboards), a failure in CI.
func typeScript(t *testing.T) string {
	t.Helper()
	tsc, err := tsSetup()
	prereq.Check(t, err, prereq.ErrNotInstalled)
	return tsc
}
