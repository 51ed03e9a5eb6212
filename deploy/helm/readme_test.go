package helm

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"helm.sh/helm/v4/pkg/strvals"
)

// readmeKubernetes is the README's Kubernetes part of "Deploy".
func readmeKubernetes(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i := strings.Index(s, "### Kubernetes, with the Helm chart")
	if i < 0 {
		t.Fatal(`README has no "### Kubernetes, with the Helm chart"`)
	}
	s = s[i:]
	if j := strings.Index(s[4:], "\n## "); j >= 0 {
		s = s[:j+4]
	}
	return s
}

// command is the shell command in doc that starts with prefix, its
// backslash-continued lines joined.
func command(doc, prefix string) string {
	i := strings.Index(doc, prefix)
	if i < 0 {
		return ""
	}
	var b strings.Builder
	for _, line := range strings.Split(doc[i:], "\n") {
		b.WriteString(strings.TrimSuffix(line, "\\"))
		if !strings.HasSuffix(line, "\\") {
			break
		}
	}
	return b.String()
}

// TestREADME_HelmInstall_RendersWithItsSetFlags: the README's helm install
// command's --set flags are values the schema accepts, and its secret has
// every key the chart reads from it without optional.
func TestREADME_HelmInstall_RendersWithItsSetFlags(t *testing.T) {
	doc := readmeKubernetes(t)
	// The command's lines, continuations joined.
	cmd := command(doc, "helm install loom deploy/helm/loom")
	if cmd == "" {
		t.Fatal("README has no `helm install loom deploy/helm/loom` command")
	}
	vals := map[string]any{}
	sets := regexp.MustCompile(`--set ([^\s\\]+)`).FindAllStringSubmatch(cmd, -1)
	if len(sets) == 0 {
		t.Fatalf("no --set in %q", cmd)
	}
	for _, m := range sets {
		if err := strvals.ParseInto(m[1], vals); err != nil {
			t.Fatalf("--set %s: %v", m[1], err)
		}
	}
	r := render(t)
	out, err := renderValues(loadChart(t), vals)
	if err != nil {
		t.Fatalf("the README's helm install does not render: %v", err)
	}
	if !strings.Contains(out, "image: registry.example.com/loom:0.1.0") || !strings.Contains(out, "image: registry.example.com/otelcol-loom:0.1.0") {
		t.Error("the README's --set flags do not reach the images")
	}

	secretCmd := command(doc, "kubectl -n loom create secret generic loom")
	var keys []string
	for _, m := range regexp.MustCompile(`--from-(?:literal|file)=([a-z0-9-]+)=`).FindAllStringSubmatch(secretCmd, -1) {
		keys = append(keys, m[1])
	}
	for key, pod := range r.podSpecs() {
		for _, c := range pod.Spec.Containers {
			for _, e := range c.Env {
				ref := e.ValueFrom
				if ref == nil || ref.SecretKeyRef == nil || ref.SecretKeyRef.Name != "loom" {
					continue
				}
				if !slices.Contains(keys, ref.SecretKeyRef.Key) {
					t.Errorf("%s reads key %q of Secret loom for $%s; the README's kubectl create secret (keys %v) does not make it", key, ref.SecretKeyRef.Key, e.Name, keys)
				}
			}
		}
	}
}
