package loadtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
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

	"github.com/loom-gateway/loom/deploy/prereq"
)

// The budget every scenario must declare in its thresholds; a streaming one also holds the gateway's
// share of the time to first chunk to maxOverheadP99MS, and both overheads at p99.9 to maxOverheadP999MS.
const (
	maxOverheadP99MS  = 20
	maxOverheadP999MS = 50
	maxErrorRate      = 0.001
)

// scenarios are the files README.md documents; any other *.js file beside them is held to the same rules.
var scenarios = []string{"steady-nonstream.js", "steady-stream.js", "spike.js", "soak.js", "multi-tenant.js"}

func TestScenarios_TypeCheckAgainstK6Types(t *testing.T) {
	tsc := toolchain(t)
	if out, err := runTSC(t, tsc, "-p", ".", "--pretty", "false"); err != nil {
		t.Fatalf("tsc -p loadtest: %v\n%s", err, out)
	}
}

// TestTypeCheck_CatchesMisuse keeps the check honest: testdata/misuse.js misuses the k6 API on every line
// marked "want error", under the scenarios' own compiler options. Each must be reported, and nothing else.
func TestTypeCheck_CatchesMisuse(t *testing.T) {
	tsc := toolchain(t)
	out, err := runTSC(t, tsc, "-p", "testdata", "--pretty", "false")
	if err == nil {
		t.Fatalf("tsc accepted testdata/misuse.js: the type-check no longer catches misuse of the k6 API\n%s", out)
	}
	if _, ok := errors.AsType[*exec.ExitError](err); !ok {
		t.Fatalf("tsc -p testdata: %v\n%s", err, out)
	}
	src, err := os.ReadFile(filepath.Join("testdata", "misuse.js"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[int]string{}
	for i, line := range strings.Split(string(src), "\n") {
		if _, why, ok := strings.Cut(line, "// want error"); ok {
			want[i+1] = strings.TrimPrefix(why, ": ")
		}
	}
	got := map[int]bool{}
	for _, m := range tscError.FindAllStringSubmatch(string(out), -1) {
		if filepath.ToSlash(m[1]) != "testdata/misuse.js" {
			t.Errorf("error outside misuse.js: %s", m[0])
			continue
		}
		n, _ := strconv.Atoi(m[2])
		got[n] = true
	}
	for _, n := range slices.Sorted(maps.Keys(want)) {
		if !got[n] {
			t.Errorf("misuse.js:%d (%s) type-checks: the check has gone soft", n, want[n])
		}
	}
	for _, n := range slices.Sorted(maps.Keys(got)) {
		if _, ok := want[n]; !ok {
			t.Errorf("misuse.js:%d fails to type-check but is not marked \"want error\"", n)
		}
	}
	if t.Failed() {
		t.Logf("tsc output:\n%s", out)
	}
}

// tscError matches one diagnostic of tsc --pretty false: file(line,col): error TSnnnn: message.
var tscError = regexp.MustCompile(`(?m)^(\S+)\((\d+),\d+\): error TS\d+`)

func TestScenarios_KeepTheirBudget(t *testing.T) {
	files, err := filepath.Glob("*.js")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range scenarios {
		if !slices.Contains(files, s) {
			t.Errorf("scenario %s is missing", s)
		}
	}
	shared := sharedConstants(t)
	if _, ok := shared["OVERHEAD_P99"]; !ok {
		t.Fatal("lib/config.js exports no OVERHEAD_P99: the scenarios' one overhead budget")
	}
	if _, ok := shared["OVERHEAD_P999"]; !ok {
		t.Fatal("lib/config.js exports no OVERHEAD_P999: the streaming scenarios' tail budget")
	}
	for _, file := range files {
		t.Run(file, func(t *testing.T) {
			src, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range scenarioProblems(inlineConstants(stripComments(string(src)), shared)) {
				t.Error(p)
			}
		})
	}
}

// sharedConstRe matches an exported string constant of lib/config.js (the scenarios' budgets).
var sharedConstRe = regexp.MustCompile(`(?m)^export const ([A-Z][A-Z0-9_]*) = ('[^'\n]*');`)

// sharedConstants are the string constants lib/config.js exports, as the quoted literals k6 sees.
func sharedConstants(t *testing.T) map[string]string {
	t.Helper()
	src, err := os.ReadFile(filepath.Join("lib", "config.js"))
	if err != nil {
		t.Fatal(err)
	}
	consts := map[string]string{}
	for _, m := range sharedConstRe.FindAllStringSubmatch(stripComments(string(src)), -1) {
		consts[m[1]] = m[2]
	}
	return consts
}

// inlineConstants writes each shared constant's literal where src names it, so the budget checks read
// the thresholds k6 will run (tsc has checked that the names are imported).
func inlineConstants(src string, consts map[string]string) string {
	for name, lit := range consts {
		src = regexp.MustCompile(`\b`+name+`\b`).ReplaceAllLiteralString(src, lit)
	}
	return src
}

// The budget lives once, in lib/config.js: a scenario that uses it is held to what it says there.
func TestScenarioProblems_SharedBudgetIsReadFromConfig(t *testing.T) {
	src := strings.ReplaceAll(goodScenario, "'p(99)<20'", "OVERHEAD_P99")
	if p := scenarioProblems(inlineConstants(src, map[string]string{"OVERHEAD_P99": "'p(99)<20'"})); len(p) > 0 {
		t.Fatalf("budget from config: problems = %q, want none", p)
	}
	p := scenarioProblems(inlineConstants(src, map[string]string{"OVERHEAD_P99": "'p(99)<50'"}))
	if !slices.ContainsFunc(p, func(p string) bool { return strings.Contains(p, "loom_overhead_ms is") }) {
		t.Fatalf("looser budget in config: problems = %q, want one on loom_overhead_ms", p)
	}
	if p := scenarioProblems(src); len(p) == 0 {
		t.Fatal("the constant's name alone passed as a budget")
	}
}

// goodScenario is the smallest source that scenarioProblems accepts; the cases below break it one way each.
const goodScenario = `
export const options = {
  scenarios: {
    s: { executor: 'constant-arrival-rate', rate: 1, duration: '1m', preAllocatedVUs: 1, maxVUs: 2 },
  },
  thresholds: {
    loom_overhead_ms: [{ threshold: 'p(99)<20', abortOnFail: false }],
    gateway_overhead_ms: ['p(99)<20'],
    http_req_failed: ['rate<0.001'],
    call_errors: ['rate<0.001'],
  },
};
export default function () { observe(http.post(URL, BODY, PARAMS), {}); }
export const handleSummary = summaryHandler('s');
`

// goodStreamScenario is goodScenario streaming: it must also hold the first chunk and the tail.
const goodStreamScenario = `
export const options = {
  scenarios: {
    s: { executor: 'constant-arrival-rate', rate: 1, duration: '1m', preAllocatedVUs: 1, maxVUs: 2 },
  },
  thresholds: {
    loom_overhead_ms: [{ threshold: 'p(99)<20', abortOnFail: false }],
    gateway_overhead_ms: [{ threshold: 'p(99)<20' }, { threshold: 'p(99.9)<50' }],
    ttfc_overhead_ms: ['p(99)<20', 'p(99.9)<50'],
    http_req_failed: ['rate<0.001'],
    call_errors: ['rate<0.001'],
  },
};
const PARAMS = { headers: headers(KEY, { chunks: 20, timing: true }) };
export default function () { observe(http.post(URL, BODY, PARAMS), { streamChunks: 20 }); }
export const handleSummary = summaryHandler('s');
`

func TestScenarioProblems_StreamingScenario_HoldsFirstChunkAndTail(t *testing.T) {
	tests := []struct {
		name      string
		old, new  string
		wantMatch string // in one of the problems; "" for none
	}{
		{name: "as written", wantMatch: ""},
		{name: "no first-chunk budget", old: "    ttfc_overhead_ms: ['p(99)<20', 'p(99.9)<50'],\n", new: "", wantMatch: "no threshold on ttfc_overhead_ms"},
		{name: "looser first-chunk budget", old: "ttfc_overhead_ms: ['p(99)<20'", new: "ttfc_overhead_ms: ['p(99)<40'", wantMatch: "ttfc_overhead_ms is"},
		{name: "no p99.9 on the stream", old: ", { threshold: 'p(99.9)<50' }", new: "", wantMatch: "gateway_overhead_ms is"},
		{name: "looser p99.9 on the first chunk", old: "'p(99.9)<50'],", new: "'p(99.9)<80'],", wantMatch: "ttfc_overhead_ms is"},
		{name: "no timing from the mock", old: ", timing: true", new: "", wantMatch: "x-mock-timing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := goodStreamScenario
			if tt.old != "" {
				if !strings.Contains(src, tt.old) {
					t.Fatalf("goodStreamScenario has no %q", tt.old)
				}
				src = strings.Replace(src, tt.old, tt.new, 1)
			}
			problems := scenarioProblems(stripComments(src))
			if tt.wantMatch == "" {
				if len(problems) > 0 {
					t.Fatalf("problems = %q, want none", problems)
				}
				return
			}
			if !slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, tt.wantMatch) }) {
				t.Fatalf("problems = %q, want one that mentions %q", problems, tt.wantMatch)
			}
		})
	}
}

func TestScenarioProblems_FlagsDroppedBudgets(t *testing.T) {
	tests := []struct {
		name      string
		old, new  string
		wantMatch string // in one of the problems; "" for none
	}{
		{name: "as written", wantMatch: ""},
		{name: "tighter budget is fine", old: "'p(99)<20', abortOnFail", new: "'p(99)<10', abortOnFail", wantMatch: ""},
		{name: "looser overhead budget", old: "['p(99)<20']", new: "['p(99)<50']", wantMatch: "gateway_overhead_ms is"},
		{name: "p95 instead of p99", old: "'p(99)<20', abortOnFail", new: "'p(95)<20', abortOnFail", wantMatch: "loom_overhead_ms is"},
		{name: "no error budget", old: "    call_errors: ['rate<0.001'],\n", new: "", wantMatch: "no threshold on call_errors"},
		{name: "looser error rate", old: "http_req_failed: ['rate<0.001']", new: "http_req_failed: ['rate<0.01']", wantMatch: "http_req_failed is"},
		{name: "budget only in a comment", old: "    loom_overhead_ms: [{ threshold: 'p(99)<20', abortOnFail: false }],\n", new: "    // loom_overhead_ms: ['p(99)<20'],\n", wantMatch: "no threshold on loom_overhead_ms"},
		{name: "closed loop", old: "'constant-arrival-rate'", new: "'constant-vus'", wantMatch: "closed loop"},
		{name: "VUs unsized", old: ", maxVUs: 2", new: "", wantMatch: "maxVUs:"},
		{name: "no thresholds", old: "thresholds: {", new: "limits: {", wantMatch: "no thresholds"},
		{name: "no summary", old: "export const handleSummary", new: "const handleSummary", wantMatch: "handleSummary"},
		{name: "tenant without its own budget", old: "preAllocatedVUs: 1,", new: "tags: { tenant: 'a' }, preAllocatedVUs: 1,", wantMatch: "loom_overhead_ms{tenant:a}"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := goodScenario
			if tt.old != "" {
				if !strings.Contains(src, tt.old) {
					t.Fatalf("goodScenario has no %q", tt.old)
				}
				src = strings.Replace(src, tt.old, tt.new, 1)
			}
			problems := scenarioProblems(stripComments(src))
			if tt.wantMatch == "" {
				if len(problems) > 0 {
					t.Fatalf("problems = %q, want none", problems)
				}
				return
			}
			if !slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, tt.wantMatch) }) {
				t.Fatalf("problems = %q, want one that mentions %q", problems, tt.wantMatch)
			}
		})
	}
}

var (
	executorRe   = regexp.MustCompile(`\bexecutor:\s*['"]([^'"]*)['"]`)
	tenantTagRe  = regexp.MustCompile(`\btags:\s*\{\s*tenant:\s*['"]([^'"]+)['"]`)
	summaryRe    = regexp.MustCompile(`\bexport\s+(const|function)\s+handleSummary\b`)
	checkCallRe  = regexp.MustCompile(`\b(check|observe)\(`)
	thresholdsRe = regexp.MustCompile(`\bthresholds:\s*\{`)
	p99Re        = regexp.MustCompile(`['"]p\(99\)\s*<=?\s*(\d+(?:\.\d+)?)['"]`)
	p999Re       = regexp.MustCompile(`['"]p\(99\.9\)\s*<=?\s*(\d+(?:\.\d+)?)['"]`)
	streamsRe    = regexp.MustCompile(`\bstreamChunks:`)
	timingRe     = regexp.MustCompile(`\btiming:\s*true\b`)
	rateRe       = regexp.MustCompile(`['"]rate\s*<=?\s*(\d+(?:\.\d+)?)['"]`)
)

// scenarioProblems lists what keeps src from being a scenario: it must run open loop (arrival-rate
// executors only, VUs sized), check its responses, write a summary, and declare the overhead and error
// budgets, per tenant where it has tenants. A scenario that streams asks the mock for its measured
// times (x-mock-timing, which the stream measures subtract) and also holds the gateway's share of the
// time to first chunk, and both overheads at p99.9.
func scenarioProblems(src string) []string {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }

	executors := executorRe.FindAllStringSubmatch(src, -1)
	if len(executors) == 0 {
		add("no scenario executor: use constant-arrival-rate or ramping-arrival-rate")
	}
	for _, m := range executors {
		if e := m[1]; e != "constant-arrival-rate" && e != "ramping-arrival-rate" {
			add("executor %q is closed loop: use constant-arrival-rate or ramping-arrival-rate", e)
		}
	}
	for _, key := range []string{"preAllocatedVUs:", "maxVUs:"} {
		if n := strings.Count(src, key); n < len(executors) {
			add("%d scenarios but %s appears %d times: size every arrival-rate scenario", len(executors), key, n)
		}
	}
	if !checkCallRe.MatchString(src) {
		add("no check() (or observe(), which checks) on the responses")
	}
	if !summaryRe.MatchString(src) {
		add("no exported handleSummary: the run leaves no summary in loadtest/results/")
	}

	streams := streamsRe.MatchString(src)
	if streams && !timingRe.MatchString(src) {
		add("streams without timing: true in their headers: the mock reports no x-mock-timing to measure them by")
	}

	loc := thresholdsRe.FindStringIndex(src)
	if loc == nil {
		return append(problems, "no thresholds: every scenario asserts the overhead and error budget")
	}
	thresholds := balanced(src[loc[1]-1:])
	tagSets := []string{""}
	for _, m := range tenantTagRe.FindAllStringSubmatch(src, -1) {
		tagSets = append(tagSets, "{tenant:"+m[1]+"}")
	}
	for _, tags := range tagSets {
		for _, metric := range []string{"loom_overhead_ms", "gateway_overhead_ms"} {
			problems = append(problems, boundProblems(thresholds, metric+tags, p99Re, maxOverheadP99MS, "p(99)<20")...)
		}
		for _, metric := range []string{"http_req_failed", "call_errors"} {
			problems = append(problems, boundProblems(thresholds, metric+tags, rateRe, maxErrorRate, "rate<0.001")...)
		}
		if !streams {
			continue
		}
		problems = append(problems, boundProblems(thresholds, "ttfc_overhead_ms"+tags, p99Re, maxOverheadP99MS, "p(99)<20")...)
		for _, metric := range []string{"gateway_overhead_ms", "ttfc_overhead_ms"} {
			problems = append(problems, boundProblems(thresholds, metric+tags, p999Re, maxOverheadP999MS, "p(99.9)<50")...)
		}
	}
	return problems
}

// boundProblems is nil when thresholds has key with an expression, matched by expr, whose bound is at
// most limit.
func boundProblems(thresholds, key string, expr *regexp.Regexp, limit float64, example string) []string {
	keyRe := regexp.MustCompile(`(?:^|[\s{,])['"]?` + regexp.QuoteMeta(key) + `['"]?\s*:\s*\[([^\]]*)\]`)
	m := keyRe.FindStringSubmatch(thresholds)
	if m == nil {
		return []string{fmt.Sprintf("no threshold on %s: want %s: [%q]", key, key, example)}
	}
	for _, b := range expr.FindAllStringSubmatch(m[1], -1) {
		if v, err := strconv.ParseFloat(b[1], 64); err == nil && v <= limit {
			return nil
		}
	}
	return []string{fmt.Sprintf("threshold on %s is %s: want %q or tighter", key, strings.TrimSpace(m[1]), example)}
}

// balanced is s up to the brace that closes the one s starts with, skipping braces inside string literals
// (threshold keys such as 'loom_overhead_ms{tenant:a}' have some).
func balanced(s string) string {
	depth := 0
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == '\\' {
				i++
			} else if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"' || c == '`':
			quote = c
		case c == '{':
			depth++
		case c == '}':
			depth--
			if depth == 0 {
				return s[:i+1]
			}
		}
	}
	return s
}

// stripComments drops /* */ blocks and whole-line // comments, so a budget only in a comment does not count.
// A // after code on the same line stays: it may be inside a string ('http://...').
func stripComments(src string) string {
	src = regexp.MustCompile(`(?s)/\*.*?\*/`).ReplaceAllString(src, "")
	return regexp.MustCompile(`(?m)^\s*//.*$`).ReplaceAllString(src, "")
}

// setup installs the pinned TypeScript and @types/k6 into node_modules (npm ci) unless they are there
// already, and returns the tsc to run. It runs once for all the tests of the package.
var setup = sync.OnceValues(func() (string, error) { return prereq.TypeScript(".") })

// toolchain is setup's tsc, or the end of a test that cannot have one: a skip on a machine without
// Node.js and npm (install them to type-check the k6 scenarios), a failure in CI.
func toolchain(t *testing.T) string {
	t.Helper()
	tsc, err := setup()
	prereq.Check(t, err, prereq.ErrNotInstalled)
	return tsc
}

// runTSC runs tsc with args in loadtest/ and returns its combined output.
func runTSC(t *testing.T, tsc string, args ...string) ([]byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, tsc, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.Bytes(), err
}
