package limit

import (
	"strconv"
	"time"
)

// AppendReset formats a reset duration the way OpenAI's x-ratelimit-reset-*
// headers do ("1s", "6m0s", "20ms", "1m26.4s"): Go's Duration format at
// millisecond precision, rounded up so that a client waiting that long is
// not early; zero or less is "0s". It appends to dst without allocating.
func AppendReset(dst []byte, d time.Duration) []byte {
	if d <= 0 {
		return append(dst, "0s"...)
	}
	ms := int64((d + time.Millisecond - 1) / time.Millisecond)
	if ms < 1000 {
		dst = strconv.AppendInt(dst, ms, 10)
		return append(dst, "ms"...)
	}
	if h := ms / 3_600_000; h > 0 {
		dst = strconv.AppendInt(dst, h, 10)
		dst = append(dst, 'h')
		ms %= 3_600_000
		dst = strconv.AppendInt(dst, ms/60_000, 10)
		dst = append(dst, 'm')
		ms %= 60_000
	} else if m := ms / 60_000; m > 0 {
		dst = strconv.AppendInt(dst, m, 10)
		dst = append(dst, 'm')
		ms %= 60_000
	}
	dst = strconv.AppendInt(dst, ms/1000, 10)
	if frac := ms % 1000; frac > 0 {
		dst = append(dst, '.')
		digits := [3]byte{byte('0' + frac/100), byte('0' + frac/10%10), byte('0' + frac%10)}
		n := 3
		for digits[n-1] == '0' {
			n--
		}
		dst = append(dst, digits[:n]...)
	}
	return append(dst, 's')
}
