package store

// Observe makes s call f with each change it records, in the transaction
// that makes it (a change whose transaction then fails was observed too).
func Observe(s *Store, f func(Change)) { s.observe = f }
