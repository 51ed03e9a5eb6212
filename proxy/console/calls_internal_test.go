package console

import (
	"testing"
	"time"
)

func TestCursor_RoundTripsToTheMicrosecond(t *testing.T) {
	c := cursor{start: time.Date(2026, 12, 6, 2, 30, 5, 123456789, time.UTC).Truncate(time.Microsecond),
		trace: "0123456789abcdef0123456789abcdef"}
	got, err := parseCursor(c.String())
	if err != nil || !got.start.Equal(c.start) || got.trace != c.trace {
		t.Fatalf("parseCursor(%q) = %+v, %v; want %+v", c.String(), got, err, c)
	}
}

func TestCallCells_FormattedForPeople(t *testing.T) {
	i := func(v int64) *int64 { return &v }
	f := func(v float64) *float64 { return &v }
	for _, tc := range []struct{ got, want string }{
		{countText(i(0)), "0"},
		{countText(i(999)), "999"},
		{countText(i(1000)), "1,000"},
		{countText(i(1234567)), "1,234,567"},
		{countText(i(-1234)), "-1,234"},
		{countText(nil), "–"},
		{msText(f(0.161109)), "0.16"},
		{msText(f(12.34)), "12.3"},
		{msText(f(2100.4)), "2,100"},
		{msText(nil), "–"},
		{csvText("=1+1"), "'=1+1"},
		{csvText("+x"), "'+x"},
		{csvText("-x"), "'-x"},
		{csvText("@x"), "'@x"},
		{csvText("gpt-4o"), "gpt-4o"},
		{callRow{HTTPStatus: 404}.StatusClass(), "s4xx"},
		{callRow{HTTPStatus: 502, Error: true}.StatusClass(), "s5xx"},
		{callRow{HTTPStatus: 200, Error: true}.StatusClass(), "err"},
		{callRow{HTTPStatus: 200, Error: true, ClientClosed: true}.StatusClass(), "closed"},
		{callRow{HTTPStatus: 200}.StatusText(), "200 OK"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}
