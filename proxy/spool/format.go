package spool

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// On-disk layout.
//
// A segment is a 16-byte header, then frames back to back:
//
//	header: "LSPL" | u32 LE version (1) | u64 LE segment number
//	frame:  u32 LE length | u32 LE crc32c(payload) | payload
//
// A flipped length bit is caught too: the checksum is then taken over the
// wrong bytes and fails. A zero length is never written (Append refuses
// empty records), so a zero-filled tail, which is what a file system shows
// for space allocated but never written, cannot pass.
const (
	segMagic   = "LSPL"
	segVersion = 1
	headerSize = 16
	frameHead  = 8
	segSuffix  = ".seg"
	// segNameLen is the width of the zero-padded segment number in a name.
	segNameLen = 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// frameCRC is the checksum stored in a frame.
func frameCRC(payload []byte) uint32 { return crc32.Checksum(payload, castagnoli) }

// putFrameHead fills h (8 bytes) with the frame header of a payload of n
// bytes whose checksum is crc.
func putFrameHead(h []byte, n int, crc uint32) {
	binary.LittleEndian.PutUint32(h[0:4], uint32(n))
	binary.LittleEndian.PutUint32(h[4:8], crc)
}

// appendFrame appends rec framed to dst.
func appendFrame(dst, rec []byte) []byte {
	i := len(dst)
	dst = append(dst, 0, 0, 0, 0, 0, 0, 0, 0)
	putFrameHead(dst[i:], len(rec), frameCRC(rec))
	return append(dst, rec...)
}

// frameAt checks the frame at the start of b. It returns the frame's total
// size and its payload, or ok=false for a short, empty or mismatching frame.
func frameAt(b []byte) (size int, payload []byte, ok bool) {
	if len(b) < frameHead {
		return 0, nil, false
	}
	n := binary.LittleEndian.Uint32(b[0:4])
	if n == 0 || uint64(n) > uint64(len(b)-frameHead) {
		return 0, nil, false
	}
	p := b[frameHead : frameHead+int(n)]
	if binary.LittleEndian.Uint32(b[4:8]) != frameCRC(p) {
		return 0, nil, false
	}
	return frameHead + int(n), p, true
}

func segHeader(id uint64) []byte {
	h := make([]byte, headerSize)
	copy(h, segMagic)
	binary.LittleEndian.PutUint32(h[4:8], segVersion)
	binary.LittleEndian.PutUint64(h[8:16], id)
	return h
}

func headerOK(b []byte, id uint64) bool {
	return len(b) >= headerSize && string(b[0:4]) == segMagic &&
		binary.LittleEndian.Uint32(b[4:8]) == segVersion &&
		binary.LittleEndian.Uint64(b[8:16]) == id
}

func segName(id uint64) string {
	return fmt.Sprintf("%0*d%s", segNameLen, id, segSuffix)
}

// parseSegName returns the number of a segment file name, ok=false for any
// other file.
func parseSegName(name string) (uint64, bool) {
	num, found := strings.CutSuffix(name, segSuffix)
	if !found || len(num) != segNameLen {
		return 0, false
	}
	id, err := strconv.ParseUint(num, 10, 64)
	return id, err == nil && id > 0
}

// validPrefix reads a segment from the start and returns how many bytes
// form a valid header followed by whole, checksummed frames, and how many
// records those frames hold. It reads through a 1 MiB buffer and holds one
// payload at a time, so a large segment costs no more memory than its
// largest record.
func validPrefix(r io.Reader, size int64, id uint64) (end int64, records int, err error) {
	br := bufio.NewReaderSize(r, 1<<20)
	var h [headerSize]byte
	if _, err := io.ReadFull(br, h[:]); err != nil || !headerOK(h[:], id) {
		return 0, 0, ignoreEOF(err)
	}
	end = headerSize
	var payload []byte
	for {
		if _, err := io.ReadFull(br, h[:frameHead]); err != nil {
			return end, records, ignoreEOF(err)
		}
		n := binary.LittleEndian.Uint32(h[0:4])
		if n == 0 || int64(n) > size-end-frameHead {
			// Empty, or longer than what the file still holds (checked
			// before allocating: a garbled length must not cost 4 GiB).
			return end, records, nil
		}
		if int(n) > cap(payload) {
			payload = make([]byte, n)
		}
		p := payload[:n]
		if _, err := io.ReadFull(br, p); err != nil {
			return end, records, ignoreEOF(err)
		}
		if binary.LittleEndian.Uint32(h[4:8]) != frameCRC(p) {
			return end, records, nil
		}
		end += frameHead + int64(n)
		records++
	}
}

func ignoreEOF(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return nil
	}
	return err
}

// Cursor file: two 32-byte slots written alternately, so a write torn by a
// crash spoils at most the slot being written and the other still holds the
// previous position.
//
//	slot: "LCUR" | u64 LE generation | u64 LE segment | u64 LE offset | u32 LE crc32c(first 28 bytes)
const (
	cursorMagic = "LCUR"
	slotSize    = 32
)

type cursor struct {
	gen uint64
	pos Position
}

func encodeSlot(c cursor) [slotSize]byte {
	var b [slotSize]byte
	copy(b[0:4], cursorMagic)
	binary.LittleEndian.PutUint64(b[4:12], c.gen)
	binary.LittleEndian.PutUint64(b[12:20], c.pos.Segment)
	binary.LittleEndian.PutUint64(b[20:28], uint64(c.pos.Offset))
	binary.LittleEndian.PutUint32(b[28:32], crc32.Checksum(b[0:28], castagnoli))
	return b
}

func decodeSlot(b []byte) (cursor, bool) {
	if len(b) < slotSize || string(b[0:4]) != cursorMagic ||
		binary.LittleEndian.Uint32(b[28:32]) != crc32.Checksum(b[0:28], castagnoli) {
		return cursor{}, false
	}
	off := binary.LittleEndian.Uint64(b[20:28])
	if off > 1<<62 {
		return cursor{}, false
	}
	return cursor{
		gen: binary.LittleEndian.Uint64(b[4:12]),
		pos: Position{Segment: binary.LittleEndian.Uint64(b[12:20]), Offset: int64(off)},
	}, true
}

// readCursor returns the newest valid slot, or the zero cursor (start of the
// spool) when there is none.
func readCursor(b []byte) cursor {
	var best cursor
	for i := 0; i+slotSize <= len(b) && i < 2*slotSize; i += slotSize {
		if c, ok := decodeSlot(b[i : i+slotSize]); ok && c.gen >= best.gen {
			best = c
		}
	}
	return best
}

// syncDir makes a file's creation, rename or removal in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("fsync dir %s: %w", dir, err)
	}
	return nil
}

func segPath(dir string, id uint64) string { return filepath.Join(dir, segName(id)) }
