// Package spool is a durable, bounded, group-committed log of opaque records:
// the place where Loom's finished calls, already encoded, wait on local disk
// until the collector has acknowledged them. It must never make an appender
// wait for the disk, never hand a reader a record that is not both committed
// and checksum-valid, and never grow past its bounds.
//
// Writers Append records from any goroutine; Append copies the record into
// in-memory pending chunks and returns at once. One committer goroutine swaps
// the pending chunks for empty ones (so appenders keep going), writes the
// whole batch with ONE pwritev and makes it durable with ONE fdatasync, every
// CommitInterval. A single reader (the shipper) Reads batches of committed
// records, ships them and Acks them; an Ack moves a durable cursor and deletes
// the segment files that lie wholly before it.
//
// # What survives what
//
// A record becomes visible to Read only after the write and the fdatasync of
// the commit that holds it have both returned, so nothing a reader has seen,
// and nothing Commit reported done, can be lost by a crash of either kind:
//
//   - A process crash (SIGKILL, OOM kill, panic) loses only the records that
//     were appended but not yet written: those gathering for the next commit
//     and those of a commit whose write had not returned, in time about one
//     CommitInterval plus one commit's duration, and never more than
//     PendingRecords records or PendingBytes bytes (both count against those
//     bounds). What was written survives in the page cache, synced or not.
//   - A machine crash or power loss loses the same window and no more: what
//     was written but not yet fdatasynced belongs to the commit in flight,
//     which no reader has seen and no Commit call has reported done. A commit
//     cut midway leaves a torn tail (a short frame, a zero-filled or garbled
//     one) in the last segment; Open finds it by its CRC-32C, cuts it off
//     (Stats.TornBytesCut) and logs it, so it is never read.
//   - Records acknowledged before a crash are never read again (the cursor
//     is written and fdatasynced before Ack returns); records committed but
//     not acknowledged are read again after the restart: delivery is
//     at-least-once and the store removes the duplicates.
//
// This holds where the file system honours fdatasync (ext4, xfs; not a disk
// that acknowledges writes it only cached). A commit that fails (ENOSPC, EIO)
// keeps its records in memory and is retried, rewriting the same bytes at the
// same offset (after a failed fsync Linux may have dropped the dirty pages,
// so syncing again without rewriting would prove nothing); while it fails,
// the pending bounds fill and Append returns ErrFull, counted in Stats.Full.
// Records are dropped only by Close when its last commit fails, counted in
// Stats.Dropped.
//
// Damage a crash cannot cause (a bad disk: a frame failing its checksum in a
// segment other than the last, a damaged segment header) is logged, counted
// in Stats.CorruptBytes, and the rest of that segment is skipped; the next
// segment is read as usual. In the last segment a bad frame cannot be told
// from a torn tail, so it is cut with everything after it.
//
// The spool never grows past MaxBytes (committed, unacknowledged bytes on
// disk plus the bytes waiting in memory): Append refuses with ErrFull and
// stores nothing rather than grow.
package spool

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

var (
	// ErrFull is returned by Append when storing the record would pass one
	// of the bounds; nothing was stored.
	ErrFull = errors.New("spool: full")
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("spool: closed")
	// ErrLocked is returned (wrapped, with the directory) by Open when
	// another Spool holds the directory.
	ErrLocked = errors.New("spool: directory in use by another spool")
	// ErrTooLarge is returned by Append for an empty record or one that
	// could never fit in the pending buffer.
	ErrTooLarge = errors.New("spool: record empty or larger than the pending bound")
)

// Defaults for zero Options fields.
const (
	DefaultSegmentBytes   = 64 << 20
	DefaultMaxBytes       = 4 << 30
	DefaultPendingBytes   = 64 << 20
	DefaultPendingRecords = 1 << 16
)

// Options configure a Spool.
type Options struct {
	// Dir holds the segments, the cursor, the instance id and the lock;
	// created 0700 if missing.
	Dir string
	// SegmentBytes is the size at which the committer starts a new segment.
	// A segment can exceed it by one commit (a commit is never split).
	SegmentBytes int64
	// MaxBytes bounds committed, unacknowledged bytes on disk plus the bytes
	// waiting in memory (frames included).
	MaxBytes int64
	// PendingBytes bounds the bytes appended but not yet committed (the
	// batch being written included), so memory holds at most about twice
	// this (the two buffers).
	PendingBytes int64
	// PendingRecords bounds the records appended but not yet committed:
	// the most a process crash can lose.
	PendingRecords int
	// CommitInterval is the group-commit window: how long the committer lets
	// appends gather after the first one before it writes. 0 writes as soon
	// as it wakes.
	CommitInterval time.Duration
	Logger         *slog.Logger

	// faults makes writes and syncs fail on demand, for the tests of a bad
	// disk.
	faults *faults
}

// faults fails the next n segment writes or fdatasyncs with err, and makes
// a sync wait for stall (when set) as a stalled disk would.
type faults struct {
	writes, syncs atomic.Int32
	err           error
	stall         chan struct{}
}

func (f *faults) write() error {
	if f == nil {
		return nil
	}
	return f.fail(&f.writes)
}

func (f *faults) sync() error {
	if f == nil {
		return nil
	}
	if f.stall != nil {
		<-f.stall
	}
	return f.fail(&f.syncs)
}

func (f *faults) fail(n *atomic.Int32) error {
	for {
		v := n.Load()
		if v <= 0 {
			return nil
		}
		if n.CompareAndSwap(v, v-1) {
			return f.err
		}
	}
}

// Position is a place in the spool: a segment number and a byte offset in it.
type Position struct {
	Segment uint64
	Offset  int64
}

// Stats are counters since Open (Pending, DiskBytes and Segments are
// current values).
type Stats struct {
	Appended, AppendedBytes   uint64 // records (and their bytes, payload only) accepted by Append
	Committed, CommittedBytes uint64 // records made durable by a commit
	Acked, AckedBytes         uint64 // records acknowledged by Ack
	Full                      uint64 // Appends refused with ErrFull
	Dropped                   uint64 // records lost because Close could not commit them
	PendingRecords            int    // appended, not yet committed
	PendingBytes              int64  // their framed bytes
	DiskBytes                 int64  // committed, unacknowledged bytes on disk
	Segments                  int    // segment files
	TornBytesCut              int64  // torn tail cut by recovery at Open
	CorruptBytes              int64  // bytes skipped because a checksum failed outside the torn tail
	Commits, CommitErrors     uint64
	LastCommit                time.Duration // write + fdatasync of the last successful commit
	LastCommitRecords         int
}

type segment struct {
	id     uint64
	size   int64 // readable end: the committed size of the active segment
	sealed bool
}

// Spool is a durable log of opaque records. Append and Stats are safe for
// any number of goroutines; Read and Ack are for one reader.
type Spool struct {
	opt      Options
	log      *slog.Logger
	instance string
	lockFile *os.File

	// mu guards the append side.
	mu        sync.Mutex
	closed    bool
	pend      [][]byte // chunks of framed records waiting for the committer, in order
	pendRecs  int
	spareVec  [][]byte // the other chunk list, swapped in at each commit
	free      [][]byte // empty chunks for reuse, at most freeChunks of them
	head      [frameHead]byte
	memBytes  int64 // framed bytes appended, not committed (pend + the batch in flight)
	memRecs   int
	appended  uint64        // records appended since Open: Commit's target
	committed uint64        // of those, committed
	attempt   chan struct{} // closed when the current commit attempt ends
	lastErr   error         // of the last commit attempt
	st        Stats         // counters updated under mu

	diskBytes atomic.Int64

	kick   chan struct{} // pend became non-empty
	urgent chan struct{} // a Commit call waits
	quit   chan struct{} // Close asks the committer to stop
	done   chan struct{} // the committer has stopped
	shut   chan struct{} // closed at Close: wakes a blocked Read

	// Committer-only state.
	wf    *os.File
	iov   [][]byte // pwritev's view of a batch, consumed as it is written
	wid   uint64
	wsize int64 // bytes durably written in the active segment
	dirty bool  // the active segment may hold bytes past wsize (a failed write)

	// smu guards segs, shared by the committer (appends, rotation), the
	// reader and Ack (removal).
	smu  sync.Mutex
	segs []segment
	rdy  chan struct{} // a commit made records readable

	// Reader state, guarded by rmu (one reader, but Close must not close
	// the file under a Read).
	rmu   sync.Mutex
	rpos  Position
	rf    *os.File
	rfid  uint64
	rbuf  []byte
	rrecs [][]byte
	rhead [frameHead]byte

	// Ack state, guarded by amu.
	amu     sync.Mutex
	cf      *os.File
	cur     cursor
	stAcked struct{ recs, bytes uint64 }
}

// Open opens (creating if needed) the spool in o.Dir, takes its lock,
// recovers from whatever a crash left and starts the committer.
func Open(o Options) (*Spool, error) {
	if o.Dir == "" {
		return nil, errors.New("spool: no directory")
	}
	if o.SegmentBytes <= 0 {
		o.SegmentBytes = DefaultSegmentBytes
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	if o.PendingBytes <= 0 {
		o.PendingBytes = DefaultPendingBytes
	}
	if o.PendingBytes > o.MaxBytes {
		o.PendingBytes = o.MaxBytes
	}
	if o.PendingRecords <= 0 {
		o.PendingRecords = DefaultPendingRecords
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if _, err := os.Stat(o.Dir); errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(o.Dir, 0o700); err != nil {
			return nil, fmt.Errorf("spool: create %s: %w", o.Dir, err)
		}
		// The directory's own entry must survive a power loss too.
		if err := syncDir(filepath.Dir(filepath.Clean(o.Dir))); err != nil {
			return nil, fmt.Errorf("spool: %w", err)
		}
	}
	lf, err := lockDir(filepath.Join(o.Dir, "LOCK"))
	if err != nil {
		return nil, fmt.Errorf("spool %s: %w", o.Dir, err)
	}
	s := &Spool{
		opt:      o,
		log:      o.Logger.With("spool", o.Dir),
		lockFile: lf,
		attempt:  make(chan struct{}),
		free:     make([][]byte, 0, freeChunks),
		kick:     make(chan struct{}, 1),
		urgent:   make(chan struct{}, 1),
		quit:     make(chan struct{}),
		done:     make(chan struct{}),
		shut:     make(chan struct{}),
		rdy:      make(chan struct{}, 1),
	}
	if err := s.recover(); err != nil {
		s.closeFiles()
		return nil, fmt.Errorf("spool %s: %w", o.Dir, err)
	}
	go s.run()
	return s, nil
}

// recover reads the instance id and the cursor, drops acknowledged segments,
// cuts a torn tail off the last segment and starts a new active segment.
func (s *Spool) recover() error {
	dir := s.opt.Dir
	var err error
	if s.instance, err = loadInstance(dir); err != nil {
		return err
	}
	cpath := filepath.Join(dir, "cursor")
	_, statErr := os.Stat(cpath)
	if s.cf, err = os.OpenFile(cpath, os.O_RDWR|os.O_CREATE, 0o600); err != nil {
		return fmt.Errorf("open cursor: %w", err)
	}
	if errors.Is(statErr, fs.ErrNotExist) {
		if err := syncDir(dir); err != nil {
			return err
		}
	}
	var cb [2 * slotSize]byte
	n, _ := s.cf.ReadAt(cb[:], 0)
	s.cur = readCursor(cb[:n])

	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("list: %w", err)
	}
	var ids []uint64
	for _, e := range ents {
		if id, ok := parseSegName(e.Name()); ok && e.Type().IsRegular() {
			ids = append(ids, id)
		}
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })

	// Segments wholly before the cursor were acknowledged; a crash between
	// the cursor write and their removal leaves them behind.
	removed := false
	for len(ids) > 0 && ids[0] < s.cur.pos.Segment {
		if err := os.Remove(segPath(dir, ids[0])); err != nil {
			return fmt.Errorf("remove acknowledged segment: %w", err)
		}
		ids, removed = ids[1:], true
	}

	// Only the last segment can have a torn tail: every earlier one was
	// followed by a new segment, created after its last commit was synced.
	if len(ids) > 0 {
		last := ids[len(ids)-1]
		cut, err := s.cutTornTail(last)
		if err != nil {
			return err
		}
		if cut < 0 {
			ids, removed = ids[:len(ids)-1], true
		}
	}
	if removed {
		if err := syncDir(dir); err != nil {
			return err
		}
	}

	var disk int64
	for _, id := range ids {
		fi, err := os.Stat(segPath(dir, id))
		if err != nil {
			return fmt.Errorf("stat segment: %w", err)
		}
		s.segs = append(s.segs, segment{id: id, size: fi.Size(), sealed: true})
		disk += fi.Size()
	}

	// Where reading starts: the cursor when its segment is still here,
	// otherwise the first segment after it.
	s.rpos = s.cur.pos
	if len(s.segs) > 0 && s.segs[0].id == s.cur.pos.Segment {
		if s.rpos.Offset < headerSize {
			s.rpos.Offset = headerSize
		}
		if s.rpos.Offset > s.segs[0].size {
			// Acknowledged past what survived: a disk that lost synced
			// data. Nothing left to read in this segment.
			s.log.Error("spool cursor beyond the end of its segment", "segment", s.rpos.Segment, "cursor", s.rpos.Offset, "size", s.segs[0].size)
			s.rpos.Offset = s.segs[0].size
		}
		disk -= s.rpos.Offset
	} else if len(s.segs) > 0 {
		s.rpos = Position{Segment: s.segs[0].id, Offset: headerSize}
	}
	s.diskBytes.Store(disk)

	next := s.cur.pos.Segment + 1
	if len(ids) > 0 && ids[len(ids)-1] >= next {
		next = ids[len(ids)-1] + 1
	}
	if err := s.startSegment(next); err != nil {
		return err
	}
	if len(s.segs) == 1 {
		s.rpos = Position{Segment: next, Offset: headerSize}
	}
	return nil
}

// cutTornTail truncates the segment to its valid prefix. It returns the bytes
// cut, or -1 when the segment was removed (its header never made it).
func (s *Spool) cutTornTail(id uint64) (int64, error) {
	path := segPath(s.opt.Dir, id)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return 0, fmt.Errorf("open last segment: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("stat last segment: %w", err)
	}
	size := fi.Size()
	end, recs, err := validPrefix(f, size, id)
	if err != nil {
		return 0, fmt.Errorf("read last segment: %w", err)
	}
	cut := size - end
	switch {
	case cut == 0 && end > 0:
		return 0, nil
	case end == 0 && size <= headerSize:
		// A crash between creating the file and syncing its header: the
		// segment never held a record.
		s.st.TornBytesCut += cut
		s.log.Warn("spool: last segment torn at creation, removing it", "segment", path, "bytes", size)
		if err := os.Remove(path); err != nil {
			return 0, fmt.Errorf("remove torn segment: %w", err)
		}
		return -1, nil
	case end == 0:
		// The header is synced before any record is written, so a bad
		// header on a longer file is damage, not a crash: keep the file
		// (Read skips it whole, and counts it) rather than destroy what
		// it holds.
		s.log.Error("spool: last segment has a damaged header, skipping it", "segment", path, "bytes", size)
		return 0, nil
	}
	s.st.TornBytesCut += cut
	s.log.Warn("spool: cutting torn tail of last segment", "segment", path, "valid_records", recs, "valid_bytes", end, "cut_bytes", cut)
	err = f.Truncate(end)
	if err == nil {
		err = f.Sync() // a full fsync: a shrinking size is metadata fdatasync may leave behind
	}
	if err != nil {
		return 0, fmt.Errorf("cut torn tail: %w", err)
	}
	return cut, nil
}

// startSegment creates segment id with its header, durably (file and
// directory), makes it the active one and seals the previous one.
func (s *Spool) startSegment(id uint64) error {
	path := segPath(s.opt.Dir, id)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("create segment: %w", err)
	}
	_, err = f.WriteAt(segHeader(id), 0)
	if err == nil {
		err = datasync(f)
	}
	if err == nil {
		err = syncDir(s.opt.Dir)
	}
	if err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("create segment %s: %w", path, err)
	}
	if s.wf != nil {
		s.wf.Close()
	}
	s.smu.Lock()
	if n := len(s.segs); n > 0 && s.segs[n-1].id == s.wid {
		s.segs[n-1].sealed = true
	}
	s.segs = append(s.segs, segment{id: id, size: headerSize})
	s.diskBytes.Add(headerSize)
	s.smu.Unlock()
	s.wf, s.wid, s.wsize, s.dirty = f, id, headerSize, false
	return nil
}

// InstanceID is the id kept in the directory: the same on every Open of it.
func (s *Spool) InstanceID() string { return s.instance }

// Append copies rec into the pending buffer and returns at once; rec may be
// reused when it returns. It returns ErrFull (storing nothing) when a bound
// would be passed, ErrClosed after Close, ErrTooLarge for an empty record or
// one bigger than PendingBytes. It does not allocate once the buffers have
// grown to their working size.
func (s *Spool) Append(rec []byte) error {
	f := int64(frameHead + len(rec))
	if len(rec) == 0 || f > s.opt.PendingBytes || len(rec) > 1<<32-1 {
		return ErrTooLarge
	}
	crc := frameCRC(rec) // outside the lock: the only per-byte work but the copy
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	if s.memBytes+f > s.opt.PendingBytes || s.memRecs+1 > s.opt.PendingRecords ||
		s.diskBytes.Load()+s.memBytes+f > s.opt.MaxBytes {
		s.st.Full++
		s.mu.Unlock()
		return ErrFull
	}
	wasEmpty := len(s.pend) == 0
	putFrameHead(s.head[:], len(rec), crc)
	s.put(s.head[:])
	s.put(rec)
	s.pendRecs++
	halfB, halfR := s.opt.PendingBytes/2, s.opt.PendingRecords/2
	// Half of a pending bound reached: commit now rather than at the end of
	// the window, so that a burst is not refused while the committer sleeps.
	hurry := (s.memBytes < halfB && s.memBytes+f >= halfB) || s.memRecs+1 == halfR
	s.memBytes += f
	s.memRecs++
	s.appended++
	s.st.Appended++
	s.st.AppendedBytes += uint64(len(rec))
	s.mu.Unlock()
	if wasEmpty {
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
	if hurry {
		select {
		case s.urgent <- struct{}{}:
		default:
		}
	}
	return nil
}

// chunkSize is the unit of the pending buffer. Chunks are written together
// by one pwritev; a frame may straddle two. Fixed-size chunks, unlike one
// growing slice, never copy what is already pending and never ask for one
// large allocation while appenders wait on the mutex.
const chunkSize = 128 << 10

// freeChunks bounds the empty chunks kept for reuse (16 MiB): a burst's
// chunks beyond that go back to the garbage collector.
const freeChunks = 128

// put copies b to the end of the pending chunks; mu held.
func (s *Spool) put(b []byte) {
	for len(b) > 0 {
		n := len(s.pend)
		if n == 0 || len(s.pend[n-1]) == cap(s.pend[n-1]) {
			var c []byte
			if k := len(s.free); k > 0 {
				c, s.free = s.free[k-1], s.free[:k-1]
			} else {
				c = make([]byte, 0, chunkSize)
			}
			s.pend = append(s.pend, c)
			n++
		}
		c := s.pend[n-1]
		m := copy(c[len(c):cap(c)], b)
		s.pend[n-1] = c[:len(c)+m]
		b = b[m:]
	}
}

// Available returns how many more framed bytes (a record costs its length
// plus 8) and records Append would accept right now: a caller whose policy
// is to refuse work when the spool is full asks before taking the work on.
func (s *Spool) Available() (bytes int64, records int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, 0
	}
	bytes = min(s.opt.PendingBytes-s.memBytes, s.opt.MaxBytes-s.diskBytes.Load()-s.memBytes)
	return max(bytes, 0), s.opt.PendingRecords - s.memRecs
}

// Commit returns nil once everything appended before the call is durable.
// When the commit attempt that was to make it so fails, it returns that
// attempt's error (the records stay pending; the committer retries them);
// ctx.Err() when ctx ends first; ErrClosed when the spool closed first
// without committing them.
func (s *Spool) Commit(ctx context.Context) error {
	s.mu.Lock()
	target := s.appended
	s.mu.Unlock()
	for {
		s.mu.Lock()
		if s.committed >= target {
			s.mu.Unlock()
			return nil
		}
		ch := s.attempt
		s.mu.Unlock()
		select {
		case s.urgent <- struct{}{}:
		default:
		}
		select {
		case <-ch:
			s.mu.Lock()
			ok, err := s.committed >= target, s.lastErr
			s.mu.Unlock()
			if !ok && err != nil {
				return fmt.Errorf("spool: commit: %w", err)
			}
		case <-s.done:
			s.mu.Lock()
			ok := s.committed >= target
			s.mu.Unlock()
			if ok {
				return nil
			}
			return ErrClosed
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// run is the committer.
func (s *Spool) run() {
	defer close(s.done)
	t := time.NewTimer(time.Hour)
	t.Stop()
	backoff := time.Duration(0)
	for {
		waitWindow := false
		select {
		case <-s.kick:
			waitWindow = s.opt.CommitInterval > 0
		case <-s.urgent:
			// A Commit caller waits: no window. (Its urgent must not be
			// spent on starting a window it then waits out.)
		case <-s.quit:
			s.final()
			return
		}
		// The group-commit window: appends gather for one interval,
		// unless a Commit caller is waiting.
		if waitWindow && !s.pause(t, s.opt.CommitInterval) {
			return
		}
		for s.commitOnce() != nil {
			backoff = min(max(2*backoff, 10*time.Millisecond, s.opt.CommitInterval), time.Second)
			if !s.pause(t, backoff) {
				return
			}
		}
		backoff = 0
	}
}

// pause waits d on t, cut short by a waiting Commit caller. At Close it
// makes the final commit and returns false: the committer must stop.
func (s *Spool) pause(t *time.Timer, d time.Duration) bool {
	t.Reset(d)
	select {
	case <-t.C:
	case <-s.urgent:
		t.Stop()
	case <-s.quit:
		t.Stop()
		s.final()
		return false
	}
	return true
}

// final commits what is pending at Close, trying a few times; what cannot be
// committed is counted as dropped.
func (s *Spool) final() {
	var err error
	for range 3 {
		if err = s.commitOnce(); err == nil {
			return
		}
	}
	s.mu.Lock()
	s.st.Dropped += uint64(s.memRecs)
	s.mu.Unlock()
	s.log.Error("spool: records dropped at close: last commit failed", "records", s.memRecs, "err", err)
}

// commitOnce writes and syncs the pending buffer, if any.
func (s *Spool) commitOnce() error {
	s.mu.Lock()
	if len(s.pend) == 0 {
		s.mu.Unlock()
		return nil
	}
	batch, k := s.pend, s.pendRecs
	s.pend, s.pendRecs = s.spareVec[:0], 0
	s.spareVec = nil
	var n int64
	for _, c := range batch {
		n += int64(len(c))
	}
	s.mu.Unlock()

	start := time.Now()
	err := s.write(batch, n)
	took := time.Since(start)

	if err == nil {
		// The readable size and the disk count change together (smu, for
		// Ack's recount), and the batch moves from memory to disk in one
		// step (mu), so no one ever sees it counted twice or not at all.
		s.smu.Lock()
	}
	s.mu.Lock()
	if err != nil {
		// Keep the records, ahead of those appended meanwhile, for the
		// retry (chunks move, bytes are not copied).
		merged := append(batch, s.pend...)
		s.spareVec = s.pend[:0]
		s.pend, s.pendRecs = merged, s.pendRecs+k
		s.st.CommitErrors++
	} else {
		for i, c := range batch {
			if len(s.free) < freeChunks {
				s.free = append(s.free, c[:0])
			}
			batch[i] = nil
		}
		s.spareVec = batch[:0]
		s.segs[len(s.segs)-1].size = s.wsize
		s.diskBytes.Add(n)
		s.memBytes -= n
		s.memRecs -= k
		s.committed += uint64(k)
		s.st.Committed += uint64(k)
		s.st.CommittedBytes += uint64(n - int64(k)*frameHead)
		s.st.Commits++
		s.st.LastCommit = took
		s.st.LastCommitRecords = k
	}
	s.lastErr = err
	close(s.attempt)
	s.attempt = make(chan struct{})
	s.mu.Unlock()
	if err == nil {
		s.smu.Unlock()
	}
	if err != nil {
		s.log.Error("spool: commit failed, will retry", "records", k, "bytes", n, "err", err)
		return err
	}
	select {
	case s.rdy <- struct{}{}:
	default:
	}
	return nil
}

// write puts batch (n bytes) at the end of the active segment, rotating
// first when it would pass SegmentBytes, with one pwritev and one fdatasync.
func (s *Spool) write(batch [][]byte, n int64) error {
	if s.wsize > headerSize && s.wsize+n > s.opt.SegmentBytes {
		if s.dirty {
			// A failed write may have left bytes past the committed end;
			// cut them so the sealed segment holds only whole frames.
			if err := s.wf.Truncate(s.wsize); err != nil {
				return fmt.Errorf("truncate segment before rotation: %w", err)
			}
			if err := s.wf.Sync(); err != nil {
				return fmt.Errorf("sync segment before rotation: %w", err)
			}
			s.dirty = false
		}
		if err := s.startSegment(s.wid + 1); err != nil {
			return err
		}
	}
	if err := s.opt.faults.write(); err != nil {
		// What a full disk does: part of the batch lands, then an error.
		_, _ = s.wf.WriteAt(batch[0][:len(batch[0])/2], s.wsize)
		s.dirty = true
		return fmt.Errorf("write segment %d: %w", s.wid, err)
	}
	// At the committed end: a retry after a failure rewrites the same bytes
	// in the same place.
	s.iov = append(s.iov[:0], batch...)
	err := writeAt(s.wf, s.iov, s.wsize)
	clear(s.iov)
	if err != nil {
		s.dirty = true
		return fmt.Errorf("write segment %d: %w", s.wid, err)
	}
	err = s.opt.faults.sync()
	if err == nil {
		err = datasync(s.wf)
	}
	if err != nil {
		s.dirty = true
		return fmt.Errorf("fdatasync segment %d: %w", s.wid, err)
	}
	s.wsize += n
	return nil
}

// Stats returns the counters.
func (s *Spool) Stats() Stats {
	s.mu.Lock()
	st := s.st
	st.PendingRecords = s.memRecs
	st.PendingBytes = s.memBytes
	st.DiskBytes = s.diskBytes.Load() // under mu: a batch is never in both or neither
	s.mu.Unlock()
	s.amu.Lock()
	st.Acked, st.AckedBytes = s.stAcked.recs, s.stAcked.bytes
	s.amu.Unlock()
	s.smu.Lock()
	st.Segments = len(s.segs)
	s.smu.Unlock()
	return st
}

// Close commits what is pending, stops the committer, closes the files and
// releases the lock. Unacknowledged records stay on disk for the next Open.
// It returns an error when the last commit failed (the records are counted in
// Stats.Dropped).
func (s *Spool) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	s.closed = true
	s.mu.Unlock()
	close(s.quit)
	<-s.done
	close(s.shut)
	s.mu.Lock()
	var err error
	if s.memRecs > 0 {
		err = fmt.Errorf("spool: %d records dropped at close: %w", s.memRecs, s.lastErr)
	}
	s.mu.Unlock()
	s.closeFiles()
	return err
}

func (s *Spool) closeFiles() {
	s.rmu.Lock()
	if s.rf != nil {
		s.rf.Close()
		s.rf = nil
	}
	s.rmu.Unlock()
	s.amu.Lock()
	if s.cf != nil {
		s.cf.Close()
		s.cf = nil
	}
	s.amu.Unlock()
	if s.wf != nil {
		s.wf.Close()
		s.wf = nil
	}
	if s.lockFile != nil {
		s.lockFile.Close() // releases the flock
		s.lockFile = nil
	}
}
