package spool

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// copyDir copies the regular files of src into a new temporary directory.
func copyDir(t testing.TB, src string) string {
	t.Helper()
	dst := t.TempDir()
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// closedSpool writes n records of size bytes (one commit each) and closes
// the spool; it returns the dir and the path of the segment holding them.
func closedSpool(t testing.TB, n int, size int, o Options) (string, string) {
	t.Helper()
	o.Dir = t.TempDir()
	s := open(t, o)
	for i := range uint64(n) {
		mustAppend(t, s, i, i+1, size)
		commit(t, s)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	segs := segFiles(t, o.Dir)
	return o.Dir, segs[len(segs)-1]
}

func TestRecovery_TornTailCutAtEveryOffsetOfTheLastRecord_ReturnsTheOnesBefore(t *testing.T) {
	const n, size = 5, 40
	dir, seg := closedSpool(t, n, size, Options{})
	fi, err := os.Stat(seg)
	if err != nil {
		t.Fatal(err)
	}
	full := fi.Size()
	lastStart := full - (frameHead + size)
	for cut := lastStart; cut < full; cut++ {
		d := copyDir(t, dir)
		if err := os.Truncate(filepath.Join(d, filepath.Base(seg)), cut); err != nil {
			t.Fatal(err)
		}
		s := open(t, Options{Dir: d})
		got := drain(t, s, false)
		st := s.Stats()
		s.Close()
		if len(got) != n-1 {
			t.Fatalf("file cut to %d bytes (last record starts at %d): got %d records, want %d", cut, lastStart, len(got), n-1)
		}
		wantSeqs(t, got, 0, n-1)
		if st.TornBytesCut != cut-lastStart {
			t.Fatalf("file cut to %d: TornBytesCut = %d, want %d", cut, st.TornBytesCut, cut-lastStart)
		}
		// The cut is durable: a second Open finds nothing more to cut.
		s = open(t, Options{Dir: d})
		if st := s.Stats(); st.TornBytesCut != 0 {
			t.Fatalf("second Open cut %d more bytes", st.TornBytesCut)
		}
		wantSeqs(t, drain(t, s, false), 0, n-1)
		s.Close()
	}
}

func TestRecovery_LastSegmentCutInsideItsHeader_RemovedAndEarlierSegmentsKept(t *testing.T) {
	dir, _ := closedSpool(t, 3, 40, Options{})
	// A crash right after creating the next segment: its header torn.
	torn := segPath(dir, 99)
	for cut := range headerSize {
		d := copyDir(t, dir)
		if err := os.WriteFile(filepath.Join(d, filepath.Base(torn)), segHeader(99)[:cut], 0o600); err != nil {
			t.Fatal(err)
		}
		s := open(t, Options{Dir: d})
		wantSeqs(t, drain(t, s, false), 0, 3)
		if st := s.Stats(); st.TornBytesCut != int64(cut) {
			t.Fatalf("header cut to %d: TornBytesCut = %d", cut, st.TornBytesCut)
		}
		s.Close()
		if _, err := os.Stat(filepath.Join(d, filepath.Base(torn))); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("header cut to %d: torn segment still there (%v)", cut, err)
		}
	}
}

func TestRecovery_ZerosOrGarbageAfterTheLastRecord_Cut(t *testing.T) {
	for _, tc := range []struct {
		name string
		tail []byte
	}{
		{"zeros (space allocated, never written)", make([]byte, 4096)},
		{"a length with no payload", []byte{0x10, 0, 0, 0}},
		{"a frame whose checksum fails", append([]byte{3, 0, 0, 0, 1, 2, 3, 4}, "abc"...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, seg := closedSpool(t, 4, 40, Options{})
			f, err := os.OpenFile(seg, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.Write(tc.tail)
			f.Close()
			s := open(t, Options{Dir: dir})
			defer s.Close()
			wantSeqs(t, drain(t, s, false), 0, 4)
			if st := s.Stats(); st.TornBytesCut != int64(len(tc.tail)) {
				t.Fatalf("TornBytesCut = %d, want %d", st.TornBytesCut, len(tc.tail))
			}
		})
	}
}

// flipBit flips one bit of the payload of the k-th record of a segment.
func flipBit(t testing.TB, seg string, k int) {
	t.Helper()
	b, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	off := headerSize
	for range k {
		n, _, ok := frameAt(b[off:])
		if !ok {
			t.Fatal("segment shorter than expected")
		}
		off += n
	}
	b[off+frameHead+5] ^= 0x10
	if err := os.WriteFile(seg, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestRecovery_BitFlipInAnEarlierSegment_SkipsRestOfThatSegmentOnly(t *testing.T) {
	dir := t.TempDir()
	s := open(t, Options{Dir: dir, SegmentBytes: 600})
	for i := range uint64(30) {
		mustAppend(t, s, i, i+1, 40) // 48-byte frames: 12 per 600-byte segment
		commit(t, s)
	}
	s.Close()
	segs := segFiles(t, dir)
	if len(segs) < 3 {
		t.Fatalf("want at least 3 segments, have %d", len(segs))
	}
	flipBit(t, segs[0], 3)
	s = open(t, Options{Dir: dir, SegmentBytes: 600})
	defer s.Close()
	got := drain(t, s, false)
	// segment 1 holds records 0..11: 0..2 survive, 3..11 are skipped.
	want := []uint64{0, 1, 2}
	for i := uint64(12); i < 30; i++ {
		want = append(want, i)
	}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
	if st := s.Stats(); st.CorruptBytes != 9*48 || st.TornBytesCut != 0 {
		t.Fatalf("CorruptBytes %d (want %d), TornBytesCut %d", st.CorruptBytes, 9*48, st.TornBytesCut)
	}
}

func TestRecovery_BitFlipInTheLastSegment_ChecksumCatchesIt(t *testing.T) {
	dir, seg := closedSpool(t, 6, 40, Options{})
	flipBit(t, seg, 4)
	s := open(t, Options{Dir: dir})
	defer s.Close()
	wantSeqs(t, drain(t, s, false), 0, 4)
	if st := s.Stats(); st.TornBytesCut != 2*48 {
		t.Fatalf("TornBytesCut = %d, want %d", st.TornBytesCut, 2*48)
	}
}

func TestRecovery_AckedBeforeCloseNeverReturnedAgain_EvenWithACursorSlotTorn(t *testing.T) {
	// One segment: a torn slot means the Ack writing it never returned, so
	// it never deleted a segment; with several segments this test would
	// build a state no crash can (a segment deleted under the older slot).
	dir := t.TempDir()
	s := open(t, Options{Dir: dir})
	mustAppend(t, s, 0, 100, 40)
	commit(t, s)
	var acked []int // records acked after each Ack
	n := 0
	for range 3 {
		b, err := s.Read(context.Background(), 1<<20, 10)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Ack(b); err != nil {
			t.Fatal(err)
		}
		n += len(b.Records)
		acked = append(acked, n)
	}
	s.Close()
	// Tear the slot written last (generation 3: slot 1): the one before
	// (the second Ack) must be used, so what the third acked comes back.
	cpath := filepath.Join(dir, "cursor")
	b, _ := os.ReadFile(cpath)
	b[slotSize+10] ^= 0xff
	os.WriteFile(cpath, b, 0o600)
	s = open(t, Options{Dir: dir})
	wantSeqs(t, drain(t, s, false), uint64(acked[1]), 100)
	s.Close()

	// Both slots intact: from the last Ack.
	d := t.TempDir()
	s = open(t, Options{Dir: d})
	mustAppend(t, s, 0, 100, 40)
	commit(t, s)
	n = 0
	for range 3 {
		b, _ := s.Read(context.Background(), 1<<20, 10)
		s.Ack(b)
		n += len(b.Records)
	}
	s.Close()
	s = open(t, Options{Dir: d})
	defer s.Close()
	wantSeqs(t, drain(t, s, false), uint64(n), 100)
}

func TestSpool_CommitFailsOnAFullDisk_RecordsKeptRetriedAndCounted(t *testing.T) {
	for _, tc := range []struct {
		name string
		arm  func(f *faults)
	}{
		{"write fails midway", func(f *faults) { f.writes.Store(3) }},
		{"fdatasync fails", func(f *faults) { f.syncs.Store(3) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			f := &faults{err: syscall.ENOSPC}
			s := open(t, Options{Dir: dir, CommitInterval: time.Millisecond, SegmentBytes: 2048, faults: f})
			mustAppend(t, s, 0, 20, 40)
			commit(t, s)
			tc.arm(f)
			mustAppend(t, s, 20, 40, 40)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := s.Commit(ctx)
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("Commit on a full disk = %v, want ENOSPC", err)
			}
			mustAppend(t, s, 40, 60, 40) // appends keep going meanwhile
			// The committer retries on its own; Commit then succeeds.
			for {
				if err := s.Commit(ctx); err == nil {
					break
				} else if !errors.Is(err, syscall.ENOSPC) {
					t.Fatal(err)
				}
			}
			st := s.Stats()
			if st.CommitErrors != 3 || st.Committed != 60 || st.Dropped != 0 {
				t.Fatalf("stats %+v: want 3 commit errors, 60 committed, none dropped", st)
			}
			wantSeqs(t, drain(t, s, false), 0, 60)
			s.Close()
			// And on disk: exactly once each, nothing torn left behind.
			s = open(t, Options{Dir: dir})
			defer s.Close()
			wantSeqs(t, drain(t, s, false), 0, 60)
			if st := s.Stats(); st.TornBytesCut != 0 || st.CorruptBytes != 0 {
				t.Fatalf("after reopen: %+v", st)
			}
		})
	}
}

func TestSpool_CloseCannotCommit_ReportsAndCountsTheDroppedRecords(t *testing.T) {
	f := &faults{err: syscall.EIO}
	s := open(t, Options{Dir: t.TempDir(), CommitInterval: time.Hour, faults: f})
	mustAppend(t, s, 0, 7, 40)
	f.syncs.Store(1 << 20)
	if err := s.Close(); err == nil || !errors.Is(err, syscall.EIO) {
		t.Fatalf("Close with a failing disk = %v, want an error wrapping EIO", err)
	}
	if st := s.Stats(); st.Dropped != 7 {
		t.Fatalf("Dropped = %d, want 7", st.Dropped)
	}
}

func TestRecovery_LastSegmentHeaderDamaged_KeptAndSkippedNotDeleted(t *testing.T) {
	dir, seg := closedSpool(t, 3, 40, Options{})
	b, _ := os.ReadFile(seg)
	b[1] ^= 0xff
	os.WriteFile(seg, b, 0o600)
	s := open(t, Options{Dir: dir})
	defer s.Close()
	if got := drain(t, s, false); len(got) != 0 {
		t.Fatalf("read %v from a segment with a damaged header", got)
	}
	st := s.Stats()
	if st.TornBytesCut != 0 || st.CorruptBytes != int64(len(b)-headerSize) {
		t.Fatalf("TornBytesCut %d (want 0), CorruptBytes %d (want %d)", st.TornBytesCut, st.CorruptBytes, len(b)-headerSize)
	}
	if _, err := os.Stat(seg); err != nil {
		t.Fatalf("damaged segment deleted: %v", err)
	}
}
