package prereq

import "testing"

func TestFailOnMissing(t *testing.T) {
	tests := []struct {
		name, ci string
		want     bool
	}{
		{"not CI: skip", "", false},
		{"CI=true: fail", "true", true},
		{"CI=1: fail", "1", true},
		{"CI=false: skip", "false", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			getenv := func(k string) string {
				if k == "CI" {
					return tt.ci
				}
				return ""
			}
			if got := FailOnMissing(getenv); got != tt.want {
				t.Errorf("FailOnMissing(CI=%q) = %v, want %v", tt.ci, got, tt.want)
			}
		})
	}
}
