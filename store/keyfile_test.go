package store

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestKeyFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "store.key")
	must(t, GenerateKeyFile(path, nil))
	checkMode(t, path, 0o600)
	if err := GenerateKeyFile(path, nil); !errors.Is(err, fs.ErrExist) {
		t.Errorf("GenerateKeyFile replaced a file: %v", err)
	}
	key, err := ReadKeyFile(path)
	must(t, err)
	if len(key) != keySize || bytes.Equal(key, make([]byte, keySize)) {
		t.Fatalf("key %x", key)
	}

	// A store protected by the key file.
	sdir := t.TempDir()
	s := createDir(t, sdir, Options{Key: key})
	must(t, s.SetSetting(ctx, "k", "v"))
	must(t, s.Close())
	again, err := ReadKeyFile(path)
	must(t, err)
	s = openDir(t, sdir, Options{Key: again})
	if v, err := s.Setting(ctx, "k"); err != nil || v != "v" {
		t.Errorf("setting %q, %v", v, err)
	}

	must(t, os.Chmod(path, 0o640))
	if _, err := ReadKeyFile(path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("a group-readable key file was read: %v", err)
	}
}

func TestParseKey(t *testing.T) {
	good := strings.Repeat("0f", keySize)
	for in, ok := range map[string]bool{
		good:                          true,
		"  " + good + "\r\n":          true,
		good[2:]:                      false,
		good + "00":                   false,
		strings.Repeat("zz", keySize): false,
		"":                            false,
		good + "\n" + good:            false,
	} {
		key, err := parseKey([]byte(in))
		if (err == nil) != ok || (ok && len(key) != keySize) {
			t.Errorf("parseKey(%q) = %x, %v", in, key, err)
		}
	}
}

func FuzzParseKey(f *testing.F) {
	f.Add([]byte(strings.Repeat("ab", keySize) + "\n"))
	f.Add([]byte(" \t"))
	f.Add([]byte(strings.Repeat("g", 2*keySize)))
	f.Fuzz(func(t *testing.T, b []byte) {
		key, err := parseKey(b)
		if err != nil {
			return
		}
		if len(key) != keySize {
			t.Fatalf("%d-byte key from %q", len(key), b)
		}
		if again, err := parseKey([]byte(strings.ToUpper(string(bytes.TrimSpace(b))))); err != nil || !bytes.Equal(again, key) {
			t.Fatalf("upper case parses differently: %x %v", again, err)
		}
	})
}
