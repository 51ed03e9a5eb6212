package server

import (
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"

	"github.com/loom-gateway/loom/proxy/config"
	"github.com/loom-gateway/loom/proxy/tenancy"
	"github.com/loom-gateway/loom/proxy/tenant"
	"github.com/loom-gateway/loom/proxy/upstream"
)

// live is what a call is served with: the configuration it reads per call
// (timeouts, default output tokens), the deployments, and the tenants'
// directory built on them. It is immutable once stored; Reload and
// SetTenants swap in a new one whole, so a call sees one version or the
// next, never a mix. A call takes it once (acquire) and keeps it to its
// end: a stream in flight across a reload finishes on the deployment and
// timeouts it started with.
type live struct {
	cfg         *config.Config
	deployments map[string]*upstream.Deployment
	// built is what each deployment was built from, to reuse it (its
	// connection pool and pool slots) when a reload leaves it unchanged.
	built map[string]deploymentSpec
	dir   *tenant.Directory
	// models are the public model names of dir's tenants: the values the
	// metrics' model label may take (see callMetrics).
	models map[string]struct{}
}

// deploymentSpec is everything upstream.New and LimitResponse read.
type deploymentSpec struct {
	dep        config.Deployment
	credential string
	timeouts   config.Timeouts
	maxResp    int
}

func specOf(cfg *config.Config, dc config.Deployment) deploymentSpec {
	return deploymentSpec{dep: dc, credential: dc.Credential(), timeouts: cfg.Timeouts, maxResp: cfg.MaxResponseBytes}
}

// buildDeployments builds cfg's deployments, reusing those of prev whose
// specification did not change. On error, the ones it built are closed.
func (s *Server) buildDeployments(cfg *config.Config, prev *live) (map[string]*upstream.Deployment, map[string]deploymentSpec, error) {
	deps := make(map[string]*upstream.Deployment, len(cfg.Deployments))
	built := make(map[string]deploymentSpec, len(cfg.Deployments))
	for _, dc := range cfg.Deployments {
		spec := specOf(cfg, dc)
		if prev != nil {
			if old, ok := prev.deployments[dc.Name]; ok && reflect.DeepEqual(prev.built[dc.Name], spec) {
				deps[dc.Name], built[dc.Name] = old, spec
				continue
			}
		}
		d, err := upstream.New(dc, cfg.Timeouts, s.opts.Dial)
		if err != nil {
			for name, d := range deps {
				if prev == nil || prev.deployments[name] != d {
					d.Close()
				}
			}
			return nil, nil, err
		}
		d.LimitResponse(cfg.MaxResponseBytes)
		deps[dc.Name], built[dc.Name] = d, spec
	}
	return deps, built, nil
}

// Reload serves cfg, a configuration config.Load accepted, to every call
// that starts from now on: its deployments (a changed one rebuilt, an
// unchanged one kept with its connections), the timeouts read per call,
// default_output_tokens and, when the file is the tenants' source
// (fileTenants), its tenants, keys, models, limits and content policies.
// With the store as the source, its tenants are rebuilt on the new
// deployments, and a file that drops a deployment a served tenant still
// routes to is refused. Calls in flight finish on what they started with.
//
// What the server fixed at New (listen address, body and connection
// limits, client timeouts) does not change here: see NeedsRestart. On an
// error nothing changes.
func (s *Server) Reload(cfg *config.Config, fileTenants bool) error {
	s.tenantsMu.Lock()
	defer s.tenantsMu.Unlock()
	// The prices first: a file whose prices clash with the store's is
	// refused before anything is built. They are swapped in with the
	// rest, below.
	s.prices.mu.Lock()
	defer s.prices.mu.Unlock()
	commitPrices, err := s.prices.prepareLocked(cfg)
	if err != nil {
		return fmt.Errorf("reload: %w", err)
	}
	prev := s.live.Load()
	deps, built, err := s.buildDeployments(cfg, prev)
	if err != nil {
		return fmt.Errorf("reload: %w", err)
	}
	next := &live{cfg: cfg, deployments: deps, built: built}
	var quarantined error
	if fileTenants {
		tenants := cfg.ResolveTenants()
		dir, err := tenant.Build(tenants, deps)
		if err != nil {
			retire(deps, prev.deployments)
			return fmt.Errorf("reload: tenants: %w", err)
		}
		next.dir, next.models = dir, modelSet(tenants)
		s.goodTenants = make(map[string]tenancy.Tenant, len(tenants))
		for _, t := range tenants {
			s.goodTenants[t.ID] = t
		}
		s.lastTenants = tenants
		s.live.Store(next)
	} else {
		if err := s.stillServed(deps); err != nil {
			retire(deps, prev.deployments)
			return fmt.Errorf("reload: %w", err)
		}
		quarantined = s.setTenantsLocked(s.lastTenants, next)
		if s.live.Load() != next { // the snapshot could not be built: nothing changed
			retire(deps, prev.deployments)
			return fmt.Errorf("reload: %w", quarantined)
		}
	}
	retire(prev.deployments, deps)
	commitPrices()
	if quarantined != nil {
		return fmt.Errorf("reload: %w", quarantined)
	}
	return nil
}

// stillServed checks the tenants served now (the store's) against deps: a
// reload must not take a tenant out of service because the file dropped a
// deployment it still routes to. The error names each tenant and field.
func (s *Server) stillServed(deps map[string]*upstream.Deployment) error {
	has := func(name string) bool { _, ok := deps[name]; return ok }
	ids := slices.Sorted(maps.Keys(s.goodTenants))
	var errs []error
	for _, id := range ids {
		if err := tenancy.ValidateTenant(s.goodTenants[id], has); err != nil {
			errs = append(errs, fmt.Errorf("tenant %s (from the store): %w", id, err))
		}
	}
	return errors.Join(errs...)
}

// retire closes the idle connections of the deployments in old that cur no
// longer serves. Calls in flight on them keep their connections; those go
// back to a pool nobody draws from and expire after idle_conn.
func retire(old, cur map[string]*upstream.Deployment) {
	for name, d := range old {
		if cur[name] != d {
			d.Close()
		}
	}
}

// NeedsRestart names the fields that differ between a and b which Reload
// cannot apply: the server fixed them at New, or they belong to what the
// command started beside it (listeners, tracing, store, Redis).
func NeedsRestart(a, b *config.Config) []string {
	var out []string
	for _, f := range []struct {
		name string
		a, b any
	}{
		{"listen", a.Listen, b.Listen},
		{"max_body_bytes", a.MaxBodyBytes, b.MaxBodyBytes},
		{"connections", a.Connections, b.Connections},
		{"timeouts.client_read", a.Timeouts.ClientRead, b.Timeouts.ClientRead},
		{"timeouts.client_write", a.Timeouts.ClientWrite, b.Timeouts.ClientWrite},
		{"timeouts.client_idle", a.Timeouts.ClientIdle, b.Timeouts.ClientIdle},
		{"timeouts.shutdown", a.Timeouts.Shutdown, b.Timeouts.Shutdown},
		{"tracing", a.Tracing, b.Tracing},
		{"store", a.Store, b.Store},
		{"redis", a.Redis, b.Redis},
		{"admin", a.Admin, b.Admin},
		{"console", a.Console, b.Console},
		{"ops", a.Ops, b.Ops},
	} {
		if !reflect.DeepEqual(f.a, f.b) {
			out = append(out, f.name)
		}
	}
	return out
}
