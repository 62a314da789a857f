package libotrpeer

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"testing"
)

// Compiling the helper leaves nothing in the temporary directory.
func TestBuildLeavesNothingBehind(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	bin, missing, err := build()
	if missing != "" {
		unavailable(t, missing)
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(bin, []byte("\x7fELF")) {
		t.Fatalf("build returned %d bytes that are not an executable", len(bin))
	}
	entries, err := os.ReadDir(tmp)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Errorf("build left %s in TMPDIR", e.Name())
	}
}

// A test's copies of the helper and of its keys are removed when the test
// ends, and every test gets the same key for the same account.
func TestCopiesRemovedWithTheTest(t *testing.T) {
	var files []string
	var keys [][]byte
	for _, name := range []string{"first", "second"} {
		t.Run(name, func(t *testing.T) {
			p := Start(t, Options{})
			if st := p.State(); st.MsgState != Plaintext {
				t.Fatalf("new peer in state %v", st.MsgState)
			}
			bin, key := Build(t), KeyFile(t, DefaultAccount, DefaultProtocol)
			if Build(t) != bin {
				t.Error("a second Build in the same test made another copy")
			}
			data, err := os.ReadFile(key)
			if err != nil {
				t.Fatal(err)
			}
			files = append(files, bin, key)
			keys = append(keys, data)
		})
	}
	if len(keys) != 2 {
		t.Fatal("subtests did not run")
	}
	if !bytes.Equal(keys[0], keys[1]) {
		t.Error("two tests got different keys for the same account")
	}
	for _, f := range files {
		if _, err := os.Stat(f); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s is still there after its test (%v)", f, err)
		}
	}
}
