package console

import "testing"

func TestFormatFloat_ByGrafanaUnit(t *testing.T) {
	tests := []struct {
		name string
		v    float64
		unit string
		want string
	}{
		{name: "whole short", v: 1469, unit: "short", want: "1469"},
		{name: "fraction short", v: 8.5333, unit: "short", want: "8.53"},
		{name: "large fraction", v: 1234.567, unit: "", want: "1234.6"},
		{name: "small rate", v: 0.0016667, unit: "reqps", want: "0.00167 req/s"},
		{name: "ms", v: 2100, unit: "ms", want: "2100.0 ms"},
		{name: "percentunit", v: 0.3333, unit: "percentunit", want: "33.3 %"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := formatFloat(tt.v, tt.unit); got != tt.want {
				t.Errorf("formatFloat(%v, %q) = %q, want %q", tt.v, tt.unit, got, tt.want)
			}
		})
	}
}
