package tenancy_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/loom-gateway/loom/proxy/tenancy"
)

const (
	hashA = "ce37a696b098c90b35058c8eaae60cd2d14fe9a9662b6d1f37279b0191e204e4"
	hashB = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
)

func onlyOA(name string) bool { return name == "oa" }

func TestValidate_ReportsEveryProblemByField_InTheSameOrderEveryTime(t *testing.T) {
	tenants := []tenancy.Tenant{
		{
			ID: "acme",
			Keys: []tenancy.Key{
				{ID: "k1", SHA256: "nothex"},
				{ID: "k1", SHA256: hashA, Models: []string{"other"}, Limits: tenancy.Limits{TokensPerMinute: -1}},
				{ID: "k2", SHA256: strings.ToUpper(hashA)},
			},
			Content:     tenancy.ContentPolicy{MaxBytes: -1},
			Limits:      tenancy.Limits{RequestsPerMinute: -1},
			Credentials: []tenancy.Credential{{Deployment: "typo", APIKey: "sk-own"}, {Deployment: "oa"}},
			Models:      []tenancy.Model{{Name: "m", Deployment: "typo"}, {Name: "m", Deployment: "oa"}, {Deployment: "oa"}},
		},
		{ID: "acme", Keys: []tenancy.Key{{SHA256: hashB}}},
		{},
	}
	want := strings.Join([]string{
		"tenants[0].keys[0].sha256: must be 64 hex characters (the SHA-256 of the key; see `loom keys new`)",
		`tenants[0].keys[1].id: "k1" is used twice`,
		"tenants[0].keys[1].limits: limits must not be negative",
		`tenants[0].keys[1].models: "other" is not one of the tenant's models`,
		"tenants[0].keys[2].sha256: the same key is configured twice",
		"tenants[0].content.max_bytes: must not be negative",
		"tenants[0].limits: limits must not be negative",
		`tenants[0].credentials[0].deployment: no deployment named "typo"`,
		"tenants[0].credentials[1].api_key: is empty",
		`tenants[0].models[0].deployment: no deployment named "typo"`,
		`tenants[0].models[1].name: "m" is listed twice`,
		"tenants[0].models[2].name: is required",
		`tenants[1].id: "acme" is defined twice`,
		"tenants[1].keys[0].id: is required",
		"tenants[2].id: is required",
	}, "\n")
	for range 20 {
		err := tenancy.Validate(tenants, onlyOA)
		if err == nil || err.Error() != want {
			t.Fatalf("Validate =\n%v\nwant\n%s", err, want)
		}
	}
}

func TestValidate_GoodSnapshot_NoError(t *testing.T) {
	tenants := []tenancy.Tenant{
		{ID: "acme", Models: []tenancy.Model{{Name: "m", Deployment: "oa"}},
			Keys:        []tenancy.Key{{ID: "a1", SHA256: hashA, Models: []string{"m"}}},
			Credentials: []tenancy.Credential{{Deployment: "oa", APIKey: "sk-own"}}},
		{ID: "globex", Keys: []tenancy.Key{{ID: "g1", SHA256: hashB}}},
	}
	if err := tenancy.Validate(tenants, onlyOA); err != nil {
		t.Fatal(err)
	}
}

// An empty credential is no credential: served, the tenant's calls would
// carry (and bill) the deployment's own key.
func TestValidateTenant_EmptyCredential_IsRefused(t *testing.T) {
	err := tenancy.ValidateTenant(tenancy.Tenant{ID: "acme", Credentials: []tenancy.Credential{{Deployment: "oa"}}}, onlyOA)
	if err == nil || err.Error() != "credentials[0].api_key: is empty" {
		t.Fatalf("ValidateTenant = %v; want the empty credential named", err)
	}
}

func TestValidateTenant_NamesFieldsWithinTheTenant(t *testing.T) {
	err := tenancy.ValidateTenant(tenancy.Tenant{
		Keys:   []tenancy.Key{{ID: "k", SHA256: hashA}, {ID: "k", SHA256: hashA}},
		Models: []tenancy.Model{{Name: "m", Deployment: "typo"}},
	}, onlyOA)
	want := []string{
		"id: is required",
		`keys[1].id: "k" is used twice`,
		"keys[1].sha256: the same key is configured twice",
		`models[0].deployment: no deployment named "typo"`,
	}
	if err == nil || err.Error() != strings.Join(want, "\n") {
		t.Fatalf("ValidateTenant =\n%v\nwant\n%s", err, strings.Join(want, "\n"))
	}
	var joined interface{ Unwrap() []error }
	if !errors.As(err, &joined) || len(joined.Unwrap()) != len(want) {
		t.Errorf("want one error per problem, got %#v", err)
	}
}

func TestValidateTenant_EachProblemIsAFieldError_NamingItsField(t *testing.T) {
	err := tenancy.ValidateTenant(tenancy.Tenant{ID: "acme", Models: []tenancy.Model{
		{Name: "m", Deployments: []tenancy.Target{{Deployment: "oa", Weight: -1}}}}}, onlyOA)
	var fe *tenancy.FieldError
	if !errors.As(err, &fe) || fe.Field != "models[0].deployments[0].weight" || fe.Msg != "must not be negative, got -1" {
		t.Fatalf("ValidateTenant = %v (%+v); want a FieldError on models[0].deployments[0].weight", err, fe)
	}
}

func TestValidate_Budgets_EachProblemNamedByField(t *testing.T) {
	tenants := []tenancy.Tenant{{
		ID: "acme",
		Budgets: []tenancy.Budget{
			{Period: "day", Limit: "25.00"},
			{Period: "week", Limit: "1"},
			{Period: "day", Limit: "2.5.0", AlertAt: 1.5},
		},
		Keys: []tenancy.Key{{ID: "k", SHA256: hashA, Budgets: []tenancy.Budget{{Period: "month", Limit: "-3"}}}},
	}}
	want := strings.Join([]string{
		`tenants[0].keys[0].budgets[0].limit: "-3" ` + tenancy.ErrAmount.Error(),
		`tenants[0].budgets[1].period: must be "day" or "month", got "week"`,
		"tenants[0].budgets[2].period: a second day budget (one per period)",
		`tenants[0].budgets[2].limit: "2.5.0" ` + tenancy.ErrAmount.Error(),
		"tenants[0].budgets[2].alert_at: must be a fraction of the limit between 0 and 1, got 1.5",
	}, "\n")
	if err := tenancy.Validate(tenants, onlyOA); err == nil || err.Error() != want {
		t.Fatalf("Validate =\n%v\nwant\n%s", err, want)
	}
}

func TestParseAmount_ExactDecimalsOnly(t *testing.T) {
	for in, want := range map[string]int64{
		"25.00": 25_000_000_000_000, "0.1": 100_000_000_000, "0.000000000001": 1, "7": 7_000_000_000_000,
		".5": 500_000_000_000, "999999.999999999999": 999_999_999_999_999_999,
	} {
		if got, err := tenancy.ParseAmount(in); err != nil || got != want {
			t.Errorf("ParseAmount(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", ".", "1.", "+1", "-1", "1e3", "0x10", "1 000", "1000000", "0.0000000000001", "NaN"} {
		if _, err := tenancy.ParseAmount(in); !errors.Is(err, tenancy.ErrAmount) {
			t.Errorf("ParseAmount(%q) accepted (err %v)", in, err)
		}
	}
}
