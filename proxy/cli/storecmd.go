package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/user"
	"strings"

	"github.com/loom-gateway/loom/proxy/config"
	"github.com/loom-gateway/loom/proxy/secret"
	"github.com/loom-gateway/loom/proxy/store"
	"github.com/loom-gateway/loom/proxy/tenancy"
)

// What the tenant store commands read when no -config names others.
const (
	EnvDatabaseURL = "LOOM_DATABASE_URL"
	EnvSecretKey   = "LOOM_SECRET_KEY"
)

// EnvActor names the operator in the audit log when -actor does not.
const EnvActor = "LOOM_ACTOR"

// command is one store subcommand's flag set, with the flags they all
// share.
type command struct {
	fs     *flag.FlagSet
	config *string
	actor  *string
}

func newCommand(name string, std Stdio) *command {
	fs := flag.NewFlagSet("loom "+name, flag.ContinueOnError)
	fs.SetOutput(std.Err)
	return &command{fs: fs,
		config: fs.String("config", "", "configuration file whose store section locates the database and key (default: $"+EnvDatabaseURL+", $"+EnvSecretKey+")"),
		actor:  fs.String("actor", "", "who the audit log says made the change (default: $"+EnvActor+", else the OS user name)"),
	}
}

// operator is who this command's changes are recorded as: -actor, else
// $LOOM_ACTOR, else the OS user, else "unknown".
func (c *command) operator() string {
	if *c.actor != "" {
		return *c.actor
	}
	if a := os.Getenv(EnvActor); a != "" {
		return a
	}
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return "unknown"
}

// parse reads flags and positional arguments in any order (`tenants create
// acme -rpm 60` and `tenants create -rpm 60 acme` alike) and checks that
// there are want positional ones.
func (c *command) parse(args []string, want int) ([]string, error) {
	var pos []string
	for {
		if err := c.fs.Parse(args); err != nil {
			return nil, ErrUsage
		}
		if c.fs.NArg() == 0 {
			break
		}
		pos = append(pos, c.fs.Arg(0))
		args = c.fs.Args()[1:]
	}
	if want >= 0 && len(pos) != want {
		fmt.Fprintf(c.fs.Output(), "%s: want %d argument(s), got %d\n\n%s", c.fs.Name(), want, len(pos), usage)
		return nil, ErrUsage
	}
	return pos, nil
}

// set reports whether the flag was given.
func (c *command) set(name string) bool {
	given := false
	c.fs.Visit(func(f *flag.Flag) { given = given || f.Name == name })
	return given
}

// open connects to the store with the key, if any. It does not migrate:
// `loom migrate` does.
func (c *command) open(ctx context.Context) (*store.Store, error) {
	url := os.Getenv(EnvDatabaseURL)
	keyCfg := config.Store{SecretKeyEnv: EnvSecretKey}
	var opts []store.Option
	if *c.config != "" {
		cfg, err := config.Load(*c.config)
		if err != nil {
			return nil, err
		}
		if !cfg.Store.Enabled() {
			return nil, fmt.Errorf("%s: no store.database_url_env: the tenants live in the file", *c.config)
		}
		url = cfg.Store.DatabaseURL()
		if cfg.Store.SecretKeyEnv != "" || cfg.Store.SecretKeyFile != "" {
			keyCfg = cfg.Store
		}
		// The file names the gateway's deployments: a model or credential
		// naming another is refused here, not quarantined in the gateway.
		opts = append(opts, store.WithDeployments(deploymentNames(cfg)))
	}
	if url == "" {
		return nil, fmt.Errorf("no database: set %s or give -config FILE with store.database_url_env", EnvDatabaseURL)
	}
	// Without a key everything but credentials works; the store says so
	// if one is needed.
	box, err := secret.Load(keyCfg)
	if err != nil && !errors.Is(err, secret.ErrNoKey) {
		return nil, err
	}
	return store.Open(ctx, url, box, opts...)
}

// deploymentNames are the deployments cfg configures.
func deploymentNames(cfg *config.Config) []string {
	names := make([]string, len(cfg.Deployments))
	for i, d := range cfg.Deployments {
		names[i] = d.Name
	}
	return names
}

// limitFlags are the limits a tenant or a key may have.
type limitFlags struct{ rpm, tpm, streams *int }

func addLimitFlags(fs *flag.FlagSet) limitFlags {
	return limitFlags{
		rpm:     fs.Int("rpm", 0, "requests per minute (0: no limit)"),
		tpm:     fs.Int("tpm", 0, "tokens per minute (0: no limit)"),
		streams: fs.Int("streams", 0, "concurrent streams (0: no limit)"),
	}
}

func (l limitFlags) limits() tenancy.Limits {
	return tenancy.Limits{RequestsPerMinute: *l.rpm, TokensPerMinute: *l.tpm, ConcurrentStreams: *l.streams}
}

// splitList splits a comma-separated flag, dropping empty items.
func splitList(s string) []string {
	var out []string
	for item := range strings.SplitSeq(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// orDash shows an empty value as "-" in a table.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
