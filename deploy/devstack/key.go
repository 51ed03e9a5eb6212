package devstack

import (
	"crypto/rand"
	"encoding/hex"
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

// PasswordFile is the local cluster's password file under the state
// directory, in libpq's passfile format (any host, port and database, user
// postgres), so that psql reads it with ?passfile= and no password is ever
// printed.
const PasswordFile = "pgpass"

// PostgresPassword returns the local cluster's password kept in path,
// creating it (mode 0600: libpq ignores a passfile others can read) on
// first use. A file someone loosened is tightened again.
func PostgresPassword(path string) (string, error) {
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		f := strings.Split(strings.TrimSpace(string(b)), ":")
		if len(f) != 5 || f[3] != "postgres" || len(f[4]) < 16 {
			return "", fmt.Errorf("postgres password file %s: not *:*:*:postgres:PASSWORD; delete it and the cluster (.loom/pg) to start afresh", path)
		}
		if err := os.Chmod(path, 0o600); err != nil {
			return "", fmt.Errorf("postgres password file: %w", err)
		}
		return f[4], nil
	case !errors.Is(err, fs.ErrNotExist):
		return "", fmt.Errorf("read postgres password: %w", err)
	}
	var r [24]byte
	if _, err := rand.Read(r[:]); err != nil {
		return "", fmt.Errorf("generate postgres password: %w", err)
	}
	pw := hex.EncodeToString(r[:])
	if err := os.WriteFile(path, []byte("*:*:*:postgres:"+pw+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write postgres password: %w", err)
	}
	return pw, nil
}

// Files under the state directory that hold the console's secrets.
const (
	// AdminTokenFile holds the admin token: the console's admin login
	// (every page, pipeline health included). Loom's config holds only its
	// SHA-256.
	AdminTokenFile = "admin.token"
	// ConsoleKeyFile holds the key that signs console sessions, so a
	// session outlives a restart of make run.
	ConsoleKeyFile = "console.key"
	// StoreKeyFile holds the key that seals the provider credentials kept
	// in the tenant store (store.secret_key_file): kept, or the
	// credentials set in an earlier run could not be opened.
	StoreKeyFile = "store.key"
)

// AdminToken returns the admin token kept in path, creating it (mode
// 0600) on first use, so a bookmarked admin login stays valid across runs.
func AdminToken(path string) (string, error) {
	return keptSecret(path, "loom-admin-", "admin token")
}

// ConsoleKey returns the session signing key kept in path (64 hex
// characters, which console.session_key_file reads), creating it on first
// use.
func ConsoleKey(path string) (string, error) {
	return keptSecret(path, "", "console session key")
}

// StoreKey returns the tenant store's credential key kept in path (64 hex
// characters: 32 bytes), creating it on first use.
func StoreKey(path string) (string, error) {
	return keptSecret(path, "", "tenant store key")
}

// keptSecret reads prefix+64 hex characters from path, or writes a new one
// there (0600). Anything else in the file is refused rather than replaced:
// it may be someone's.
func keptSecret(path, prefix, what string) (string, error) {
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		v := strings.TrimSpace(string(b))
		raw, ok := strings.CutPrefix(v, prefix)
		if _, herr := hex.DecodeString(raw); !ok || len(raw) != 64 || herr != nil {
			return "", fmt.Errorf("%s %s: not %s followed by 64 hex digits; delete the file to get a new one", what, path, prefix)
		}
		return v, nil
	case !errors.Is(err, fs.ErrNotExist):
		return "", fmt.Errorf("read %s: %w", what, err)
	}
	var r [32]byte
	if _, err := rand.Read(r[:]); err != nil {
		return "", fmt.Errorf("make %s: %w", what, err)
	}
	v := prefix + hex.EncodeToString(r[:])
	if err := os.WriteFile(path, []byte(v+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write %s: %w", what, err)
	}
	return v, nil
}
