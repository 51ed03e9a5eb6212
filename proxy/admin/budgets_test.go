package admin_test

import (
	"net/http"
	"strings"
	"testing"
)

type budgetBody struct {
	Period  string  `json:"period"`
	Limit   string  `json:"limit"`
	AlertAt float64 `json:"alert_at"`
}

func TestAdmin_Budgets_SetOnTenantAndKey_ShownInTheirJSON_BadOnesNamedByParam(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var tb struct {
		Budgets []budgetBody `json:"budgets"`
	}
	f.call("POST", "/admin/tenants", `{"id":"acme"}`, http.StatusCreated, &tb)
	if tb.Budgets == nil || len(tb.Budgets) != 0 {
		t.Fatalf("a new tenant's budgets = %#v, want []", tb.Budgets)
	}
	f.call("PUT", "/admin/tenants/acme/models", `{"models":[{"name":"mini","deployment":"openai"}]}`, http.StatusOK, nil)
	f.call("PUT", "/admin/tenants/acme/budgets", `{"budgets":[{"period":"day","limit":"25.00","alert_at":0.9},{"period":"month","limit":"500"}]}`, http.StatusOK, &tb)
	want := []budgetBody{{"day", "25.00", 0.9}, {"month", "500", 0}}
	if len(tb.Budgets) != 2 || tb.Budgets[0] != want[0] || tb.Budgets[1] != want[1] {
		t.Fatalf("tenant budgets = %+v, want %+v", tb.Budgets, want)
	}
	b := f.call("PUT", "/admin/tenants/acme/budgets", `{"budgets":[{"period":"day","limit":"25,00"}]}`, http.StatusBadRequest, nil)
	if !strings.Contains(string(b), `"param":"budgets[0].limit"`) {
		t.Errorf("a bad limit: %s", b)
	}
	b = f.call("PUT", "/admin/tenants/acme/budgets", `{"budgets":[{"period":"day","limt":"1"}]}`, http.StatusBadRequest, nil)
	if !strings.Contains(string(b), `"param":"budgets[0].limt"`) {
		t.Errorf("a misspelt field: %s", b)
	}
	openAIError(t, f.call("PUT", "/admin/tenants/nope/budgets", `{"budgets":[]}`, http.StatusNotFound, nil), "not_found")

	var kb struct {
		ID string `json:"id"`
	}
	f.call("POST", "/admin/tenants/acme/keys", `{"id":"acme-ci"}`, http.StatusCreated, &kb)
	f.call("PUT", "/admin/keys/acme-ci/budgets", `{"budgets":[{"period":"day","limit":"2.50"}]}`, http.StatusNoContent, nil)
	var keys struct {
		Data []struct {
			ID      string       `json:"id"`
			Budgets []budgetBody `json:"budgets"`
		} `json:"data"`
	}
	f.call("GET", "/admin/tenants/acme/keys", "", http.StatusOK, &keys)
	if len(keys.Data) != 1 || len(keys.Data[0].Budgets) != 1 || keys.Data[0].Budgets[0] != (budgetBody{"day", "2.50", 0}) {
		t.Fatalf("keys = %+v", keys)
	}
	openAIError(t, f.call("PUT", "/admin/keys/nope/budgets", `{"budgets":[]}`, http.StatusNotFound, nil), "not_found")
}
