package otr

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"math/big"
	"testing"

	"golang.org/x/crypto/cryptobyte"
)

func TestMPIMinimal(t *testing.T) {
	for _, tc := range []struct {
		in []byte
		ok bool
	}{
		{[]byte{0, 0, 0, 0}, true},
		{[]byte{0, 0, 0, 1, 5}, true},
		{[]byte{0, 0, 0, 1, 0}, false},       // zero written with a byte
		{[]byte{0, 0, 0, 2, 0, 5}, false},    // leading zero
		{[]byte{0, 0, 0, 3, 1, 2}, false},    // truncated
		{[]byte{0, 0, 0x40, 0, 1, 2}, false}, // absurd length
	} {
		s := cryptobyte.String(tc.in)
		var v []byte
		if got := readMPI(&s, &v); got != tc.ok {
			t.Errorf("readMPI(%x) = %v, want %v", tc.in, got, tc.ok)
		}
	}
	if got := appendMPI(nil, []byte{0, 0, 7}); !bytes.Equal(got, []byte{0, 0, 0, 1, 7}) {
		t.Errorf("appendMPI strips zeros: got %x", got)
	}
	if got := appendMPIInt(nil, big.NewInt(0x1234)); !bytes.Equal(got, []byte{0, 0, 0, 2, 0x12, 0x34}) {
		t.Errorf("appendMPIInt: got %x", got)
	}
}

func TestEncodeDecode(t *testing.T) {
	bin := []byte{0, 3, 2, 1, 2, 3, 4, 5, 6, 7, 8, 9}
	enc := encode(bin)
	if !bytes.HasPrefix(enc, []byte("?OTR:AAM")) || enc[len(enc)-1] != '.' {
		t.Fatalf("encode: %q", enc)
	}
	wrapped := append(append([]byte("<b>"), enc...), "</b>"...)
	got, ok := decode(wrapped, nil)
	if !ok || !bytes.Equal(got, bin) {
		t.Fatalf("decode(%q) = %x, %v", wrapped, got, ok)
	}
	// line-wrapped base64 still decodes
	split := append(append(append([]byte{}, enc[:10]...), "\r\n \t"...), enc[10:]...)
	if got, ok := decode(split, nil); !ok || !bytes.Equal(got, bin) {
		t.Fatalf("decode of wrapped base64 failed")
	}
	if _, ok := decode(enc[:len(enc)-1], nil); ok {
		t.Error("decode accepted a message without the final dot")
	}
	if _, ok := decode([]byte("?OTR:!!!!."), nil); ok {
		t.Error("decode accepted invalid base64")
	}
}

func TestDataMsgRoundTrip(t *testing.T) {
	m := dataMsg{flags: 1, senderKeyID: 7, receiverKeyID: 9, nextDH: []byte{1, 2, 3},
		ctr: [8]byte{0, 0, 0, 0, 0, 0, 0, 1}, enc: []byte("cipher"), mac: bytes.Repeat([]byte{0xaa}, 20), oldMACs: bytes.Repeat([]byte{1}, 40)}
	for _, h := range []header{{version: 3, typ: msgData, sender: 0x100, receiver: 0x12345678}, {version: 2, typ: msgData}} {
		bin := m.marshal(h)
		h2, _, ok := parseMessage(bin)
		if !ok || h2 != h {
			t.Fatalf("header round trip: %+v %v", h2, ok)
		}
		var m2 dataMsg
		if !m2.unmarshal(bin, h.len()) {
			t.Fatal("unmarshal failed")
		}
		if !bytes.Equal(m2.marshal(h), bin) {
			t.Fatal("re-marshal differs")
		}
		if !bytes.Equal(m2.authenticated, bin[:len(bin)-20-4-40]) {
			t.Fatal("authenticated prefix wrong")
		}
		if m2.unmarshal(append(bin, 0), h.len()) {
			t.Fatal("trailing byte accepted")
		}
	}
}

// FuzzParseMessage feeds arbitrary decoded binary messages to every parser
// and checks that what parses re-encodes to the same bytes.
func FuzzParseMessage(f *testing.F) {
	h3 := header{version: 3, sender: 0x100, receiver: 0x101}
	h2 := header{version: 2}
	for _, h := range []header{h3, h2} {
		h.typ = msgDHCommit
		f.Add((&dhCommit{encGx: make([]byte, 196), hashGx: make([]byte, 32)}).marshal(h))
		h.typ = msgDHKey
		f.Add((&dhKey{gy: []byte{2, 3}}).marshal(h))
		h.typ = msgRevealSig
		f.Add((&revealSig{r: make([]byte, 16), encSig: []byte{1, 2}, mac: make([]byte, 20)}).marshal(h))
		h.typ = msgSig
		f.Add((&sigMsg{encSig: []byte{1, 2}, mac: make([]byte, 20)}).marshal(h))
		h.typ = msgData
		f.Add((&dataMsg{senderKeyID: 1, receiverKeyID: 1, nextDH: []byte{5}, enc: []byte("x"), mac: make([]byte, 20)}).marshal(h))
	}
	f.Add([]byte{0, 4, 2})
	f.Fuzz(func(t *testing.T, bin []byte) {
		h, body, ok := parseMessage(bin)
		if !ok {
			return
		}
		hb := appendHeader(nil, h)
		var re []byte
		switch h.typ {
		case msgDHCommit:
			var m dhCommit
			if !m.unmarshal(body) {
				return
			}
			re = m.marshal(h)
		case msgDHKey:
			var m dhKey
			if !m.unmarshal(body) {
				return
			}
			re = m.marshal(h)
		case msgRevealSig:
			var m revealSig
			if !m.unmarshal(body) {
				return
			}
			re = m.marshal(h)
		case msgSig:
			var m sigMsg
			if !m.unmarshal(body) {
				return
			}
			re = m.marshal(h)
		case msgData:
			var m dataMsg
			if !m.unmarshal(bin, len(hb)) {
				return
			}
			re = m.marshal(h)
		default:
			return
		}
		if !bytes.Equal(re, bin) {
			t.Fatalf("round trip differs:\n in %x\nout %x", bin, re)
		}
		if _, ok := decode(encode(bin), nil); !ok {
			t.Fatal("encode/decode failed")
		}
	})
}

func TestXorCTRMatchesCrypto(t *testing.T) {
	block, _ := aes.NewCipher(bytes.Repeat([]byte{7}, 16))
	src := make([]byte, 2*ctrShortMax+17)
	for i := range src {
		src[i] = byte(i * 31)
	}
	for _, iv := range [][16]byte{
		{},
		{0, 0, 0, 0, 0, 0, 0, 9},
		{1, 2, 3, 4, 5, 6, 7, 8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe}, // carry into the top half
	} {
		for _, n := range []int{0, 1, 15, 16, 17, 100, ctrShortMax, ctrShortMax + 1, len(src)} {
			want := make([]byte, n)
			cipher.NewCTR(block, iv[:]).XORKeyStream(want, src[:n])
			got := make([]byte, n)
			xorCTR(block, &iv, got, src[:n], new([32]byte))
			if !bytes.Equal(got, want) {
				t.Fatalf("iv %x, %d bytes: keystream differs", iv, n)
			}
			inPlace := bytes.Clone(src[:n])
			xorCTR(block, &iv, inPlace, inPlace, new([32]byte))
			if !bytes.Equal(inPlace, want) {
				t.Fatalf("iv %x, %d bytes: in place differs", iv, n)
			}
		}
	}
}
