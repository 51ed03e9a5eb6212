package cli

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/loom-gateway/loom/proxy/store"
)

// storedKeys runs `keys create|list|revoke` against the tenant store.
func storedKeys(ctx context.Context, args []string, std Stdio) error {
	c := newCommand("keys "+args[0], std)
	switch args[0] {
	case "create":
		return keyCreate(ctx, c, args[1:], std)
	case "list":
		tenantID := c.fs.String("tenant", "", "the tenant whose keys to list (required)")
		if _, err := c.parse(args[1:], 0); err != nil {
			return err
		}
		if *tenantID == "" {
			fmt.Fprintf(std.Err, "loom keys list: -tenant is required\n")
			return ErrUsage
		}
		return withStore(ctx, c, func(ctx context.Context, st *store.Store) error { return keyList(ctx, st, *tenantID, std) })
	}
	pos, err := c.parse(args[1:], 1)
	if err != nil {
		return err
	}
	return withStore(ctx, c, func(ctx context.Context, st *store.Store) error {
		if err := st.RevokeKey(ctx, pos[0]); err != nil {
			return err
		}
		fmt.Fprintf(std.Out, "key %s revoked\n", pos[0])
		return nil
	})
}

func keyCreate(ctx context.Context, c *command, args []string, std Stdio) error {
	tenantID := c.fs.String("tenant", "", "the tenant the key belongs to (required)")
	id := c.fs.String("id", "", "a name for the key, unique across tenants (default: tenant-<8 hex of its hash>)")
	models := c.fs.String("models", "", "comma-separated models the key is restricted to (default: all of the tenant's)")
	expires := c.fs.Duration("expires", 0, "how long the key works, e.g. 720h (default: until revoked)")
	limits := addLimitFlags(c.fs)
	if _, err := c.parse(args, 0); err != nil {
		return err
	}
	if *tenantID == "" || *expires < 0 {
		fmt.Fprintf(std.Err, "loom keys create: -tenant is required and -expires must not be negative\n")
		return ErrUsage
	}
	spec := store.KeySpec{ID: *id, Models: splitList(*models), Limits: limits.limits()}
	if *expires > 0 {
		spec.ExpiresAt = time.Now().Add(*expires)
	}
	return withStore(ctx, c, func(ctx context.Context, st *store.Store) error {
		key, err := st.CreateKey(ctx, *tenantID, spec)
		if err != nil {
			return err
		}
		if spec.ID == "" {
			spec.ID = store.DefaultKeyID(*tenantID, key)
		}
		fmt.Fprintf(std.Out, "key:    %s\nid:     %s\ntenant: %s\n\nThe key is shown once: give it to the client and keep no other copy.\n",
			key, spec.ID, *tenantID)
		return nil
	})
}

func keyList(ctx context.Context, st *store.Store, tenantID string, std Stdio) error {
	keys, err := st.ListKeys(ctx, tenantID)
	if err != nil {
		return err
	}
	day := func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.UTC().Format(time.RFC3339)
	}
	w := tabwriter.NewWriter(std.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tPREFIX\tCREATED\tEXPIRES\tREVOKED\tMODELS\tRPM\tTPM\tSTREAMS\tBUDGETS")
	for _, k := range keys {
		fmt.Fprintf(w, "%s\t%s…\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%s\n", k.ID, k.Prefix, day(k.CreatedAt), day(k.ExpiresAt),
			day(k.RevokedAt), orDash(strings.Join(k.Models, ",")),
			k.Limits.RequestsPerMinute, k.Limits.TokensPerMinute, k.Limits.ConcurrentStreams, budgetsArg(k.Budgets))
	}
	return w.Flush()
}
