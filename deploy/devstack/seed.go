package devstack

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/loom-gateway/loom/proxy/schema"
	"github.com/loom-gateway/loom/proxy/secret"
	"github.com/loom-gateway/loom/proxy/store"
	"github.com/loom-gateway/loom/proxy/tenancy"
)

// SeedActor is who the store's audit log says put the demo tenant and key
// there.
var SeedActor = store.Actor{Kind: store.ActorOperator, ID: "devstack (make run)"}

// SeedStore puts the demo tenant and key into the tenant store at
// p.DatabaseURL (migrating it first), before Loom starts and loads its
// tenants from there. It runs on every start and changes nothing that is
// there already: a demo tenant the admin edited in the console keeps its
// edits, and the demo key is registered by its hash (the key stays in
// .loom/demo.key). The one exception is a demo model routed to a
// deployment this run does not have (the upstream changed, say from the
// mock to OpenAI): the demo tenant's models are then set to this run's,
// or Loom would refuse the tenant.
func (p *Plan) SeedStore(ctx context.Context) (notes []string, err error) {
	if p.seed == nil {
		return nil, nil
	}
	box, err := secret.Load(p.storeConfig)
	if err != nil {
		return nil, fmt.Errorf("tenant store key: %w", err)
	}
	pool, err := pgxpool.New(ctx, p.DatabaseURL)
	if err != nil {
		return nil, errors.New("seed the tenant store: database URL does not parse") // the error could quote the URL
	}
	// Loom's -migrate would do it too, but the store must be migrated
	// before it opens; schema.Migrate takes a lock, so both are safe.
	err = schema.Migrate(ctx, pool)
	pool.Close()
	if err != nil {
		return nil, fmt.Errorf("migrate the tenant store: %w", err)
	}
	st, err := store.Open(ctx, p.DatabaseURL, box, store.WithDeployments(p.deployments))
	if err != nil {
		return nil, err
	}
	defer st.Close()
	ctx = store.WithActor(ctx, SeedActor)
	t := p.seed
	err = st.CreateTenant(ctx, store.TenantSpec{ID: t.ID, Content: t.Content, Limits: t.Limits})
	switch {
	case errors.Is(err, store.ErrExists):
		cur, err := st.GetTenant(ctx, t.ID)
		if err != nil {
			return nil, fmt.Errorf("seed the tenant store: %w", err)
		}
		if gone := p.missingDeployments(cur.Models); gone != "" {
			if err := st.SetModels(ctx, t.ID, t.Models); err != nil {
				return nil, fmt.Errorf("seed the tenant store: %w", err)
			}
			notes = append(notes, fmt.Sprintf("the %s tenant's models were routed to %s, which this run does not have: set to this run's", t.ID, gone))
		}
	case err != nil:
		return nil, fmt.Errorf("seed the tenant store: %w", err)
	default:
		if err := st.SetModels(ctx, t.ID, t.Models); err != nil {
			return nil, fmt.Errorf("seed the tenant store: %w", err)
		}
		if len(t.Budgets) > 0 {
			if err := st.SetTenantBudgets(ctx, t.ID, t.Budgets); err != nil {
				return nil, fmt.Errorf("seed the tenant store: %w", err)
			}
		}
		for _, c := range t.Credentials {
			if err := st.SetCredential(ctx, t.ID, c.Deployment, c.APIKey); err != nil {
				return nil, fmt.Errorf("seed the tenant store: %w", err)
			}
		}
		notes = append(notes, "the "+t.ID+" tenant is in the tenant store now: change it in the console (Tenants)")
	}
	_, err = st.ImportKey(ctx, t.ID, p.Key, store.KeySpec{ID: DemoKeyID})
	if errors.Is(err, store.ErrExists) {
		// A key of an earlier demo.key holds the id (the file was deleted,
		// the database kept): this one goes by its default id.
		_, err = st.ImportKey(ctx, t.ID, p.Key, store.KeySpec{})
	}
	if errors.Is(err, store.ErrKeyElsewhere) {
		return nil, fmt.Errorf("seed the tenant store: %w: the demo key (.loom/demo.key); delete the file for a new one", err)
	}
	if err != nil {
		return nil, fmt.Errorf("seed the tenant store: %w", err)
	}
	return notes, nil
}

// missingDeployments names the first deployment of models that this run's
// configuration lacks, or "".
func (p *Plan) missingDeployments(models []tenancy.Model) string {
	for _, m := range models {
		names := []string{m.Deployment}
		for _, d := range m.Deployments {
			names = append(names, d.Deployment)
		}
		for _, n := range names {
			if n != "" && !slices.Contains(p.deployments, n) {
				return n
			}
		}
	}
	return ""
}
