package spool

// Room says whether a record of n bytes would be accepted by Append now: a
// gateway whose policy is to refuse calls it cannot record asks before it
// serves one. It is a snapshot: concurrent appends may take the room.
func (s *Spool) Room(n int) bool {
	f := int64(frameHead + n)
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.closed && s.memBytes+f <= s.opt.PendingBytes && s.memRecs+1 <= s.opt.PendingRecords &&
		s.diskBytes.Load()+s.memBytes+f <= s.opt.MaxBytes
}
