//go:build !linux

package spool

import "os"

// datasync falls back to a full fsync where fdatasync is not available
// (on macOS File.Sync is F_FULLFSYNC, which is what durability needs there).
func datasync(f *os.File) error { return f.Sync() }

// writeAt writes bufs back to back at off, one WriteAt each.
func writeAt(f *os.File, bufs [][]byte, off int64) error {
	for _, b := range bufs {
		if _, err := f.WriteAt(b, off); err != nil {
			return err
		}
		off += int64(len(b))
	}
	return nil
}
