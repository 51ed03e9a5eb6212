package helm

import (
	"encoding/json"
	"flag"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/otelcol/otelcoltest"
	"go.opentelemetry.io/collector/pipeline"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"

	"github.com/loom-gateway/loom/otelcol/distribution"
	"github.com/loom-gateway/loom/otelcol/postgresexporter"
	"github.com/loom-gateway/loom/proxy/cli"
	"github.com/loom-gateway/loom/proxy/config"
	"github.com/loom-gateway/loom/proxy/ledger"
	"github.com/loom-gateway/loom/proxy/server"
)

var update = flag.Bool("update", false, "rewrite testdata/default.golden.yaml from the chart")

const goldenPath = "loom/testdata/default.golden.yaml"

// valuesCases are the value sets every cross-check runs under: the chart's
// defaults, each example, and the tests' own variants.
func valuesCases(t *testing.T) map[string][]string {
	t.Helper()
	cases := map[string][]string{"defaults": nil}
	for _, f := range examples(t) {
		cases[filepath.Base(f)] = []string{f}
	}
	variants, err := filepath.Glob(filepath.Join(chartDir, "testdata", "values-*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range variants {
		cases["testdata/"+filepath.Base(f)] = []string{f}
	}
	return cases
}

func forEachValues(t *testing.T, check func(t *testing.T, r *rendered)) {
	t.Helper()
	for name, files := range valuesCases(t) {
		t.Run(name, func(t *testing.T) { check(t, render(t, files...)) })
	}
}

// TestChart_DefaultValues_MatchGolden: `helm template loom deploy/helm/loom
// -n loom` for the default values is committed, reviewed as a diff when the
// chart changes (go test ./deploy/helm -run Golden -update).
//
// The dashboards' JSON is left out of the golden file (elideDashboards): it
// is dashboards/grafana/json's, checked byte for byte by
// TestChart_Dashboards_AreTheGeneratedOnes, and regenerating a dashboard
// must not touch the chart's golden file.
func TestChart_DefaultValues_MatchGolden(t *testing.T) {
	got := elideDashboards(t, render(t).manifest)
	if *update {
		if err := os.WriteFile(goldenPath, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(goldenPath)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got != string(want) {
		gl, wl := strings.Split(got, "\n"), strings.Split(string(want), "\n")
		for i := range min(len(gl), len(wl)) {
			if gl[i] != wl[i] {
				t.Fatalf("rendered chart differs from %s at line %d:\n got: %s\nwant: %s\n(run go test ./deploy/helm -run Golden -update and review the diff)", goldenPath, i+1, gl[i], wl[i])
			}
		}
		t.Fatalf("rendered chart differs from %s in length: %d lines, want %d (-update)", goldenPath, len(gl), len(wl))
	}
}

// elideDashboards replaces the data of the dashboards ConfigMap with a
// comment.
func elideDashboards(t *testing.T, manifest string) string {
	t.Helper()
	docs := strings.Split(manifest, "\n---\n")
	n := 0
	for i, d := range docs {
		if !strings.Contains(d, "# Source: loom/templates/dashboards-configmap.yaml\n") {
			continue
		}
		head, _, ok := strings.Cut(d, "\ndata:\n")
		if !ok {
			t.Fatalf("the dashboards ConfigMap has no data:\n%s", d)
		}
		docs[i] = head + "\ndata: {} # golden file: one key per dashboards/grafana/json/*.json, left out here\n"
		n++
	}
	if n != 1 {
		t.Fatalf("%d dashboards ConfigMaps in the default render, want 1", n)
	}
	return strings.Join(docs, "\n---\n")
}

func TestChart_EveryValuesFile_EveryObjectDecodesStrictly(t *testing.T) {
	forEachValues(t, func(t *testing.T, r *rendered) {
		if len(r.objects) == 0 {
			t.Fatal("nothing rendered")
		}
		seen := map[string]bool{}
		for _, o := range r.objects {
			key := o.kind + "/" + o.name
			if seen[key] {
				t.Errorf("%s rendered twice", key)
			}
			seen[key] = true
			if o.kind == "Secret" {
				t.Errorf("%s: the chart must not hold secrets; it reads Secrets that exist", key)
			}
		}
	})
}

// loomPod is the gateway's pod template and its loom container.
func loomPod(t *testing.T, r *rendered) (*corev1.PodTemplateSpec, *corev1.Container) {
	t.Helper()
	for _, p := range r.podSpecs() {
		for i := range p.Spec.Containers {
			if c := &p.Spec.Containers[i]; c.Name == "loom" {
				return p, c
			}
		}
	}
	t.Fatal("no pod with a loom container")
	return nil, nil
}

func collectorPod(r *rendered) (*corev1.PodTemplateSpec, *corev1.Container) {
	for _, p := range r.podSpecs() {
		for i := range p.Spec.Containers {
			if c := &p.Spec.Containers[i]; c.Name == "otelcol-loom" {
				return p, c
			}
		}
	}
	return nil, nil
}

// configMapFor is the ConfigMap mounted at mountPath in pod, and the
// volume's name.
func configMapFor(t *testing.T, r *rendered, p *corev1.PodTemplateSpec, c *corev1.Container, mountPath string) *corev1.ConfigMap {
	t.Helper()
	for _, m := range c.VolumeMounts {
		if m.MountPath != mountPath {
			continue
		}
		for _, v := range p.Spec.Volumes {
			if v.Name == m.Name && v.ConfigMap != nil {
				return get[*corev1.ConfigMap](t, r, "ConfigMap", v.ConfigMap.Name)
			}
		}
	}
	t.Fatalf("container %s mounts no ConfigMap at %s", c.Name, mountPath)
	return nil
}

// setContainerEnv sets each variable the container defines, as the kubelet
// would from the Secrets, with a plausible value.
func setContainerEnv(t *testing.T, c *corev1.Container) map[string]string {
	t.Helper()
	env := map[string]string{}
	for _, e := range c.Env {
		v := e.Value
		if v == "" {
			switch {
			case strings.Contains(e.Name, "DATABASE_URL"):
				v = "postgres://loom:pw@db.example:5432/loom?sslmode=require"
			case strings.Contains(e.Name, "REDIS_URL"):
				v = "redis://redis.example:6379/0"
			case e.Name == ledger.EnvKey:
				v = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
			default:
				v = "secret-from-kubernetes"
			}
		}
		env[e.Name] = v
		t.Setenv(e.Name, v)
	}
	return env
}

// loomConfig parses the rendered loom.yaml with proxy/config's own loader
// (unknown keys are errors, every *_env must be set), with the loom
// container's environment.
func loomConfig(t *testing.T, r *rendered) (*config.Config, *corev1.Container, map[string]string) {
	t.Helper()
	p, c := loomPod(t, r)
	cm := configMapFor(t, r, p, c, "/etc/loom")
	if !slices.Contains(c.Args, "-config=/etc/loom/loom.yaml") {
		t.Fatalf("loom args %q do not name /etc/loom/loom.yaml", c.Args)
	}
	env := setContainerEnv(t, c)
	cfg, err := config.Parse([]byte(cm.Data["loom.yaml"]))
	if err != nil {
		t.Fatalf("loom.yaml does not load with proxy/config: %v\n%s", err, cm.Data["loom.yaml"])
	}
	return cfg, c, env
}

func TestChart_EveryValuesFile_LoomConfigLoadsWithProxyConfig(t *testing.T) {
	forEachValues(t, func(t *testing.T, r *rendered) {
		cfg, c, env := loomConfig(t, r)
		// Every variable the config names comes from the container.
		named := configEnvNames(cfg)
		for _, n := range named {
			if _, ok := env[n]; !ok {
				t.Errorf("loom.yaml names $%s, which the loom container does not set", n)
			}
		}
		// And every variable the container sets is read by Loom: named by
		// the config, or one the loom command reads itself (the CLI run
		// with kubectl exec finds the store through them).
		readByCLI := []string{cli.EnvDatabaseURL, cli.EnvSecretKey}
		for _, e := range c.Env {
			if !slices.Contains(named, e.Name) && !slices.Contains(readByCLI, e.Name) && !strings.HasPrefix(e.Name, "GO") {
				t.Errorf("the loom container sets $%s, which nothing in loom reads", e.Name)
			}
		}
		if !cfg.Store.Enabled() || cfg.Store.DatabaseURLEnv != cli.EnvDatabaseURL {
			t.Errorf("store.database_url_env = %q, want %s (the one `loom tenants` reads too)", cfg.Store.DatabaseURLEnv, cli.EnvDatabaseURL)
		}
		if cfg.Store.SecretKeyEnv != cli.EnvSecretKey {
			t.Errorf("store.secret_key_env = %q, want %s (the one `loom tenants credential` reads too)", cfg.Store.SecretKeyEnv, cli.EnvSecretKey)
		}
		if cfg.Tracing.Endpoint != "" && !strings.HasPrefix(cfg.Tracing.Spool.Dir, "/var/lib/loom/") {
			t.Errorf("tracing.spool.dir = %q, want it on the spool volume", cfg.Tracing.Spool.Dir)
		}
		for _, d := range cfg.Deployments {
			if d.APIKey != "" {
				t.Errorf("deployment %s has its api_key in the ConfigMap", d.Name)
			}
		}
	})
}

// configEnvNames are the environment variables cfg names.
func configEnvNames(cfg *config.Config) []string {
	var names []string
	add := func(n string) {
		if n != "" && !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	add(cfg.Store.DatabaseURLEnv)
	add(cfg.Store.SecretKeyEnv)
	add(cfg.Redis.URLEnv)
	add(cfg.Admin.TokenEnv)
	add(cfg.Console.DatabaseURLEnv)
	for _, d := range cfg.Deployments {
		add(d.APIKeyEnv)
	}
	return names
}

// portOf is the port of a host:port listen address.
func portOf(t *testing.T, addr string) int32 {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("listen address %q: %v", addr, err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatalf("listen address %q: %v", addr, err)
	}
	return int32(n)
}

func containerPort(t *testing.T, c *corev1.Container, name string) int32 {
	t.Helper()
	for _, p := range c.Ports {
		if p.Name == name {
			return p.ContainerPort
		}
	}
	t.Fatalf("container %s has no port named %q (has %v)", c.Name, name, c.Ports)
	return 0
}

// probePort is the container port a probe's httpGet reaches.
func probePort(t *testing.T, c *corev1.Container, p *corev1.Probe) int32 {
	t.Helper()
	if p == nil || p.HTTPGet == nil {
		t.Fatalf("container %s: probe is not an httpGet: %+v", c.Name, p)
	}
	if p.HTTPGet.Port.StrVal != "" {
		return containerPort(t, c, p.HTTPGet.Port.StrVal)
	}
	return p.HTTPGet.Port.IntVal
}

// TestChart_EveryValuesFile_ProbesAndPortsMatchTheGateway: the container's
// ports are the listeners loom.yaml opens, and each probe's path, asked of
// the gateway's own ops handler, answers 200.
func TestChart_EveryValuesFile_ProbesAndPortsMatchTheGateway(t *testing.T) {
	forEachValues(t, func(t *testing.T, r *rendered) {
		cfg, c, _ := loomConfig(t, r)
		if got, want := containerPort(t, c, "http"), portOf(t, cfg.Listen); got != want {
			t.Errorf("port http = %d, loom.yaml listen = %s", got, cfg.Listen)
		}
		if cfg.Ops.Listen == "" {
			t.Fatal("ops.listen is off: the probes and /metrics need it")
		}
		opsPort := portOf(t, cfg.Ops.Listen)
		if got := containerPort(t, c, "ops"); got != opsPort {
			t.Errorf("port ops = %d, loom.yaml ops.listen = %s", got, cfg.Ops.Listen)
		}
		if cfg.Admin.Listen != "" && containerPort(t, c, "admin") != portOf(t, cfg.Admin.Listen) {
			t.Errorf("port admin differs from admin.listen %s", cfg.Admin.Listen)
		}
		if cfg.Console.Listen != "" && containerPort(t, c, "console") != portOf(t, cfg.Console.Listen) {
			t.Errorf("port console differs from console.listen %s", cfg.Console.Listen)
		}
		srv, err := server.New(cfg, server.Options{})
		if err != nil {
			t.Fatalf("server.New with the rendered config: %v", err)
		}
		ops := srv.OpsHandler()
		for name, want := range map[string]struct {
			probe *corev1.Probe
			path  string
		}{
			"startup":   {c.StartupProbe, "/healthz"},
			"liveness":  {c.LivenessProbe, "/healthz"},
			"readiness": {c.ReadinessProbe, "/readyz"}, // /readyz turns 503 while draining
		} {
			if got := probePort(t, c, want.probe); got != opsPort {
				t.Errorf("%s probe on port %d, want the ops port %d", name, got, opsPort)
			}
			path := want.probe.HTTPGet.Path
			if path != want.path {
				t.Errorf("%s probe path %q, want %q", name, path, want.path)
			}
			var ctx fasthttp.RequestCtx
			ctx.Init(&fasthttp.Request{}, nil, nil)
			ctx.Request.SetRequestURI(path)
			ops(&ctx)
			if ctx.Response.StatusCode() != fasthttp.StatusOK {
				t.Errorf("%s probe: GET %s on the ops handler = %d %s", name, path, ctx.Response.StatusCode(), ctx.Response.Body())
			}
		}
		if cfg.Tracing.Endpoint != "" {
			// Loom's spans go to the collector's Service, on its OTLP gRPC port.
			u := strings.TrimPrefix(cfg.Tracing.Endpoint, "http://")
			host, port, _ := net.SplitHostPort(u)
			svc := get[*corev1.Service](t, r, "Service", host)
			if !slices.ContainsFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool {
				return strconv.Itoa(int(p.Port)) == port && p.TargetPort.StrVal == "otlp-grpc"
			}) {
				t.Errorf("tracing.endpoint %s: Service %s has no otlp-grpc port %s", cfg.Tracing.Endpoint, host, port)
			}
		}
	})
}

// collectorConfig validates the rendered collector config with
// otelcol-loom's own components, and returns it with its raw map.
func collectorConfig(t *testing.T, r *rendered) (*corev1.PodTemplateSpec, *corev1.Container, map[string]any, map[string]string, bool) {
	t.Helper()
	p, c := collectorPod(r)
	if c == nil {
		return nil, nil, nil, nil, false
	}
	cm := configMapFor(t, r, p, c, "/etc/otelcol-loom")
	if !slices.Contains(c.Args, "--config=/etc/otelcol-loom/config.yaml") {
		t.Fatalf("otelcol-loom args %q do not name /etc/otelcol-loom/config.yaml", c.Args)
	}
	raw := map[string]any{}
	if err := yaml.Unmarshal([]byte(cm.Data["config.yaml"]), &raw); err != nil {
		t.Fatal(err)
	}
	return p, c, raw, cm.Data, true
}

func dig(m any, path ...string) any {
	for _, k := range path {
		mm, ok := m.(map[string]any)
		if !ok {
			return nil
		}
		m = mm[k]
	}
	return m
}

// TestChart_EveryValuesFile_CollectorConfigValidatesInOtelcolLoom: the
// rendered config loads and validates with otelcol-loom's components, its
// Postgres pipeline has no batch processor and a persistent queue on the
// claim, and its ports are the container's, the probes' and the Service's.
func TestChart_EveryValuesFile_CollectorConfigValidatesInOtelcolLoom(t *testing.T) {
	forEachValues(t, func(t *testing.T, r *rendered) {
		p, c, raw, data, ok := collectorConfig(t, r)
		if !ok {
			t.Skip("collector off in these values")
		}
		env := setContainerEnv(t, c)
		factories, err := distribution.Components()
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := otelcoltest.LoadConfigAndValidate(writeTemp(t, "config.yaml", []byte(data["config.yaml"])), factories)
		if err != nil {
			t.Fatalf("otelcol-loom rejects the rendered config: %v\n%s", err, data["config.yaml"])
		}
		exp, ok := cfg.Exporters[component.MustNewID("postgres")].(*postgresexporter.Config)
		if !ok {
			t.Fatalf("no postgres exporter in %v", cfg.Exporters)
		}
		if string(exp.Endpoint) != env[cli.EnvDatabaseURL] {
			t.Errorf("postgres endpoint is not $%s's URL", cli.EnvDatabaseURL)
		}
		if strings.Contains(data["config.yaml"], "postgres://") {
			t.Error("the collector's ConfigMap holds a database URL")
		}
		q := exp.QueueConfig.Get()
		if !exp.QueueConfig.HasValue() || q.StorageID == nil || *q.StorageID != component.MustNewID("file_storage") {
			t.Errorf("sending_queue = %+v, want it persistent in file_storage", q)
		}
		if !exp.RetryConfig.Enabled || exp.RetryConfig.MaxElapsedTime != 0 {
			t.Errorf("retry_on_failure = %+v, want it on and never giving up", exp.RetryConfig)
		}
		pl := cfg.Service.Pipelines[pipeline.NewIDWithName(pipeline.SignalTraces, "postgres")]
		if pl == nil {
			t.Fatalf("no traces/postgres pipeline in %v", cfg.Service.Pipelines)
		}
		if slices.ContainsFunc(pl.Processors, func(id component.ID) bool { return id.Type().String() == "batch" }) {
			t.Errorf("processors %v: the batch processor acknowledges spans before they are on disk", pl.Processors)
		}
		// The queue's directory is the claim's mount.
		dir, _ := dig(raw, "extensions", "file_storage", "directory").(string)
		if m := mountFor(c, dir); m == nil || !isClaimTemplate(r, p, m.Name) {
			t.Errorf("file_storage directory %q is not on a PersistentVolumeClaim of the StatefulSet", dir)
		}
		// Ports.
		for _, pc := range []struct {
			port string
			path []string
		}{
			{"otlp-grpc", []string{"receivers", "otlp", "protocols", "grpc", "endpoint"}},
			{"otlp-http", []string{"receivers", "otlp", "protocols", "http", "endpoint"}},
			{"health", []string{"extensions", "health_check", "endpoint"}},
		} {
			ep, _ := dig(raw, pc.path...).(string)
			if containerPort(t, c, pc.port) != portOf(t, ep) {
				t.Errorf("port %s differs from %s = %q", pc.port, strings.Join(pc.path, "."), ep)
			}
		}
		readers, _ := dig(raw, "service", "telemetry", "metrics", "readers").([]any)
		var metricsPort float64
		if len(readers) == 1 {
			metricsPort, _ = dig(readers[0], "pull", "exporter", "prometheus", "port").(float64)
		}
		if int32(metricsPort) != containerPort(t, c, "metrics") {
			t.Errorf("collector metrics reader port %v, container port metrics %d", metricsPort, containerPort(t, c, "metrics"))
		}
		healthPath, _ := dig(raw, "extensions", "health_check", "path").(string)
		if healthPath == "" {
			healthPath = "/" // the health_check extension's default
		}
		for name, pr := range map[string]*corev1.Probe{"startup": c.StartupProbe, "liveness": c.LivenessProbe, "readiness": c.ReadinessProbe} {
			if probePort(t, c, pr) != containerPort(t, c, "health") || pr.HTTPGet.Path != healthPath {
				t.Errorf("%s probe %s:%v, want the health_check extension's %s on port health", name, pr.HTTPGet.Path, pr.HTTPGet.Port, healthPath)
			}
		}
		// Every variable the container sets is read by the collector.
		for _, e := range c.Env {
			if e.Name != ledger.EnvKey && !strings.Contains(data["config.yaml"], "${env:"+e.Name+"}") {
				t.Errorf("the collector container sets $%s, which neither its config nor the ledger reads", e.Name)
			}
		}
	})
}

func mountFor(c *corev1.Container, dir string) *corev1.VolumeMount {
	for i := range c.VolumeMounts {
		m := &c.VolumeMounts[i]
		if dir == m.MountPath || strings.HasPrefix(dir, strings.TrimSuffix(m.MountPath, "/")+"/") {
			return m
		}
	}
	return nil
}

// isClaimTemplate reports whether volume is one of the StatefulSet's
// volumeClaimTemplates (a claim per replica), for the StatefulSet whose pod
// template is p.
func isClaimTemplate(r *rendered, p *corev1.PodTemplateSpec, volume string) bool {
	for _, o := range r.objects {
		if s, ok := o.obj.(*appsv1.StatefulSet); ok && &s.Spec.Template == p {
			return slices.ContainsFunc(s.Spec.VolumeClaimTemplates, func(c corev1.PersistentVolumeClaim) bool { return c.Name == volume })
		}
	}
	return false
}

// TestChart_EveryValuesFile_PodsAreHardened: Loom and otelcol-loom run as
// uid 65532, non-root, read-only root file system, no capabilities, the
// runtime's seccomp profile, no service account token; every container of
// every pod has resource requests and a memory limit.
func TestChart_EveryValuesFile_PodsAreHardened(t *testing.T) {
	forEachValues(t, func(t *testing.T, r *rendered) {
		for key, p := range r.podSpecs() {
			if p.Spec.AutomountServiceAccountToken == nil || *p.Spec.AutomountServiceAccountToken {
				t.Errorf("%s: mounts a service account token it has no use for", key)
			}
			for _, c := range p.Spec.Containers {
				where := key + " container " + c.Name
				sc := c.SecurityContext
				if sc == nil {
					t.Errorf("%s: no securityContext", where)
					continue
				}
				if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
					t.Errorf("%s: root file system is writable", where)
				}
				if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
					t.Errorf("%s: allows privilege escalation", where)
				}
				if sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) != 0 {
					t.Errorf("%s: capabilities %+v, want drop [ALL]", where, sc.Capabilities)
				}
				if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
					t.Errorf("%s: resources %+v, want cpu and memory requests and a memory limit", where, c.Resources)
				}
				runAsNonRoot := sc.RunAsNonRoot
				if runAsNonRoot == nil && p.Spec.SecurityContext != nil {
					runAsNonRoot = p.Spec.SecurityContext.RunAsNonRoot
				}
				if runAsNonRoot == nil || !*runAsNonRoot {
					t.Errorf("%s: may run as root", where)
				}
				seccomp := sc.SeccompProfile
				if seccomp == nil && p.Spec.SecurityContext != nil {
					seccomp = p.Spec.SecurityContext.SeccompProfile
				}
				if seccomp == nil || seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault {
					t.Errorf("%s: seccomp %+v, want RuntimeDefault", where, seccomp)
				}
				for _, e := range c.Env {
					if e.Name != "GOMEMLIMIT" {
						continue
					}
					// Go writes MiB where Kubernetes writes Mi.
					q, err := resource.ParseQuantity(strings.TrimSuffix(strings.Replace(e.Value, "iB", "i", 1), "B"))
					if err != nil {
						t.Errorf("%s: GOMEMLIMIT %q: %v", where, e.Value, err)
					} else if q.Cmp(*c.Resources.Limits.Memory()) >= 0 {
						t.Errorf("%s: GOMEMLIMIT %s is not below the memory limit %s", where, e.Value, c.Resources.Limits.Memory())
					}
				}
				if c.Name == "loom" || c.Name == "otelcol-loom" {
					// The images' user (deploy/docker: distroless nonroot).
					if sc.RunAsUser == nil || *sc.RunAsUser != 65532 || p.Spec.SecurityContext.FSGroup == nil || *p.Spec.SecurityContext.FSGroup != 65532 {
						t.Errorf("%s: runAsUser %v fsGroup %v, want 65532 (the volumes must be writable by it)", where, sc.RunAsUser, p.Spec.SecurityContext.FSGroup)
					}
					// A read-only root needs a writable /tmp.
					if mountFor(&c, "/tmp/x") == nil {
						t.Errorf("%s: no writable /tmp", where)
					}
				}
			}
		}
	})
}

// TestChart_EveryValuesFile_SelectorsAndPortsResolve: every Service selects
// a pod template and targets its named ports; every HPA and PDB reaches a
// workload the chart renders.
func TestChart_EveryValuesFile_SelectorsAndPortsResolve(t *testing.T) {
	forEachValues(t, func(t *testing.T, r *rendered) {
		pods := r.podSpecs()
		selects := func(sel map[string]string) []*corev1.PodTemplateSpec {
			var out []*corev1.PodTemplateSpec
			for _, p := range pods {
				if len(sel) > 0 && labels.SelectorFromSet(sel).Matches(labels.Set(p.Labels)) {
					out = append(out, p)
				}
			}
			return out
		}
		for _, o := range r.objects {
			switch v := o.obj.(type) {
			case *corev1.Service:
				matched := selects(v.Spec.Selector)
				if len(matched) != 1 {
					t.Errorf("Service %s selects %d pod templates, want 1", o.name, len(matched))
					continue
				}
				for _, sp := range v.Spec.Ports {
					if !slices.ContainsFunc(matched[0].Spec.Containers, func(c corev1.Container) bool {
						return slices.ContainsFunc(c.Ports, func(cp corev1.ContainerPort) bool { return cp.Name == sp.TargetPort.StrVal })
					}) {
						t.Errorf("Service %s port %s targets %q, which no container names", o.name, sp.Name, sp.TargetPort.String())
					}
				}
			case *appsv1.StatefulSet:
				if !labels.SelectorFromSet(v.Spec.Selector.MatchLabels).Matches(labels.Set(v.Spec.Template.Labels)) {
					t.Errorf("StatefulSet %s does not select its own pods", o.name)
				}
				if !has(r, "Service", v.Spec.ServiceName) {
					t.Errorf("StatefulSet %s: serviceName %s is not rendered", o.name, v.Spec.ServiceName)
				}
			case *appsv1.Deployment:
				if !labels.SelectorFromSet(v.Spec.Selector.MatchLabels).Matches(labels.Set(v.Spec.Template.Labels)) {
					t.Errorf("Deployment %s does not select its own pods", o.name)
				}
			case *autoscalingv2.HorizontalPodAutoscaler:
				ref := v.Spec.ScaleTargetRef
				if !has(r, ref.Kind, ref.Name) {
					t.Errorf("HPA %s scales %s %s, which is not rendered", o.name, ref.Kind, ref.Name)
				}
				if s := workloadReplicas(r, ref.Kind, ref.Name); s != nil {
					t.Errorf("HPA %s: %s %s sets replicas %d too; the two would fight", o.name, ref.Kind, ref.Name, *s)
				}
			case *policyv1.PodDisruptionBudget:
				sel, err := metav1.LabelSelectorAsSelector(v.Spec.Selector)
				if err != nil {
					t.Fatal(err)
				}
				n := 0
				for _, p := range pods {
					if sel.Matches(labels.Set(p.Labels)) {
						n++
					}
				}
				if n != 1 {
					t.Errorf("PDB %s covers %d pod templates, want 1", o.name, n)
				}
			case *monitoringv1.ServiceMonitor:
				n := 0
				for _, so := range r.objects {
					if svc, ok := so.obj.(*corev1.Service); ok && labels.SelectorFromSet(v.Spec.Selector.MatchLabels).Matches(labels.Set(svc.Labels)) {
						n++
						for _, ep := range v.Spec.Endpoints {
							if !slices.ContainsFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == ep.Port }) {
								t.Errorf("ServiceMonitor %s scrapes port %q, which Service %s lacks", o.name, ep.Port, svc.Name)
							}
						}
					}
				}
				if n != 1 {
					t.Errorf("ServiceMonitor %s selects %d Services, want 1", o.name, n)
				}
			}
		}
	})
}

func workloadReplicas(r *rendered, kind, name string) *int32 {
	for _, o := range r.objects {
		if o.kind == kind && o.name == name {
			switch w := o.obj.(type) {
			case *appsv1.StatefulSet:
				return w.Spec.Replicas
			case *appsv1.Deployment:
				return w.Spec.Replicas
			}
		}
	}
	return nil
}

// TestChart_Defaults_LoomIsAStatefulSetWithItsSpoolOnAClaim: the default
// keeps each replica's spool (and so its instance id and the calls not yet
// shipped) on a claim of its own that outlives the pod.
func TestChart_Defaults_LoomIsAStatefulSetWithItsSpoolOnAClaim(t *testing.T) {
	r := render(t)
	cfg, c, _ := loomConfig(t, r)
	sts := get[*appsv1.StatefulSet](t, r, "StatefulSet", "loom")
	m := mountFor(c, cfg.Tracing.Spool.Dir)
	if m == nil || !isClaimTemplate(r, &sts.Spec.Template, m.Name) {
		t.Fatalf("tracing.spool.dir %s is not on a volumeClaimTemplate", cfg.Tracing.Spool.Dir)
	}
	if pol := sts.Spec.PersistentVolumeClaimRetentionPolicy; pol == nil || pol.WhenScaled != appsv1.RetainPersistentVolumeClaimRetentionPolicyType {
		t.Errorf("PVC retention %+v: a scale-down must keep the spool for the replica that comes back", pol)
	}
	if grace := sts.Spec.Template.Spec.TerminationGracePeriodSeconds; grace == nil || float64(*grace) <= cfg.Timeouts.Shutdown.Seconds() {
		t.Errorf("terminationGracePeriodSeconds %v must exceed timeouts.shutdown %v", grace, cfg.Timeouts.Shutdown)
	}
	hpa := get[*autoscalingv2.HorizontalPodAutoscaler](t, r, "HorizontalPodAutoscaler", "loom")
	if hpa.Spec.ScaleTargetRef.Kind != "StatefulSet" {
		t.Errorf("HPA scales a %s", hpa.Spec.ScaleTargetRef.Kind)
	}
	if !slices.Contains(c.Args, "-migrate") {
		t.Errorf("args %q: the default migrates the schema at start", c.Args)
	}
}

func TestChart_DeploymentValues_SpoolOnEmptyDirAndNoHPA(t *testing.T) {
	r := render(t, filepath.Join(chartDir, "examples", "values-deployment.yaml"))
	cfg, c, _ := loomConfig(t, r)
	d := get[*appsv1.Deployment](t, r, "Deployment", "loom")
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 3 {
		t.Errorf("replicas %v, want 3", d.Spec.Replicas)
	}
	m := mountFor(c, cfg.Tracing.Spool.Dir)
	if m == nil || !slices.ContainsFunc(d.Spec.Template.Spec.Volumes, func(v corev1.Volume) bool { return v.Name == m.Name && v.EmptyDir != nil }) {
		t.Errorf("spool %s is not on an emptyDir", cfg.Tracing.Spool.Dir)
	}
	if has(r, "StatefulSet", "loom") || has(r, "HorizontalPodAutoscaler", "loom") || has(r, "Service", "loom-headless") {
		t.Error("a Deployment with autoscaling off renders a StatefulSet, an HPA or a headless Service")
	}
}

func TestChart_CNPGValues_DatabaseURLFromTheOperatorsSecret(t *testing.T) {
	r := render(t, filepath.Join(chartDir, "examples", "values-cnpg.yaml"))
	cl := get[*cnpgCluster](t, r, "Cluster", "loom-pg")
	if cl.Spec.Instances != 3 || cl.Spec.Bootstrap.InitDB.Database != "loom" || cl.Spec.Storage.Size != "50Gi" {
		t.Errorf("Cluster spec %+v", cl.Spec)
	}
	_, lc := loomPod(t, r)
	_, cc := collectorPod(r)
	for _, c := range []*corev1.Container{lc, cc} {
		ref := envFrom(t, c, cli.EnvDatabaseURL)
		// CloudNativePG names the application Secret <cluster>-app; "uri"
		// is its connection URL.
		if ref.Name != cl.ObjectMeta.Name+"-app" || ref.Key != "uri" {
			t.Errorf("%s: $%s from %s/%s, want %s-app/uri", c.Name, cli.EnvDatabaseURL, ref.Name, ref.Key, cl.ObjectMeta.Name)
		}
	}
}

func envFrom(t *testing.T, c *corev1.Container, name string) *corev1.SecretKeySelector {
	t.Helper()
	for _, e := range c.Env {
		if e.Name == name {
			if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
				t.Fatalf("%s: $%s is not from a Secret", c.Name, name)
			}
			return e.ValueFrom.SecretKeyRef
		}
	}
	t.Fatalf("%s: no $%s", c.Name, name)
	return nil
}

func TestChart_RedisValues_InClusterURLReachesItsService(t *testing.T) {
	r := render(t, filepath.Join(chartDir, "examples", "values-redis.yaml"))
	cfg, _, env := loomConfig(t, r)
	if !cfg.Redis.Enabled() {
		t.Fatal("redis.url_env is not set")
	}
	url := env[cfg.Redis.URLEnv]
	m := regexp.MustCompile(`^redis://([^:/]+):(\d+)/0$`).FindStringSubmatch(url)
	if m == nil {
		t.Fatalf("$%s = %q", cfg.Redis.URLEnv, url)
	}
	svc := get[*corev1.Service](t, r, "Service", m[1])
	if len(svc.Spec.Ports) != 1 || strconv.Itoa(int(svc.Spec.Ports[0].Port)) != m[2] {
		t.Errorf("Redis Service ports %+v, URL port %s", svc.Spec.Ports, m[2])
	}
	get[*appsv1.Deployment](t, r, "Deployment", m[1])
}

func TestChart_SecretsValues_EachFromItsOwnSecret(t *testing.T) {
	r := render(t, filepath.Join(chartDir, "examples", "values-secrets.yaml"))
	_, lc := loomPod(t, r)
	_, cc := collectorPod(r)
	for _, want := range []struct {
		c              *corev1.Container
		env, name, key string
	}{
		{lc, cli.EnvDatabaseURL, "loom-postgres", "url"},
		{lc, cli.EnvSecretKey, "loom-core", "credential-key"},
		{lc, "LOOM_ADMIN_TOKEN", "loom-admin", "token"},
		{lc, "OPENAI_API_KEY", "loom-openai", "api-key"},
		{lc, "ANTHROPIC_API_KEY", "loom-anthropic", "api-key"},
		{cc, cli.EnvDatabaseURL, "loom-postgres", "url"},
		{cc, ledger.EnvKey, "loom-ledger", "signing-key"},
	} {
		ref := envFrom(t, want.c, want.env)
		if ref.Name != want.name || ref.Key != want.key || (ref.Optional != nil && *ref.Optional) {
			t.Errorf("%s $%s from %s/%s optional=%v, want %s/%s required", want.c.Name, want.env, ref.Name, ref.Key, ref.Optional, want.name, want.key)
		}
	}
}

// TestChart_Dashboards_AreTheGeneratedOnes: the ConfigMap carries each
// dashboard of dashboards/grafana/json (read through the chart's symlink),
// byte for byte, with the label Grafana's sidecar looks for.
func TestChart_Dashboards_AreTheGeneratedOnes(t *testing.T) {
	r := render(t)
	cm := get[*corev1.ConfigMap](t, r, "ConfigMap", "loom-dashboards")
	if cm.Labels["grafana_dashboard"] != "1" {
		t.Errorf("labels %v, want grafana_dashboard: \"1\"", cm.Labels)
	}
	files, err := filepath.Glob("../../dashboards/grafana/json/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no generated dashboards: %v", err)
	}
	for _, f := range files {
		want, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := cm.Data[filepath.Base(f)]
		if !ok {
			t.Errorf("%s is not in the ConfigMap", filepath.Base(f))
			continue
		}
		if got != strings.TrimRight(string(want), "\n") {
			t.Errorf("%s in the ConfigMap differs from %s", filepath.Base(f), f)
		}
		if !json.Valid([]byte(got)) {
			t.Errorf("%s is not JSON in the ConfigMap", filepath.Base(f))
		}
	}
	if len(cm.Data) != len(files) {
		t.Errorf("ConfigMap has %d dashboards, dashboards/grafana/json %d", len(cm.Data), len(files))
	}
}

// TestChart_PrometheusRule_IsDeployPrometheusLoomAlerts: the rules the chart
// installs are deploy/prometheus/loom-alerts.yaml, the file compose loads.
func TestChart_PrometheusRule_IsDeployPrometheusLoomAlerts(t *testing.T) {
	r := render(t, filepath.Join(chartDir, "examples", "values-monitoring.yaml"))
	rule := get[*monitoringv1.PrometheusRule](t, r, "PrometheusRule", "loom")
	b, err := os.ReadFile("../prometheus/loom-alerts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var want monitoringv1.PrometheusRuleSpec
	if err := yaml.UnmarshalStrict(b, &want); err != nil {
		t.Fatalf("deploy/prometheus/loom-alerts.yaml is not a rules file: %v", err)
	}
	if len(want.Groups) == 0 {
		t.Fatal("deploy/prometheus/loom-alerts.yaml has no groups")
	}
	if !reflect.DeepEqual(rule.Spec, want) {
		g, _ := json.Marshal(rule.Spec)
		w, _ := json.Marshal(want)
		t.Errorf("PrometheusRule spec differs from deploy/prometheus/loom-alerts.yaml:\n got %s\nwant %s", g, w)
	}
	for _, n := range []string{"loom", "loom-otelcol"} {
		get[*monitoringv1.ServiceMonitor](t, r, "ServiceMonitor", n)
	}
}

// TestChart_SharedFiles_AreSymlinksIntoTheRepository: the chart carries no
// copy of the dashboards or the rules to drift; Helm's loader follows these
// links (and `helm package` stores what they point at).
func TestChart_SharedFiles_AreSymlinksIntoTheRepository(t *testing.T) {
	for link, target := range map[string]string{
		"loom/files/dashboards":       "../../dashboards/grafana/json",
		"loom/files/loom-alerts.yaml": "../prometheus/loom-alerts.yaml",
	} {
		fi, err := os.Lstat(link)
		if err != nil || fi.Mode()&os.ModeSymlink == 0 {
			t.Errorf("%s is not a symlink: %v", link, err)
			continue
		}
		got, err := filepath.EvalSymlinks(link)
		if err != nil {
			t.Errorf("%s: %v", link, err)
			continue
		}
		want, _ := filepath.Abs(target)
		if abs, _ := filepath.Abs(got); abs != want {
			t.Errorf("%s points at %s, want %s", link, abs, want)
		}
	}
	ch := loadChart(t)
	n := 0
	for _, f := range ch.Files {
		if strings.HasPrefix(f.Name, "files/dashboards/") || f.Name == "files/loom-alerts.yaml" {
			n++
		}
	}
	if n < 2 {
		t.Errorf("the loaded chart has %d of the linked files: Helm's loader did not follow the links", n)
	}
}

// TestChart_Schema_RejectsBadValues: values.schema.json refuses what would
// render a broken or unsafe release, naming the field.
func TestChart_Schema_RejectsBadValues(t *testing.T) {
	ch := loadChart(t)
	for _, tc := range []struct {
		name, values, want string
	}{
		{"unknown top-level key", "replicaCount: 3", "replicaCount"},
		{"unknown workload", "loom: {workload: DaemonSet}", "workload"},
		{"port out of range", "loom: {ports: {ops: 70000}}", "ops"},
		{"tenants in loom.config", "loom: {config: {tenants: [{id: acme}]}}", "tenants"},
		{"a provider key in the ConfigMap", "loom: {config: {deployments: [{name: o, provider: openai, base_url: 'https://x/v1', api_key: sk-live}]}}", "api_key"},
		{"chart-owned listen in loom.config", "loom: {config: {listen: ':9999'}}", "listen"},
		{"unknown provider", "loom: {config: {deployments: [{name: o, provider: cohere, base_url: 'https://x/v1'}]}}", "provider"},
		{"bad duration", "loom: {config: {timeouts: {connect: 5 seconds}}}", "connect"},
		{"empty secret key", "secrets: {databaseURL: {key: ''}}", "key"},
		{"bad env name", "loom: {upstreamCredentials: [{env: 'OPENAI-KEY', key: k}]}", "env"},
		{"unknown collector section", "collector: {config: {pipelines: {}}}", "pipelines"},
		{"bad quantity", "loom: {spool: {size: lots}}", "size"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vals, err := chartValues([]byte(tc.values))
			if err != nil {
				t.Fatal(err)
			}
			_, err = renderValues(ch, vals)
			if err == nil {
				t.Fatalf("values %q rendered; the schema should refuse them", tc.values)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error does not name %q: %v", tc.want, err)
			}
		})
	}
}

func chartValues(b []byte) (map[string]any, error) {
	v := map[string]any{}
	return v, yaml.Unmarshal(b, &v)
}

// chartOwned are loom.yaml's keys that values.schema.json does not offer
// under loom.config, and why.
var chartOwned = map[string]string{
	"listen":                 "from loom.ports.gateway",
	"ops":                    "from loom.ports.ops and loom.pprof",
	"admin":                  "from loom.admin and secrets.adminToken",
	"console":                "from loom.console and secrets.databaseURL",
	"redis":                  "from redis and secrets.redisURL",
	"tenants":                "tenants live in the store (loom tenants, the admin API)",
	"store.database_url_env": "LOOM_DATABASE_URL from secrets.databaseURL",
	"store.secret_key_env":   "LOOM_SECRET_KEY from secrets.secretKey",
	"store.secret_key_file":  "the key comes from a Secret as LOOM_SECRET_KEY",
	"tracing.endpoint":       "the collector's Service",
	"tracing.protocol":       "grpc, to the collector's Service",
	"tracing.headers":        "an auth header is a secret and would land in the ConfigMap",
	"tracing.spool.dir":      "the spool volume",
}

// TestChart_Schema_LoomConfigIsProxyConfigLessWhatTheChartSets: every key of
// proxy/config's Config is offered under loom.config or set by the chart
// (chartOwned), and the schema offers no key Config lacks; so a new config
// key fails here until the chart decides about it.
func TestChart_Schema_LoomConfigIsProxyConfigLessWhatTheChartSets(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(chartDir, "values.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	var schema map[string]any
	if err := json.Unmarshal(b, &schema); err != nil {
		t.Fatal(err)
	}
	node := dig(schema, "properties", "loom", "properties", "config")
	seenOwned := map[string]bool{}
	var walk func(prefix string, typ reflect.Type, node any)
	walk = func(prefix string, typ reflect.Type, node any) {
		for typ.Kind() == reflect.Slice || typ.Kind() == reflect.Pointer {
			typ = typ.Elem()
			if n := dig(node, "items"); n != nil {
				node = n
			}
		}
		if typ.Kind() != reflect.Struct || typ.PkgPath() == "time" {
			return
		}
		if ap, _ := dig(node, "additionalProperties").(bool); ap {
			t.Errorf("loom.config.%s: the schema allows any key", prefix)
		}
		props, _ := dig(node, "properties").(map[string]any)
		tags := map[string]bool{}
		for i := range typ.NumField() {
			f := typ.Field(i)
			tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if tag == "" || tag == "-" {
				continue
			}
			tags[tag] = true
			path := strings.TrimPrefix(prefix+"."+tag, ".")
			_, owned := chartOwned[path]
			sub, offered := props[tag]
			switch {
			case owned && offered:
				t.Errorf("loom.config.%s is offered, but the chart sets it (%s)", path, chartOwned[path])
			case owned:
				seenOwned[path] = true
			case !offered:
				t.Errorf("loom.config.%s (proxy/config %s.%s) is neither offered by values.schema.json nor set by the chart", path, typ.Name(), f.Name)
			default:
				walk(path, f.Type, sub)
			}
		}
		for k := range props {
			if !tags[k] {
				t.Errorf("values.schema.json offers loom.config.%s, which proxy/config's %s does not have", strings.TrimPrefix(prefix+"."+k, "."), typ.Name())
			}
		}
	}
	walk("", reflect.TypeFor[config.Config](), node)
	for k := range chartOwned {
		if !seenOwned[k] {
			t.Errorf("chartOwned names %s, which proxy/config does not have", k)
		}
	}
}

// TestChart_EveryValuesFile_NoSecretInConfigMaps: nothing that looks like a
// credential reaches a ConfigMap.
func TestChart_EveryValuesFile_NoSecretInConfigMaps(t *testing.T) {
	leaks := regexp.MustCompile(`(?i)(postgres(ql)?|rediss?)://[^$\s]*@|api_key:\s*\S|token_sha256|sk-[a-z0-9]`)
	forEachValues(t, func(t *testing.T, r *rendered) {
		for _, o := range r.objects {
			cm, ok := o.obj.(*corev1.ConfigMap)
			if !ok || o.name == "loom-dashboards" {
				continue
			}
			for k, v := range cm.Data {
				if m := leaks.FindString(v); m != "" {
					t.Errorf("ConfigMap %s key %s holds %q", o.name, k, m)
				}
			}
		}
	})
}

// TestChart_MonitoringValues_ServiceMonitorsScrapeWhatTheBinariesServe: the
// gateway's ServiceMonitor reaches the ops listener's port and a path its
// handler answers with Loom's series; the collector's reaches the port its
// Prometheus reader listens on.
func TestChart_MonitoringValues_ServiceMonitorsScrapeWhatTheBinariesServe(t *testing.T) {
	r := render(t, filepath.Join(chartDir, "examples", "values-monitoring.yaml"))
	cfg, c, _ := loomConfig(t, r)
	sm := get[*monitoringv1.ServiceMonitor](t, r, "ServiceMonitor", "loom")
	if len(sm.Spec.Endpoints) != 1 {
		t.Fatalf("endpoints %+v", sm.Spec.Endpoints)
	}
	ep := sm.Spec.Endpoints[0]
	svc := get[*corev1.Service](t, r, "Service", "loom-ops")
	i := slices.IndexFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == ep.Port })
	if i < 0 || containerPort(t, c, svc.Spec.Ports[i].TargetPort.StrVal) != portOf(t, cfg.Ops.Listen) {
		t.Fatalf("ServiceMonitor port %q does not reach ops.listen %s", ep.Port, cfg.Ops.Listen)
	}
	srv, err := server.New(cfg, server.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var ctx fasthttp.RequestCtx
	ctx.Init(&fasthttp.Request{}, nil, nil)
	ctx.Request.SetRequestURI(ep.Path)
	srv.OpsHandler()(&ctx)
	if ctx.Response.StatusCode() != fasthttp.StatusOK || !strings.Contains(string(ctx.Response.Body()), "# TYPE loom_") {
		t.Errorf("GET %s on the ops handler = %d, %.200s", ep.Path, ctx.Response.StatusCode(), ctx.Response.Body())
	}

	_, cc, raw, _, _ := collectorConfig(t, r)
	csm := get[*monitoringv1.ServiceMonitor](t, r, "ServiceMonitor", "loom-otelcol")
	cep := csm.Spec.Endpoints[0]
	csvc := get[*corev1.Service](t, r, "Service", "loom-otelcol")
	j := slices.IndexFunc(csvc.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == cep.Port })
	readers, _ := dig(raw, "service", "telemetry", "metrics", "readers").([]any)
	port, _ := dig(readers[0], "pull", "exporter", "prometheus", "port").(float64)
	if j < 0 || containerPort(t, cc, csvc.Spec.Ports[j].TargetPort.StrVal) != int32(port) {
		t.Errorf("collector ServiceMonitor port %q does not reach the Prometheus reader's port %v", cep.Port, port)
	}
	// The collector's Prometheus reader serves /metrics only.
	if cep.Path != "/metrics" {
		t.Errorf("collector ServiceMonitor path %q", cep.Path)
	}
}
