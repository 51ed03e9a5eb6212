package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/loom-gateway/loom/proxy/price"
)

// restrictViolation is what migration 0005's trigger raises for a change
// to a price entry that calls may have used.
const restrictViolation = "23001"

// ErrPriceInForce means a price entry is in force (or was): calls may have
// been priced by it, so it cannot be changed or deleted. A new price is a
// new entry with a later effective_from.
var ErrPriceInForce = errors.New("price entry in force: add an entry with a later effective_from instead")

// Prices returns every entry of loom.prices, by model, deployment and
// effective date. A deployment of "" is every deployment.
func (s *Store) Prices(ctx context.Context) ([]price.Entry, error) {
	out, err := readPrices(ctx, s.pool, "")
	if err != nil {
		return nil, fmt.Errorf("load prices: %w", err)
	}
	return out, nil
}

// querier is what readPrices needs: the pool or a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// readPrices reads every entry, or entry id alone when id is not "".
func readPrices(ctx context.Context, q querier, id string) ([]price.Entry, error) {
	rows, _ := q.Query(ctx, `SELECT id, model, deployment, currency, effective_from,
    input::text, coalesce(cached_input::text, ''), coalesce(cache_write::text, ''), output::text, coalesce(reasoning::text, '')
FROM loom.prices WHERE $1 = '' OR id = $1 ORDER BY model, deployment, effective_from`, id)
	var out []price.Entry
	var e price.Entry
	var in, cached, write, outp, reasoning string
	_, err := pgx.ForEachRow(rows, []any{&e.ID, &e.Model, &e.Deployment, &e.Currency, &e.EffectiveFrom,
		&in, &cached, &write, &outp, &reasoning}, func() error {
		for _, f := range []struct {
			text string
			dst  *price.Price
		}{{in, &e.Input}, {cached, &e.CachedInput}, {write, &e.CacheWrite}, {outp, &e.Output}, {reasoning, &e.Reasoning}} {
			*f.dst = 0
			if f.text == "" {
				continue
			}
			p, err := price.ParsePrice(f.text)
			if err != nil {
				return fmt.Errorf("price %q: %w", e.ID, err)
			}
			*f.dst = p
		}
		out = append(out, e)
		return nil
	})
	return out, err
}

// AddPrice stores a new entry, checked as the catalog checks it (and an id
// derived, price.EntryID, when it has none), and returns it as stored.
// An entry with the same model, deployment and effective_from, or the same
// id, is ErrExists. Whether it clashes with the configuration file's
// prices only a gateway knows: one that does keeps its catalog and says
// so (see server.SetStorePrices).
func (s *Store) AddPrice(ctx context.Context, e price.Entry) (price.Entry, error) {
	cat, err := price.New([]price.Entry{e})
	if err != nil {
		var fe *price.FieldError
		if errors.As(err, &fe) {
			return price.Entry{}, &FieldError{Field: fe.Field, Msg: fe.Msg}
		}
		return price.Entry{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	e = cat.Entries()[0]
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO loom.prices (id, model, deployment, currency, effective_from,
    input, cached_input, cache_write, output, reasoning)
VALUES ($1, $2, $3, $4, $5, $6::text::numeric, $7::text::numeric, $8::text::numeric, $9::text::numeric, $10::text::numeric)`,
			e.ID, e.Model, e.Deployment, e.Currency, e.EffectiveFrom,
			e.Input.String(), optPrice(e.CachedInput), optPrice(e.CacheWrite), e.Output.String(), optPrice(e.Reasoning))
		if err != nil {
			return classify(err)
		}
		c := changeOf(ctx, ActionPriceAdd, priceTarget(e.ID))
		if err := c.states(nil, e); err != nil {
			return err
		}
		return s.record(ctx, tx, c)
	})
	if err != nil {
		return price.Entry{}, fmt.Errorf("add price %q: %w", e.ID, err)
	}
	return e, nil
}

// optPrice is p as a numeric's text, NULL for "not set".
func optPrice(p price.Price) *string {
	if p == 0 {
		return nil
	}
	s := p.String()
	return &s
}

// DeletePrice removes an entry that is not in force yet; one that is (or
// was) is ErrPriceInForce, one that does not exist ErrNotFound.
func (s *Store) DeletePrice(ctx context.Context, id string) error {
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		before, err := readPrices(ctx, tx, id)
		if err != nil {
			return err
		}
		if len(before) == 0 {
			return fmt.Errorf("price %q: %w", id, ErrNotFound)
		}
		if _, err := tx.Exec(ctx, "DELETE FROM loom.prices WHERE id = $1", id); err != nil {
			var pe *pgconn.PgError
			if errors.As(err, &pe) && pe.Code == restrictViolation {
				return ErrPriceInForce
			}
			return err
		}
		c := changeOf(ctx, ActionPriceDelete, priceTarget(id))
		if err := c.states(before[0], nil); err != nil {
			return err
		}
		return s.record(ctx, tx, c)
	})
	if errors.Is(err, ErrNotFound) {
		return err // it names the price
	}
	if err != nil {
		return fmt.Errorf("delete price %q: %w", id, err)
	}
	return nil
}
