package cli

import (
	"io"
	"os/user"
	"testing"
)

// Not parallel: it sets the environment.
func TestOperator_FlagThenEnvThenOSUser(t *testing.T) {
	parse := func(args ...string) *command {
		c := newCommand("tenants list", Stdio{Out: io.Discard, Err: io.Discard})
		if _, err := c.parse(args, 0); err != nil {
			t.Fatal(err)
		}
		return c
	}
	t.Setenv(EnvActor, "from-env")
	if got := parse("-actor", "from-flag").operator(); got != "from-flag" {
		t.Errorf("-actor from-flag: operator %q", got)
	}
	if got := parse().operator(); got != "from-env" {
		t.Errorf("$%s from-env: operator %q", EnvActor, got)
	}
	t.Setenv(EnvActor, "")
	u, err := user.Current()
	if err != nil {
		t.Skipf("no OS user to fall back on: %v", err)
	}
	if got := parse().operator(); got != u.Username {
		t.Errorf("neither: operator %q, want the OS user %q", got, u.Username)
	}
}
