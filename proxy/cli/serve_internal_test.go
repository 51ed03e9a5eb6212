package cli

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/loom-gateway/loom/proxy/config"
	"github.com/loom-gateway/loom/proxy/secret"
)

// The admin API and the console listen with net/http: each must bound a
// slow client's headers, body, reading of the answer and idling, and the
// size of its headers, like the gateway.
func TestAdminAndConsoleListeners_HaveEveryTimeoutAndAHeaderCap(t *testing.T) {
	hs := httpServer(config.DefaultTimeouts, http.NotFoundHandler())
	if hs.ReadHeaderTimeout <= 0 || hs.ReadTimeout <= 0 || hs.WriteTimeout <= 0 || hs.IdleTimeout <= 0 ||
		hs.MaxHeaderBytes <= 0 || hs.MaxHeaderBytes > 64<<10 {
		t.Errorf("server = read header %v, read %v, write %v, idle %v, max header bytes %d; want all set",
			hs.ReadHeaderTimeout, hs.ReadTimeout, hs.WriteTimeout, hs.IdleTimeout, hs.MaxHeaderBytes)
	}
	if hs.ReadTimeout != config.DefaultTimeouts.ClientRead || hs.WriteTimeout != config.DefaultTimeouts.ClientWrite ||
		hs.IdleTimeout != config.DefaultTimeouts.ClientIdle {
		t.Error("the listeners do not follow timeouts.client_*")
	}
	// Unset (zero) timeouts still get bounds.
	if z := httpServer(config.Timeouts{}, http.NotFoundHandler()); z.ReadHeaderTimeout <= 0 || z.ReadTimeout <= 0 ||
		z.WriteTimeout <= 0 || z.IdleTimeout <= 0 {
		t.Errorf("zero timeouts gave read header %v, read %v, write %v, idle %v", z.ReadHeaderTimeout, z.ReadTimeout, z.WriteTimeout, z.IdleTimeout)
	}
}

// Console sessions must survive a restart and work on every replica: the
// signing key is the configured one, else derived from the store's
// credential key (the same on every replica that shares it, and not the
// credential key itself), and only without either made at start.
func TestConsoleSessionKey_ConfiguredElseFromTheStoreKeyElseMadeAtStart(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(hex.EncodeToString(bytes.Repeat([]byte{b}, 32))+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	sessionFile, storeFile, otherStore := write("session.key", 1), write("store.key", 2), write("other.key", 3)
	key := func(c config.Config) ([]byte, string) {
		t.Helper()
		k, from, err := consoleSessionKey(&c)
		if err != nil {
			t.Fatal(err)
		}
		if len(k) != 32 {
			t.Fatalf("%s: %d bytes", from, len(k))
		}
		return k, from
	}

	var c config.Config
	c.Console.SessionKeyFile, c.Store.SecretKeyFile = sessionFile, storeFile
	if k, from := key(c); from != sessionKeyConfigured || !bytes.Equal(k, bytes.Repeat([]byte{1}, 32)) {
		t.Fatalf("configured: %x from %s", k, from)
	}
	t.Setenv("TEST_LOOM_SESSION_KEY", base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{4}, 32)))
	c.Console.SessionKeyEnv = "TEST_LOOM_SESSION_KEY"
	if k, _ := key(c); !bytes.Equal(k, bytes.Repeat([]byte{4}, 32)) {
		t.Fatalf("the variable wins over the file: got %x", k)
	}

	c.Console = config.Console{}
	a, from := key(c)
	b, _ := key(c)
	if from != sessionKeyFromStore || !bytes.Equal(a, b) || bytes.Equal(a, bytes.Repeat([]byte{2}, 32)) {
		t.Fatalf("from the store key: %x then %x (%s); want the same both times and not the store key itself", a, b, from)
	}
	c.Store.SecretKeyFile = otherStore
	if o, _ := key(c); bytes.Equal(o, a) {
		t.Fatal("another store key gave the same session key")
	}

	c.Store = config.Store{}
	r1, from := key(c)
	r2, _ := key(c)
	if from != sessionKeyMadeAtStart || bytes.Equal(r1, r2) {
		t.Fatalf("without keys: %s, %x then %x; want a new random key each start", from, r1, r2)
	}

	c.Console.SessionKeyFile = filepath.Join(dir, "missing.key")
	if _, _, err := consoleSessionKey(&c); err == nil {
		t.Fatal("a configured session key file that does not exist was accepted")
	}
	bad := filepath.Join(dir, "short.key")
	if err := os.WriteFile(bad, []byte("abcd"), 0o600); err != nil {
		t.Fatal(err)
	}
	c.Console.SessionKeyFile = bad
	if _, _, err := consoleSessionKey(&c); !errors.Is(err, secret.ErrBadKey) {
		t.Fatalf("a short key: %v, want ErrBadKey", err)
	}
}
