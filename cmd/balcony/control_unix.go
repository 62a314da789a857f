//go:build unix

package main

import (
	"os"
	"syscall"
)

// ownedByMe reports whether fi belongs to the current user.
func ownedByMe(fi os.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && int(st.Uid) == os.Getuid()
}

// lockFile takes an exclusive, non-blocking lock on f; false if another
// process holds it. The lock ends with the process.
func lockFile(f *os.File) bool {
	return syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil
}
