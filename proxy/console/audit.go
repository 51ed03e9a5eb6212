package console

import (
	"net/http"

	"github.com/jackc/pgx/v5"

	"github.com/loom-gateway/loom/proxy/store"
)

// auditRow is one entry of the admin audit log, as the page shows it.
type auditRow struct {
	store.AuditEntry
	Tenant        string
	Before, After string
}

type auditData struct {
	Rows   []auditRow
	Tenant string // the admin's tenant filter; "" is all
	Limit  int
}

// audit shows the admin audit log, newest first: to the admin every entry
// (or one tenant's), to a tenant the entries whose target is its own, by
// row-level security on the ledger (the WHERE is a second guard, not the
// first).
func (h *handler) audit(w http.ResponseWriter, r *http.Request, s session) {
	d := auditData{Limit: store.DefaultAuditLimit}
	q := store.AuditQuery{Limit: d.Limit}
	if s.admin {
		d.Tenant = r.URL.Query().Get("tenant")
		q.Tenant = d.Tenant
	} else {
		q.Tenant = s.tenant
	}
	err := h.read(r.Context(), s, func(tx pgx.Tx) error {
		entries, err := store.ReadAudit(r.Context(), tx, q)
		for _, e := range entries {
			d.Rows = append(d.Rows, auditRow{AuditEntry: e, Tenant: store.TargetTenant(e.Target),
				Before: string(e.Before), After: string(e.After)})
		}
		return err
	})
	if err != nil {
		h.log.Error("console: audit", "error", err)
		h.fail(w, &s, http.StatusInternalServerError, "The audit log could not be read.")
		return
	}
	h.render(w, http.StatusOK, "audit", page{Title: "Audit log", Session: &s, Data: d})
}
