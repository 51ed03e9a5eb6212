package console

import (
	"testing"
	"time"
)

func TestVerify_SignedExpiredForeignOrOldShape(t *testing.T) {
	key, other := []byte("k1-0123456789abcdef"), []byte("k2-0123456789abcdef")
	now := time.Now()
	tests := []struct {
		name   string
		value  string
		want   session
		wantOK bool
	}{
		{name: "tenant", value: sign(key, tenantSubject("acme", "k1"), now.Add(time.Hour)), want: session{tenant: "acme", key: "k1"}, wantOK: true},
		{name: "admin", value: sign(key, "a:fp", now.Add(time.Hour)), want: session{admin: true, fingerprint: "fp"}, wantOK: true},
		{name: "expired", value: sign(key, tenantSubject("acme", "k1"), now.Add(-time.Second))},
		{name: "another process's key", value: sign(other, tenantSubject("acme", "k1"), now.Add(time.Hour))},
		{name: "empty tenant", value: sign(key, tenantSubject("", "k1"), now.Add(time.Hour))},
		{name: "tenant without a key id (made before sessions named keys)", value: sign(key, "t:acme", now.Add(time.Hour))},
		{name: "admin without a token fingerprint", value: sign(key, "admin", now.Add(time.Hour))},
		{name: "unknown subject", value: sign(key, "acme", now.Add(time.Hour))},
		{name: "garbage", value: "not-a-cookie"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := verify(key, tt.value, now)
			if ok != tt.wantOK || got != tt.want {
				t.Errorf("verify = %+v, %v; want %+v, %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}
