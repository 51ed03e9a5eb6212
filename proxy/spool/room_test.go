package spool

import (
	"errors"
	"testing"
	"time"
)

func TestRoom_SaysWhatAppendWouldDo(t *testing.T) {
	s, err := Open(Options{Dir: t.TempDir(), MaxBytes: 1 << 20, PendingBytes: 4 << 10, PendingRecords: 2, CommitInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if !s.Room(100) || s.Room(8<<10) {
		t.Fatalf("empty spool: Room(100)=%v Room(8K)=%v, want true, false", s.Room(100), s.Room(8<<10))
	}
	rec := make([]byte, 100)
	for i := 0; i < 2; i++ {
		if err := s.Append(rec); err != nil {
			t.Fatal(err)
		}
	}
	if s.Room(1) {
		t.Fatal("PendingRecords reached: Room(1) = true")
	}
	if err := s.Append(rec); !errors.Is(err, ErrFull) {
		t.Fatalf("Append after Room said no: %v", err)
	}
}
