package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/loom-gateway/loom/proxy/tenancy"
)

// checkBudgets runs the configuration file's checks on a subject's
// budgets, each problem a FieldError ("budgets[0].limit").
func checkBudgets(bs []tenancy.Budget) error {
	var errs []error
	for _, e := range unjoin(tenancy.ValidateBudgets("budgets", bs)) {
		var fe *tenancy.FieldError
		if errors.As(e, &fe) {
			errs = append(errs, &FieldError{Field: fe.Field, Msg: fe.Msg})
		} else {
			errs = append(errs, fmt.Errorf("%w: %w", ErrInvalid, e))
		}
	}
	return errors.Join(errs...)
}

// budgetsArg is bs as the jsonb array the budgets columns hold: never
// null.
func budgetsArg(bs []tenancy.Budget) []tenancy.Budget {
	if bs == nil {
		return []tenancy.Budget{}
	}
	return bs
}

// SetTenantBudgets replaces the tenant's budgets (none: no cap), checked
// as the file's are.
func (s *Store) SetTenantBudgets(ctx context.Context, tenantID string, bs []tenancy.Budget) error {
	if err := checkBudgets(bs); err != nil {
		return fmt.Errorf("set budgets of tenant %q: %w", tenantID, err)
	}
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		before, err := lockedTenantState(ctx, tx, tenantID)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "UPDATE loom.tenants SET budgets = $2::jsonb, updated_at = now() WHERE id = $1",
			tenantID, budgetsArg(bs)); err != nil {
			return classify(err)
		}
		c := changeOf(ctx, ActionBudgetsSet, budgetsTarget(tenantTarget(tenantID)))
		if err := c.states(budgetsStateOf(before.Budgets), budgetsStateOf(bs)); err != nil {
			return err
		}
		return s.record(ctx, tx, c)
	})
	if errors.Is(err, ErrNotFound) {
		return err // it names the tenant
	}
	if err != nil {
		return fmt.Errorf("set budgets of tenant %q: %w", tenantID, err)
	}
	return nil
}

// SetKeyBudgets replaces key id's budgets (none: no cap of its own; its
// tenant's still apply).
func (s *Store) SetKeyBudgets(ctx context.Context, id string, bs []tenancy.Budget) error {
	if err := checkBudgets(bs); err != nil {
		return fmt.Errorf("set budgets of key %q: %w", id, err)
	}
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var tenantID string
		var before []tenancy.Budget
		err := tx.QueryRow(ctx, "SELECT tenant_id, budgets FROM loom.api_keys WHERE id = $1 FOR UPDATE", id).Scan(&tenantID, &before)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("key %q: %w", id, ErrNotFound)
		}
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "UPDATE loom.api_keys SET budgets = $2::jsonb WHERE id = $1", id, budgetsArg(bs)); err != nil {
			return classify(err)
		}
		if err := touch(ctx, tx, tenantID); err != nil {
			return err
		}
		c := changeOf(ctx, ActionBudgetsSet, budgetsTarget(keyTarget(tenantID, id)))
		if err := c.states(budgetsStateOf(before), budgetsStateOf(bs)); err != nil {
			return err
		}
		return s.record(ctx, tx, c)
	})
	if err != nil {
		return fmt.Errorf("set budgets of key %q: %w", id, err)
	}
	return nil
}
