package console

import (
	"html/template"
	"strconv"
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
