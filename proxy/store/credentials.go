package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/loom-gateway/loom/proxy/secret"
)

// SetCredential stores (or replaces) the tenant's own credential for a
// deployment, sealed: its calls to that deployment carry it instead of the
// deployment's. The secret is never stored or returned in the clear.
func (s *Store) SetCredential(ctx context.Context, tenantID, deployment, apiKey string) error {
	switch {
	case s.box == nil:
		return fmt.Errorf("set credential of %q for %q: %w", tenantID, deployment, ErrNoSecretKey)
	case deployment == "":
		return fmt.Errorf("set credential of %q: %w: no deployment", tenantID, ErrInvalid)
	case apiKey == "":
		return fmt.Errorf("set credential of %q for %q: %w: the credential is empty", tenantID, deployment, ErrInvalid)
	}
	if err := s.checkDeployment("deployment", deployment); err != nil {
		return fmt.Errorf("set credential of %q: %w", tenantID, err)
	}
	nonce, ciphertext, err := s.box.Seal([]byte(apiKey), secret.AAD(tenantID, deployment))
	if err != nil {
		return err
	}
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		// The tenant's lock orders concurrent sets of one credential, so
		// each entry's before is what the one before it left.
		if err := lockTenant(ctx, tx, tenantID); err != nil {
			return err
		}
		var had bool
		err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM loom.tenant_credentials WHERE tenant_id = $1 AND deployment = $2)`,
			tenantID, deployment).Scan(&had)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO loom.tenant_credentials (tenant_id, deployment, ciphertext, nonce, key_id)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (tenant_id, deployment) DO UPDATE
SET ciphertext = excluded.ciphertext, nonce = excluded.nonce, key_id = excluded.key_id, updated_at = now()`,
			tenantID, deployment, ciphertext, nonce, s.box.KeyID())
		if err != nil {
			return classify(err)
		}
		c := changeOf(ctx, ActionCredentialSet, credentialTarget(tenantID, deployment))
		if err := c.states(credentialStateOf(deployment, had), credentialStateOf(deployment, true), apiKey); err != nil {
			return err
		}
		return s.record(ctx, tx, c)
	})
	if err != nil {
		return fmt.Errorf("set credential of %q for %q: %w", tenantID, deployment, err)
	}
	return nil
}

// DeleteCredential removes the tenant's credential for a deployment: its
// calls go back to carrying the deployment's own.
func (s *Store) DeleteCredential(ctx context.Context, tenantID, deployment string) error {
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, "DELETE FROM loom.tenant_credentials WHERE tenant_id = $1 AND deployment = $2", tenantID, deployment)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("credential of %q for %q: %w", tenantID, deployment, ErrNotFound)
		}
		c := changeOf(ctx, ActionCredentialDelete, credentialTarget(tenantID, deployment))
		if err := c.states(credentialStateOf(deployment, true), credentialStateOf(deployment, false)); err != nil {
			return err
		}
		return s.record(ctx, tx, c)
	})
	if errors.Is(err, ErrNotFound) {
		return err // it names the credential
	}
	if err != nil {
		return fmt.Errorf("delete credential of %q for %q: %w", tenantID, deployment, err)
	}
	return nil
}
