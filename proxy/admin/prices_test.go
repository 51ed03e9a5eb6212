package admin_test

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

type priceBody struct {
	Object, ID, Model, Deployment, Currency string
	EffectiveFrom                           time.Time `json:"effective_from"`
	Input, Output                           string
	CachedInput                             string `json:"cached_input"`
	Reasoning                               string
}

func TestAdmin_Prices_AddThenList_DecimalsExact(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var got priceBody
	f.call("POST", "/admin/prices", `{"model":"gpt-4o","effective_from":"2025-01-01","input":2.50,"cached_input":"1.25","output":"10"}`,
		http.StatusCreated, &got)
	if got.Object != "price" || got.ID != "gpt-4o:2025-01-01T00:00:00Z" || got.Input != "2.5" || got.CachedInput != "1.25" ||
		got.Output != "10" || got.Currency != "USD" || !got.EffectiveFrom.Equal(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("created %+v", got)
	}
	f.call("POST", "/admin/prices", `{"id":"o3-east","model":"o3","deployment":"east","currency":"EUR",
		"effective_from":"2025-06-01T12:00:00+02:00","input":"0.0375","output":8,"reasoning":"12"}`, http.StatusCreated, nil)
	var l struct {
		Object string
		Data   []priceBody
	}
	f.call("GET", "/admin/prices", "", http.StatusOK, &l)
	if l.Object != "list" || len(l.Data) != 2 || l.Data[1].ID != "o3-east" || l.Data[1].Input != "0.0375" || l.Data[1].Reasoning != "12" ||
		l.Data[1].Deployment != "east" {
		t.Fatalf("list = %+v", l)
	}
}

func TestAdmin_Prices_BadEntries_400NamingTheField(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	for _, tc := range []struct{ body, param string }{
		{`{"model":"m","effective_from":"2025-01-01","input":"1","output":"1","currency":"usd"}`, "currency"},
		{`{"model":"m","effective_from":"2025-01-01","input":"1.0000001","output":"1"}`, ""},
		{`{"model":"m","effective_from":"soon","input":"1","output":"1"}`, "effective_from"},
		{`{"model":"m","effective_from":"2025-01-01","output":"1"}`, "input"},
		{`{"effective_from":"2025-01-01","input":"1","output":"1"}`, "model"},
		{`{"model":"m","effective_from":"2025-01-01","input":"1","output":"1","colour":"red"}`, "colour"},
	} {
		b := f.call("POST", "/admin/prices", tc.body, http.StatusBadRequest, nil)
		if tc.param != "" && !strings.Contains(string(b), `"param":"`+tc.param+`"`) {
			t.Errorf("%s: %s; want param %s", tc.body, b, tc.param)
		}
	}
	f.call("POST", "/admin/prices", `{"model":"m","effective_from":"2025-01-01","input":"1","output":"1"}`, http.StatusCreated, nil)
	b := f.call("POST", "/admin/prices", `{"id":"again","model":"m","effective_from":"2025-01-01T00:00:00Z","input":"2","output":"2"}`,
		http.StatusConflict, nil)
	openAIError(t, b, "already_exists")
}

func TestAdmin_Prices_InForceEntryCannotBeDeleted_409(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.call("POST", "/admin/prices", `{"id":"old","model":"m","effective_from":"2025-01-01","input":"1","output":"1"}`, http.StatusCreated, nil)
	f.call("POST", "/admin/prices", `{"id":"next","model":"m","effective_from":"2999-01-01","input":"1","output":"1"}`, http.StatusCreated, nil)
	openAIError(t, f.call("DELETE", "/admin/prices/old", "", http.StatusConflict, nil), "price_in_force")
	f.call("DELETE", "/admin/prices/next", "", http.StatusNoContent, nil)
	openAIError(t, f.call("DELETE", "/admin/prices/next", "", http.StatusNotFound, nil), "not_found")
}
