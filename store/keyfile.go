package store

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
)

// maxKeyFile bounds what ReadKeyFile reads: a key file is 64 hexadecimal
// digits and a line end.
const maxKeyFile = 1024

// GenerateKeyFile writes a new random 256-bit key to a new file at path,
// as 64 hexadecimal digits and a newline, with mode 0600; it never
// replaces an existing file. The key protects stores opened with
// Options.Key (see ReadKeyFile): keep the file apart from the databases
// and their backups, for whoever holds both can read every secret.
func GenerateKeyFile(path string, rand io.Reader) error {
	if rand == nil {
		rand = (&Options{}).rand()
	}
	var key [keySize]byte
	defer clear(key[:])
	if _, err := io.ReadFull(rand, key[:]); err != nil {
		return fmt.Errorf("store: reading a random key: %w", err)
	}
	text := make([]byte, 0, 2*keySize+1)
	text = hex.AppendEncode(text, key[:])
	text = append(text, '\n')
	defer clear(text)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("store: key file: %w", err)
	}
	if _, err := f.Write(text); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("store: key file: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("store: key file: %w", err)
	}
	return f.Close()
}

// ReadKeyFile reads a key written by GenerateKeyFile, for Options.Key. On
// Unix it refuses a file that is not a regular file, that belongs to
// another user, or that its group or others may read. The caller should
// clear the key after opening the store.
func ReadKeyFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("store: key file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("store: key file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("store: key file %s is not a regular file", path)
	}
	if err := checkPrivate(path, fi); err != nil {
		return nil, fmt.Errorf("store: key file: %w", err)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	defer clear(b)
	if err != nil {
		return nil, fmt.Errorf("store: key file: %w", err)
	}
	key, err := parseKey(b)
	if err != nil {
		return nil, fmt.Errorf("store: key file %s: %w", path, err)
	}
	return key, nil
}

// parseKey decodes the 64 hexadecimal digits of a key file, around which
// only white space may stand.
func parseKey(b []byte) ([]byte, error) {
	if len(b) > maxKeyFile {
		return nil, errors.New("too long for a key file")
	}
	t := bytes.TrimSpace(b)
	if len(t) != 2*keySize {
		return nil, fmt.Errorf("want %d hexadecimal digits, found %d bytes", 2*keySize, len(t))
	}
	key := make([]byte, keySize)
	if _, err := hex.Decode(key, t); err != nil {
		clear(key)
		return nil, errors.New("not hexadecimal")
	}
	return key, nil
}
