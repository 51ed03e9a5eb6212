package console

import (
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/loom-gateway/loom/proxy/tenancy"
)

// Budgets and per-key limits in the browser. A budget caps spend per UTC
// day or month, its limit an exact decimal amount in the price catalog's
// currency; the admin API checks it (tenancy.ValidateBudgets) and refuses
// in its own words, which the form shows. Only the administrator sets
// budgets: the admin API has no budget route for a tenant's session, and
// the console's routes are admin-only besides.

// budgetRows is how many rows a budgets form has: one budget a period (day,
// month) is all the API allows.
const budgetRows = 2

// maxBudgetField bounds what a budget field may hold; the API's own checks
// are far tighter, this only keeps a refusal's echo short.
const maxBudgetField = 40

// apiBudget is a budget as the admin API speaks it: tenancy.Budget, whose
// JSON it is, with the console's words for it.
type apiBudget tenancy.Budget

// Text is the budget in words: "day (UTC): 25.00, alert at 0.8 (default)".
func (b apiBudget) Text() string {
	alert := "alert at " + strconv.FormatFloat(b.AlertAt, 'f', -1, 64)
	if b.AlertAt == 0 {
		alert = "alert at " + defaultAlertAt + " (default)"
	}
	return b.Period + " (UTC): " + b.Limit + ", " + alert
}

// Text is the limits in words, the zero ones left out; "" for none.
func (l apiLimits) Text() string {
	var parts []string
	for _, p := range []struct {
		n    int
		unit string
	}{{l.RequestsPerMinute, "requests/min"}, {l.TokensPerMinute, "tokens/min"}, {l.ConcurrentStreams, "concurrent streams"}} {
		if p.n > 0 {
			parts = append(parts, strconv.Itoa(p.n)+" "+p.unit)
		}
	}
	return strings.Join(parts, ", ")
}

// defaultAlertAt is the threshold of a budget that sets none, as shown.
var defaultAlertAt = strconv.FormatFloat(tenancy.DefaultAlertAt, 'f', -1, 64)

// budgetRow is one row of a budgets form, as typed.
type budgetRow struct {
	Period, Limit, AlertAt string
}

// DefaultAlertAt is the threshold a blank alert field means.
func (budgetRow) DefaultAlertAt() string { return defaultAlertAt }

// rowsOf is bs as a budgets form's rows: one a budget, then empty rows
// offering the periods not yet used. A threshold left at the default shows
// blank (the field's placeholder says the default).
func rowsOf(bs []apiBudget) []budgetRow {
	rows := make([]budgetRow, 0, max(budgetRows, len(bs)))
	used := map[string]bool{}
	for _, b := range bs {
		r := budgetRow{Period: b.Period, Limit: b.Limit}
		if b.AlertAt != 0 {
			r.AlertAt = strconv.FormatFloat(b.AlertAt, 'f', -1, 64)
		}
		rows = append(rows, r)
		used[b.Period] = true
	}
	for _, p := range []string{"day", "month"} {
		if len(rows) < budgetRows && !used[p] {
			rows = append(rows, budgetRow{Period: p})
		}
	}
	return rows
}

// postedRows are the budgets form's rows as posted, to show them again
// with the refusal.
func postedRows(r *http.Request) []budgetRow {
	rows := make([]budgetRow, budgetRows)
	for i := range rows {
		n := strconv.Itoa(i)
		rows[i] = budgetRow{Period: r.PostFormValue("period" + n), Limit: r.PostFormValue("limit" + n), AlertAt: r.PostFormValue("alert" + n)}
	}
	return rows
}

// budgetsRequest reads a budgets form: a row whose limit and threshold are
// both blank is no budget, so a form of blank rows removes them all. The
// period and limit go to the API as typed, for it to judge; only a
// threshold that is no number at all (JSON cannot carry it) is refused here.
func budgetsRequest(r *http.Request) ([]apiBudget, error) {
	bs := []apiBudget{} // never null: none is []
	for i, row := range postedRows(r) {
		period, limit, alert := strings.TrimSpace(row.Period), strings.TrimSpace(row.Limit), strings.TrimSpace(row.AlertAt)
		if limit == "" && alert == "" {
			continue
		}
		if len(period) > maxBudgetField || len(limit) > maxBudgetField || len(alert) > maxBudgetField {
			return nil, &apiError{Status: http.StatusBadRequest, Message: fmt.Sprintf("Row %d: a field is longer than %d characters.", i+1, maxBudgetField)}
		}
		b := apiBudget{Period: period, Limit: limit}
		if alert != "" {
			f, err := strconv.ParseFloat(alert, 64)
			if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
				return nil, &apiError{Status: http.StatusBadRequest,
					Message: fmt.Sprintf("Row %d: alert at %q is not a number: give a fraction of the limit such as 0.8.", i+1, alert)}
			}
			b.AlertAt = f
		}
		bs = append(bs, b)
	}
	return bs, nil
}

type budgetsBody struct {
	Budgets []apiBudget `json:"budgets"`
}

// setTenantBudgets replaces the tenant's budgets with the form's rows.
func (h *handler) setTenantBudgets(w http.ResponseWriter, r *http.Request, s session) {
	bs, err := budgetsRequest(r)
	if err == nil {
		err = h.callAdmin(r.Context(), s, "PUT", "/admin/tenants/"+url.PathEscape(r.PathValue("id"))+"/budgets", budgetsBody{bs}, nil)
	}
	h.after(w, r, s, "budgets", err)
}

// keyBudgetForm is a key's budgets form on its tenant's page.
type keyBudgetForm struct {
	KeyID string
	Rows  []budgetRow
	// Error is the form's refusal; the form is open when there is one.
	Error string
}

// setKeyBudgets replaces a key's own budgets (its tenant's still apply);
// the administrator's form on the tenant's page, which the hidden tenant
// field names.
func (h *handler) setKeyBudgets(w http.ResponseWriter, r *http.Request, s session) {
	id, tenant := r.PathValue("id"), r.PostFormValue("tenant")
	bs, err := budgetsRequest(r)
	if err == nil {
		err = h.callAdmin(r.Context(), s, "PUT", "/admin/keys/"+url.PathEscape(id)+"/budgets", budgetsBody{bs}, nil)
	}
	switch {
	case err == nil && tenant == "":
		http.Redirect(w, r, "/console/tenants", http.StatusSeeOther)
	case err == nil:
		http.Redirect(w, r, "/console/tenants/"+url.PathEscape(tenant)+"#key-budgets-"+url.PathEscape(id), http.StatusSeeOther)
	case tenant == "":
		h.fail(w, &s, statusOf(err), h.words(err, "set key budgets"))
	default:
		h.tenantPage(w, r, s, statusOf(err), tenant, map[string]string{"key-budgets": h.words(err, "set key budgets"), "key-budgets-id": id}, nil)
	}
}

// keyBudgetForms are the forms of the tenant's live keys, with the
// refusal (and what was typed) in the form it answers; a refusal for a key
// not on the page shows above the key list.
func keyBudgetForms(r *http.Request, keys []apiKey, errs map[string]string) ([]keyBudgetForm, string) {
	var forms []keyBudgetForm
	msg, failed := errs["key-budgets"], errs["key-budgets-id"]
	for _, k := range keys {
		if k.State() != "active" {
			continue
		}
		f := keyBudgetForm{KeyID: k.ID, Rows: rowsOf(k.Budgets)}
		if msg != "" && k.ID == failed {
			f.Rows, f.Error, msg = postedRows(r), errs["key-budgets"], ""
		}
		forms = append(forms, f)
	}
	return forms, msg
}
