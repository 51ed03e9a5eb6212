package docker

import (
	"bytes"
	"encoding/json"
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	dfparser "github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
	"go.yaml.in/yaml/v3"
	"golang.org/x/mod/modfile"

	"github.com/loom-gateway/loom/proxy/config"
)

// root is the repository root: the images' build context.
const root = "../.."

// nonroot is the user every image runs as (distroless's "nonroot"); the
// Helm chart's securityContext and compose's volumes assume it.
const nonroot = "65532:65532"

// image is what the deploy contract says of one image.
type image struct {
	dockerfile string
	binary     string   // the binary's path in the image
	pkg        string   // the main package it is built from
	config     string   // the config path CMD names ("" when it takes none)
	ports      []string // what EXPOSE must list
	stateDir   string   // a directory the user owns, for a volume ("" for none)
}

// images are the contract's images, their ports read from the binaries'
// own defaults and compose's configs, so that a port moved in one place and
// not the other fails here.
func images(t *testing.T) []image {
	return []image{
		{dockerfile: "loom.Dockerfile", binary: "/loom", pkg: "./proxy/cmd/loom", config: "/etc/loom/loom.yaml",
			ports: loomPorts(t), stateDir: "/var/lib/loom/"},
		{dockerfile: "otelcol-loom.Dockerfile", binary: "/otelcol-loom", pkg: "./otelcol/cmd/otelcol-loom",
			config: "/etc/otelcol-loom/config.yaml", ports: collectorPorts(t), stateDir: "/var/lib/otelcol-loom/"},
		{dockerfile: "mockupstream.Dockerfile", binary: "/mockupstream", pkg: "./bench/cmd/mockupstream",
			ports: []string{"9090"}},
	}
}

// loomPorts are the gateway's default port and those of every listener
// compose's loom.yaml turns on (ops, admin, console).
func loomPorts(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "deploy/compose/loom.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var c config.Config
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatalf("deploy/compose/loom.yaml: %v", err)
	}
	ports := []string{port(t, config.DefaultListen)}
	for _, addr := range []string{c.Listen, c.Ops.Listen, c.Admin.Listen, c.Console.Listen} {
		if addr != "" {
			ports = append(ports, port(t, addr))
		}
	}
	return sortedSet(ports)
}

// collectorPorts are the OTLP receivers', the health check's and the
// internal telemetry's ports in compose's collector config.
func collectorPorts(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "deploy/compose/otelcol.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Receivers struct {
			OTLP struct {
				Protocols struct {
					GRPC struct{ Endpoint string } `yaml:"grpc"`
					HTTP struct{ Endpoint string } `yaml:"http"`
				} `yaml:"protocols"`
			} `yaml:"otlp"`
		} `yaml:"receivers"`
		Extensions struct {
			HealthCheck struct{ Endpoint string } `yaml:"health_check"`
		} `yaml:"extensions"`
		Service struct {
			Telemetry struct {
				Metrics struct {
					Readers []struct {
						Pull struct {
							Exporter struct {
								Prometheus struct{ Port int } `yaml:"prometheus"`
							} `yaml:"exporter"`
						} `yaml:"pull"`
					} `yaml:"readers"`
				} `yaml:"metrics"`
			} `yaml:"telemetry"`
		} `yaml:"service"`
	}
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatalf("deploy/compose/otelcol.yaml: %v", err)
	}
	p := c.Receivers.OTLP.Protocols
	ports := []string{port(t, p.GRPC.Endpoint), port(t, p.HTTP.Endpoint), port(t, c.Extensions.HealthCheck.Endpoint)}
	for _, r := range c.Service.Telemetry.Metrics.Readers {
		ports = append(ports, strconv.Itoa(r.Pull.Exporter.Prometheus.Port))
	}
	return sortedSet(ports)
}

func port(t *testing.T, addr string) string {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("address %q: %v", addr, err)
	}
	return p
}

func sortedSet(s []string) []string {
	slices.Sort(s)
	return slices.Compact(s)
}

// dockerfile is one parsed Dockerfile.
type dockerfile struct {
	stages   []instructions.Stage
	metaArgs []instructions.ArgCommand
}

// parse reads a Dockerfile with BuildKit's parser and instruction parser,
// failing on any parse warning or lint finding BuildKit makes at parse time.
func parse(t *testing.T, name string) dockerfile {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	res, err := dfparser.Parse(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	for _, w := range res.Warnings {
		t.Errorf("%s: parser warning: %s", name, w.Short)
	}
	lint := linter.New(&linter.Config{Warn: func(rule, desc, url, msg string, loc []dfparser.Range) {
		t.Errorf("%s:%v: lint %s: %s", name, loc, rule, msg)
	}})
	stages, metaArgs, err := instructions.Parse(res.AST, lint)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return dockerfile{stages: stages, metaArgs: metaArgs}
}

// goBuild is one `go build` of a RUN line, its words expanded.
type goBuild struct {
	out, pkg string
	flags    []string // the words between build and the package
	ldflags  string
}

// goBuilds finds the `go build` commands of a stage's RUN lines, split at
// && and expanded with the stage's ARG defaults, as BuildKit's shell lexer
// would.
func goBuilds(t *testing.T, st instructions.Stage) []goBuild {
	t.Helper()
	env := stageArgs(st)
	var out []goBuild
	for _, c := range st.Commands {
		run, ok := c.(*instructions.RunCommand)
		if !ok || !run.PrependShell {
			continue
		}
		for _, part := range strings.Split(strings.Join(run.CmdLine, " "), "&&") {
			words, err := shell.NewLex('\\').ProcessWords(strings.TrimSpace(part), shell.EnvsFromSlice(env))
			if err != nil {
				t.Fatalf("RUN %q: %v", part, err)
			}
			if len(words) < 2 || words[0] != "go" || words[1] != "build" {
				continue
			}
			b := goBuild{}
			for i := 2; i < len(words); i++ {
				switch w := words[i]; {
				case w == "-o" && i+1 < len(words):
					b.out = words[i+1]
					i++
				case w == "-ldflags" && i+1 < len(words):
					b.ldflags = words[i+1]
					i++
				case strings.HasPrefix(w, "-"):
					b.flags = append(b.flags, w)
				default:
					b.pkg = w
				}
			}
			out = append(out, b)
		}
	}
	return out
}

// stageArgs are the stage's ARGs with their defaults, NAME=VALUE.
func stageArgs(st instructions.Stage) []string {
	var env []string
	for _, c := range st.Commands {
		if a, ok := c.(*instructions.ArgCommand); ok {
			for _, kv := range a.Args {
				env = append(env, kv.Key+"="+kv.ValueString())
			}
		}
	}
	return env
}

func commands[T instructions.Command](st instructions.Stage) []T {
	var out []T
	for _, c := range st.Commands {
		if v, ok := c.(T); ok {
			out = append(out, v)
		}
	}
	return out
}

// goVersion is the Go that go.mod asks for: its toolchain line, else its go line.
func goVersion(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	f, err := modfile.Parse("go.mod", b, nil)
	if err != nil {
		t.Fatal(err)
	}
	if f.Toolchain != nil {
		return strings.TrimPrefix(f.Toolchain.Name, "go")
	}
	return f.Go.Version
}

func TestDockerfiles_BuilderIsGoModsGo_FinalStageDistrolessAsNonroot(t *testing.T) {
	want := "golang:" + goVersion(t)
	for _, img := range images(t) {
		t.Run(img.dockerfile, func(t *testing.T) {
			df := parse(t, img.dockerfile)
			if len(df.stages) < 2 {
				t.Fatalf("%d stage(s): want a builder stage and a final one", len(df.stages))
			}
			builder, final := df.stages[0], df.stages[len(df.stages)-1]
			if builder.BaseName != want {
				t.Errorf("builder FROM %s, want %s (go.mod)", builder.BaseName, want)
			}
			if builder.Name == "" {
				t.Error("the builder stage has no name (FROM ... AS build) for COPY --from")
			}
			if final.BaseName != "gcr.io/distroless/static-debian12:nonroot" && final.BaseName != "scratch" {
				t.Errorf("final FROM %s, want gcr.io/distroless/static-debian12:nonroot or scratch", final.BaseName)
			}
			users := commands[*instructions.UserCommand](final)
			if len(users) == 0 || users[len(users)-1].User != nonroot {
				t.Errorf("final stage USER %v, want %s", users, nonroot)
			}
			for _, st := range df.stages[:len(df.stages)-1] {
				if len(commands[*instructions.ExposeCommand](st)) > 0 || len(commands[*instructions.LabelCommand](st)) > 0 {
					t.Errorf("stage %s has EXPOSE or LABEL: they belong to the final stage", st.Name)
				}
			}
		})
	}
}

func TestDockerfiles_GoBuilds_StaticTrimmedAndOfMainPackagesThatExist(t *testing.T) {
	for _, img := range images(t) {
		t.Run(img.dockerfile, func(t *testing.T) {
			df := parse(t, img.dockerfile)
			builder := df.stages[0]
			builds := goBuilds(t, builder)
			if len(builds) == 0 {
				t.Fatal("the builder stage runs no go build")
			}
			cgoOff := false
			for _, e := range commands[*instructions.EnvCommand](builder) {
				for _, kv := range e.Env {
					cgoOff = cgoOff || (kv.Key == "CGO_ENABLED" && kv.Value == "0")
				}
			}
			if !cgoOff {
				t.Error("the builder stage does not set ENV CGO_ENABLED=0: the binary would need a libc distroless/static lacks")
			}
			var built []string
			for _, b := range builds {
				if !slices.Contains(b.flags, "-trimpath") {
					t.Errorf("go build %s: no -trimpath", b.pkg)
				}
				if b.out == "" {
					t.Errorf("go build %s: no -o", b.pkg)
				}
				built = append(built, b.pkg)
				if name := mainPackage(t, b.pkg); name != "main" {
					t.Errorf("go build %s: package %q, want a main package", b.pkg, name)
				}
				for _, sym := range xSymbols(b.ldflags) {
					checkVar(t, b.pkg, sym)
				}
			}
			if !slices.Contains(built, img.pkg) {
				t.Errorf("builds %v, want %s", built, img.pkg)
			}
			if !slices.Contains(built, "./deploy/cmd/httpprobe") {
				t.Errorf("builds %v, want ./deploy/cmd/httpprobe (the healthcheck of a shell-less image)", built)
			}
			// The image's own binary carries the version it is labelled with.
			for _, b := range builds {
				if b.pkg == img.pkg && img.pkg != "./bench/cmd/mockupstream" && !strings.Contains(b.ldflags, "=dev") {
					t.Errorf("go build %s: -ldflags %q does not set the version from ARG VERSION (default dev)", b.pkg, b.ldflags)
				}
			}
		})
	}
}

// mainPackage is the package name of the Go files (not tests) in dir.
func mainPackage(t *testing.T, pkg string) string {
	t.Helper()
	dir := filepath.Join(root, pkg)
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil || len(files) == 0 {
		t.Errorf("go build %s: no Go files in %s", pkg, dir)
		return ""
	}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.PackageClauseOnly)
		if err != nil {
			t.Fatal(err)
		}
		return af.Name.Name
	}
	return ""
}

// xSymbols are the import.path.Name of every -X in ldflags.
func xSymbols(ldflags string) []string {
	var out []string
	f := strings.Fields(ldflags)
	for i := 0; i+1 < len(f); i++ {
		if f[i] == "-X" {
			sym, _, _ := strings.Cut(f[i+1], "=")
			out = append(out, sym)
		}
	}
	return out
}

// checkVar fails unless sym (import/path.Name, or main.Name for the package
// being built) is a package-level string variable: -X on a name that does
// not exist is silently ignored by the linker.
func checkVar(t *testing.T, pkg, sym string) {
	t.Helper()
	dot := strings.LastIndex(sym, ".")
	path, name := sym[:dot], sym[dot+1:]
	dir := filepath.Join(root, pkg)
	if path != "main" {
		rel, ok := strings.CutPrefix(path, module(t)+"/")
		if !ok {
			t.Errorf("-X %s: not a package of this module", sym)
			return
		}
		dir = filepath.Join(root, rel)
	}
	fset := token.NewFileSet()
	files, _ := filepath.Glob(filepath.Join(dir, "*.go"))
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range af.Decls {
			gd, ok := d.(*ast.GenDecl)
			if !ok || gd.Tok != token.VAR {
				continue
			}
			for _, s := range gd.Specs {
				vs := s.(*ast.ValueSpec)
				for i, n := range vs.Names {
					if n.Name != name {
						continue
					}
					if len(vs.Values) > i {
						if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
							return
						}
					}
					t.Errorf("-X %s: %s is not initialised with a string literal", sym, name)
					return
				}
			}
		}
	}
	t.Errorf("-X %s: no package-level variable %s in %s (the linker would ignore it silently)", sym, name, dir)
}

func module(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	return modfile.ModulePath(b)
}

func TestDockerfiles_FinalStage_ContractBinaryEntrypointConfigPortsAndLabels(t *testing.T) {
	for _, img := range images(t) {
		t.Run(img.dockerfile, func(t *testing.T) {
			df := parse(t, img.dockerfile)
			builder, final := df.stages[0], df.stages[len(df.stages)-1]
			outputs := map[string]bool{}
			for _, b := range goBuilds(t, builder) {
				outputs[b.out] = true
			}
			copied := map[string]string{} // destination -> source
			for _, c := range commands[*instructions.CopyCommand](final) {
				if c.From != builder.Name {
					t.Errorf("COPY %v from %q: the final stage copies only from the builder (%s)", c.SourcePaths, c.From, builder.Name)
				}
				for _, src := range c.SourcePaths {
					copied[c.DestPath] = src
				}
				if c.Chown != "" && c.Chown != nonroot {
					t.Errorf("COPY --chown=%s: want %s, the image's user", c.Chown, nonroot)
				}
			}
			for _, bin := range []string{img.binary, "/httpprobe"} {
				src, ok := copied[bin]
				if !ok {
					t.Errorf("no COPY --from=%s to %s", builder.Name, bin)
				} else if !outputs[src] {
					t.Errorf("COPY %s %s: %s is not a go build -o output of the builder (%v)", src, bin, src, outputs)
				}
			}
			if img.stateDir != "" {
				ok := false
				for _, c := range commands[*instructions.CopyCommand](final) {
					ok = ok || (c.DestPath == img.stateDir && c.Chown == nonroot)
				}
				if !ok {
					t.Errorf("no COPY --chown=%s to %s: a volume mounted there would not be writable by the image's user", nonroot, img.stateDir)
				}
			}

			eps := commands[*instructions.EntrypointCommand](final)
			if len(eps) != 1 || eps[0].PrependShell || !slices.Equal(eps[0].CmdLine, []string{img.binary}) {
				t.Errorf("ENTRYPOINT %v, want exec form [%q]: the image has no shell", eps, img.binary)
			}
			cmds := commands[*instructions.CmdCommand](final)
			if len(cmds) != 1 || cmds[0].PrependShell {
				t.Errorf("CMD %v: want one, in exec form", cmds)
			} else if img.config != "" && !slices.Contains(cmds[0].CmdLine, img.config) {
				t.Errorf("CMD %v does not name the contract's config path %s", cmds[0].CmdLine, img.config)
			}

			var exposed []string
			for _, e := range commands[*instructions.ExposeCommand](final) {
				for _, p := range e.Ports {
					exposed = append(exposed, strings.TrimSuffix(p, "/tcp"))
				}
			}
			if got := sortedSet(exposed); !slices.Equal(got, img.ports) {
				t.Errorf("EXPOSE %v, want %v", got, img.ports)
			}

			args := stageArgs(final)
			labels := map[string]string{}
			for _, l := range commands[*instructions.LabelCommand](final) {
				for _, kv := range l.Labels {
					v, _, err := shell.NewLex('\\').ProcessWord(kv.Value, shell.EnvsFromSlice(args))
					if err != nil {
						t.Fatalf("LABEL %s: %v", kv.Key, err)
					}
					labels[kv.Key] = v
				}
			}
			for _, k := range []string{"title", "description", "source", "version", "revision"} {
				if labels["org.opencontainers.image."+k] == "" {
					t.Errorf("no LABEL org.opencontainers.image.%s (or empty)", k)
				}
			}
			// With the ARG defaults, the labels come out as the defaults:
			// so they do read the build arguments.
			if v := labels["org.opencontainers.image.version"]; v != "dev" {
				t.Errorf("version label %q with ARG defaults, want dev (from ARG VERSION)", v)
			}
			if v := labels["org.opencontainers.image.revision"]; v != "unknown" {
				t.Errorf("revision label %q with ARG defaults, want unknown (from ARG REVISION)", v)
			}
		})
	}
}

// TestDockerignore_KeepsEverySourceTheImagesBuild_DropsStateAndSecrets
// lists, with go list, every Go and embedded file the images' binaries are
// built from, and checks that .dockerignore sends each to the builder,
// while local state (.loom: keys, the Postgres cluster's password), compose's
// .env and git's history stay behind.
func TestDockerignore_KeepsEverySourceTheImagesBuild_DropsStateAndSecrets(t *testing.T) {
	f, err := os.Open(filepath.Join(root, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	patterns, err := ignorefile.ReadAll(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		t.Fatal(err)
	}
	ignored := func(rel string) bool {
		m, err := pm.MatchesOrParentMatches(rel)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	for _, rel := range []string{".git/config", ".loom/pgpass", ".loom/demo.key", "deploy/compose/.env", "bin/loom",
		"proxy/server/testdata/node/node_modules/x/index.js"} {
		if !ignored(rel) {
			t.Errorf("%s goes to the builder: .dockerignore must leave it out", rel)
		}
	}

	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command on PATH to list the images' packages")
	}
	pkgs := []string{"./deploy/cmd/httpprobe"}
	for _, img := range images(t) {
		pkgs = append(pkgs, img.pkg)
	}
	cmd := exec.Command(goTool, append([]string{"list", "-deps", "-json=Dir,Module,GoFiles,EmbedFiles,CgoFiles,SFiles"}, pkgs...)...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("go list: %v\n%s", err, ee.Stderr)
		}
		t.Fatal(err)
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		t.Fatal(err)
	}
	mod := module(t)
	files := []string{"go.mod", "go.sum"}
	dec := json.NewDecoder(bytes.NewReader(out))
	n := 0
	for {
		var p struct {
			Dir                                   string
			Module                                *struct{ Path string }
			GoFiles, EmbedFiles, CgoFiles, SFiles []string
		}
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if p.Module == nil || p.Module.Path != mod {
			continue
		}
		n++
		rel, err := filepath.Rel(abs, p.Dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, list := range [][]string{p.GoFiles, p.EmbedFiles, p.CgoFiles, p.SFiles} {
			for _, f := range list {
				files = append(files, filepath.ToSlash(filepath.Join(rel, f)))
			}
		}
	}
	if n < 4 {
		t.Fatalf("go list found %d of the module's packages behind the images' binaries", n)
	}
	for _, f := range files {
		if ignored(f) {
			t.Errorf("%s is needed to build the images but .dockerignore leaves it out", f)
		}
	}
}
