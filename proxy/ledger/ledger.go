// Package ledger is Loom's tamper-evident audit ledger: every stored call
// and every admin action is an entry in an append-only hash chain in
// Postgres, one chain per tenant (its calls) and one system chain (admin
// actions), each entry's hash = SHA-256(previous hash || canonical entry).
// Checkpoints sign the heads of all chains with an Ed25519 key; Verify
// recomputes the chains from Postgres and checks every call entry against
// the span row it was made from; a Bundle carries a range of one chain, its
// checkpoints and the public key, and verifies offline.
//
// The canonical encoding (canonical.go, and the README's "Audit ledger")
// is a contract: anyone must be able to re-implement the check from the
// description alone, so it never changes in place. A new encoding gets a new
// format string.
//
// The ledger never updates or deletes an entry; it appends inside the
// caller's transaction, so an entry exists exactly when what it records
// was committed.
package ledger

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/loom-gateway/loom/proxy/internal/json"
)

// SystemChain is the chain of admin actions. Tenant ids cannot take this
// name: call entries are refused in it.
const SystemChain = "_system"

// Kind says what an entry records.
type Kind string

// The kinds of entries.
const (
	KindCall  Kind = "call"  // one stored CLIENT span: an upstream attempt of a call
	KindAdmin Kind = "admin" // one change made through the admin API or CLI
)

// Entry is one link of a chain.
type Entry struct {
	// Chain is the tenant id for a call, SystemChain for an admin action.
	Chain string
	// Index is the entry's position in its chain, from 1, with no gaps.
	// Append assigns it; callers leave it 0.
	Index int64
	Kind  Kind
	Call  Call  // when Kind is KindCall
	Admin Admin // when Kind is KindAdmin
}

// Call is what a call entry records of its CLIENT span, as loom.spans
// stores it: NULL columns are invalid values, times are UTC with
// microseconds (what Postgres keeps; finer digits are truncated).
type Call struct {
	TraceID string // 32 lowercase hex digits
	SpanID  string // 16 lowercase hex digits
	Tenant  string // loom.tenant.id: equal to the entry's chain

	KeyID      pgtype.Text // loom.api_key.id
	InstanceID pgtype.Text // loom.instance.id
	RunID      pgtype.Text // loom.run.id
	Seq        pgtype.Int8 // loom.seq
	Attempt    pgtype.Int8 // loom.upstream.attempt

	RequestModel  pgtype.Text
	ResponseModel pgtype.Text
	Deployment    pgtype.Text
	Provider      pgtype.Text

	InputTokens         pgtype.Int8
	OutputTokens        pgtype.Int8
	CacheReadTokens     pgtype.Int8
	CacheCreationTokens pgtype.Int8
	ReasoningTokens     pgtype.Int8
	TotalTokens         pgtype.Int8

	// Cost is loom.cost as a plain decimal ("0.00123"), in CostCurrency,
	// priced by the catalog entry CostPriceID.
	Cost         pgtype.Text
	CostCurrency pgtype.Text
	CostPriceID  pgtype.Text

	StatusCode string      // the span's status: unset, ok or error
	HTTPStatus pgtype.Int8 // http.response.status_code
	ErrorType  pgtype.Text // error.type

	Start time.Time
	End   pgtype.Timestamptz
}

// Admin is what an admin entry records. Before and After are JSON documents
// of the target's state (nil when there is none, as before a create), with
// every secret already redacted by the caller: the ledger keeps them
// forever and shows them to the tenant concerned.
type Admin struct {
	RequestID string // unique per admin request; with Action, the entry's reference
	Time      time.Time
	Actor     string // the admin token's id, or the operator's name for the CLI
	Action    string // e.g. "tenant.create", "key.revoke"; no '|'
	// Tenant is the tenant the action concerns, "" for none: the entry is
	// visible to that tenant's readers.
	Tenant string
	Target string // what was changed, e.g. the key id
	Before []byte
	After  []byte
}

// ErrInvalidEntry is returned for an entry that cannot be appended; the
// error names the field.
var ErrInvalidEntry = errors.New("invalid ledger entry")

// maxField bounds one encoded value; maxEntry bounds a whole entry. Call
// fields are span columns, already capped by the exporter; admin
// before/after documents are the largest.
const (
	maxField = 1 << 20
	maxEntry = 4 << 20
)

// Ref is the entry's reference, unique among the entries of its kind: a
// call's trace id and span id, an admin action's name and request id.
// Appending an entry whose reference is already in the ledger does nothing.
func (e *Entry) Ref() string {
	if e.Kind == KindAdmin {
		return e.Admin.Action + "|" + e.Admin.RequestID
	}
	return e.Call.TraceID + e.Call.SpanID
}

// tenant is the tenant whose readers may see the entry ("" for none).
func (e *Entry) tenant() string {
	if e.Kind == KindAdmin {
		return e.Admin.Tenant
	}
	return e.Call.Tenant
}

// Validate reports what makes e impossible to append (wrapping
// ErrInvalidEntry, naming the field), or nil. Index is not checked.
func (e *Entry) Validate() error {
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrInvalidEntry, field, fmt.Sprintf(format, args...))
	}
	if e.Chain == "" {
		return bad("chain", "empty")
	}
	switch e.Kind {
	case KindCall:
		c := &e.Call
		switch {
		case e.Chain == SystemChain:
			return bad("chain", "a call cannot be in the system chain")
		case c.Tenant != e.Chain:
			return bad("tenant", "%q is not the chain %q", c.Tenant, e.Chain)
		case !isHex(c.TraceID, 32):
			return bad("trace_id", "not 32 lowercase hex digits")
		case !isHex(c.SpanID, 16):
			return bad("span_id", "not 16 lowercase hex digits")
		case c.StatusCode != "unset" && c.StatusCode != "ok" && c.StatusCode != "error":
			return bad("status_code", "%q is not unset, ok or error", c.StatusCode)
		case c.Start.IsZero():
			return bad("start_time", "zero")
		}
	case KindAdmin:
		a := &e.Admin
		switch {
		case e.Chain != SystemChain:
			return bad("chain", "an admin action belongs to the system chain, not %q", e.Chain)
		case a.RequestID == "":
			return bad("request_id", "empty")
		case a.Action == "" || strings.Contains(a.Action, "|"):
			return bad("action", "empty or holds '|'")
		case a.Time.IsZero():
			return bad("time", "zero")
		case a.Before != nil && !json.Valid(a.Before):
			return bad("before", "not JSON")
		case a.After != nil && !json.Valid(a.After):
			return bad("after", "not JSON")
		}
	default:
		return bad("kind", "%q is neither call nor admin", e.Kind)
	}
	var err error
	e.textFields(func(name string, v value) {
		if err == nil && v.ok && (len(v.s) > maxField || !utf8.ValidString(v.s)) {
			err = bad(name, "longer than %d bytes or not UTF-8", maxField)
		}
	})
	return err
}

func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := range len(s) {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
