package helm

import (
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"helm.sh/helm/v4/pkg/chart/common"
	"helm.sh/helm/v4/pkg/chart/common/util"
	chartv2 "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	chartutil "helm.sh/helm/v4/pkg/chart/v2/util"
	"helm.sh/helm/v4/pkg/engine"
	releaseutil "helm.sh/helm/v4/pkg/release/v1/util"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/yaml"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
)

// chartDir is the chart under test; releaseName and namespace are what the
// golden file and the README's commands use.
const (
	chartDir    = "loom"
	releaseName = "loom"
	namespace   = "loom"
)

// object is one rendered Kubernetes object, decoded strictly into its API
// type.
type object struct {
	source           string // the template it came from
	apiVersion, kind string
	name             string
	obj              any // *corev1.ConfigMap, *appsv1.StatefulSet, ...
}

// rendered is the chart rendered under one set of values.
type rendered struct {
	manifest string // what `helm template` prints
	objects  []object
}

// kinds maps every apiVersion/kind the chart may render to its Go type. An
// object of any other kind fails the test: nothing goes out undecoded.
var kinds = map[string]func() any{
	"v1/ConfigMap":                            func() any { return &corev1.ConfigMap{} },
	"v1/Service":                              func() any { return &corev1.Service{} },
	"v1/ServiceAccount":                       func() any { return &corev1.ServiceAccount{} },
	"apps/v1/StatefulSet":                     func() any { return &appsv1.StatefulSet{} },
	"apps/v1/Deployment":                      func() any { return &appsv1.Deployment{} },
	"autoscaling/v2/HorizontalPodAutoscaler":  func() any { return &autoscalingv2.HorizontalPodAutoscaler{} },
	"policy/v1/PodDisruptionBudget":           func() any { return &policyv1.PodDisruptionBudget{} },
	"monitoring.coreos.com/v1/ServiceMonitor": func() any { return &monitoringv1.ServiceMonitor{} },
	"monitoring.coreos.com/v1/PrometheusRule": func() any { return &monitoringv1.PrometheusRule{} },
	"postgresql.cnpg.io/v1/Cluster":           func() any { return &cnpgCluster{} },
}

// cnpgCluster is the part of CloudNativePG's Cluster (postgresql.cnpg.io/v1)
// that the chart renders, field names as in the operator's API reference.
// CloudNativePG's Go module is not among this project's dependencies, so
// this subset stands in for it: a field the chart renders that is not here
// fails the strict decode.
type cnpgCluster struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	ObjectMeta struct {
		Name   string            `json:"name"`
		Labels map[string]string `json:"labels"`
	} `json:"metadata"`
	Spec struct {
		Instances int    `json:"instances"`
		ImageName string `json:"imageName,omitempty"`
		Storage   struct {
			Size         string `json:"size"`
			StorageClass string `json:"storageClass,omitempty"`
		} `json:"storage"`
		Bootstrap struct {
			InitDB struct {
				Database string `json:"database"`
				Owner    string `json:"owner"`
			} `json:"initdb"`
		} `json:"bootstrap"`
		PostgreSQL *struct {
			Parameters map[string]string `json:"parameters"`
		} `json:"postgresql,omitempty"`
		Resources *corev1.ResourceRequirements `json:"resources,omitempty"`
	} `json:"spec"`
}

// TestMain quiets Helm's loader, which logs each symlink it follows (the
// chart's files/ links are on purpose: see
// TestChart_SharedFiles_AreSymlinksIntoTheRepository).
func TestMain(m *testing.M) {
	slog.SetDefault(slog.New(slog.DiscardHandler))
	os.Exit(m.Run())
}

// loadChart loads the chart as `helm` does, symlinks followed.
func loadChart(t testing.TB) *chartv2.Chart {
	t.Helper()
	ch, err := loader.Load(chartDir)
	if err != nil {
		t.Fatalf("load chart: %v", err)
	}
	return ch
}

// readValues merges values files the way `helm -f a -f b` does: maps
// merge key by key, anything else in a later file replaces.
func readValues(t testing.TB, files ...string) map[string]any {
	t.Helper()
	vals := map[string]any{}
	for _, f := range files {
		v, err := common.ReadValuesFile(f)
		if err != nil {
			t.Fatalf("values %s: %v", f, err)
		}
		vals = mergeValues(vals, v)
	}
	return vals
}

func mergeValues(dst, src map[string]any) map[string]any {
	out := maps.Clone(dst)
	for k, v := range src {
		if sm, ok := v.(map[string]any); ok {
			if dm, ok := out[k].(map[string]any); ok {
				out[k] = mergeValues(dm, sm)
				continue
			}
		}
		out[k] = v
	}
	return out
}

// renderValues renders the chart with vals (user values, schema checked) as
// `helm template` does, or returns the error helm would print.
func renderValues(ch *chartv2.Chart, vals map[string]any) (string, error) {
	caps := common.DefaultCapabilities
	if ch.Metadata.KubeVersion != "" && !chartutil.IsCompatibleRange(ch.Metadata.KubeVersion, caps.KubeVersion.String()) {
		return "", fmt.Errorf("chart kubeVersion %s excludes %s", ch.Metadata.KubeVersion, caps.KubeVersion.Version)
	}
	opts := common.ReleaseOptions{Name: releaseName, Namespace: namespace, Revision: 1, IsInstall: true}
	top, err := util.ToRenderValuesWithSchemaValidation(ch, vals, opts, caps, false)
	if err != nil {
		return "", err
	}
	files, err := engine.Render(ch, top)
	if err != nil {
		return "", err
	}
	for k := range files {
		if strings.HasSuffix(k, "NOTES.txt") {
			delete(files, k)
		}
	}
	hooks, manifests, err := releaseutil.SortManifests(files, nil, releaseutil.InstallOrder)
	if err != nil {
		return "", err
	}
	if len(hooks) != 0 {
		return "", fmt.Errorf("the chart has %d hooks; these tests do not render hooks", len(hooks))
	}
	var b strings.Builder
	for _, m := range manifests {
		fmt.Fprintf(&b, "---\n# Source: %s\n%s\n", m.Name, m.Content)
	}
	return b.String(), nil
}

// render renders the chart under the values files and decodes every
// object strictly.
func render(t testing.TB, valuesFiles ...string) *rendered {
	t.Helper()
	out, err := renderValues(loadChart(t), readValues(t, valuesFiles...))
	if err != nil {
		t.Fatalf("render with %v: %v", valuesFiles, err)
	}
	r := &rendered{manifest: out}
	for _, doc := range strings.Split(out, "\n---\n") {
		doc = strings.TrimPrefix(doc, "---\n")
		source, _, _ := strings.Cut(strings.TrimPrefix(doc, "# Source: "), "\n")
		var head struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Metadata   struct {
				Name string `json:"name"`
			} `json:"metadata"`
		}
		if err := yaml.Unmarshal([]byte(doc), &head); err != nil {
			t.Fatalf("%s: %v", source, err)
		}
		if head.Kind == "" {
			continue // a template that rendered to nothing
		}
		key := head.APIVersion + "/" + head.Kind
		mk, ok := kinds[key]
		if !ok {
			t.Fatalf("%s: %s %s is not a kind these tests decode", source, key, head.Metadata.Name)
		}
		obj := mk()
		// Strict: a field the API type does not have (a typo, a wrong
		// indentation) or a field given twice is an error.
		if err := yaml.UnmarshalStrict([]byte(doc), obj); err != nil {
			t.Fatalf("%s: %s %s does not decode strictly: %v", source, key, head.Metadata.Name, err)
		}
		r.objects = append(r.objects, object{source: source, apiVersion: head.APIVersion, kind: head.Kind, name: head.Metadata.Name, obj: obj})
	}
	return r
}

// get returns the object of kind and name, failing the test without it.
func get[T any](t testing.TB, r *rendered, kind, name string) T {
	t.Helper()
	for _, o := range r.objects {
		if o.kind == kind && o.name == name {
			return o.obj.(T)
		}
	}
	t.Fatalf("no %s %q rendered", kind, name)
	var zero T
	return zero
}

func has(r *rendered, kind, name string) bool {
	for _, o := range r.objects {
		if o.kind == kind && o.name == name {
			return true
		}
	}
	return false
}

// podSpecs are the pod templates of every workload rendered, by workload.
func (r *rendered) podSpecs() map[string]*corev1.PodTemplateSpec {
	pods := map[string]*corev1.PodTemplateSpec{}
	for _, o := range r.objects {
		switch w := o.obj.(type) {
		case *appsv1.StatefulSet:
			pods["StatefulSet/"+o.name] = &w.Spec.Template
		case *appsv1.Deployment:
			pods["Deployment/"+o.name] = &w.Spec.Template
		}
	}
	return pods
}

// examples are the chart's example values files, each rendered by the
// tests on its own.
func examples(t testing.TB) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(chartDir, "examples", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no example values files: %v", err)
	}
	return files
}

// writeTemp writes b into a new file in a test directory.
func writeTemp(t testing.TB, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
