package ledger

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
)

// The canonical encoding of an entry (the README's "Audit ledger" says the
// same, for people re-implementing it):
//
//	entry = item("loom.ledger.entry/1") item(chain) item(idx) item(kind) item(field)...
//	item  = 0x00                                  a NULL
//	      | 0x01 uint32-big-endian(len(v)) v     a value: len(v) bytes of UTF-8
//
// with the fields of the kind in the fixed order of callFields or
// adminFields. Integers are decimal ASCII with no sign for 0 or positive
// numbers and no leading zeros; times are UTC with exactly six fractional
// digits, "2006-01-02T15:04:05.000000Z"; JSON documents are their bytes as
// given. Nothing else is allowed: Decode refuses any other spelling, so
// each entry has exactly one encoding.
//
// The chain rule: hash(1) = SHA-256(32 zero bytes || entry(1)),
// hash(n) = SHA-256(hash(n-1) || entry(n)).

// Format is the first item of every canonical entry.
const Format = "loom.ledger.entry/1"

// timeLayout is how times are written: the trailing Z is a literal.
const timeLayout = "2006-01-02T15:04:05.000000Z"

// HashSize is the size of an entry's hash (SHA-256).
const HashSize = sha256.Size

// ZeroHash is the hash before a chain's first entry.
var ZeroHash [HashSize]byte

// Hash is the chain rule: SHA-256(prev || canonical).
func Hash(prev [HashSize]byte, canonical []byte) [HashSize]byte {
	h := sha256.New()
	h.Write(prev[:])
	h.Write(canonical)
	var out [HashSize]byte
	h.Sum(out[:0])
	return out
}

// value is one item: ok false is NULL.
type value struct {
	s  string
	ok bool
}

func some(s string) value { return value{s: s, ok: true} }

// field is one named item of an entry kind, in its fixed place. get and
// set are for reading and comparing; put appends the item without
// allocating (the exporter encodes an entry per stored call).
type field struct {
	name string
	text bool // a string the caller gives (checked for UTF-8 and length)
	get  func(e *Entry) value
	set  func(e *Entry, v value) error // v is never NULL for a field that cannot be
	put  func(dst []byte, e *Entry) []byte
}

var callFields = []field{
	str("trace_id", func(e *Entry) *string { return &e.Call.TraceID }),
	str("span_id", func(e *Entry) *string { return &e.Call.SpanID }),
	str("tenant", func(e *Entry) *string { return &e.Call.Tenant }),
	text("key_id", func(e *Entry) *pgtype.Text { return &e.Call.KeyID }),
	text("instance_id", func(e *Entry) *pgtype.Text { return &e.Call.InstanceID }),
	text("run_id", func(e *Entry) *pgtype.Text { return &e.Call.RunID }),
	int8Field("seq", func(e *Entry) *pgtype.Int8 { return &e.Call.Seq }),
	int8Field("attempt", func(e *Entry) *pgtype.Int8 { return &e.Call.Attempt }),
	text("request_model", func(e *Entry) *pgtype.Text { return &e.Call.RequestModel }),
	text("response_model", func(e *Entry) *pgtype.Text { return &e.Call.ResponseModel }),
	text("deployment", func(e *Entry) *pgtype.Text { return &e.Call.Deployment }),
	text("provider", func(e *Entry) *pgtype.Text { return &e.Call.Provider }),
	int8Field("input_tokens", func(e *Entry) *pgtype.Int8 { return &e.Call.InputTokens }),
	int8Field("output_tokens", func(e *Entry) *pgtype.Int8 { return &e.Call.OutputTokens }),
	int8Field("cache_read_tokens", func(e *Entry) *pgtype.Int8 { return &e.Call.CacheReadTokens }),
	int8Field("cache_creation_tokens", func(e *Entry) *pgtype.Int8 { return &e.Call.CacheCreationTokens }),
	int8Field("reasoning_tokens", func(e *Entry) *pgtype.Int8 { return &e.Call.ReasoningTokens }),
	int8Field("total_tokens", func(e *Entry) *pgtype.Int8 { return &e.Call.TotalTokens }),
	text("cost", func(e *Entry) *pgtype.Text { return &e.Call.Cost }),
	text("cost_currency", func(e *Entry) *pgtype.Text { return &e.Call.CostCurrency }),
	text("cost_price_id", func(e *Entry) *pgtype.Text { return &e.Call.CostPriceID }),
	str("status_code", func(e *Entry) *string { return &e.Call.StatusCode }),
	int8Field("http_status", func(e *Entry) *pgtype.Int8 { return &e.Call.HTTPStatus }),
	text("error_type", func(e *Entry) *pgtype.Text { return &e.Call.ErrorType }),
	timeField("start_time", func(e *Entry) *time.Time { return &e.Call.Start }),
	timestamptz("end_time", func(e *Entry) *pgtype.Timestamptz { return &e.Call.End }),
}

var adminFields = []field{
	str("request_id", func(e *Entry) *string { return &e.Admin.RequestID }),
	timeField("time", func(e *Entry) *time.Time { return &e.Admin.Time }),
	str("actor", func(e *Entry) *string { return &e.Admin.Actor }),
	str("action", func(e *Entry) *string { return &e.Admin.Action }),
	str("tenant", func(e *Entry) *string { return &e.Admin.Tenant }),
	str("target", func(e *Entry) *string { return &e.Admin.Target }),
	document("before", func(e *Entry) *[]byte { return &e.Admin.Before }),
	document("after", func(e *Entry) *[]byte { return &e.Admin.After }),
}

func fieldsOf(k Kind) []field {
	if k == KindAdmin {
		return adminFields
	}
	return callFields
}

// textFields calls f with each text field of e's kind, in order.
func (e *Entry) textFields(f func(name string, v value)) {
	for _, fd := range fieldsOf(e.Kind) {
		if fd.text {
			f(fd.name, fd.get(e))
		}
	}
}

// AppendCanonical appends e's canonical encoding to dst. e must be valid
// (Append checks) and have its Index.
func (e *Entry) AppendCanonical(dst []byte) []byte {
	dst = appendItem(dst, some(Format))
	dst = appendItem(dst, some(e.Chain))
	dst = appendIntItem(dst, e.Index)
	dst = appendItem(dst, some(string(e.Kind)))
	for _, fd := range fieldsOf(e.Kind) {
		dst = fd.put(dst, e)
	}
	return dst
}

// appendIntItem appends n's item: its decimal, written in place.
func appendIntItem(dst []byte, n int64) []byte {
	at := len(dst)
	dst = append(dst, 1, 0, 0, 0, 0)
	dst = strconv.AppendInt(dst, n, 10)
	binary.BigEndian.PutUint32(dst[at+1:], uint32(len(dst)-at-5))
	return dst
}

// appendTimeItem appends t's item as formatTime spells it.
func appendTimeItem(dst []byte, t time.Time) []byte {
	at := len(dst)
	dst = append(dst, 1, 0, 0, 0, 0)
	dst = t.UTC().Truncate(time.Microsecond).AppendFormat(dst, timeLayout)
	binary.BigEndian.PutUint32(dst[at+1:], uint32(len(dst)-at-5))
	return dst
}

func appendItem(dst []byte, v value) []byte {
	if !v.ok {
		return append(dst, 0)
	}
	dst = append(dst, 1)
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(v.s)))
	return append(dst, v.s...)
}

// ErrMalformed is returned by Decode for bytes that are not one canonical
// entry.
var ErrMalformed = errors.New("not a canonical ledger entry")

// Decode parses a canonical entry. It accepts exactly what AppendCanonical
// writes: re-encoding the result gives b back.
func Decode(b []byte) (Entry, error) {
	var e Entry
	if len(b) > maxEntry {
		return e, fmt.Errorf("%w: %d bytes", ErrMalformed, len(b))
	}
	r := reader{b: b}
	head := make([]value, 4)
	for i := range head {
		if head[i] = r.item(); r.err != nil || !head[i].ok {
			return e, fmt.Errorf("%w: header item %d missing or NULL", ErrMalformed, i)
		}
	}
	if head[0].s != Format {
		return e, fmt.Errorf("%w: format %q, want %q", ErrMalformed, head[0].s, Format)
	}
	e.Chain, e.Kind = head[1].s, Kind(head[3].s)
	idx, err := parseInt(head[2].s)
	if err != nil || idx < 1 {
		return e, fmt.Errorf("%w: idx %q", ErrMalformed, head[2].s)
	}
	e.Index = idx
	if e.Kind != KindCall && e.Kind != KindAdmin {
		return e, fmt.Errorf("%w: kind %q", ErrMalformed, e.Kind)
	}
	for _, fd := range fieldsOf(e.Kind) {
		v := r.item()
		if r.err != nil {
			return e, fmt.Errorf("%w: field %s: %w", ErrMalformed, fd.name, r.err)
		}
		if err := fd.set(&e, v); err != nil {
			return e, fmt.Errorf("%w: field %s: %w", ErrMalformed, fd.name, err)
		}
	}
	if len(r.b) != 0 {
		return e, fmt.Errorf("%w: %d bytes after the last field", ErrMalformed, len(r.b))
	}
	return e, nil
}

type reader struct {
	b   []byte
	err error
}

var errShort = errors.New("truncated")

func (r *reader) item() value {
	if r.err != nil {
		return value{}
	}
	if len(r.b) == 0 {
		r.err = errShort
		return value{}
	}
	switch r.b[0] {
	case 0:
		r.b = r.b[1:]
		return value{}
	case 1:
		if len(r.b) < 5 {
			r.err = errShort
			return value{}
		}
		n := binary.BigEndian.Uint32(r.b[1:5])
		if uint64(n) > uint64(len(r.b)-5) {
			r.err = errShort
			return value{}
		}
		v := some(string(r.b[5 : 5+n]))
		r.b = r.b[5+n:]
		return v
	}
	r.err = fmt.Errorf("item tag 0x%02x", r.b[0])
	return value{}
}

var (
	errNull     = errors.New("NULL where a value is required")
	errSpelling = errors.New("not in canonical form")
)

// parseInt reads a canonical decimal integer.
func parseInt(s string) (int64, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || strconv.FormatInt(n, 10) != s {
		return 0, fmt.Errorf("%q: %w", s, errSpelling)
	}
	return n, nil
}

// formatTime is a time as entries hold it: UTC, microseconds.
func formatTime(t time.Time) string {
	return t.UTC().Truncate(time.Microsecond).Format(timeLayout)
}

func parseTime(s string) (time.Time, error) {
	t, err := time.Parse(timeLayout, s)
	if err != nil || t.Format(timeLayout) != s {
		return time.Time{}, fmt.Errorf("%q: %w", s, errSpelling)
	}
	return t, nil
}

// TruncateTime is t as Postgres keeps a timestamptz: UTC, microseconds
// (pgx truncates the nanoseconds). Entries hold times this way.
func TruncateTime(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

func str(name string, p func(*Entry) *string) field {
	return field{name: name, text: true,
		put: func(dst []byte, e *Entry) []byte { return appendItem(dst, some(*p(e))) },
		get: func(e *Entry) value { return some(*p(e)) },
		set: func(e *Entry, v value) error {
			if !v.ok {
				return errNull
			}
			*p(e) = v.s
			return nil
		}}
}

func text(name string, p func(*Entry) *pgtype.Text) field {
	return field{name: name, text: true,
		put: func(dst []byte, e *Entry) []byte {
			t := p(e)
			return appendItem(dst, value{s: t.String, ok: t.Valid})
		},
		get: func(e *Entry) value { t := p(e); return value{s: t.String, ok: t.Valid} },
		set: func(e *Entry, v value) error {
			*p(e) = pgtype.Text{String: v.s, Valid: v.ok}
			return nil
		}}
}

func int8Field(name string, p func(*Entry) *pgtype.Int8) field {
	return field{name: name,
		put: func(dst []byte, e *Entry) []byte {
			if n := p(e); n.Valid {
				return appendIntItem(dst, n.Int64)
			}
			return append(dst, 0)
		},
		get: func(e *Entry) value {
			n := p(e)
			if !n.Valid {
				return value{}
			}
			return some(strconv.FormatInt(n.Int64, 10))
		},
		set: func(e *Entry, v value) error {
			if !v.ok {
				*p(e) = pgtype.Int8{}
				return nil
			}
			n, err := parseInt(v.s)
			*p(e) = pgtype.Int8{Int64: n, Valid: err == nil}
			return err
		}}
}

func timeField(name string, p func(*Entry) *time.Time) field {
	return field{name: name,
		put: func(dst []byte, e *Entry) []byte { return appendTimeItem(dst, *p(e)) },
		get: func(e *Entry) value { return some(formatTime(*p(e))) },
		set: func(e *Entry, v value) error {
			if !v.ok {
				return errNull
			}
			t, err := parseTime(v.s)
			*p(e) = t
			return err
		}}
}

func timestamptz(name string, p func(*Entry) *pgtype.Timestamptz) field {
	return field{name: name,
		put: func(dst []byte, e *Entry) []byte {
			if t := p(e); t.Valid {
				return appendTimeItem(dst, t.Time)
			}
			return append(dst, 0)
		},
		get: func(e *Entry) value {
			t := p(e)
			if !t.Valid {
				return value{}
			}
			return some(formatTime(t.Time))
		},
		set: func(e *Entry, v value) error {
			if !v.ok {
				*p(e) = pgtype.Timestamptz{}
				return nil
			}
			t, err := parseTime(v.s)
			*p(e) = pgtype.Timestamptz{Time: t, Valid: err == nil}
			return err
		}}
}

func document(name string, p func(*Entry) *[]byte) field {
	return field{name: name, text: true,
		put: func(dst []byte, e *Entry) []byte {
			b := *p(e)
			if b == nil {
				return append(dst, 0)
			}
			dst = append(dst, 1)
			dst = binary.BigEndian.AppendUint32(dst, uint32(len(b)))
			return append(dst, b...)
		},
		get: func(e *Entry) value {
			b := *p(e)
			if b == nil {
				return value{}
			}
			return some(string(b))
		},
		set: func(e *Entry, v value) error {
			if v.ok {
				*p(e) = []byte(v.s)
			} else {
				*p(e) = nil
			}
			return nil
		}}
}
