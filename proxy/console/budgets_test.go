package console_test

import (
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"github.com/loom-gateway/loom/proxy/store"
	"github.com/loom-gateway/loom/proxy/tenancy"
)

// budgetForm is a budgets form's fields: rows of period, limit, alert at.
func budgetForm(csrf string, rows ...[3]string) url.Values {
	v := url.Values{"csrf": {csrf}}
	for i, r := range rows {
		n := string(rune('0' + i))
		v.Set("period"+n, r[0])
		v.Set("limit"+n, r[1])
		v.Set("alert"+n, r[2])
	}
	return v
}

func (f *adminFixture) tenantBudgets(t *testing.T, id string) []tenancy.Budget {
	t.Helper()
	tn, err := f.st.GetTenant(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	return tn.Budgets
}

func (f *adminFixture) key(t *testing.T, tenant, id string) store.Key {
	t.Helper()
	keys, err := f.st.ListKeys(t.Context(), tenant)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if k.ID == id {
			return k
		}
	}
	t.Fatalf("no key %s of %s", id, tenant)
	return store.Key{}
}

// The administrator sets a tenant's budgets on its page: they are stored
// as typed (the limit an exact decimal string), shown with the default
// threshold named, in the audit log as the admin token's; a form of blank
// rows removes them all.
func TestTenantPage_SetAndClearBudgets_ShownStoredAudited(t *testing.T) {
	t.Parallel()
	f := newAdminFixture(t, true)
	adm := f.login(t, adminToken)
	tok := adm.csrf("/console/tenants/acme")

	code, _, resp := adm.do("POST", "/console/tenants/acme/budgets", budgetForm(tok, [3]string{"day", "25.00", ""}, [3]string{"month", "500.5", "0.9"}))
	if code != http.StatusSeeOther || resp.Header.Get("Location") != "/console/tenants/acme#budgets" {
		t.Fatalf("set budgets: %d %s", code, resp.Header.Get("Location"))
	}
	want := []tenancy.Budget{{Period: "day", Limit: "25.00"}, {Period: "month", Limit: "500.5", AlertAt: 0.9}}
	if got := f.tenantBudgets(t, "acme"); !reflect.DeepEqual(got, want) {
		t.Errorf("stored budgets: %+v, want %+v", got, want)
	}
	_, page, _ := adm.do("GET", "/console/tenants/acme", nil)
	for _, s := range []string{`<li data-period="day">day (UTC): 25.00, alert at 0.8 (default)</li>`,
		`<li data-period="month">month (UTC): 500.5, alert at 0.9</li>`,
		`name="limit0" value="25.00"`, `name="alert0" value=""`, `name="limit1" value="500.5"`, `name="alert1" value="0.9"`,
		`<option value="month" selected>`} {
		if !strings.Contains(page, s) {
			t.Errorf("the tenant page lacks %q:\n%s", s, page)
		}
	}
	if log := f.actors(t); !strings.Contains(log, "budgets.set acme/budgets admin_token") {
		t.Errorf("the audit log lacks the budget change as the admin's:\n%s", log)
	}

	if code, body, _ := adm.do("POST", "/console/tenants/acme/budgets", budgetForm(tok, [3]string{"day", "", ""}, [3]string{"month", " ", ""})); code != http.StatusSeeOther {
		t.Fatalf("clear budgets: %d\n%s", code, body)
	}
	if got := f.tenantBudgets(t, "acme"); len(got) != 0 {
		t.Errorf("after clearing, stored budgets: %+v, want none", got)
	}
	if _, page, _ = adm.do("GET", "/console/tenants/acme", nil); !strings.Contains(page, "No budgets: spend is not capped.") {
		t.Errorf("after clearing, the page does not say there are no budgets:\n%s", page)
	}
	if n := strings.Count(f.actors(t), "budgets.set acme/budgets admin_token"); n != 2 {
		t.Errorf("%d budget changes in the audit log, want 2", n)
	}
}

// Bad budgets are refused in the admin API's words, in the form, with a
// 400 and what was typed; nothing changes. A threshold that is no number,
// which JSON cannot carry, is refused by the console in its own words.
func TestTenantPage_BadBudgets_400InTheAPIsWordsNothingChanged(t *testing.T) {
	t.Parallel()
	f := newAdminFixture(t, true)
	adm := f.login(t, adminToken)
	tok := adm.csrf("/console/tenants/acme")
	if code, _, _ := adm.do("POST", "/console/tenants/acme/budgets", budgetForm(tok, [3]string{"day", "10", ""})); code != http.StatusSeeOther {
		t.Fatalf("set a day budget: %d", code)
	}
	before := f.tenantBudgets(t, "acme")
	entries := strings.Count(f.actors(t), "\n")
	for _, tc := range []struct {
		name  string
		rows  [][3]string
		words string
		typed string
	}{
		{"limit abc", [][3]string{{"day", "abc", ""}}, `budgets[0].limit: &#34;abc&#34; must be a decimal amount`, `value="abc"`},
		{"negative limit", [][3]string{{"day", "-5", ""}}, `budgets[0].limit: &#34;-5&#34; must be a decimal amount`, `value="-5"`},
		{"alert at 2", [][3]string{{"day", "10", "2"}}, "budgets[0].alert_at: must be a fraction of the limit between 0 and 1, got 2", `name="alert0" value="2"`},
		{"negative alert", [][3]string{{"day", "10", "-0.5"}}, "between 0 and 1, got -0.5", `value="-0.5"`},
		{"period week", [][3]string{{"week", "10", ""}}, `budgets[0].period: must be &#34;day&#34; or &#34;month&#34;, got &#34;week&#34;`, `name="limit0" value="10"`},
		{"two day budgets", [][3]string{{"day", "10", ""}, {"day", "20", ""}}, "budgets[1].period: a second day budget (one per period)", `value="20"`},
		{"alert abc", [][3]string{{"day", "10", "abc"}}, "Row 1: alert at &#34;abc&#34; is not a number", `name="alert0" value="abc"`},
		{"alert NaN", [][3]string{{"month", "10", "NaN"}}, "Row 1: alert at &#34;NaN&#34; is not a number", `value="NaN"`},
	} {
		code, body, _ := adm.do("POST", "/console/tenants/acme/budgets", budgetForm(tok, tc.rows...))
		if code != http.StatusBadRequest || !strings.Contains(body, `<p class="error" data-error="budgets">`) ||
			!strings.Contains(body, tc.words) || !strings.Contains(body, tc.typed) {
			t.Errorf("%s: %d, want 400 in the form saying %q, showing %q:\n%s", tc.name, code, tc.words, tc.typed, body)
		}
	}
	if got := f.tenantBudgets(t, "acme"); !reflect.DeepEqual(got, before) {
		t.Errorf("refused forms changed the budgets: %+v, want %+v", got, before)
	}
	if n := strings.Count(f.actors(t), "\n"); n != entries {
		t.Errorf("refused forms added %d audit entries", n-entries)
	}
}

// A key made with limits on the tenant's page has them in the store and
// shows them; the administrator sets and clears its own budgets, shown on
// its row and in the audit log as the admin token's. Bad budgets and
// limits are refused in words in their forms.
func TestTenantPage_KeyWithLimitsAndBudgets_ShownStoredAudited(t *testing.T) {
	t.Parallel()
	f := newAdminFixture(t, true)
	adm := f.login(t, adminToken)
	tok := adm.csrf("/console/tenants/acme")

	code, body, _ := adm.do("POST", "/console/tenants/acme/keys", url.Values{"csrf": {tok}, "key_id": {"acme-neg"}, "rpm": {"-1"}})
	if code != http.StatusBadRequest || !strings.Contains(body, `data-error="keys"`) || !strings.Contains(body, "Requests per minute") ||
		newKeyValue.MatchString(body) {
		t.Errorf("a key with a negative limit: %d, want 400 naming the field and no key:\n%s", code, body)
	}
	code, body, _ = adm.do("POST", "/console/tenants/acme/keys", url.Values{"csrf": {tok}, "key_id": {"acme-lim"},
		"rpm": {"60"}, "tpm": {"9000"}, "streams": {"2"}})
	if code != http.StatusCreated || newKeyValue.FindStringSubmatch(body) == nil {
		t.Fatalf("create a key with limits: %d\n%s", code, body)
	}
	if k := f.key(t, "acme", "acme-lim"); k.Limits != (tenancy.Limits{RequestsPerMinute: 60, TokensPerMinute: 9000, ConcurrentStreams: 2}) {
		t.Errorf("stored limits: %+v", k.Limits)
	}
	if k := f.key(t, "acme", "acme-k"); k.Limits != (tenancy.Limits{}) {
		t.Errorf("a key made without limits has some: %+v", k.Limits)
	}
	_, page, _ := adm.do("GET", "/console/tenants/acme", nil)
	for _, s := range []string{`<td class="key-limits">60 requests/min, 9000 tokens/min, 2 concurrent streams</td>`,
		`<td class="key-limits"><span class="muted">the tenant's only</span></td>`,
		`<details class="key-budgets" id="key-budgets-acme-lim">`, `action="/console/keys/acme-lim/budgets"`} {
		if !strings.Contains(page, s) {
			t.Errorf("the tenant page lacks %q:\n%s", s, page)
		}
	}

	form := budgetForm(tok, [3]string{"day", "1.25", "0.5"}, [3]string{"month", "", ""})
	form.Set("tenant", "acme")
	code, _, resp := adm.do("POST", "/console/keys/acme-lim/budgets", form)
	if code != http.StatusSeeOther || resp.Header.Get("Location") != "/console/tenants/acme#key-budgets-acme-lim" {
		t.Fatalf("set the key's budgets: %d %s", code, resp.Header.Get("Location"))
	}
	if k := f.key(t, "acme", "acme-lim"); !reflect.DeepEqual(k.Budgets, []tenancy.Budget{{Period: "day", Limit: "1.25", AlertAt: 0.5}}) {
		t.Errorf("stored key budgets: %+v", k.Budgets)
	}
	if _, page, _ = adm.do("GET", "/console/tenants/acme", nil); !strings.Contains(page, `<td class="key-budgets">day (UTC): 1.25, alert at 0.5</td>`) {
		t.Errorf("the key's row does not show its budget:\n%s", page)
	}

	bad := budgetForm(tok, [3]string{"day", "abc", ""})
	bad.Set("tenant", "acme")
	code, body, _ = adm.do("POST", "/console/keys/acme-lim/budgets", bad)
	if code != http.StatusBadRequest || !strings.Contains(body, `<details class="key-budgets" id="key-budgets-acme-lim" open>`) ||
		!strings.Contains(body, `<p class="error" data-error="key-budgets">`) || !strings.Contains(body, "must be a decimal amount") ||
		!strings.Contains(body, `value="abc"`) {
		t.Errorf("a key budget of abc: %d, want 400 in that key's open form with what was typed:\n%s", code, body)
	}
	if k := f.key(t, "acme", "acme-lim"); len(k.Budgets) != 1 || k.Budgets[0].Limit != "1.25" {
		t.Errorf("a refused form changed the key's budgets: %+v", k.Budgets)
	}

	nokey := budgetForm(tok, [3]string{"day", "1", ""})
	nokey.Set("tenant", "acme")
	if code, body, _ = adm.do("POST", "/console/keys/no-such-key/budgets", nokey); code != http.StatusNotFound ||
		!strings.Contains(body, `<p class="error" data-error="keys">Not found`) {
		t.Errorf("budgets of a key that does not exist: %d, want 404 said above the key list:\n%s", code, body)
	}

	clear := budgetForm(tok, [3]string{"day", "", ""}, [3]string{"month", "", ""})
	clear.Set("tenant", "acme")
	if code, _, _ = adm.do("POST", "/console/keys/acme-lim/budgets", clear); code != http.StatusSeeOther {
		t.Errorf("clear the key's budgets: %d", code)
	}
	if k := f.key(t, "acme", "acme-lim"); len(k.Budgets) != 0 {
		t.Errorf("after clearing, key budgets: %+v", k.Budgets)
	}
	log := f.actors(t)
	for _, s := range []string{"key.create acme/keys/acme-lim admin_token", "budgets.set acme/keys/acme-lim/budgets admin_token"} {
		if !strings.Contains(log, s) {
			t.Errorf("the audit log lacks %q:\n%s", s, log)
		}
	}
	if n := strings.Count(log, "budgets.set acme/keys/acme-lim/budgets admin_token"); n != 2 {
		t.Errorf("%d key budget changes in the audit log, want 2", n)
	}
}

// The budget forms are refused 403 without the session's token, and a
// tenant's session gets 404 from them even with its own token; nothing
// changes. A tenant still makes its own keys with limits, through the
// route the admin API allows it, but is offered no budget form.
func TestBudgetForms_NoTokenIs403_TenantSessionIs404_TenantKeyLimitsAllowed(t *testing.T) {
	t.Parallel()
	f := newAdminFixture(t, true)
	adm := f.login(t, adminToken)
	acme := f.login(t, f.AcmeKey)
	acmeTok := acme.csrf("/console/keys")
	set := [3]string{"day", "5", ""}
	for _, tc := range []struct {
		who  string
		c    *client
		path string
		form url.Values
		want int
	}{
		{"admin without a token", adm, "/console/tenants/acme/budgets", budgetForm("", set), http.StatusForbidden},
		{"admin without a token", adm, "/console/keys/acme-k/budgets", budgetForm("", set), http.StatusForbidden},
		{"admin with acme's token", adm, "/console/tenants/acme/budgets", budgetForm(acmeTok, set), http.StatusForbidden},
		{"acme", acme, "/console/tenants/acme/budgets", budgetForm(acmeTok, set), http.StatusNotFound},
		{"acme", acme, "/console/keys/acme-k/budgets", budgetForm(acmeTok, set), http.StatusNotFound},
		{"acme", acme, "/console/keys/globex-k/budgets", budgetForm(acmeTok, set), http.StatusNotFound},
	} {
		if code, body, _ := tc.c.do("POST", tc.path, tc.form); code != tc.want {
			t.Errorf("%s POST %s: %d, want %d\n%s", tc.who, tc.path, code, tc.want, body)
		}
	}
	if b := f.tenantBudgets(t, "acme"); len(b) != 0 {
		t.Errorf("acme's budgets: %+v, want none", b)
	}
	for _, k := range []store.Key{f.key(t, "acme", "acme-k"), f.key(t, "globex", "globex-k")} {
		if len(k.Budgets) != 0 {
			t.Errorf("key %s budgets: %+v, want none", k.ID, k.Budgets)
		}
	}
	if log := f.actors(t); strings.Contains(log, "budgets.set") {
		t.Errorf("refused forms changed budgets:\n%s", log)
	}

	_, page, _ := acme.do("GET", "/console/keys", nil)
	if strings.Contains(page, "/budgets") || !strings.Contains(page, `name="rpm"`) {
		t.Errorf("acme's keys page: want limits on the create form and no budget form:\n%s", page)
	}
	code, body, _ := acme.do("POST", "/console/keys", url.Values{"csrf": {acmeTok}, "key_id": {"acme-ci"}, "tpm": {"1000"}})
	if code != http.StatusCreated || !strings.Contains(body, `<td class="key-limits">1000 tokens/min</td>`) {
		t.Fatalf("acme makes a key with a token limit: %d\n%s", code, body)
	}
	if k := f.key(t, "acme", "acme-ci"); k.Limits != (tenancy.Limits{TokensPerMinute: 1000}) {
		t.Errorf("acme-ci's stored limits: %+v", k.Limits)
	}
	if log := f.actors(t); !strings.Contains(log, "key.create acme/keys/acme-ci tenant_key acme-k") {
		t.Errorf("the audit log lacks acme's key:\n%s", log)
	}
}
