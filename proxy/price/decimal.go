package price

import (
	"errors"
	"fmt"
	"math"
	"strconv"
)

// Price is a price per million tokens, in micro-units (1e-6) of its
// entry's currency: "2.50" is 2_500_000. It holds any decimal with up to
// six places exactly. Zero means "not set" where an entry's field may fall
// back to another (see Entry).
type Price int64

// PriceScale is the number of Price units in one currency unit.
const PriceScale = 1_000_000

// MaxPrice is the largest price accepted: a million currency units per
// million tokens. Bounding it keeps tokens × price inside an Amount for any
// usage a provider reports in practice (and Cost saturates beyond).
const MaxPrice Price = 1_000_000 * PriceScale

// Amount is an amount of money in pico-units (1e-12) of a currency: the
// cost of one token at a Price is exactly Price Amount units, so a cost is
// an integer product with no rounding, and sums of costs never drift. It
// holds about ±9.2 million currency units.
type Amount int64

// AmountScale is the number of Amount units in one currency unit.
const AmountScale = 1_000_000_000_000

// Errors of the decimal parsers.
var (
	ErrSyntax   = errors.New("not a plain decimal number")
	ErrNegative = errors.New("must not be negative")
	ErrPlaces   = errors.New("too many decimal places")
	ErrRange    = errors.New("too large")
)

// ParsePrice reads a price per million tokens written as a plain decimal:
// "2.50", "0.0375", "3". No sign, exponent, spaces or separators; at most
// six decimal places (a finer price is refused, never rounded); at most
// MaxPrice.
func ParsePrice(s string) (Price, error) {
	v, err := parseDecimal(s, 6, false)
	if err != nil {
		return 0, fmt.Errorf("price %q: %w", clip(s), err)
	}
	if Price(v) > MaxPrice {
		return 0, fmt.Errorf("price %q: %w (at most %s)", clip(s), ErrRange, MaxPrice)
	}
	return Price(v), nil
}

// ParseAmount reads an amount of money written as a plain decimal with at
// most twelve places, which may be negative: "10", "0.25", "-1.5".
func ParseAmount(s string) (Amount, error) {
	v, err := parseDecimal(s, 12, true)
	if err != nil {
		return 0, fmt.Errorf("amount %q: %w", clip(s), err)
	}
	return Amount(v), nil
}

// clip keeps an error message short whatever it quotes.
func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// parseDecimal reads digits[.digits] scaled by 10^places, exactly.
func parseDecimal(s string, places int, signed bool) (int64, error) {
	neg := false
	if signed && len(s) > 0 && s[0] == '-' {
		neg, s = true, s[1:]
	}
	if s == "" {
		return 0, ErrSyntax
	}
	if s[0] == '-' {
		return 0, ErrNegative
	}
	var v uint64
	const limit = math.MaxInt64
	i, digits := 0, 0
	for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
		d := uint64(s[i] - '0')
		if v > (limit-d)/10 {
			return 0, ErrRange
		}
		v = v*10 + d
		digits++
	}
	if digits == 0 {
		return 0, ErrSyntax
	}
	frac := 0
	if i < len(s) && s[i] == '.' {
		i++
		start := i
		for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
			if frac == places {
				if s[i] != '0' {
					return 0, ErrPlaces
				}
				continue // trailing zeros past the places change nothing
			}
			d := uint64(s[i] - '0')
			if v > (limit-d)/10 {
				return 0, ErrRange
			}
			v = v*10 + d
			frac++
		}
		if i == start {
			return 0, ErrSyntax
		}
	}
	if i != len(s) {
		return 0, ErrSyntax
	}
	for ; frac < places; frac++ {
		if v > limit/10 {
			return 0, ErrRange
		}
		v *= 10
	}
	if neg {
		return -int64(v), nil
	}
	return int64(v), nil
}

// appendDecimal writes v / 10^places as a plain decimal, trailing zeros of
// the fraction dropped down to minPlaces.
func appendDecimal(dst []byte, v int64, places, minPlaces int) []byte {
	u := uint64(v)
	if v < 0 {
		dst = append(dst, '-')
		u = uint64(-v) // MinInt64 wraps to its own magnitude as a uint64
	}
	scale := uint64(1)
	for range places {
		scale *= 10
	}
	dst = strconv.AppendUint(dst, u/scale, 10)
	f := u % scale
	n := places
	for n > minPlaces && f%10 == 0 {
		f /= 10
		n--
	}
	if n == 0 {
		return dst
	}
	dst = append(dst, '.')
	var buf [20]byte
	for i := n - 1; i >= 0; i-- {
		buf[i] = byte('0' + f%10)
		f /= 10
	}
	return append(dst, buf[:n]...)
}

// String is p as a plain decimal: "2.5", "0.0375", "3".
func (p Price) String() string { return string(appendDecimal(nil, int64(p), 6, 0)) }

// MarshalText writes p as String does; a JSON encoder writes it as a
// string, so no reader turns it into a float.
func (p Price) MarshalText() ([]byte, error) { return appendDecimal(nil, int64(p), 6, 0), nil }

// UnmarshalText reads p with ParsePrice (YAML and JSON strings).
func (p *Price) UnmarshalText(b []byte) error {
	v, err := ParsePrice(string(b))
	if err != nil {
		return err
	}
	*p = v
	return nil
}

// UnmarshalJSON reads a JSON string or number ("2.50" or 2.50) exactly,
// from its text, never through a float; null leaves p as it is.
func (p *Price) UnmarshalJSON(b []byte) error {
	s := string(b)
	if s == "null" {
		return nil
	}
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		s = s[1 : len(s)-1]
	}
	return p.UnmarshalText([]byte(s))
}

// AppendDecimal appends a in currency units as a plain decimal with at
// least two decimal places and no trailing zeros beyond them: "0.00",
// "1.50", "0.000123456789". It allocates nothing when dst has room.
func (a Amount) AppendDecimal(dst []byte) []byte { return appendDecimal(dst, int64(a), 12, 2) }

// String is a as AppendDecimal writes it.
func (a Amount) String() string {
	var buf [32]byte
	return string(a.AppendDecimal(buf[:0]))
}

// Float64 is a in currency units (for span attributes and metrics; sums
// for billing use Amount or the numeric column, never this). Below 2^53
// pico-units (about 9,007 currency units) it is the float64 nearest to the
// exact decimal, so the shortest decimal that reads back as it (what
// strconv.FormatFloat(f, 'f', -1, 64) writes) is the exact amount again.
func (a Amount) Float64() float64 {
	if a > -1<<53 && a < 1<<53 {
		return float64(a) / AmountScale // both exact: one correctly rounded division
	}
	return float64(a/AmountScale) + float64(a%AmountScale)/AmountScale
}

// MarshalText writes a as String does.
func (a Amount) MarshalText() ([]byte, error) { return a.AppendDecimal(nil), nil }

// UnmarshalText reads a with ParseAmount.
func (a *Amount) UnmarshalText(b []byte) error {
	v, err := ParseAmount(string(b))
	if err != nil {
		return err
	}
	*a = v
	return nil
}
