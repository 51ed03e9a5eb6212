package prometheus

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/loom-gateway/loom/deploy/prereq"
)

// promtool finds Prometheus's promtool (Debian's prometheus package).
func promtool(t *testing.T) string {
	t.Helper()
	path, err := prereq.Program("promtool")
	if err != nil {
		prereq.Check(t, fmt.Errorf("%w (install Debian's prometheus package)", err), prereq.ErrNotInstalled)
	}
	return path
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}

// The rules are valid and their unit tests pass, as promtool runs them.
func TestAlertRules_PromtoolCheckAndUnitTestsPass(t *testing.T) {
	p := promtool(t)
	run(t, p, "check", "rules", "loom-alerts.yaml")
	run(t, p, "test", "rules", "loom-alerts_test.yaml")
}

// Every alert is tested both ways: at some evaluation it fires, at another
// it must not.
func TestAlertRules_EveryAlertHasAFiringAndAQuietCase(t *testing.T) {
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	var tests struct {
		Tests []struct {
			AlertRuleTest []struct {
				Alertname string `yaml:"alertname"`
				ExpAlerts []any  `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		} `yaml:"tests"`
	}
	decode(t, "loom-alerts.yaml", &rules)
	decode(t, "loom-alerts_test.yaml", &tests)
	fires, quiet := map[string]bool{}, map[string]bool{}
	for _, tc := range tests.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			} else {
				quiet[a.Alertname] = true
			}
		}
	}
	n := 0
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			n++
			if !fires[r.Alert] || !quiet[r.Alert] {
				t.Errorf("alert %s: a case that fires %v, one that must not %v", r.Alert, fires[r.Alert], quiet[r.Alert])
			}
		}
	}
	if n == 0 {
		t.Fatal("no alerts in loom-alerts.yaml")
	}
}

func decode(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
