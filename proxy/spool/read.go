package spool

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
)

// Batch is a run of committed records from one segment, as returned by Read.
type Batch struct {
	// Records are the payloads, in append order. They point into the
	// reader's buffer: valid until the next Read.
	Records [][]byte
	// Bytes is the sum of the payload sizes.
	Bytes int
	start Position
	end   Position
}

// Start is where the batch begins.
func (b Batch) Start() Position { return b.start }

// End is the position after the batch: where the cursor moves when it is
// acknowledged.
func (b Batch) End() Position { return b.end }

// Read blocks until at least one committed record that has not been read yet
// is available (a record is never readable before the commit that holds it
// has been synced) and returns up to maxBytes of payload and maxRecords
// records, always at least one record even when that one is bigger than
// maxBytes. Successive Reads return successive batches whether or not the
// earlier ones were acknowledged. It returns
// ctx.Err() when ctx ends first, ErrClosed after Close. One reader only.
func (s *Spool) Read(ctx context.Context, maxBytes, maxRecords int) (Batch, error) {
	if maxRecords <= 0 {
		maxRecords = 1
	}
	for {
		s.rmu.Lock()
		b, ok, err := s.readLocked(maxBytes, maxRecords)
		s.rmu.Unlock()
		if err != nil || ok {
			return b, err
		}
		select {
		case <-s.rdy:
		case <-s.shut:
			return Batch{}, ErrClosed
		case <-ctx.Done():
			return Batch{}, ctx.Err()
		}
	}
}

// readLocked returns ok=false when nothing committed is left to read.
func (s *Spool) readLocked(maxBytes, maxRecords int) (Batch, bool, error) {
	select {
	case <-s.shut:
		return Batch{}, false, ErrClosed
	default:
	}
	for {
		s.smu.Lock()
		i := s.segIndex(s.rpos.Segment)
		if i < 0 {
			// Only possible if the reader's segment was acknowledged away
			// by an Ack beyond what was read: jump to the first left.
			if len(s.segs) == 0 {
				s.smu.Unlock()
				return Batch{}, false, nil
			}
			s.rpos = Position{Segment: s.segs[0].id, Offset: headerSize}
			i = 0
		}
		seg := s.segs[i]
		var next uint64
		if i+1 < len(s.segs) {
			next = s.segs[i+1].id
		}
		s.smu.Unlock()
		if s.rpos.Offset < seg.size {
			b, ok, err := s.readSegment(seg, next, maxBytes, maxRecords)
			if ok || err != nil {
				return b, ok, err
			}
			// A corrupt frame: readSegment moved past the rest of that
			// segment; go on with what follows.
			continue
		}
		if !seg.sealed || next == 0 {
			return Batch{}, false, nil
		}
		s.rpos = Position{Segment: next, Offset: headerSize}
	}
}

// segIndex finds a segment by number; smu held.
func (s *Spool) segIndex(id uint64) int {
	for i := range s.segs {
		if s.segs[i].id == id {
			return i
		}
	}
	return -1
}

func (s *Spool) readSegment(seg segment, next uint64, maxBytes, maxRecords int) (Batch, bool, error) {
	if s.rf == nil || s.rfid != seg.id {
		if s.rf != nil {
			s.rf.Close()
			s.rf = nil
		}
		f, err := os.Open(segPath(s.opt.Dir, seg.id))
		if err != nil {
			return Batch{}, false, fmt.Errorf("spool: open segment for reading: %w", err)
		}
		s.rf, s.rfid = f, seg.id
		var h [headerSize]byte
		if _, err := f.ReadAt(h[:], 0); err != nil || !headerOK(h[:], seg.id) {
			// Not a segment we wrote (or its header is damaged): nothing
			// in it can be trusted to be framed the way we read it.
			s.rpos.Offset = headerSize
			s.corrupt(seg, next)
			return Batch{}, false, nil
		}
	}
	avail := seg.size - s.rpos.Offset
	h := s.rhead[:] // a field, not a local: a local handed to ReadAt escapes
	if avail >= frameHead {
		if _, err := s.rf.ReadAt(h, s.rpos.Offset); err != nil {
			return Batch{}, false, fmt.Errorf("spool: read segment %d: %w", seg.id, err)
		}
	}
	first := int64(frameHead) + int64(binary.LittleEndian.Uint32(h[0:4]))
	if avail < frameHead || first > avail || first == frameHead {
		s.corrupt(seg, next)
		return Batch{}, false, nil
	}
	want := min(avail, max(int64(maxBytes)+int64(maxRecords)*frameHead, first))
	if int64(cap(s.rbuf)) < want {
		s.rbuf = make([]byte, want)
	}
	buf := s.rbuf[:want]
	if _, err := s.rf.ReadAt(buf, s.rpos.Offset); err != nil {
		return Batch{}, false, fmt.Errorf("spool: read segment %d: %w", seg.id, err)
	}
	recs := s.rrecs[:0]
	off, bytes := 0, 0
	for off < len(buf) && len(recs) < maxRecords {
		n, p, ok := frameAt(buf[off:])
		if !ok {
			if len(recs) == 0 {
				// The first frame lies whole within what was committed
				// (want >= first) and still fails its checksum.
				s.corrupt(seg, next)
				return Batch{}, false, nil
			}
			// A later frame may just be cut by want: the next Read
			// starts with it and judges it whole.
			break
		}
		if len(recs) > 0 && bytes+len(p) > maxBytes {
			break
		}
		recs = append(recs, p)
		bytes += len(p)
		off += n
	}
	s.rrecs = recs
	b := Batch{Records: recs, Bytes: bytes, start: s.rpos}
	s.rpos.Offset += int64(off)
	if seg.sealed && s.rpos.Offset >= seg.size && next != 0 {
		// The segment is done: point past it so acknowledging this batch
		// lets Ack delete the file.
		s.rpos = Position{Segment: next, Offset: headerSize}
	}
	b.end = s.rpos
	return b, true, nil
}

// corrupt skips the rest of a segment whose next frame fails its checksum
// (rpos at that frame). Recovery cut any torn tail at Open, so this is a
// damaged disk or file, not a crash.
func (s *Spool) corrupt(seg segment, next uint64) {
	skipped := seg.size - s.rpos.Offset
	s.log.Error("spool: corrupt record, skipping the rest of the segment", "segment", segPath(s.opt.Dir, seg.id), "offset", s.rpos.Offset, "skipped_bytes", skipped)
	s.mu.Lock()
	s.st.CorruptBytes += skipped
	s.mu.Unlock()
	if seg.sealed && next != 0 {
		s.rpos = Position{Segment: next, Offset: headerSize}
		return
	}
	s.rpos.Offset = seg.size
}

// Ack moves the durable cursor past b: the cursor slot is written and
// fdatasynced before Ack returns, so b's records are never read again, even
// after a crash. Segments wholly before the cursor are then deleted. Acking
// a batch at or before the cursor does nothing. Ack is also how a batch that
// can never be delivered (rejected as permanently invalid) is skipped.
func (s *Spool) Ack(b Batch) error {
	s.amu.Lock()
	defer s.amu.Unlock()
	if s.cf == nil {
		return ErrClosed
	}
	end := b.end
	if end.Segment < s.cur.pos.Segment || (end.Segment == s.cur.pos.Segment && end.Offset <= s.cur.pos.Offset) {
		return nil
	}
	c := cursor{gen: s.cur.gen + 1, pos: end}
	slot := encodeSlot(c)
	if _, err := s.cf.WriteAt(slot[:], int64(c.gen%2)*slotSize); err != nil {
		return fmt.Errorf("spool: write cursor: %w", err)
	}
	if err := datasync(s.cf); err != nil {
		return fmt.Errorf("spool: sync cursor: %w", err)
	}
	s.cur = c
	s.stAcked.recs += uint64(len(b.Records))
	s.stAcked.bytes += uint64(b.Bytes)

	s.smu.Lock()
	var gone []uint64
	for len(s.segs) > 1 && s.segs[0].id < end.Segment {
		gone = append(gone, s.segs[0].id)
		s.segs = s.segs[1:]
	}
	var disk int64
	for _, sg := range s.segs {
		disk += sg.size
	}
	if len(s.segs) > 0 && s.segs[0].id == end.Segment {
		disk -= end.Offset
	}
	s.diskBytes.Store(disk)
	s.smu.Unlock()

	if len(gone) == 0 {
		return nil
	}
	for _, id := range gone {
		if err := os.Remove(segPath(s.opt.Dir, id)); err != nil {
			// The cursor already moved past it: the next Open removes it.
			return fmt.Errorf("spool: remove acknowledged segment: %w", err)
		}
	}
	if err := syncDir(s.opt.Dir); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	return nil
}
