package limit

import (
	"context"
	"testing"
	"time"

	"github.com/loom-gateway/loom/deploy/redisserver/redistest"
)

// BenchmarkAdmit measures one call's limit work: Admit, then Settle with
// the real usage. Limits are high enough never to refuse.
func BenchmarkAdmit(b *testing.B) {
	ctx := context.Background()
	all := Rule{RPM: 1 << 50, TPM: 1 << 50, Streams: 1 << 50}
	run := func(l *Limiter, key, tenant *Subject, stream bool) func(*testing.B) {
		return func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				ticket, d := l.Admit(ctx, key, tenant, 500, stream)
				if !d.OK || d.Err != nil {
					b.Fatalf("%+v", d)
				}
				l.Settle(ctx, ticket, 321)
			}
		}
	}
	key, tenant := &Subject{ID: "k:1", Rule: all}, &Subject{ID: "t:1", Rule: all}
	bare := &Subject{ID: "k:0"}

	mem := New(NewMemory(), nil)
	b.Run("memory/no-limits", run(mem, bare, bare, true))
	b.Run("memory/all-limits", run(mem, key, tenant, false))
	b.Run("memory/all-limits-stream", run(mem, key, tenant, true))
	b.Run("memory/all-limits-stream-parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				ticket, _ := mem.Admit(ctx, key, tenant, 500, true)
				mem.Settle(ctx, ticket, 321)
			}
		})
	})

	b.Run("redis", func(b *testing.B) {
		c := redisClient(b, redistest.Start(b))
		l := New(newTestRedis(b, c, slotLease), nil)
		b.Run("all-limits", run(l, key, tenant, false))
		b.Run("all-limits-stream", run(l, key, tenant, true))
	})
}

func BenchmarkAppendReset(b *testing.B) {
	b.ReportAllocs()
	buf := make([]byte, 0, 32)
	for b.Loop() {
		buf = AppendReset(buf[:0], 86400*time.Millisecond)
	}
}
