package e2e_test

import (
	"net/http"
	"testing"
	"time"
)

// A revocation reaches a running `loom serve` through NOTIFY: with store.poll
// at its default of 10 s, a revoked key is refused within a second. (The
// other e2e tests poll every 200 ms, under which a broken NOTIFY would go
// unnoticed.)
//
// The store's watcher also reloads once right after its LISTEN is up, which
// can land after the first revocation and bring it in without any NOTIFY. So
// the test revokes twice: once the first revocation is applied, that reload
// is behind it (the watcher reloads on one goroutine, LISTEN's first), and
// the second can only arrive by NOTIFY or by the poll 10 s after the start.
func TestStore_RevocationAtDefaultPoll_AppliesWithinASecondByNotify(t *testing.T) {
	ts := startTenancy(t, false, func(ts *tenancy) { ts.defaultPoll = true })
	started := time.Now()
	for _, tenant := range []string{"acme", "globex"} {
		key := ts.keys[tenant]
		if status, body := ts.call(t, "POST", "/v1/chat/completions", key, chatBody(models[tenant].public)); status != 200 {
			t.Fatalf("%s before its revocation: %d %s", tenant, status, body)
		}
		if err := ts.store.RevokeKey(t.Context(), ts.keyIDs[tenant]); err != nil {
			t.Fatal(err)
		}
		took := untilStatus(t, time.Second, http.StatusUnauthorized, func() int {
			status, _ := ts.call(t, "POST", "/v1/chat/completions", key, chatBody(models[tenant].public))
			return status
		})
		t.Logf("%s's revoked key refused %v after the revocation, at the default poll", tenant, took.Round(time.Millisecond))
	}
	// The first poll comes 10 s after the start: a refusal before it can
	// only be NOTIFY's doing.
	if since := time.Since(started); since >= 9*time.Second {
		t.Fatalf("the revocations applied %v after the start: a poll may have brought them, which proves nothing about NOTIFY", since)
	}
}
