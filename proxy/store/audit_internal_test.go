package store

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/loom-gateway/loom/proxy/tenancy"
)

func TestActorOf_NoActorInContext_Unattributed(t *testing.T) {
	if a := actorOf(context.Background()); a.Kind != ActorUnattributed || a.ID != "" {
		t.Errorf("actorOf(no actor) = %+v, want kind %q", a, ActorUnattributed)
	}
	want := Actor{Kind: ActorOperator, ID: "alice", RequestID: "r-1"}
	if a := actorOf(WithActor(context.Background(), want)); a != want {
		t.Errorf("actorOf = %+v, want %+v", a, want)
	}
}

func TestActorOf_HostileNames_CleanedAndBounded(t *testing.T) {
	for _, tc := range []struct{ name, id string }{
		{"newline forges a line", "alice\nadmin_token:root"},
		{"invalid UTF-8", "bob\xff\xfe"},
		{"escape sequence", "eve\x1b[2J"},
		{"huge", strings.Repeat("é", 10_000)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := actorOf(WithActor(context.Background(), Actor{Kind: ActorOperator, ID: tc.id, RequestID: tc.id}))
			for _, s := range []string{a.ID, a.RequestID} {
				if len(s) > maxActorID || !utf8.ValidString(s) || strings.ContainsAny(s, "\n\x1b") {
					t.Errorf("cleaned to %q (%d bytes)", s, len(s))
				}
			}
		})
	}
}

func TestCredentialState_ValueRedacted_SetOrNotShown(t *testing.T) {
	c := Change{Action: ActionCredentialSet, Target: credentialTarget("acme", "openai")}
	if err := c.states(credentialStateOf("openai", false), credentialStateOf("openai", true), "sk-secret"); err != nil {
		t.Fatal(err)
	}
	if got, want := string(c.Before), `{"deployment":"openai","set":false}`; got != want {
		t.Errorf("before = %s, want %s", got, want)
	}
	if got, want := string(c.After), `{"deployment":"openai","set":true,"api_key":"[redacted]"}`; got != want {
		t.Errorf("after = %s, want %s", got, want)
	}
}

func TestChangeStates_SecretWouldReachTheEntry_Refused(t *testing.T) {
	const key = "sk-loom-AAAAsecretpartofthekey"
	for _, tc := range []struct {
		name string
		c    Change
		st   any
	}{
		{"in a state", Change{Action: ActionKeyCreate, Target: "acme/keys/k"}, keyState{ID: "k", Prefix: key}},
		{"in the target", Change{Action: ActionKeyCreate, Target: "acme/keys/" + key}, nil},
		{"in the actor", Change{Action: ActionKeyCreate, Target: "acme/keys/k", Actor: Actor{ID: key}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.c.states(nil, tc.st, key)
			if !errors.Is(err, ErrSecretInEntry) {
				t.Fatalf("states = %v, want ErrSecretInEntry", err)
			}
			if strings.Contains(err.Error(), "secretpart") {
				t.Errorf("the error shows the secret: %v", err)
			}
		})
	}
}

func TestStates_NothingIsNil_KeyShowsIDAndPrefixOnly(t *testing.T) {
	c := Change{Action: ActionKeyRevoke, Target: keyTarget("acme", "acme-ci")}
	revoked := time.Date(2026, 12, 5, 21, 0, 0, 0, time.UTC)
	k := Key{ID: "acme-ci", TenantID: "acme", Prefix: "sk-loom-abcd", RevokedAt: revoked, Models: []string{"mini"},
		Limits: tenancy.Limits{RequestsPerMinute: 5}}
	if err := c.states(nil, keyStateOf(k)); err != nil {
		t.Fatal(err)
	}
	if c.Before != nil {
		t.Errorf("before = %s, want nil", c.Before)
	}
	want := `{"id":"acme-ci","tenant_id":"acme","prefix":"sk-loom-abcd","expires_at":null,"revoked_at":"2026-12-05T21:00:00Z",` +
		`"models":["mini"],"limits":{"requests_per_minute":5,"tokens_per_minute":0,"concurrent_streams":0}}`
	if string(c.After) != want {
		t.Errorf("after = %s\nwant    %s", c.After, want)
	}
}

func TestTargetTenant_EveryTargetStartsWithItsTenant(t *testing.T) {
	for _, target := range []string{tenantTarget("acme"), modelsTarget("acme"), credentialTarget("acme", "azure/east"),
		keyTarget("acme", "acme-ci")} {
		if got := TargetTenant(target); got != "acme" {
			t.Errorf("TargetTenant(%q) = %q, want acme", target, got)
		}
	}
}
