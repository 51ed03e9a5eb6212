package cli_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/loom-gateway/loom/proxy/cli"
)

// runCheck runs `loom config check` with args and returns the process's exit
// code (as main computes it) and what it wrote.
func runCheck(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	err := cli.Run(context.Background(), append([]string{"config", "check"}, args...), cli.Stdio{In: strings.NewReader(""), Out: &out, Err: &errb})
	code = cli.ExitCode(err, &errb)
	return code, out.String(), errb.String()
}

func writeConfig(t *testing.T, yaml string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "loom.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

const validConfig = `
deployments:
  - {name: openai, provider: openai, base_url: "https://api.openai.com/v1", api_key: sk-x}
tenants:
  - id: acme
    keys: [{id: acme-1, sha256: 0f343b0931126a20f133d67c2b018a3b51f1d5c0e8e2c8b3ad6e4a7e0c6e1f7a}]
    models: [{name: gpt-4o-mini, deployment: openai}]
`

// A valid file: exit 0 and one line on stdout that says what it holds.
func TestConfigCheck_ValidFile_Exit0AndSummary(t *testing.T) {
	path := writeConfig(t, validConfig)
	code, stdout, stderr := runCheck(t, "-config", path)
	if code != 0 || stdout != path+": ok (1 deployments, 1 tenants)\n" || stderr != "" {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}

// An invalid file: exit 1, nothing on stdout, and every problem at once on
// stderr, each naming its field.
func TestConfigCheck_InvalidFile_Exit1NamingEveryField(t *testing.T) {
	path := writeConfig(t, `
max_body_bytes: 10
timeouts: {connect: -1s}
deployments:
  - {name: openai, provider: nope, base_url: "https://api.openai.com/v1", api_key: sk-x}
tenants:
  - id: acme
    keys: [{id: acme-1, sha256: short}]
    models: [{name: gpt-4o-mini, deployment: missing}]
`)
	code, stdout, stderr := runCheck(t, "-config", path)
	if code != 1 || stdout != "" || !strings.HasPrefix(stderr, "loom: ") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	for _, field := range []string{"max_body_bytes", "timeouts.connect", "deployments[0].provider",
		"tenants[0].keys[0].sha256", "tenants[0].models[0].deployment"} {
		if !strings.Contains(stderr, field) {
			t.Errorf("stderr does not name %s:\n%s", field, stderr)
		}
	}
}

// Files that cannot be decoded: a missing file, an unknown field (a typo
// must not be ignored), YAML that is not YAML. Each is exit 1 with a reason.
func TestConfigCheck_UnreadableFile_Exit1WithReason(t *testing.T) {
	for _, c := range []struct{ name, path, want string }{
		{"missing", filepath.Join(t.TempDir(), "absent.yaml"), "no such file"},
		{"unknown field", writeConfig(t, validConfig+"timeout: {connect: 1s}\n"), "timeout"},
		{"not yaml", writeConfig(t, "listen: [\n"), "parse config"},
	} {
		code, stdout, stderr := runCheck(t, "-config", c.path)
		if code != 1 || stdout != "" || !strings.Contains(stderr, c.want) {
			t.Errorf("%s: exit %d, stdout %q, stderr %q, want 1 naming %q", c.name, code, stdout, stderr, c.want)
		}
	}
}

// Wrong usage is exit 2 with the usage on stderr: an unknown flag, a
// missing subcommand.
func TestConfigCheck_WrongUsage_Exit2(t *testing.T) {
	if code, stdout, stderr := runCheck(t, "-conf", "x"); code != 2 || stdout != "" || !strings.Contains(stderr, "-config") {
		t.Errorf("unknown flag: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	var out, errb bytes.Buffer
	err := cli.Run(context.Background(), []string{"config"}, cli.Stdio{Out: &out, Err: &errb})
	if code := cli.ExitCode(err, &errb); code != 2 || !strings.Contains(errb.String(), "loom config check -config FILE") {
		t.Errorf("`loom config`: exit %d, stderr %q", code, errb.String())
	}
}
