package console

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// callRow is one line of the calls table.
type callRow struct {
	TraceID, Tenant, KeyID, Model, Status string
	Start                                 time.Time
	Stream, Error                         bool
	HTTPStatus                            int
	TokensIn, TokensOut                   *int64
	Duration, TTFC                        *float64
	// Cost is loom.cost as stored (numeric, exact, as text) with its
	// currency; nil when the call had no price.
	Cost, Currency *string
}

type callsData struct {
	Rows                          []callRow
	Model, Status, Stream, Tenant string
	Page                          int
	PrevURL, NextURL              string
}

const pageSize = 50

func (h *handler) calls(w http.ResponseWriter, r *http.Request, s session) {
	q := r.URL.Query()
	f, err := parseCallFilter(q, s)
	if err != nil {
		h.fail(w, &s, http.StatusBadRequest, strings.TrimPrefix(err.Error(), errBadFilter.Error()+": "))
		return
	}
	d := callsData{Model: f.Model, Status: f.Status, Stream: f.Stream, Tenant: f.Tenant}
	d.Page, _ = strconv.Atoi(q.Get("page"))
	d.Page = max(d.Page, 0)
	sql := callsSelect
	var args []any
	arg := func(v any) string { args = append(args, v); return "$" + strconv.Itoa(len(args)) }
	sql += f.where(time.Now(), arg)
	sql += " ORDER BY s.start_time DESC, s.trace_id DESC LIMIT " + arg(pageSize+1) + " OFFSET " + arg(d.Page*pageSize)
	err = h.read(r.Context(), s, func(tx pgx.Tx) error {
		rows, err := tx.Query(r.Context(), sql, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var c callRow
			if err := rows.Scan(&c.TraceID, &c.Start, &c.Tenant, &c.KeyID, &c.Model, &c.Stream, &c.Status,
				&c.HTTPStatus, &c.Error, &c.TokensIn, &c.TokensOut, &c.Duration, &c.TTFC, &c.Cost, &c.Currency); err != nil {
				return err
			}
			d.Rows = append(d.Rows, c)
		}
		return rows.Err()
	})
	if err != nil {
		h.log.Error("console: calls", "error", err)
		h.fail(w, &s, http.StatusInternalServerError, "The calls could not be read.")
		return
	}
	link := func(p int) string {
		v := f.values()
		if p > 0 {
			v.Set("page", strconv.Itoa(p))
		}
		return "/console/calls?" + v.Encode()
	}
	if len(d.Rows) > pageSize {
		d.Rows = d.Rows[:pageSize]
		d.NextURL = link(d.Page + 1)
	}
	if d.Page > 0 {
		d.PrevURL = link(d.Page - 1)
	}
	h.render(w, http.StatusOK, "calls", page{Title: "Calls", Session: &s, Data: d})
}
