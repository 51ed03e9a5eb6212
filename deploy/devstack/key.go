package devstack

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/loom-gateway/loom/proxy/tenant"
)

// DemoKey returns the demo API key kept in path, creating it (mode 0600) on
// first use, so the key a developer exported stays valid across runs.
func DemoKey(path string) (string, error) {
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		key := strings.TrimSpace(string(b))
		if !strings.HasPrefix(key, tenant.KeyPrefix) || len(key) <= len(tenant.KeyPrefix) {
			return "", fmt.Errorf("demo key %s: not a Loom key (%s...); delete the file to get a new one", path, tenant.KeyPrefix)
		}
		return key, nil
	case !errors.Is(err, fs.ErrNotExist):
		return "", fmt.Errorf("read demo key: %w", err)
	}
	key, _, err := tenant.NewKey()
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(path, []byte(key+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write demo key: %w", err)
	}
	return key, nil
}
