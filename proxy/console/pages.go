package console

import (
	"html/template"
	"strconv"
	"strings"
	"time"
)

var funcs = template.FuncMap{
	"ms": func(v *float64) string {
		if v == nil {
			return "–"
		}
		return strconv.FormatFloat(*v, 'f', 1, 64) + " ms"
	},
	// cost is a stored cost and its currency ("0.0075 USD"); "–" for a
	// call with no price.
	"cost": func(v, currency *string) string {
		if v == nil {
			return "–"
		}
		if currency == nil {
			return *v
		}
		return *v + " " + *currency
	},
	"num": func(v *int64) string {
		if v == nil {
			return "–"
		}
		return strconv.FormatInt(*v, 10)
	},
	"time":       func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05.000") },
	"dashboards": dashboardNav,
}

// groupDigits puts thousands separators in a decimal's integer part
// ("-1234567.891" reads "-1,234,567.891"), leaving every digit: sums that
// are exact stay exact on the page.
func groupDigits(dec string) string {
	sign := ""
	if strings.HasPrefix(dec, "-") {
		sign, dec = "-", dec[1:]
	}
	intPart, frac, hasFrac := strings.Cut(dec, ".")
	var b strings.Builder
	b.WriteString(sign)
	for i, d := range intPart {
		if i > 0 && (len(intPart)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(d)
	}
	if hasFrac {
		b.WriteByte('.')
		b.WriteString(frac)
	}
	return b.String()
}
