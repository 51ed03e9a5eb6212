package spool

import (
	"context"
	"encoding/binary"
	"hash/crc32"
	"os"
	"testing"
)

// refRecords is an independent reading of a segment's contents: the payloads
// of the whole, checksummed frames after a valid header, up to the first one
// that is not, and the end of that valid prefix.
func refRecords(b []byte, id uint64) (recs [][]byte, end int) {
	if len(b) < 16 || string(b[:4]) != "LSPL" || binary.LittleEndian.Uint32(b[4:8]) != 1 || binary.LittleEndian.Uint64(b[8:16]) != id {
		return nil, 0
	}
	tab := crc32.MakeTable(crc32.Castagnoli)
	off := 16
	for len(b)-off >= 8 {
		n := int(binary.LittleEndian.Uint32(b[off:]))
		if n == 0 || n > len(b)-off-8 {
			break
		}
		if crc32.Checksum(b[off+8:off+8+n], tab) != binary.LittleEndian.Uint32(b[off+4:]) {
			break
		}
		recs = append(recs, b[off+8:off+8+n])
		off += 8 + n
	}
	return recs, off
}

// readNow reads every record available without waiting.
func readNow(t *testing.T, s *Spool) [][]byte {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out [][]byte
	for {
		b, err := s.Read(ctx, 1<<20, 1000)
		if err != nil {
			return out
		}
		for _, r := range b.Records {
			out = append(out, append([]byte(nil), r...))
		}
	}
}

// fastDir is a temporary directory on tmpfs where there is one: fsync is
// free there, and the fuzz target checks parsing, not durability.
func fastDir(t testing.TB) string {
	t.Helper()
	if fi, err := os.Stat("/dev/shm"); err != nil || !fi.IsDir() {
		return t.TempDir()
	}
	d, err := os.MkdirTemp("/dev/shm", "spoolfuzz")
	if err != nil {
		return t.TempDir()
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func sameRecords(t *testing.T, what string, got, want [][]byte) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d records, want %d", what, len(got), len(want))
	}
	for i := range got {
		if string(got[i]) != string(want[i]) {
			t.Fatalf("%s: record %d = %q, want %q", what, i, got[i], want[i])
		}
	}
}

// FuzzOpen writes arbitrary bytes as segment 1, once as the last segment
// (where recovery cuts a torn tail) and once followed by a valid segment
// (where Read skips corruption), and checks that Open never fails or panics
// and that Read returns exactly the records whose checksums match.
func FuzzOpen(f *testing.F) {
	// The seed corpus is in testdata/fuzz/FuzzOpen: valid, torn at each
	// kind of place, zero-filled, bit-flipped, a header of another segment.
	f.Fuzz(func(t *testing.T, data []byte) {
		want, end := refRecords(data, 1)

		// As the last segment: recovery cuts what follows the valid prefix.
		dir := fastDir(t)
		if err := os.WriteFile(segPath(dir, 1), data, 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := Open(Options{Dir: dir, Logger: quiet()})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		sameRecords(t, "last segment", readNow(t, s), want)
		wantCut := int64(len(data) - end)
		if end == 0 && len(data) > headerSize {
			wantCut = 0 // a damaged header: kept and skipped, not cut
		}
		if st := s.Stats(); st.TornBytesCut != wantCut {
			t.Fatalf("TornBytesCut = %d, want %d", st.TornBytesCut, wantCut)
		}
		s.Close()

		// As an earlier segment, followed by a good one.
		dir = fastDir(t)
		good := appendFrame(appendFrame(segHeader(2), []byte("after-1")), []byte("after-2"))
		os.WriteFile(segPath(dir, 1), data, 0o600)
		os.WriteFile(segPath(dir, 2), good, 0o600)
		s, err = Open(Options{Dir: dir, Logger: quiet()})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		defer s.Close()
		sameRecords(t, "earlier segment", readNow(t, s), append(want, []byte("after-1"), []byte("after-2")))
	})
}
