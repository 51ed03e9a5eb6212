package store

import (
	"context"
	"encoding/hex"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/loom-gateway/loom/proxy/secret"
	"github.com/loom-gateway/loom/proxy/tenancy"
)

// Load returns every tenant, in the tenancy types the gateway serves, from
// one consistent snapshot (a repeatable-read transaction), by id:
//
//   - keys carry their SHA-256 and prefix; revoked keys come with Revoked
//     set and expired ones with their past ExpiresAt, for the proxy to
//     refuse (and say why). A revoked or expired key's model restriction is
//     cut to the models its tenant still has, which no longer matters.
//   - Content.MaxBytes is tenancy.DefaultContentMaxBytes where none is set.
//   - credentials are opened into Credential.APIKey: they live in memory
//     only. One that does not open fails the whole Load, since serving its
//     tenant without it would bill the deployment's own credential.
//
// Models and credentials name deployments that only the configuration
// file knows: the caller validates the result with them (tenancy.Validate).
func (s *Store) Load(ctx context.Context) ([]tenancy.Tenant, error) {
	var out []tenancy.Tenant
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		var err error
		out, err = s.load(ctx, tx)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("load tenants: %w", err)
	}
	return out, nil
}

func (s *Store) load(ctx context.Context, tx pgx.Tx) ([]tenancy.Tenant, error) {
	var out []tenancy.Tenant
	var t tenancy.Tenant
	rows, _ := tx.Query(ctx, `SELECT id, content_capture, content_max_bytes, rpm, tpm, concurrent_streams, budgets
FROM loom.tenants ORDER BY id`)
	_, err := pgx.ForEachRow(rows, []any{&t.ID, &t.Content.Capture, &t.Content.MaxBytes,
		&t.Limits.RequestsPerMinute, &t.Limits.TokensPerMinute, &t.Limits.ConcurrentStreams, &t.Budgets}, func() error {
		if t.Content.MaxBytes == 0 {
			t.Content.MaxBytes = tenancy.DefaultContentMaxBytes
		}
		if len(t.Budgets) == 0 {
			t.Budgets = nil
		}
		out = append(out, t)
		t.Budgets = nil // the next row must not decode into this one's slice
		return nil
	})
	if err != nil {
		return nil, err
	}
	byID := make(map[string]*tenancy.Tenant, len(out))
	for i := range out {
		byID[out[i].ID] = &out[i]
	}
	err = readModels(ctx, tx, "", func(tenant string, m tenancy.Model) {
		byID[tenant].Models = append(byID[tenant].Models, m)
	})
	if err != nil {
		return nil, err
	}
	if err := loadKeys(ctx, tx, byID); err != nil {
		return nil, err
	}
	return out, s.loadCredentials(ctx, tx, byID)
}

func loadKeys(ctx context.Context, tx pgx.Tx, byID map[string]*tenancy.Tenant) error {
	var tenantID string
	var k tenancy.Key
	var sum []byte
	var expires *time.Time
	var dead bool
	rows, _ := tx.Query(ctx, `SELECT tenant_id, id, sha256, prefix, expires_at, revoked_at IS NOT NULL,
    revoked_at IS NOT NULL OR COALESCE(expires_at <= now(), false), models, rpm, tpm, concurrent_streams, budgets
FROM loom.api_keys ORDER BY tenant_id, id`)
	_, err := pgx.ForEachRow(rows, []any{&tenantID, &k.ID, &sum, &k.Prefix, &expires, &k.Revoked, &dead, &k.Models,
		&k.Limits.RequestsPerMinute, &k.Limits.TokensPerMinute, &k.Limits.ConcurrentStreams, &k.Budgets}, func() error {
		if len(k.Budgets) == 0 {
			k.Budgets = nil
		}
		t := byID[tenantID]
		k.SHA256, k.ExpiresAt = hex.EncodeToString(sum), orZero(expires)
		if dead {
			k.Models = slices.DeleteFunc(k.Models, func(name string) bool {
				return !slices.ContainsFunc(t.Models, func(m tenancy.Model) bool { return m.Name == name })
			})
		}
		t.Keys = append(t.Keys, k)
		k.Models, k.Budgets = nil, nil // the next row must not scan into this one's slice
		return nil
	})
	return err
}

func (s *Store) loadCredentials(ctx context.Context, tx pgx.Tx, byID map[string]*tenancy.Tenant) error {
	var tenantID, deployment, keyID string
	var ciphertext, nonce []byte
	rows, _ := tx.Query(ctx, `SELECT tenant_id, deployment, ciphertext, nonce, key_id
FROM loom.tenant_credentials ORDER BY tenant_id, deployment`)
	_, err := pgx.ForEachRow(rows, []any{&tenantID, &deployment, &ciphertext, &nonce, &keyID}, func() error {
		switch {
		case s.box == nil:
			return fmt.Errorf("credential of %q for %q: %w", tenantID, deployment, ErrNoSecretKey)
		case keyID != s.box.KeyID():
			return fmt.Errorf("credential of %q for %q: %w: it was sealed with key %s, and the key configured is %s",
				tenantID, deployment, secret.ErrOpen, keyID, s.box.KeyID())
		}
		plain, err := s.box.Open(nonce, ciphertext, secret.AAD(tenantID, deployment))
		if err != nil {
			return fmt.Errorf("credential of %q for %q: %w", tenantID, deployment, err)
		}
		t := byID[tenantID]
		t.Credentials = append(t.Credentials, tenancy.Credential{Deployment: deployment, APIKey: string(plain)})
		return nil
	})
	return err
}
