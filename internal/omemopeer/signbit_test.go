package omemopeer_test

import (
	"bytes"
	"strconv"
	"testing"

	"github.com/balcony-im/balcony/internal/omemopeer"
	"github.com/balcony-im/balcony/internal/servertest"
	"github.com/balcony-im/balcony/omemo"
)

// TestWireIdentitySignBit: one identity key serves both generations, so a
// peer that learned a device's identity from its 0.3 bundle must accept
// the same device's OMEMO 2 key exchanges. python-omemo (oldmemo 1.0.3,
// etree.parse_bundle) rebuilds the Ed25519 identity key from the 0.3
// bundle's Curve25519 key and the sign bit it finds in the top bit of the
// signed pre-key signature's last byte, where its own serialize_bundle
// (and libsignal's curve25519_sign) put it. Balcony's engine signs 0.3
// signed pre-keys with XEdDSA, whose last byte always has that bit clear,
// so for an identity whose Ed25519 key has sign bit 1 python-omemo
// derives another key than the one the engine publishes for OMEMO 2 and
// refuses its OMEMO 2 key exchanges (PublicDataInconsistency); trust
// decisions also split in two. Sign bit 0 works.
func TestWireIdentitySignBit(t *testing.T) {
	srv := servertest.StartProsody(t)
	for _, sign := range []byte{0, 1} {
		t.Run("sign"+strconv.Itoa(int(sign)), func(t *testing.T) {
			n := strconv.Itoa(int(sign))
			carol := newEngineDevice(t, srv, srv.AddUser(t, "carol"+n, ""), sign)
			bob := start(t, srv, srv.AddUser(t, "bob"+n, ""), "")
			// bob learns carol's device from her 0.3 device list and bundle.
			devs, err := bob.Devices(carol.bare, omemopeer.Gen03)
			if err != nil {
				t.Fatal(err)
			}
			want := carol.m[omemo.V2].IdentityKey()
			if len(devs) != 1 {
				t.Fatalf("bob sees %+v", devs)
			}
			if !bytes.Equal(devs[0].IdentityKey, want) {
				t.Errorf("python-omemo reads the identity key %x from the engine's 0.3 bundle; the engine's OMEMO 2 identity key is %x", devs[0].IdentityKey, want)
			}
			// carol starts an OMEMO 2 session with bob.
			body := "OMEMO 2 after a 0.3 bundle"
			carol.send(t, omemo.V2, bob, body, carol.peerBundle(t, omemo.V2, bob))
			expectMessage(t, bob, carol.m[omemo.V2].DeviceID(), omemopeer.Gen2, body, "", true)
		})
	}
}
