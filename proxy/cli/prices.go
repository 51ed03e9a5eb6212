package cli

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/loom-gateway/loom/proxy/config"
	"github.com/loom-gateway/loom/proxy/price"
	"github.com/loom-gateway/loom/proxy/store"
)

// prices runs `loom prices list|add|delete` against the store's price
// entries (the configuration file's prices are the file's).
func prices(ctx context.Context, args []string, std Stdio) error {
	if len(args) == 0 {
		fmt.Fprint(std.Err, usage)
		return ErrUsage
	}
	c := newCommand("prices "+args[0], std)
	switch args[0] {
	case "list":
		if _, err := c.parse(args[1:], 0); err != nil {
			return err
		}
		return withStore(ctx, c, func(ctx context.Context, st *store.Store) error { return priceList(ctx, st, std) })
	case "add":
		return priceAdd(ctx, c, args, std)
	case "delete":
		pos, err := c.parse(args[1:], 1)
		if err != nil {
			return err
		}
		return withStore(ctx, c, func(ctx context.Context, st *store.Store) error {
			if err := st.DeletePrice(ctx, pos[0]); err != nil {
				return err
			}
			fmt.Fprintf(std.Out, "price %s deleted (it was not in force yet)\n", pos[0])
			return nil
		})
	}
	fmt.Fprintf(std.Err, "loom prices: unknown command %q\n\n%s", args[0], usage)
	return ErrUsage
}

func priceAdd(ctx context.Context, c *command, args []string, std Stdio) error {
	id := c.fs.String("id", "", "the entry's id (default MODEL[@DEPLOYMENT]:EFFECTIVE_FROM)")
	deployment := c.fs.String("deployment", "", "the deployment the price is for (default: every deployment)")
	currency := c.fs.String("currency", price.DefaultCurrency, "ISO 4217 currency code")
	from := c.fs.String("from", "", "effective from: RFC 3339 or YYYY-MM-DD (midnight UTC); required")
	var ps [5]string
	names := [5]string{"input", "cached-input", "cache-write", "output", "reasoning"}
	for i, n := range names {
		c.fs.StringVar(&ps[i], n, "", "price per million tokens of "+n+" tokens, a plain decimal like 2.50")
	}
	pos, err := c.parse(args[1:], 1)
	if err != nil {
		return err
	}
	e := price.Entry{ID: *id, Model: pos[0], Deployment: *deployment, Currency: *currency}
	if *from == "" {
		return fmt.Errorf("loom prices add: -from is required")
	}
	if e.EffectiveFrom, err = config.ParseEffective(*from); err != nil {
		return fmt.Errorf("loom prices add: -from: %w", err)
	}
	dst := [5]*price.Price{&e.Input, &e.CachedInput, &e.CacheWrite, &e.Output, &e.Reasoning}
	for i, n := range names {
		if ps[i] == "" {
			if n == "input" || n == "output" {
				return fmt.Errorf("loom prices add: -%s is required (per million tokens; 0 for free)", n)
			}
			continue
		}
		if *dst[i], err = price.ParsePrice(ps[i]); err != nil {
			return fmt.Errorf("loom prices add: -%s: %w", n, err)
		}
	}
	return withStore(ctx, c, func(ctx context.Context, st *store.Store) error {
		got, err := st.AddPrice(ctx, e)
		if err != nil {
			return err
		}
		fmt.Fprintf(std.Out, "price %s added: %s from %s\n", got.ID, got.Model, got.EffectiveFrom.UTC().Format(time.RFC3339))
		return nil
	})
}

func priceList(ctx context.Context, st *store.Store, std Stdio) error {
	entries, err := st.Prices(ctx)
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(std.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tMODEL\tDEPLOYMENT\tEFFECTIVE_FROM\tCURRENCY\tINPUT\tCACHED_INPUT\tCACHE_WRITE\tOUTPUT\tREASONING")
	opt := func(p price.Price) string {
		if p == 0 {
			return "-"
		}
		return p.String()
	}
	for _, e := range entries {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.ID, e.Model, orDash(e.Deployment),
			e.EffectiveFrom.UTC().Format(time.RFC3339), e.Currency, e.Input, opt(e.CachedInput), opt(e.CacheWrite), e.Output, opt(e.Reasoning))
	}
	return w.Flush()
}
