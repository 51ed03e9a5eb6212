//go:build !linux

package spool

import "os"

// datasync falls back to a full fsync where fdatasync is not available
// (on macOS File.Sync is F_FULLFSYNC, which is what durability needs there).
func datasync(f *os.File) error { return f.Sync() }
