// Package secret seals the provider credentials that tenants keep in the
// store: AES-256-GCM under one 32-byte key that lives outside the database
// (an environment variable or a file), so a copy of the database alone
// reveals no credential. It must never log, print or return a key or a
// plaintext in an error.
package secret

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/loom-gateway/loom/proxy/config"
)

// KeySize is the length of the key: AES-256.
const KeySize = 32

var (
	// ErrNoKey means no key is configured (or its variable is empty). A
	// store that holds no credentials works without one.
	ErrNoKey = errors.New("no credential encryption key")
	// ErrBadKey means the configured key is not 32 bytes in hex or base64.
	ErrBadKey = errors.New("credential encryption key must be 32 bytes, in hex (64 characters) or base64")
	// ErrOpen means a ciphertext did not open: it was altered, or it was
	// sealed for another tenant or deployment, or under another key.
	ErrOpen = errors.New("credential does not decrypt")
)

// Box seals and opens with one key. It is safe for concurrent use.
type Box struct {
	aead  cipher.AEAD
	keyID string
}

// Load reads the key that cfg names: cfg.SecretKeyEnv's variable if set,
// else cfg.SecretKeyFile. It returns ErrNoKey when neither names a key.
func Load(cfg config.Store) (*Box, error) {
	key, err := ReadKey(cfg.SecretKeyEnv, cfg.SecretKeyFile)
	if err != nil {
		return nil, err
	}
	return New(key)
}

// ReadKey reads a 32-byte key (hex or base64) from the variable env names
// when it is set, else from file. It returns ErrNoKey when neither names
// one, ErrBadKey when it is not such a key.
func ReadKey(env, file string) ([]byte, error) {
	var text string
	switch {
	case env != "" && os.Getenv(env) != "":
		text = os.Getenv(env)
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("read key: %w", err)
		}
		text = string(b)
	case env != "":
		return nil, fmt.Errorf("%w: environment variable %s is empty or unset", ErrNoKey, env)
	default:
		return nil, ErrNoKey
	}
	return ParseKey(text)
}

// ParseKey decodes a key written as hex or base64 (standard or URL-safe,
// padded or not), ignoring surrounding white space.
func ParseKey(text string) ([]byte, error) {
	text = strings.TrimSpace(text)
	if len(text) == 2*KeySize {
		if k, err := hex.DecodeString(text); err == nil {
			return k, nil
		}
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if k, err := enc.DecodeString(text); err == nil && len(k) == KeySize {
			return k, nil
		}
	}
	return nil, ErrBadKey
}

// New makes a Box from a raw 32-byte key.
func New(key []byte) (*Box, error) {
	if len(key) != KeySize {
		return nil, ErrBadKey
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("credential encryption key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("credential encryption key: %w", err)
	}
	sum := sha256.Sum256(key)
	return &Box{aead: aead, keyID: hex.EncodeToString(sum[:4])}, nil
}

// KeyID names the key without revealing it: the first 8 hex digits of its
// SHA-256. It is stored beside each ciphertext, so that a proxy given
// another key can say which one the data needs.
func (b *Box) KeyID() string { return b.keyID }

// AAD is the associated data that binds a credential to its place: a
// ciphertext sealed for one tenant and deployment opens for no other.
func AAD(tenant, deployment string) []byte {
	return []byte(tenant + "\x00" + deployment)
}

// Seal encrypts plaintext under a fresh random nonce, authenticating aad.
func (b *Box) Seal(plaintext, aad []byte) (nonce, ciphertext []byte, err error) {
	nonce = make([]byte, b.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, nil, fmt.Errorf("credential nonce: %w", err)
	}
	return nonce, b.aead.Seal(nil, nonce, plaintext, aad), nil
}

// Open decrypts what Seal returned for the same aad. Any change to nonce,
// ciphertext or aad, or another key, gives ErrOpen.
func (b *Box) Open(nonce, ciphertext, aad []byte) ([]byte, error) {
	if len(nonce) != b.aead.NonceSize() {
		return nil, fmt.Errorf("%w: nonce is %d bytes, want %d", ErrOpen, len(nonce), b.aead.NonceSize())
	}
	plain, err := b.aead.Open(nil, nonce, ciphertext, aad)
	if err != nil {
		return nil, ErrOpen
	}
	return plain, nil
}
