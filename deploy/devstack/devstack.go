// Package devstack is what `make run` starts: a local Loom with a demo tenant
// and key, in front of the mock upstream (or the real OpenAI, or any
// OpenAI-compatible server), with its state under .loom/ in the checkout. The
// stack is a list of services, each with a command and a readiness check,
// started in order and stopped in reverse. It must never write an upstream
// credential to disk: the generated configuration names environment
// variables, and the services inherit devstack's environment.
package devstack

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"

	"github.com/loom-gateway/loom/proxy/config"
	"github.com/loom-gateway/loom/proxy/tenant"
)

// Options say where the stack lives and listens.
type Options struct {
	// Dir holds the demo key, the generated configuration and the logs.
	Dir string
	// Bin holds the loom and mockupstream binaries (`make build`).
	Bin string
	// Listen is Loom's preferred address, MockAddr the mock's; when one is
	// taken, a free port on the same host is used instead.
	Listen   string
	MockAddr string
	// Getenv reads the variables that choose the upstream.
	Getenv func(string) string
}

// Plan is a prepared stack: files written, ports chosen, not yet started.
type Plan struct {
	Key        string // the demo API key
	LoomURL    string // http://host:port, without /v1
	ConfigPath string
	Upstream   Upstream
	Services   []Service
	// Notes are lines to show before the stack starts.
	Notes []string
}

// Prepare creates o.Dir, the demo key and Loom's configuration, and picks
// the ports.
func Prepare(o Options) (*Plan, error) {
	if o.Getenv == nil {
		o.Getenv = os.Getenv
	}
	loomBin, mockBin := filepath.Join(o.Bin, "loom"), filepath.Join(o.Bin, "mockupstream")
	up := ChooseUpstream(o.Getenv)
	need := []string{loomBin}
	if up.Mock {
		need = append(need, mockBin)
	}
	for _, b := range need {
		if _, err := os.Stat(b); err != nil {
			return nil, fmt.Errorf("%w (run `make build` first)", err)
		}
	}
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("create state dir: %w", err)
	}
	key, err := DemoKey(filepath.Join(o.Dir, "demo.key"))
	if err != nil {
		return nil, err
	}
	p := &Plan{Key: key, Upstream: up, ConfigPath: filepath.Join(o.Dir, "loom.yaml"), Notes: []string{up.Note}}

	if up.Mock {
		addr, note, err := pickAddr("the mock upstream", o.MockAddr)
		if err != nil {
			return nil, err
		}
		if note != "" {
			p.Notes = append(p.Notes, note)
		}
		p.Upstream.BaseURL = "http://" + addr + "/v1"
		p.Services = append(p.Services, Service{
			Name:  "mockupstream",
			Path:  mockBin,
			Args:  []string{"-addr", addr, "-grace", "5s"},
			Ready: HTTPReady(p.Upstream.BaseURL + "/models"),
		})
	}
	listen, note, err := pickAddr("loom", o.Listen)
	if err != nil {
		return nil, err
	}
	if note != "" {
		p.Notes = append(p.Notes, note)
	}
	p.LoomURL = "http://" + listen
	cfg := RenderConfig(listen, p.Upstream, tenant.Hash(key))
	if _, err := config.Parse(cfg); err != nil {
		return nil, fmt.Errorf("generated config: %w", err)
	}
	if err := os.WriteFile(p.ConfigPath, cfg, 0o600); err != nil {
		return nil, fmt.Errorf("write config: %w", err)
	}
	p.Services = append(p.Services, Service{
		Name:  "loom",
		Path:  loomBin,
		Args:  []string{"serve", "-config", p.ConfigPath, "-listen", listen, "-log-calls"},
		Ready: HTTPReady(p.LoomURL + "/readyz"),
	})
	return p, nil
}

// pickAddr returns want if it can be listened on, else a free port on the
// same host, with a note saying so. The port is free when checked; a race
// with another program is possible and shows up as a failed start.
func pickAddr(what, want string) (addr, note string, err error) {
	if ln, err := net.Listen("tcp", want); err == nil {
		addr = ln.Addr().String()
		ln.Close()
		return addr, "", nil
	}
	host, _, err := net.SplitHostPort(want)
	if err != nil {
		return "", "", fmt.Errorf("address %q: %w", want, err)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return "", "", fmt.Errorf("find a port for %s: %w", what, err)
	}
	addr = ln.Addr().String()
	ln.Close()
	return addr, fmt.Sprintf("%s is in use, so %s listens on %s", want, what, addr), nil
}

// Main is the devstack command: prepare, start, print how to call Loom, and
// run until ctx ends (nil) or a service dies (an error).
func Main(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("devstack", flag.ContinueOnError)
	fs.SetOutput(stdout)
	var o Options
	fs.StringVar(&o.Dir, "dir", ".loom", "state directory: demo key, generated config, logs")
	fs.StringVar(&o.Bin, "bin", "bin", "directory with the loom and mockupstream binaries")
	fs.StringVar(&o.Listen, "listen", "127.0.0.1:8080", "Loom's address (a free port if taken)")
	fs.StringVar(&o.MockAddr, "mock-addr", "127.0.0.1:9090", "the mock upstream's address (a free port if taken)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	term := NewTerminal(stdout)
	p, err := Prepare(o)
	if err != nil {
		return err
	}
	for _, n := range p.Notes {
		term.Printf("devstack: %s\n", n)
	}
	st := &Stack{Services: p.Services, LogDir: o.Dir, Out: term}
	if err := st.Start(ctx); err != nil {
		if ctx.Err() != nil {
			return nil // interrupted while starting: not a failure
		}
		return err
	}
	term.Printf("%s", p.Banner(o.Dir))
	err = st.Wait(ctx)
	if err == nil {
		term.Printf("devstack: stopped\n")
	}
	return err
}

// Banner is what devstack prints once the stack is ready: lines that work
// when pasted into a shell.
func (p *Plan) Banner(dir string) string {
	logs := ""
	for _, s := range p.Services {
		logs += " " + filepath.Join(dir, s.Name+".log")
	}
	chat := `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello"}]}`
	stream := `{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"Hello"}]}`
	rest := " " + p.LoomURL + `/v1/chat/completions -H "Authorization: Bearer $OPENAI_API_KEY" -H 'Content-Type: application/json' -d '`
	b := "\n" +
		"devstack: ready. Loom is on " + p.LoomURL + ", relaying to " + p.Upstream.Describe() + ".\n" +
		"devstack: config " + p.ConfigPath + ", logs" + logs + ". Ctrl-C stops everything.\n"
	if !p.Upstream.Mock && p.Upstream.APIKeyEnv == EnvOpenAIKey {
		b += "devstack: paste these into another shell: the export replaces your real OPENAI_API_KEY there.\n"
	}
	b += "\n" +
		"export OPENAI_BASE_URL=" + p.LoomURL + "/v1\n" +
		"export OPENAI_API_KEY=" + p.Key + "\n" +
		"curl -sS" + rest + chat + "'\n" +
		"\n# streaming (-N: print each event as it arrives):\n" +
		"curl -sSN" + rest + stream + "'\n\n"
	return b
}
