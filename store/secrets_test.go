package store

import (
	"testing"
)

// fixedReader yields its bytes, then zeros.
type fixedReader struct{ b []byte }

func (r *fixedReader) Read(p []byte) (int, error) {
	n := copy(p, r.b)
	r.b = r.b[n:]
	clear(p[n:])
	return len(p), nil
}

// Instance tags below 0x100 are reserved (OTRv3 "Instance Tags"): such
// random values are drawn again. (The suite checks the tag is kept.)
func TestOTRInstanceTagReserved(t *testing.T) {
	s := openTest(t)
	s.rand = &fixedReader{b: []byte{0, 0, 0, 0xff, 0, 0, 1, 0}}
	if tag, err := s.OTRInstanceTag(ctx); err != nil || tag != 0x100 {
		t.Errorf("tag %#x, %v; want 0x100", tag, err)
	}
}
