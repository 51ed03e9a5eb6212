package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"go.yaml.in/yaml/v3"

	"github.com/loom-gateway/loom/proxy/store"
	"github.com/loom-gateway/loom/proxy/tenancy"
)

// maxCredential bounds what `tenants credential` reads from stdin.
const maxCredential = 64 << 10

func tenants(ctx context.Context, args []string, std Stdio) error {
	if len(args) == 0 {
		fmt.Fprint(std.Err, usage)
		return ErrUsage
	}
	c := newCommand("tenants "+args[0], std)
	switch args[0] {
	case "create", "update":
		return tenantSet(ctx, c, args, std)
	case "list":
		if _, err := c.parse(args[1:], 0); err != nil {
			return err
		}
		return withStore(ctx, c, func(ctx context.Context, st *store.Store) error { return tenantList(ctx, st, std) })
	case "delete":
		pos, err := c.parse(args[1:], 1)
		if err != nil {
			return err
		}
		return withStore(ctx, c, func(ctx context.Context, st *store.Store) error {
			if err := st.DeleteTenant(ctx, pos[0]); err != nil {
				return err
			}
			fmt.Fprintf(std.Out, "tenant %s deleted, with its models, keys and credentials\n", pos[0])
			return nil
		})
	case "models":
		return tenantModels(ctx, c, args, std)
	case "credential":
		return tenantCredential(ctx, c, args, std)
	case "budgets":
		return tenantBudgets(ctx, c, args, std)
	}
	fmt.Fprintf(std.Err, "loom tenants: unknown command %q\n\n%s", args[0], usage)
	return ErrUsage
}

// withStore opens the store for f and closes it after. f's context names
// the operator, with a request id for the command, for the audit log.
func withStore(ctx context.Context, c *command, f func(context.Context, *store.Store) error) error {
	st, err := c.open(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	return f(store.WithActor(ctx, store.Actor{Kind: store.ActorOperator, ID: c.operator(), RequestID: store.NewRequestID()}), st)
}

func tenantSet(ctx context.Context, c *command, args []string, std Stdio) error {
	limits := addLimitFlags(c.fs)
	capture := c.fs.Bool("capture", false, "capture prompts and completions on the tenant's spans")
	maxBytes := c.fs.Int("max-bytes", 0, "cap on captured content, input and output each (0: the default)")
	pos, err := c.parse(args[1:], 1)
	if err != nil {
		return err
	}
	return withStore(ctx, c, func(ctx context.Context, st *store.Store) error {
		if args[0] == "create" {
			spec := store.TenantSpec{ID: pos[0], Limits: limits.limits(),
				Content: tenancy.ContentPolicy{Capture: *capture, MaxBytes: *maxBytes}}
			if err := st.CreateTenant(ctx, spec); err != nil {
				return err
			}
			fmt.Fprintf(std.Out, "tenant %s created\n", pos[0])
			return nil
		}
		pick := func(name string, v *int) *int {
			if c.set(name) {
				return v
			}
			return nil
		}
		p := store.TenantPatch{RequestsPerMinute: pick("rpm", limits.rpm), TokensPerMinute: pick("tpm", limits.tpm),
			ConcurrentStreams: pick("streams", limits.streams), MaxBytes: pick("max-bytes", maxBytes)}
		if c.set("capture") {
			p.Capture = capture
		}
		if _, err := st.UpdateTenant(ctx, pos[0], p); err != nil {
			return err
		}
		fmt.Fprintf(std.Out, "tenant %s updated\n", pos[0])
		return nil
	})
}

func tenantList(ctx context.Context, st *store.Store, std Stdio) error {
	ts, err := st.ListTenants(ctx)
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(std.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tCAPTURE\tMAX_BYTES\tRPM\tTPM\tSTREAMS\tBUDGETS\tMODELS\tCREDENTIALS")
	for _, t := range ts {
		models := make([]string, len(t.Models))
		for i, m := range t.Models {
			models[i] = modelArg(m)
		}
		fmt.Fprintf(w, "%s\t%t\t%d\t%d\t%d\t%d\t%s\t%s\t%s\n", t.ID, t.Content.Capture, t.Content.MaxBytes,
			t.Limits.RequestsPerMinute, t.Limits.TokensPerMinute, t.Limits.ConcurrentStreams, budgetsArg(t.Budgets),
			orDash(strings.Join(models, " ")), orDash(strings.Join(t.Credentials, ",")))
	}
	return w.Flush()
}

// modelArg writes a model the way `tenants models` reads it, for the short
// form. The long form lists its deployments the same way, each with its
// weight (*W) and priority (@P) where set, then its fallbacks (>a,b); its
// routing override shows only in the admin API.
func modelArg(m tenancy.Model) string {
	if len(m.Deployments) == 0 {
		return target(m.Name+"="+m.Deployment, m.UpstreamModel)
	}
	s := m.Name + "="
	for i, d := range m.Deployments {
		if i > 0 {
			s += ","
		}
		s = target(s+d.Deployment, d.UpstreamModel)
		if d.Weight != 0 {
			s += fmt.Sprintf("*%d", d.Weight)
		}
		if d.Priority != 0 {
			s += fmt.Sprintf("@%d", d.Priority)
		}
	}
	if len(m.Fallbacks) > 0 {
		s += ">" + strings.Join(m.Fallbacks, ",")
	}
	return s
}

func target(s, upstream string) string {
	if upstream != "" {
		s += ":" + upstream
	}
	return s
}

// maxModelsFile bounds what `tenants models -file` reads.
const maxModelsFile = 1 << 20

// readModels reads a YAML list of models in the configuration file's form
// (tenants[].models: name, deployment or deployments, fallbacks, routing),
// refusing a field it does not know.
func readModels(path string) ([]tenancy.Model, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var models []tenancy.Model
	dec := yaml.NewDecoder(io.LimitReader(f, maxModelsFile))
	dec.KnownFields(true)
	if err := dec.Decode(&models); err != nil {
		return nil, fmt.Errorf("models file %s: %w", path, err)
	}
	return models, nil
}

func tenantModels(ctx context.Context, c *command, args []string, std Stdio) error {
	none := c.fs.Bool("none", false, "remove every model (the tenant can then call none)")
	file := c.fs.String("file", "", "read the models from this YAML list, in the config file's form (several deployments, fallbacks, routing)")
	pos, err := c.parse(args[1:], -1)
	if err != nil {
		return err
	}
	if len(pos) == 0 || (len(pos) == 1) != (*none || *file != "") || (*none && *file != "") {
		fmt.Fprintf(std.Err, "loom tenants models: give ID and NAME=DEPLOYMENT[:UPSTREAM_MODEL]..., ID -file MODELS.yaml, or ID -none\n\n%s", usage)
		return ErrUsage
	}
	var models []tenancy.Model
	if *file != "" {
		if models, err = readModels(*file); err != nil {
			return err
		}
	}
	for _, arg := range pos[1:] {
		name, target, ok := strings.Cut(arg, "=")
		dep, upstream, _ := strings.Cut(target, ":")
		if !ok || name == "" || dep == "" {
			fmt.Fprintf(std.Err, "loom tenants models: %q is not NAME=DEPLOYMENT[:UPSTREAM_MODEL]\n", arg)
			return ErrUsage
		}
		models = append(models, tenancy.Model{Name: name, Deployment: dep, UpstreamModel: upstream})
	}
	return withStore(ctx, c, func(ctx context.Context, st *store.Store) error {
		if err := st.SetModels(ctx, pos[0], models); err != nil {
			return err
		}
		fmt.Fprintf(std.Out, "tenant %s: %d model(s)\n", pos[0], len(models))
		return nil
	})
}

// tenantCredential reads the credential from stdin, never from the command
// line, where ps and shell history would keep it.
func tenantCredential(ctx context.Context, c *command, args []string, std Stdio) error {
	del := c.fs.Bool("delete", false, "remove the tenant's credential: its calls use the deployment's again")
	pos, err := c.parse(args[1:], 2)
	if err != nil {
		return err
	}
	tenantID, deployment := pos[0], pos[1]
	if *del {
		return withStore(ctx, c, func(ctx context.Context, st *store.Store) error {
			if err := st.DeleteCredential(ctx, tenantID, deployment); err != nil {
				return err
			}
			fmt.Fprintf(std.Out, "tenant %s: credential for %s removed\n", tenantID, deployment)
			return nil
		})
	}
	if f, ok := std.In.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			fmt.Fprintf(std.Err, "credential of %s for %s (it will show as you type; end with Enter, then Ctrl-D): ", tenantID, deployment)
		}
	}
	b, err := io.ReadAll(io.LimitReader(std.In, maxCredential+1))
	if err != nil {
		return fmt.Errorf("read credential: %w", err)
	}
	secret := strings.TrimSpace(string(b))
	switch {
	case len(b) > maxCredential:
		return fmt.Errorf("credential: longer than %d bytes", maxCredential)
	case secret == "":
		return fmt.Errorf("credential: nothing on standard input (pipe it in: loom tenants credential %s %s < file)", tenantID, deployment)
	}
	return withStore(ctx, c, func(ctx context.Context, st *store.Store) error {
		if err := st.SetCredential(ctx, tenantID, deployment, secret); err != nil {
			return err
		}
		fmt.Fprintf(std.Out, "tenant %s: credential for %s stored, encrypted\n", tenantID, deployment)
		return nil
	})
}

// tenantBudgets replaces the spend caps of a tenant, or with -key of one of
// its keys: PERIOD=LIMIT[@ALERT_AT] each, or -none.
func tenantBudgets(ctx context.Context, c *command, args []string, std Stdio) error {
	none := c.fs.Bool("none", false, "remove every budget")
	keyID := c.fs.String("key", "", "set the budgets of this key of the tenant instead of the tenant's")
	pos, err := c.parse(args[1:], -1)
	if err != nil {
		return err
	}
	if len(pos) == 0 || (len(pos) == 1) != *none {
		fmt.Fprintf(std.Err, "loom tenants budgets: give ID and PERIOD=LIMIT[@ALERT_AT]..., or ID -none\n\n%s", usage)
		return ErrUsage
	}
	var bs []tenancy.Budget
	for _, arg := range pos[1:] {
		b, err := parseBudgetArg(arg)
		if err != nil {
			fmt.Fprintf(std.Err, "loom tenants budgets: %v\n", err)
			return ErrUsage
		}
		bs = append(bs, b)
	}
	return withStore(ctx, c, func(ctx context.Context, st *store.Store) error {
		if *keyID == "" {
			if err := st.SetTenantBudgets(ctx, pos[0], bs); err != nil {
				return err
			}
			fmt.Fprintf(std.Out, "tenant %s: budgets %s\n", pos[0], budgetsArg(bs))
			return nil
		}
		keys, err := st.ListKeys(ctx, pos[0])
		if err != nil {
			return err
		}
		if !slices.ContainsFunc(keys, func(k store.Key) bool { return k.ID == *keyID }) {
			return fmt.Errorf("key %q of tenant %q: %w", *keyID, pos[0], store.ErrNotFound)
		}
		if err := st.SetKeyBudgets(ctx, *keyID, bs); err != nil {
			return err
		}
		fmt.Fprintf(std.Out, "key %s: budgets %s\n", *keyID, budgetsArg(bs))
		return nil
	})
}

// parseBudgetArg reads PERIOD=LIMIT[@ALERT_AT] ("day=25.00@0.9"); the
// store checks the values as the configuration file's are checked.
func parseBudgetArg(arg string) (tenancy.Budget, error) {
	period, rest, ok := strings.Cut(arg, "=")
	limit, at, hasAt := strings.Cut(rest, "@")
	if !ok || period == "" || limit == "" {
		return tenancy.Budget{}, fmt.Errorf("%q is not PERIOD=LIMIT[@ALERT_AT] (day=25.00, month=500@0.9)", arg)
	}
	b := tenancy.Budget{Period: period, Limit: limit}
	if hasAt {
		f, err := strconv.ParseFloat(at, 64)
		if err != nil {
			return tenancy.Budget{}, fmt.Errorf("%q: alert_at %q is not a fraction such as 0.8", arg, at)
		}
		b.AlertAt = f
	}
	return b, nil
}

// budgetsArg writes budgets the way `tenants budgets` reads them; "-" for
// none.
func budgetsArg(bs []tenancy.Budget) string {
	if len(bs) == 0 {
		return "-"
	}
	parts := make([]string, len(bs))
	for i, b := range bs {
		parts[i] = b.Period + "=" + b.Limit
		if b.AlertAt != 0 {
			parts[i] += "@" + strconv.FormatFloat(b.AlertAt, 'f', -1, 64)
		}
	}
	return strings.Join(parts, " ")
}
