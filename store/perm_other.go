//go:build !unix

package store

import "io/fs"

// tighten does nothing: file modes are not enforced on this platform;
// protect the account directory with the operating system's access
// control lists.
func tighten(string, fs.FileInfo) error { return nil }

// syncDir does nothing here: directories cannot be synced portably.
func syncDir(string) error { return nil }

// checkPrivate does nothing here: protect the file with the operating
// system's access control lists.
func checkPrivate(string, fs.FileInfo) error { return nil }
