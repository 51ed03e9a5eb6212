package queries

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

var (
	timeGroupRE  = regexp.MustCompile(`\$__timeGroup(Alias)?\(\s*([^,()]+?)\s*,\s*([^()]+?)\s*\)`)
	timeFilterRE = regexp.MustCompile(`\$__timeFilter\(\s*([^()]+?)\s*\)`)
	variableRE   = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)`)
)

// Expand turns a panel's SQL into plain SQL for the range [from, to], the
// bucket width interval and the variables' values, as Grafana's Postgres
// datasource would, so the same query runs outside Grafana.
//
// Macros: $__timeFilter(col), $__timeGroup(col, iv), $__timeGroupAlias(col,
// iv) (iv is $__interval or a duration such as 5m; the bucket is a
// timestamptz, where Grafana's is epoch seconds), $__timeFrom(),
// $__timeTo(), $__interval_ms and $__interval. Variables ($name or ${name}):
// a name in vars, or tenant, model and provider, which are All when absent;
// no values, or "All", "$__all" or "__all__" among them, mean All
// (AllValue); other values are quoted as SQL strings. Any other $name is
// left as it is.
func Expand(sql string, from, to time.Time, interval time.Duration, vars map[string][]string) string {
	if interval < time.Second {
		interval = time.Second
	}
	sql = timeGroupRE.ReplaceAllStringFunc(sql, func(m string) string {
		g := timeGroupRE.FindStringSubmatch(m)
		secs := bucketSeconds(g[3], interval)
		// date_bin cuts as Grafana's floor(epoch / secs) * secs does, in
		// timestamp arithmetic rather than numeric: several times faster
		// over a fact's or a range's rows.
		out := fmt.Sprintf("date_bin('%d seconds', %s, timestamptz '1970-01-01 00:00:00+00')", secs, g[2])
		if g[1] != "" {
			out += ` AS "time"`
		}
		return out
	})
	lo, hi := timestamp(from), timestamp(to)
	sql = timeFilterRE.ReplaceAllString(sql, "$1 BETWEEN "+lo+" AND "+hi)
	sql = strings.NewReplacer(
		"$__timeFrom()", lo,
		"$__timeTo()", hi,
		"$__interval_ms", strconv.FormatInt(interval.Milliseconds(), 10),
		"$__interval", strconv.FormatInt(int64(interval/time.Second), 10)+"s",
	).Replace(sql)
	return variableRE.ReplaceAllStringFunc(sql, func(m string) string {
		g := variableRE.FindStringSubmatch(m)
		name := g[1] + g[2]
		values, ok := vars[name]
		if !ok && name != "tenant" && name != "model" && name != "provider" {
			return m
		}
		return sqlValues(values)
	})
}

func timestamp(t time.Time) string { return "'" + t.UTC().Format(time.RFC3339Nano) + "'" }

// bucketSeconds reads a $__timeGroup interval: $__interval, or a Grafana
// duration (30s, 5m, 1h, 1d).
func bucketSeconds(arg string, interval time.Duration) int64 {
	d := interval
	switch {
	case arg == "$__interval":
	case strings.HasSuffix(arg, "d"):
		if n, err := strconv.Atoi(strings.TrimSuffix(arg, "d")); err == nil {
			d = time.Duration(n) * 24 * time.Hour
		}
	default:
		if p, err := time.ParseDuration(arg); err == nil {
			d = p
		}
	}
	return max(int64(d/time.Second), 1)
}

func sqlValues(values []string) string {
	if len(values) == 0 {
		return AllValue
	}
	quoted := make([]string, len(values))
	for i, v := range values {
		switch v {
		case "All", "$__all", "__all__":
			return AllValue
		}
		quoted[i] = "'" + strings.ReplaceAll(v, "'", "''") + "'"
	}
	return strings.Join(quoted, ",")
}
