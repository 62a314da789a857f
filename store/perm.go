package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// prepareDir creates dir with mode 0700 if needed and checks it like
// checkDir.
func prepareDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	return checkDir(dir)
}

// checkDir refuses an account directory that is not a directory or is
// owned by another user, and removes group and other permissions (where
// the platform has them). Unlike prepareDir it creates nothing.
func checkDir(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	return tighten(dir, fi)
}

// tightenFile applies the same rule to an existing file; a missing file is
// not an error, a symbolic link or anything but a regular file is.
func tightenFile(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", path)
	}
	return tighten(path, fi)
}
