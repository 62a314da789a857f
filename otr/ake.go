package otr

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"io"
	"math/big"

	"golang.org/x/crypto/cryptobyte"
)

// authState is the AKE state (Protocol-v3 "Authentication state").
type authState int

const (
	authNone authState = iota
	authAwaitingDHKey
	authAwaitingRevealSig
	authAwaitingSig
)

// akeKeyID is the key id we give our AKE DH key. Protocol-v3 requires it
// to be > 0; like libotr we restart at 1 for every AKE.
const akeKeyID = 1

// akeKeys are the values derived from the AKE's shared secret
// (Protocol-v3 "Computing AES keys, MAC keys, and the secure session id").
type akeKeys struct {
	ssid             [8]byte
	c, cp            [16]byte
	m1, m2, m1p, m2p [32]byte
}

func deriveAKEKeys(secbytes []byte) *akeKeys {
	k := new(akeKeys)
	h := h2(0x00, secbytes)
	copy(k.ssid[:], h[:8])
	h = h2(0x01, secbytes)
	copy(k.c[:], h[:16])
	copy(k.cp[:], h[16:])
	k.m1 = h2(0x02, secbytes)
	k.m2 = h2(0x03, secbytes)
	k.m1p = h2(0x04, secbytes)
	k.m2p = h2(0x05, secbytes)
	clear(h[:])
	return k
}

func (k *akeKeys) wipe() {
	if k != nil {
		*k = akeKeys{}
	}
}

// ake holds one authenticated key exchange in progress. "Bob" sends the
// DH-Commit and Reveal-Signature messages, "Alice" the DH-Key and Signature
// messages, as in Protocol-v3.
type ake struct {
	state   authState
	version uint16
	ours    *dhKeyPair // g^x as Bob, g^y as Alice
	ourMPI  []byte     // MPI encoding of ours.pub

	// Bob
	r         [16]byte
	hashGx    [32]byte // SHA256 of our g^x MPI
	commitBin []byte   // our DH-Commit, binary, for resending
	theirGy   []byte   // MPI encoding of the g^y we answered
	revealBin []byte   // our Reveal-Signature, binary, for resending
	keys      *akeKeys
	secbytes  []byte

	// Alice
	theirEncGx  []byte
	theirHashGx []byte
	dhKeyBin    []byte // our DH-Key, binary, for resending
}

func (a *ake) reset() {
	if a.ours != nil {
		a.ours.wipe()
	}
	a.keys.wipe()
	clear(a.secbytes)
	clear(a.r[:])
	*a = ake{}
}

// akeResult is what a completed AKE hands to the data-message layer.
type akeResult struct {
	version    uint16
	ours       *dhKeyPair // our AKE DH key (id akeKeyID)
	theirDH    *big.Int
	theirKeyID uint32
	theirKey   *PublicKey
	ssid       [8]byte
	secbytes   []byte // of the AKE shared secret = the first data key pair
}

// startCommit begins an AKE as Bob and returns the DH-Commit body.
func (a *ake) startCommit(r io.Reader, version uint16, h header) ([]byte, error) {
	a.reset()
	x, err := newDHKeyPair(r, akeKeyID)
	if err != nil {
		return nil, err
	}
	if _, err := io.ReadFull(r, a.r[:]); err != nil {
		x.wipe()
		return nil, err
	}
	a.version = version
	a.ours = x
	a.ourMPI = x.pubMPI
	enc := make([]byte, len(a.ourMPI))
	var iv [16]byte
	aesCTR(a.r[:], &iv, enc, a.ourMPI)
	a.hashGx = sha256.Sum256(a.ourMPI)
	h.version, h.typ = version, msgDHCommit
	a.commitBin = (&dhCommit{encGx: enc, hashGx: a.hashGx[:]}).marshal(h)
	a.state = authAwaitingDHKey
	return a.commitBin, nil
}

// replyDHKey answers a DH-Commit as Alice (from AUTHSTATE_NONE, or after
// losing the simultaneous-commit comparison, or from AWAITING_SIG).
func (a *ake) replyDHKey(r io.Reader, version uint16, h header, m *dhCommit) ([]byte, error) {
	a.reset()
	y, err := newDHKeyPair(r, akeKeyID)
	if err != nil {
		return nil, err
	}
	a.version = version
	a.ours = y
	a.ourMPI = y.pubMPI
	a.theirEncGx = bytes.Clone(m.encGx)
	a.theirHashGx = bytes.Clone(m.hashGx)
	h.version, h.typ = version, msgDHKey
	a.dhKeyBin = (&dhKey{gy: y.pub.Bytes()}).marshal(h)
	a.state = authAwaitingRevealSig
	return a.dhKeyBin, nil
}

// handleCommit implements "Receiving a D-H Commit Message". It returns the
// binary message to send, if any.
func (a *ake) handleCommit(r io.Reader, version uint16, h header, m *dhCommit) ([]byte, error) {
	switch a.state {
	case authAwaitingDHKey:
		if a.version == version {
			// The simultaneous-commit tie break: compare the hashed g^x
			// values as 32-byte big-endian numbers; the higher keeps its
			// commit and resends it.
			if bytes.Compare(a.hashGx[:], m.hashGx) > 0 {
				return a.commitBin, nil
			}
		}
		return a.replyDHKey(r, version, h, m)
	case authAwaitingRevealSig:
		if a.version == version {
			// Retransmit the same DH-Key; use the new commit.
			a.theirEncGx = bytes.Clone(m.encGx)
			a.theirHashGx = bytes.Clone(m.hashGx)
			return a.dhKeyBin, nil
		}
		return a.replyDHKey(r, version, h, m)
	default: // none, awaiting signature: reply with a new DH-Key
		return a.replyDHKey(r, version, h, m)
	}
}

// handleDHKey implements "Receiving a D-H Key Message" as Bob. It returns
// the Reveal-Signature message, a retransmission, or nothing.
func (a *ake) handleDHKey(r io.Reader, h header, m *dhKey, key *PrivateKey) ([]byte, error) {
	gyMPI := appendMPI(nil, m.gy)
	switch {
	case a.state == authAwaitingSig && h.version == a.version:
		if bytes.Equal(gyMPI, a.theirGy) {
			return a.revealBin, nil
		}
		return nil, nil
	case a.state != authAwaitingDHKey || h.version != a.version:
		return nil, nil
	}
	gy := new(big.Int).SetBytes(m.gy)
	if !checkPublic(gy) {
		return nil, ErrInvalidMessage
	}
	secbytes, err := sharedSecret(gy, a.ours.priv)
	if err != nil {
		return nil, ErrInvalidMessage
	}
	keys := deriveAKEKeys(secbytes)
	encSig, mac, err := buildSignature(r, key, keys.c[:], keys.m1[:], keys.m2[:], a.ourMPI, gyMPI, a.ours.id)
	if err != nil {
		clear(secbytes)
		keys.wipe()
		return nil, err
	}
	h.version, h.typ = a.version, msgRevealSig
	a.revealBin = (&revealSig{r: a.r[:], encSig: encSig, mac: mac}).marshal(h)
	a.theirGy = gyMPI
	a.keys = keys
	a.secbytes = secbytes
	a.state = authAwaitingSig
	return a.revealBin, nil
}

// handleRevealSig implements "Receiving a Reveal Signature Message" as
// Alice. On success it returns the Signature message and the new session.
// A message that fails any check is reported as ErrInvalidMessage and
// ignored: the AKE stays where it was.
func (a *ake) handleRevealSig(r io.Reader, h header, m *revealSig, key *PrivateKey) ([]byte, *akeResult, error) {
	if a.state != authAwaitingRevealSig || h.version != a.version {
		return nil, nil, nil
	}
	gxMPI := make([]byte, len(a.theirEncGx))
	var iv [16]byte
	aesCTR(m.r, &iv, gxMPI, a.theirEncGx)
	hash := sha256.Sum256(gxMPI)
	if subtle.ConstantTimeCompare(hash[:], a.theirHashGx) != 1 {
		return nil, nil, ErrInvalidMessage
	}
	s := cryptobyte.String(gxMPI)
	var gxBytes []byte
	if !readMPI(&s, &gxBytes) || !s.Empty() {
		return nil, nil, ErrInvalidMessage
	}
	gx := new(big.Int).SetBytes(gxBytes)
	if !checkPublic(gx) {
		return nil, nil, ErrInvalidMessage
	}
	secbytes, err := sharedSecret(gx, a.ours.priv)
	if err != nil {
		return nil, nil, ErrInvalidMessage
	}
	keys := deriveAKEKeys(secbytes)
	defer keys.wipe()
	theirKey, theirKeyID, ok := verifySignature(keys.c[:], keys.m1[:], keys.m2[:], gxMPI, a.ourMPI, m.encSig, m.mac)
	if !ok {
		clear(secbytes)
		return nil, nil, ErrInvalidMessage
	}
	encSig, mac, err := buildSignature(r, key, keys.cp[:], keys.m1p[:], keys.m2p[:], a.ourMPI, gxMPI, a.ours.id)
	if err != nil {
		clear(secbytes)
		return nil, nil, err
	}
	h.version, h.typ = a.version, msgSig
	out := (&sigMsg{encSig: encSig, mac: mac}).marshal(h)
	res := &akeResult{
		version: a.version, ours: a.ours, theirDH: gx, theirKeyID: theirKeyID,
		theirKey: theirKey, ssid: keys.ssid, secbytes: secbytes,
	}
	a.ours = nil // handed over to the session
	a.reset()
	return out, res, nil
}

// handleSig implements "Receiving a Signature Message" as Bob.
func (a *ake) handleSig(h header, m *sigMsg) (*akeResult, error) {
	if a.state != authAwaitingSig || h.version != a.version {
		return nil, nil
	}
	theirKey, theirKeyID, ok := verifySignature(a.keys.cp[:], a.keys.m1p[:], a.keys.m2p[:], a.theirGy, a.ourMPI, m.encSig, m.mac)
	if !ok {
		return nil, ErrInvalidMessage
	}
	s := cryptobyte.String(a.theirGy)
	var gyBytes []byte
	readMPI(&s, &gyBytes)
	res := &akeResult{
		version: a.version, ours: a.ours, theirDH: new(big.Int).SetBytes(gyBytes), theirKeyID: theirKeyID,
		theirKey: theirKey, ssid: a.keys.ssid, secbytes: a.secbytes,
	}
	a.ours, a.secbytes = nil, nil // handed over to the session
	a.reset()
	return res, nil
}

// buildSignature computes the encrypted signature and its MAC for a
// Reveal-Signature (c, m1, m2; ourMPI = g^x, theirMPI = g^y) or Signature
// message (c', m1', m2'; ourMPI = g^y, theirMPI = g^x):
//
//	M = HMAC-SHA256_m1(our MPI, their MPI, PUBKEY, keyid)
//	X = PUBKEY, keyid, SIG(M)
//	encSig = AES-CTR_c(X); MAC = HMAC-SHA256-160_m2(DATA(encSig))
func buildSignature(r io.Reader, key *PrivateKey, c, m1, m2, ourMPI, theirMPI []byte, keyID uint32) (encSig, mac []byte, err error) {
	pub := key.appendPubKey(nil)
	mac1 := hmac.New(sha256.New, m1)
	mac1.Write(ourMPI)
	mac1.Write(theirMPI)
	mac1.Write(pub)
	var kid [4]byte
	binary.BigEndian.PutUint32(kid[:], keyID)
	mac1.Write(kid[:])
	M := mac1.Sum(nil)
	sig, err := key.sign(r, M)
	if err != nil {
		return nil, nil, err
	}
	x := append(append(pub, kid[:]...), sig[:]...)
	var iv [16]byte
	aesCTR(c, &iv, x, x)
	mac2 := hmac.New(sha256.New, m2)
	mac2.Write(binary.BigEndian.AppendUint32(nil, uint32(len(x))))
	mac2.Write(x)
	return x, mac2.Sum(nil)[:macLen], nil
}

// verifySignature checks the MAC over DATA(encSig), decrypts X and
// verifies the signature over M = HMAC-SHA256_m1(their MPI, our MPI,
// PUBKEY, keyid). theirMPI is the sender's DH value.
func verifySignature(c, m1, m2, theirMPI, ourMPI, encSig, gotMAC []byte) (*PublicKey, uint32, bool) {
	mac2 := hmac.New(sha256.New, m2)
	mac2.Write(binary.BigEndian.AppendUint32(nil, uint32(len(encSig))))
	mac2.Write(encSig)
	if subtle.ConstantTimeCompare(mac2.Sum(nil)[:macLen], gotMAC) != 1 {
		return nil, 0, false
	}
	x := make([]byte, len(encSig))
	var iv [16]byte
	aesCTR(c, &iv, x, encSig)
	s := cryptobyte.String(x)
	pub, ok := readPubKey(&s)
	if !ok {
		return nil, 0, false
	}
	pubBytes := x[:len(x)-len(s)]
	var keyID uint32
	var sig []byte
	if !s.ReadUint32(&keyID) || keyID == 0 || !s.ReadBytes(&sig, sigLen) || !s.Empty() {
		return nil, 0, false
	}
	mac1 := hmac.New(sha256.New, m1)
	mac1.Write(theirMPI)
	mac1.Write(ourMPI)
	mac1.Write(pubBytes)
	mac1.Write(binary.BigEndian.AppendUint32(nil, keyID))
	if !pub.verify(mac1.Sum(nil), sig) {
		return nil, 0, false
	}
	return pub, keyID, true
}
