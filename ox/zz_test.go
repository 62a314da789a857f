package ox

import (
	"bytes"
	"io"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp"
)

func BenchmarkRawReadMessage(b *testing.B) {
	f := fixture(b)
	msg, _ := Seal(f.content, f.alice, []*Key{f.bob, f.alice}, nil)
	ring := openpgp.EntityList{f.bob.entity, f.alice.Public().entity}
	p := newPrimitives(f.plainLen)
	m := &limitMeter{prims: p.open}
	b.ResetTimer()
	for i := range b.N {
		md, err := openpgp.ReadMessage(bytes.NewReader(msg), ring, nil, nil)
		if err != nil {
			b.Fatal(err)
		}
		io.ReadAll(md.UnverifiedBody)
		if md.SignatureError != nil {
			b.Fatal(md.SignatureError)
		}
		m.after(b, i)
	}
	m.report(b)
}
