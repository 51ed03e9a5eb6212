package secret_test

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/loom-gateway/loom/proxy/config"
	"github.com/loom-gateway/loom/proxy/secret"
)

func newBox(t *testing.T) (*secret.Box, []byte) {
	t.Helper()
	key := make([]byte, secret.KeySize)
	rand.Read(key)
	b, err := secret.New(key)
	if err != nil {
		t.Fatal(err)
	}
	return b, key
}

func TestSealOpen_RoundTrip(t *testing.T) {
	t.Parallel()
	b, _ := newBox(t)
	aad := secret.AAD("acme", "openai")
	nonce, ct, err := b.Seal([]byte("sk-upstream-1"), aad)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(ct, []byte("sk-upstream-1")) {
		t.Fatal("ciphertext holds the plaintext")
	}
	got, err := b.Open(nonce, ct, aad)
	if err != nil || string(got) != "sk-upstream-1" {
		t.Fatalf("Open = %q, %v", got, err)
	}
	nonce2, _, _ := b.Seal([]byte("sk-upstream-1"), aad)
	if bytes.Equal(nonce, nonce2) {
		t.Error("two seals used the same nonce")
	}
}

func TestOpen_TamperedOrMoved_Fails(t *testing.T) {
	t.Parallel()
	b, _ := newBox(t)
	other, _ := newBox(t)
	aad := secret.AAD("acme", "openai")
	nonce, ct, err := b.Seal([]byte("sk-upstream-1"), aad)
	if err != nil {
		t.Fatal(err)
	}
	flip := func(p []byte, i int) []byte {
		p = bytes.Clone(p)
		p[i] ^= 1
		return p
	}
	tests := []struct {
		name          string
		box           *secret.Box
		nonce, ct, ad []byte
	}{
		{"ciphertext flipped", b, nonce, flip(ct, 0), aad},
		{"tag flipped", b, nonce, flip(ct, len(ct)-1), aad},
		{"nonce flipped", b, flip(nonce, 3), ct, aad},
		{"short nonce", b, nonce[:4], ct, aad},
		{"another tenant", b, nonce, ct, secret.AAD("globex", "openai")},
		{"another deployment", b, nonce, ct, secret.AAD("acme", "azure")},
		// Without the separator "ab"+"c" and "a"+"bc" would be the same.
		{"boundary moved", b, nonce, ct, secret.AAD("acmeo", "penai")},
		{"another key", other, nonce, ct, aad},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.box.Open(tt.nonce, tt.ct, tt.ad)
			if !errors.Is(err, secret.ErrOpen) || got != nil {
				t.Errorf("Open = %q, %v; want ErrOpen", got, err)
			}
		})
	}
}

func TestKeyID_NamesTheKeyOnly(t *testing.T) {
	t.Parallel()
	b, key := newBox(t)
	b2, _ := secret.New(key)
	other, _ := newBox(t)
	if len(b.KeyID()) != 8 || b.KeyID() != b2.KeyID() || b.KeyID() == other.KeyID() {
		t.Errorf("key ids %q %q %q: want 8 hex, equal for one key, distinct across keys", b.KeyID(), b2.KeyID(), other.KeyID())
	}
	if bytes.Contains([]byte(hex.EncodeToString(key)), []byte(b.KeyID())) {
		t.Error("the key id is part of the key")
	}
}

func TestLoad_HexBase64EnvAndFile(t *testing.T) {
	key := make([]byte, secret.KeySize)
	rand.Read(key)
	want, _ := secret.New(key)
	file := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(file, []byte(base64.StdEncoding.EncodeToString(key)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("LOOM_TEST_SECRET_HEX", hex.EncodeToString(key))
	t.Setenv("LOOM_TEST_SECRET_B64", base64.RawURLEncoding.EncodeToString(key))
	t.Setenv("LOOM_TEST_SECRET_BAD", "not a key")
	t.Setenv("LOOM_TEST_SECRET_EMPTY", "")
	tests := []struct {
		name    string
		cfg     config.Store
		wantErr error
	}{
		{"hex env", config.Store{SecretKeyEnv: "LOOM_TEST_SECRET_HEX"}, nil},
		{"base64url env", config.Store{SecretKeyEnv: "LOOM_TEST_SECRET_B64"}, nil},
		{"base64 file", config.Store{SecretKeyFile: file}, nil},
		{"empty env, file", config.Store{SecretKeyEnv: "LOOM_TEST_SECRET_EMPTY", SecretKeyFile: file}, nil},
		{"nothing configured", config.Store{}, secret.ErrNoKey},
		{"empty env", config.Store{SecretKeyEnv: "LOOM_TEST_SECRET_EMPTY"}, secret.ErrNoKey},
		{"not a key", config.Store{SecretKeyEnv: "LOOM_TEST_SECRET_BAD"}, secret.ErrBadKey},
		{"missing file", config.Store{SecretKeyFile: file + ".missing"}, os.ErrNotExist},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := secret.Load(tt.cfg)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Load = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil || b.KeyID() != want.KeyID() {
				t.Fatalf("Load = %v, %v; want key %s", b, err, want.KeyID())
			}
		})
	}
}

func TestParseKey_WrongLength_Refused(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"", hex.EncodeToString(make([]byte, 16)), base64.StdEncoding.EncodeToString(make([]byte, 31))} {
		if _, err := secret.ParseKey(s); !errors.Is(err, secret.ErrBadKey) {
			t.Errorf("ParseKey(%q) = %v, want ErrBadKey", s, err)
		}
	}
}
