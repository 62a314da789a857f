// Package otrtest gives tests outside package otr the DSA keys of the
// engine's libotr test file (otr/testdata/privkeys-libotr.txt), parsed
// once: generating DSA keys takes seconds each, longer under the race
// detector.
package otrtest

import (
	"os"
	"path/filepath"
	"runtime"
	"sync"

	"github.com/balcony-im/balcony/otr"
)

// Keys returns the keys of the libotr test file, in the file's order.
var Keys = sync.OnceValues(func() ([]*otr.PrivateKey, error) {
	data, err := os.ReadFile(KeyFile())
	if err != nil {
		return nil, err
	}
	accts, err := otr.ParseLibotrPrivateKeys(data)
	if err != nil {
		return nil, err
	}
	var keys []*otr.PrivateKey
	for _, a := range accts {
		keys = append(keys, a.Key)
	}
	return keys, nil
})

// KeyFile returns the path of the libotr test file.
func KeyFile() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return filepath.Join("otr", "testdata", "privkeys-libotr.txt")
	}
	return filepath.Join(filepath.Dir(file), "..", "testdata", "privkeys-libotr.txt")
}
