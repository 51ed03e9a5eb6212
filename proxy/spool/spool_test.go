package spool

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func open(t testing.TB, o Options) *Spool {
	t.Helper()
	if o.Logger == nil {
		o.Logger = quiet()
	}
	s, err := Open(o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

// rec is a self-describing test record: its sequence number, then filler.
func rec(seq uint64, size int) []byte {
	b := make([]byte, max(size, 8))
	binary.LittleEndian.PutUint64(b, seq)
	for i := 8; i < len(b); i++ {
		b[i] = byte(seq) ^ byte(i)
	}
	return b
}

func seqOf(t testing.TB, b []byte) uint64 {
	t.Helper()
	if len(b) < 8 {
		t.Fatalf("record of %d bytes", len(b))
	}
	seq := binary.LittleEndian.Uint64(b)
	if !bytes.Equal(b, rec(seq, len(b))) {
		t.Fatalf("record %d has the wrong contents", seq)
	}
	return seq
}

func mustAppend(t testing.TB, s *Spool, from, to uint64, size int) {
	t.Helper()
	for i := from; i < to; i++ {
		if err := s.Append(rec(i, size)); err != nil {
			t.Fatalf("Append %d: %v", i, err)
		}
	}
}

func commit(t testing.TB, s *Spool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Commit(ctx); err != nil {
		t.Fatalf("Commit: %v", err)
	}
}

// drain reads every committed record without acking, until a Read would
// block, and returns their sequence numbers.
func drain(t testing.TB, s *Spool, ack bool) []uint64 {
	t.Helper()
	var seqs []uint64
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		b, err := s.Read(ctx, 1<<16, 100)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			return seqs
		}
		if err != nil {
			t.Fatalf("Read: %v", err)
		}
		if len(b.Records) == 0 {
			t.Fatal("Read returned an empty batch")
		}
		for _, r := range b.Records {
			seqs = append(seqs, seqOf(t, r))
		}
		if ack {
			if err := s.Ack(b); err != nil {
				t.Fatalf("Ack: %v", err)
			}
		}
	}
}

func wantSeqs(t testing.TB, got []uint64, from, to uint64) {
	t.Helper()
	if uint64(len(got)) != to-from {
		t.Fatalf("got %d records, want %d (%d..%d); first %v", len(got), to-from, from, to-1, got[:min(len(got), 5)])
	}
	for i, g := range got {
		if g != from+uint64(i) {
			t.Fatalf("record %d is seq %d, want %d", i, g, from+uint64(i))
		}
	}
}

func segFiles(t testing.TB, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*.seg"))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(m)
	return m
}

func TestSpool_RoundTrip_ReturnsRecordsInOrder(t *testing.T) {
	s := open(t, Options{Dir: t.TempDir()})
	defer s.Close()
	mustAppend(t, s, 0, 1000, 100)
	commit(t, s)
	wantSeqs(t, drain(t, s, true), 0, 1000)
	st := s.Stats()
	if st.Appended != 1000 || st.Committed != 1000 || st.Acked != 1000 || st.PendingRecords != 0 {
		t.Fatalf("stats %+v", st)
	}
	if st.DiskBytes != 0 {
		t.Fatalf("DiskBytes after acking everything = %d, want 0", st.DiskBytes)
	}
}

func TestSpool_ReadBlocksUntilCommitted_NeverSeesUncommitted(t *testing.T) {
	s := open(t, Options{Dir: t.TempDir(), CommitInterval: time.Hour})
	defer s.Close()
	mustAppend(t, s, 0, 3, 10)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	_, err := s.Read(ctx, 1<<20, 10)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Read before any commit = %v, want it to block until the deadline", err)
	}
	got := make(chan []uint64)
	go func() {
		b, err := s.Read(context.Background(), 1<<20, 10)
		if err != nil {
			got <- nil
			return
		}
		var seqs []uint64
		for _, r := range b.Records {
			seqs = append(seqs, binary.LittleEndian.Uint64(r))
		}
		got <- seqs
	}()
	commit(t, s)
	wantSeqs(t, <-got, 0, 3)
}

func TestSpool_Read_RespectsLimitsButAlwaysReturnsOneRecord(t *testing.T) {
	s := open(t, Options{Dir: t.TempDir()})
	defer s.Close()
	s.Append(rec(0, 5000))
	mustAppend(t, s, 1, 11, 100)
	commit(t, s)
	ctx := context.Background()
	b, err := s.Read(ctx, 1000, 100)
	if err != nil || len(b.Records) != 1 || len(b.Records[0]) != 5000 {
		t.Fatalf("Read(maxBytes 1000) of a 5000-byte record = %d records, %v; want that one record", len(b.Records), err)
	}
	b, err = s.Read(ctx, 250, 100)
	if err != nil || len(b.Records) != 2 {
		t.Fatalf("Read(maxBytes 250) of 100-byte records = %d records, %v; want 2", len(b.Records), err)
	}
	b, err = s.Read(ctx, 1<<20, 3)
	if err != nil || len(b.Records) != 3 {
		t.Fatalf("Read(maxRecords 3) = %d records, %v; want 3", len(b.Records), err)
	}
}

func TestSpool_ReopenAfterClose_ReturnsExactlyTheUnackedRecordsInOrder(t *testing.T) {
	dir := t.TempDir()
	s := open(t, Options{Dir: dir, SegmentBytes: 4096})
	mustAppend(t, s, 0, 500, 50)
	commit(t, s)
	// Ack the first 120 records in batches that are not segment-aligned.
	acked := 0
	for acked < 120 {
		b, err := s.Read(context.Background(), 1<<20, 40)
		if err != nil {
			t.Fatal(err)
		}
		acked += len(b.Records)
		if err := s.Ack(b); err != nil {
			t.Fatal(err)
		}
	}
	// Read further without acking: those must come back after reopen.
	if _, err := s.Read(context.Background(), 1<<20, 40); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, s, 500, 600, 50) // left pending: Close commits them
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	s = open(t, Options{Dir: dir, SegmentBytes: 4096})
	defer s.Close()
	wantSeqs(t, drain(t, s, false), uint64(acked), 600)
}

func TestSpool_ManyAppendersWithConcurrentReadAndAck_LoseNothingDuplicateNothing(t *testing.T) {
	dir := t.TempDir()
	s := open(t, Options{Dir: dir, SegmentBytes: 64 << 10, CommitInterval: time.Millisecond})
	const writers, per = 8, 2000
	seen := make([]bool, writers*per)
	var rerr error
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		n := 0
		for n < writers*per {
			b, err := s.Read(context.Background(), 32<<10, 500)
			if err != nil {
				rerr = err
				return
			}
			for _, r := range b.Records {
				seq := binary.LittleEndian.Uint64(r)
				if !bytes.Equal(r, rec(seq, len(r))) || seq >= uint64(len(seen)) || seen[seq] {
					rerr = fmt.Errorf("bad or duplicate record %d", seq)
					return
				}
				seen[seq] = true
				n++
			}
			if err := s.Ack(b); err != nil {
				rerr = err
				return
			}
		}
	}()
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range per {
				seq := uint64(w*per + i)
				for {
					err := s.Append(rec(seq, 64+int(seq%200)))
					if err == nil {
						break
					}
					if !errors.Is(err, ErrFull) {
						t.Errorf("Append: %v", err)
						return
					}
					time.Sleep(time.Millisecond)
				}
			}
		})
	}
	wg.Wait()
	select {
	case <-readDone:
	case <-time.After(30 * time.Second):
		t.Fatal("reader did not see every record")
	}
	if rerr != nil {
		t.Fatal(rerr)
	}
	st := s.Stats()
	if st.Acked != writers*per || st.Segments > 2 {
		t.Fatalf("after acking all: %+v (want all acked, old segments deleted)", st)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if n := len(segFiles(t, dir)); n > 2 {
		t.Fatalf("%d segment files left after acking everything", n)
	}
}

func TestSpool_AckDeletesSegmentsWhollyBeforeTheCursor(t *testing.T) {
	dir := t.TempDir()
	s := open(t, Options{Dir: dir, SegmentBytes: 1024})
	defer s.Close()
	for i := range uint64(20) {
		mustAppend(t, s, i*10, i*10+10, 40) // ~480 bytes a commit: a new segment every two
		commit(t, s)
	}
	before := len(segFiles(t, dir))
	if before < 8 {
		t.Fatalf("only %d segments for 20 commits of ~480 bytes at 1024 per segment", before)
	}
	wantSeqs(t, drain(t, s, true), 0, 200)
	if after := segFiles(t, dir); len(after) != 1 {
		t.Fatalf("segments after acking everything: %v, want only the active one", after)
	}
	if st := s.Stats(); st.Segments != 1 || st.DiskBytes != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestSpool_InstanceID_StableAcrossReopenDistinctAcrossDirs(t *testing.T) {
	dir := t.TempDir()
	s := open(t, Options{Dir: dir})
	id := s.InstanceID()
	s.Close()
	if !validInstance(id) {
		t.Fatalf("instance id %q is not 16 hex digits", id)
	}
	s = open(t, Options{Dir: dir})
	if s.InstanceID() != id {
		t.Fatalf("instance id changed across reopen: %q then %q", id, s.InstanceID())
	}
	s.Close()
	o := open(t, Options{Dir: t.TempDir()})
	defer o.Close()
	if o.InstanceID() == id {
		t.Fatalf("two directories share instance id %q", id)
	}
}

func TestSpool_InstanceFileGarbled_OpenRefusesRatherThanChangeIdentity(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, instanceFile), []byte("nope"), 0o600)
	if _, err := Open(Options{Dir: dir, Logger: quiet()}); err == nil {
		t.Fatal("Open accepted a garbled instance file")
	}
}

func TestSpool_SecondOpenOfSameDir_RefusedNamingTheDir(t *testing.T) {
	dir := t.TempDir()
	s := open(t, Options{Dir: dir})
	_, err := Open(Options{Dir: dir, Logger: quiet()})
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), dir) {
		t.Fatalf("second Open = %v, want ErrLocked naming %s", err, dir)
	}
	s.Close()
	s = open(t, Options{Dir: dir}) // released by Close
	s.Close()
}

func TestSpool_Bounds_AppendRefusesRatherThanGrow(t *testing.T) {
	// The disk stalls in fdatasync, so that the early commit at half a
	// bound cannot free room while the test fills the rest: records in a
	// commit still in flight count against the bounds.
	t.Run("pending records", func(t *testing.T) {
		stall := make(chan struct{})
		s := open(t, Options{Dir: t.TempDir(), CommitInterval: time.Hour, PendingRecords: 10, faults: &faults{stall: stall}})
		defer s.Close()
		mustAppend(t, s, 0, 10, 10)
		if err := s.Append(rec(10, 10)); !errors.Is(err, ErrFull) {
			t.Fatalf("11th Append with PendingRecords 10 = %v, want ErrFull", err)
		}
		close(stall)
		commit(t, s)
		if err := s.Append(rec(10, 10)); err != nil {
			t.Fatalf("Append after the commit freed room = %v", err)
		}
	})
	t.Run("pending bytes", func(t *testing.T) {
		stall := make(chan struct{})
		s := open(t, Options{Dir: t.TempDir(), CommitInterval: time.Hour, PendingBytes: 1000, faults: &faults{stall: stall}})
		defer s.Close()
		defer close(stall)
		mustAppend(t, s, 0, 9, 100) // 9 × 108 = 972
		if err := s.Append(rec(9, 100)); !errors.Is(err, ErrFull) {
			t.Fatalf("Append past PendingBytes = %v, want ErrFull", err)
		}
		if err := s.Append(rec(9, 2000)); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("Append of a record bigger than PendingBytes = %v, want ErrTooLarge", err)
		}
		if st := s.Stats(); st.Full != 1 || st.PendingBytes != 972 || st.Appended != 9 {
			t.Fatalf("stats %+v", st)
		}
	})
	t.Run("max bytes on disk plus pending", func(t *testing.T) {
		dir := t.TempDir()
		s := open(t, Options{Dir: dir, MaxBytes: 10_000, SegmentBytes: 4096})
		full := 0
		for i := range uint64(200) {
			if err := s.Append(rec(i, 100)); errors.Is(err, ErrFull) {
				full++
			} else if err != nil {
				t.Fatal(err)
			}
			if st := s.Stats(); st.DiskBytes+st.PendingBytes > 10_000 {
				t.Fatalf("disk %d + pending %d > MaxBytes", st.DiskBytes, st.PendingBytes)
			}
		}
		commit(t, s)
		if full == 0 {
			t.Fatal("200 × 108 bytes fit in MaxBytes 10000")
		}
		if size := dirSegBytes(t, dir); size > 10_000 {
			t.Fatalf("segments take %d bytes on disk, MaxBytes 10000", size)
		}
		// Acking frees the room.
		n := len(drain(t, s, true))
		if err := s.Append(rec(1000, 100)); err != nil {
			t.Fatalf("Append after acking %d records = %v", n, err)
		}
		s.Close()
	})
}

func dirSegBytes(t testing.TB, dir string) int64 {
	var n int64
	for _, f := range segFiles(t, dir) {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		n += fi.Size()
	}
	return n
}

func TestSpool_AfterClose_AppendAndReadReturnErrClosed(t *testing.T) {
	s := open(t, Options{Dir: t.TempDir()})
	readErr := make(chan error)
	go func() {
		_, err := s.Read(context.Background(), 100, 1)
		readErr <- err
	}()
	s.Close()
	if err := <-readErr; !errors.Is(err, ErrClosed) {
		t.Fatalf("blocked Read after Close = %v", err)
	}
	if err := s.Append([]byte("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Close = %v", err)
	}
	if err := s.Close(); !errors.Is(err, ErrClosed) {
		t.Fatalf("second Close = %v", err)
	}
}

func TestSpool_AppendSteadyState_ZeroAllocations(t *testing.T) {
	// No background commit during the measurement: a commit that gathers
	// more than either buffer has held would grow it, which is warm-up,
	// not steady state.
	s := open(t, Options{Dir: t.TempDir(), CommitInterval: time.Hour})
	defer s.Close()
	r := rec(1, 512)
	for range 5000 { // let both buffers grow to their working size
		s.Append(r)
	}
	commit(t, s)
	for range 5000 {
		s.Append(r)
	}
	commit(t, s)
	allocs := testing.AllocsPerRun(2000, func() {
		if err := s.Append(r); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("Append allocates %.2f times per call, want 0", allocs)
	}
}

func TestSpool_Available_ShrinksWithAppendsGrowsWithAcks(t *testing.T) {
	s := open(t, Options{Dir: t.TempDir(), MaxBytes: 10_000, PendingRecords: 100})
	defer s.Close()
	b0, r0 := s.Available()
	mustAppend(t, s, 0, 10, 92) // 100 framed bytes each
	commit(t, s)
	b1, r1 := s.Available()
	if b0-b1 < 1000 || r1 != r0 {
		t.Fatalf("Available %d,%d then %d,%d after 1000 committed bytes", b0, r0, b1, r1)
	}
	drain(t, s, true)
	if b2, _ := s.Available(); b2 <= b1 {
		t.Fatalf("Available did not grow after acking: %d then %d", b1, b2)
	}
}

func TestSpool_CommitWithCanceledContext_ReturnsItsError(t *testing.T) {
	f := &faults{err: errors.New("disk gone")}
	s := open(t, Options{Dir: t.TempDir(), faults: f})
	defer s.Close()
	f.syncs.Store(1 << 20)
	s.Append([]byte("x"))
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	for {
		err := s.Commit(ctx)
		if errors.Is(err, context.DeadlineExceeded) {
			break
		}
		if err == nil {
			t.Fatal("Commit succeeded on a disk that fails every sync")
		}
	}
	f.syncs.Store(0)
	// An attempt that drew its failure before the reset may still report
	// it; the next one succeeds.
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := s.Commit(ctx)
		cancel()
		if err == nil {
			break
		}
		if errors.Is(err, context.DeadlineExceeded) {
			t.Fatal("Commit never succeeded after the disk recovered")
		}
	}
}

func TestSpool_DiskStallsInFdatasync_AppendStillReturnsAtOnce(t *testing.T) {
	stall := make(chan struct{})
	s := open(t, Options{Dir: t.TempDir(), faults: &faults{stall: stall}})
	defer s.Close()
	s.Append(rec(0, 100)) // the committer takes it and hangs in fdatasync
	for !committerBusy(s) {
		time.Sleep(time.Millisecond)
	}
	done := make(chan error, 1)
	go func() {
		for i := uint64(1); i <= 1000; i++ {
			if err := s.Append(rec(i, 100)); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Append while the disk stalls: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Append waited for a stalled fdatasync")
	}
	close(stall)
	commit(t, s)
	wantSeqs(t, drain(t, s, false), 0, 1001)
}

// committerBusy reports whether a commit has taken the pending records (they
// are in flight: counted in memory, no longer in the pending chunks).
func committerBusy(s *Spool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.memRecs > 0 && len(s.pend) == 0
}

func TestSpool_ReadSteadyState_ZeroAllocations(t *testing.T) {
	s := open(t, Options{Dir: t.TempDir()})
	defer s.Close()
	mustAppend(t, s, 0, 3000, 200)
	commit(t, s)
	ctx := context.Background()
	s.Read(ctx, 4096, 10) // sizes the reader's buffers
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := s.Read(ctx, 4096, 10); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("Read allocates %.2f times per batch, want 0", allocs)
	}
}

func TestSpool_HalfAPendingBoundReached_CommitsWithoutWaitingOutTheWindow(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    Options
		n    uint64
	}{
		{"records", Options{PendingRecords: 10}, 5},
		{"bytes", Options{PendingBytes: 1000}, 5}, // 5 × 108 ≥ 500
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.o.Dir, tc.o.CommitInterval = t.TempDir(), time.Hour
			s := open(t, tc.o)
			defer s.Close()
			mustAppend(t, s, 0, tc.n, 100)
			deadline := time.Now().Add(10 * time.Second)
			for s.Stats().Committed < tc.n {
				if time.Now().After(deadline) {
					t.Fatalf("half the pending bound reached, still nothing committed: %+v", s.Stats())
				}
				time.Sleep(time.Millisecond)
			}
		})
	}
}
