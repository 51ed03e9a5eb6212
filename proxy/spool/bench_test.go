package spool

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// BenchmarkAppend measures the request path's own cost: the CRC-32C and
// the copy into the pending chunks under the mutex. Every 8 MiB the timer
// stops for a commit and a read-and-ack, so neither the disk nor a full
// spool is in the number (BenchmarkAppendParallel and BenchmarkSustained
// have them).
func BenchmarkAppend(b *testing.B) {
	for _, size := range []int{256, 1024, 4096} {
		b.Run(fmt.Sprintf("bytes=%d", size), func(b *testing.B) {
			s := open(b, Options{Dir: b.TempDir(), CommitInterval: time.Hour, MaxBytes: 1 << 40})
			defer s.Close()
			r := rec(1, size)
			flushEvery := (8 << 20) / (size + frameHead)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if err := s.Append(r); err != nil {
					b.Fatal(err)
				}
				if i++; i%flushEvery == 0 {
					b.StopTimer()
					commitAndAck(b, s)
					b.StartTimer()
				}
			}
		})
	}
}

func commitAndAck(b *testing.B, s *Spool) {
	if err := s.Commit(context.Background()); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for {
		bt, err := s.Read(ctx, 64<<20, 1<<20)
		if err != nil {
			return
		}
		s.Ack(bt)
	}
}

// BenchmarkAppendParallel appends 1 KiB records from GOMAXPROCS goroutines
// while the committer (1 ms window) and a reader that acks run, on tmpfs:
// contention on the mutex with everything else live but the disk. The
// appenders outrun the committer, so many appends are refused (full/op):
// a refused Append costs the same lock and the checks.
func BenchmarkAppendParallel(b *testing.B) {
	s := open(b, Options{Dir: fastDir(b), CommitInterval: time.Millisecond, MaxBytes: 1 << 40})
	defer s.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for {
			bt, err := s.Read(ctx, 4<<20, 1<<16)
			if err != nil {
				return
			}
			s.Ack(bt)
		}
	}()
	r := rec(1, 1024)
	b.SetBytes(int64(len(r)))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			s.Append(r)
		}
	})
	b.ReportMetric(float64(s.Stats().Full)/float64(b.N), "full/op")
}

// BenchmarkSustained appends 1 KiB records from parallel goroutines while
// the committer writes and fdatasyncs every 5 ms and a reader acks: the
// throughput the disk path sustains. Refused appends are reported.
func BenchmarkSustained(b *testing.B) {
	s := open(b, Options{Dir: b.TempDir(), CommitInterval: 5 * time.Millisecond, MaxBytes: 1 << 40})
	defer s.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for {
			bt, err := s.Read(ctx, 4<<20, 1<<16)
			if err != nil {
				return
			}
			s.Ack(bt)
		}
	}()
	r := rec(1, 1024)
	b.SetBytes(int64(len(r)))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			s.Append(r)
		}
	})
	if err := s.Commit(context.Background()); err != nil {
		b.Fatal(err)
	}
	st := s.Stats()
	b.ReportMetric(float64(st.Committed)/b.Elapsed().Seconds(), "committed/s")
	b.ReportMetric(float64(st.Full)/float64(b.N), "full/op")
	if st.Commits > 0 {
		b.ReportMetric(float64(st.Committed)/float64(st.Commits), "records/commit")
	}
}

// BenchmarkCommit measures commit throughput with fdatasync: each op appends
// a batch of records and commits it (one write and one fdatasync).
func BenchmarkCommit(b *testing.B) {
	for _, batch := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("records=%d", batch), func(b *testing.B) {
			s := open(b, Options{Dir: b.TempDir(), CommitInterval: time.Hour, MaxBytes: 1 << 40})
			defer s.Close()
			r := rec(1, 1024)
			ctx := context.Background()
			b.SetBytes(int64(batch * len(r)))
			b.ReportAllocs()
			for b.Loop() {
				for range batch {
					if err := s.Append(r); err != nil {
						b.Fatal(err)
					}
				}
				if err := s.Commit(ctx); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "records/s")
			b.ReportMetric(float64(s.Stats().LastCommit.Microseconds()), "µs/last-commit")
		})
	}
}
