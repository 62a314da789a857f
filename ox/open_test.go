package ox

import (
	"bytes"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/xmltree"
)

func imContent(to ...jid.JID) Content {
	return Content{Kind: Signcrypt, To: to, Payload: []*xmltree.Element{body("Wherefore art thou?")}}
}

// bobParams are the parameters for Bob receiving a message from Alice.
func bobParams(k *struct{ alice, alice2, bob, bob2, mallory *Key }) OpenParams {
	return OpenParams{
		From:       jid.MustParse("alice@example.org/balcony"),
		To:         jid.MustParse("bob@example.net/orchard"),
		SenderKeys: []*Key{k.alice.Public(), k.alice2.Public()},
		Require:    Signcrypt,
		Time:       t0,
	}
}

func problemsIs(op *Opened, target error) bool {
	for _, p := range op.Problems {
		if errors.Is(p, target) {
			return true
		}
	}
	return false
}

func TestSealOpenSigncrypt(t *testing.T) {
	k := keys(t)
	// XEP-0374 §4.1: all of Bob's keys and all of Alice's own keys.
	msg := sealFor(t, imContent(bobJID), k.alice, k.bob, k.bob2, k.alice, k.alice2, k.bob.Public())
	for _, recipient := range []*Key{k.bob, k.bob2} {
		op, err := opener(t, recipient).Open(msg, bobParams(k))
		if err != nil {
			t.Fatal(err)
		}
		if !op.Verified || len(op.Problems) != 0 || op.Signer.Fingerprint() != k.alice.Fingerprint() ||
			op.DecryptedWith != recipient || !op.Signed || !op.Encrypted {
			t.Fatalf("%+v", op)
		}
		if !op.Content.Time.Equal(t0) || op.Skew != 0 || op.Content.Kind != Signcrypt {
			t.Errorf("content %+v skew %v", op.Content, op.Skew)
		}
		if p := payloadXML(t, op.Content.Payload); p != `<body xmlns="jabber:client">Wherefore art thou?</body>` {
			t.Errorf("payload %s", p)
		}
		if op.Content.Rpad == "" {
			t.Error("no padding")
		}
	}
	// Alice's other device reads her sent message back from carbons or MAM:
	// From is her own JID, To the contact's, and her own keys are the
	// sender keys.
	own := OpenParams{
		From:       jid.MustParse("alice@example.org/balcony"),
		To:         bobJID,
		SenderKeys: []*Key{k.alice.Public(), k.alice2.Public()},
		Require:    Signcrypt,
		Time:       t0,
	}
	op, err := opener(t, k.alice2).Open(msg, own)
	if err != nil || !op.Verified {
		t.Fatalf("own message from carbons: %v %+v", err, op)
	}
	// Mallory was not a recipient.
	if _, err := opener(t, k.mallory).Open(msg, bobParams(k)); !errors.Is(err, ErrNoKey) {
		t.Errorf("non-recipient: %v", err)
	}
}

func TestSealOpenSignAndCrypt(t *testing.T) {
	k := keys(t)
	c := imContent(bobJID)
	c.Kind = Sign
	msg := sealFor(t, c, k.alice)
	p := bobParams(k)
	p.Require = 0
	// A signed message needs no own key to open.
	op, err := opener(t).Open(msg, p)
	if err != nil || !op.Verified || op.Encrypted || op.Content.Kind != Sign || op.DecryptedWith != nil {
		t.Fatalf("sign: %v %+v", err, op)
	}
	if op.Content.Rpad != "" {
		t.Error("sign padded")
	}

	c.Kind = Crypt
	c.To = nil
	msg = sealFor(t, c, nil, k.bob)
	op, err = opener(t, k.bob).Open(msg, p)
	if err != nil {
		t.Fatal(err)
	}
	// <crypt/> is valid but never verified: the sender is unknown.
	if op.Verified || op.Signed || op.Signer != nil || len(op.Problems) != 0 || op.Content.Kind != Crypt {
		t.Fatalf("crypt: %+v", op)
	}
}

func TestOpenWrongRecipient(t *testing.T) {
	k := keys(t)
	// Alice wrote to Carol (and encrypted to Bob as well); a message
	// forwarded to Bob must not look as if it had been written to him.
	msg := sealFor(t, imContent(jid.MustParse("carol@example.com")), k.alice, k.bob, k.alice)
	op, err := opener(t, k.bob).Open(msg, bobParams(k))
	if err != nil {
		t.Fatal(err)
	}
	var re *RecipientError
	if op.Verified || len(op.Problems) != 1 || !errors.As(op.Problems[0], &re) || !errors.Is(re, ErrRecipient) {
		t.Fatalf("%+v", op)
	}
	if !re.Outer.Equal(bobJID) || len(re.To) != 1 || re.To[0].String() != "carol@example.com" {
		t.Errorf("%+v", re)
	}
	if !strings.Contains(re.Error(), "carol@example.com") {
		t.Errorf("message %q", re.Error())
	}

	// Several <to/>: one match is enough; a full JID in <to/> compares bare.
	msg = sealFor(t, imContent(jid.MustParse("carol@example.com"), jid.MustParse("BOB@example.net/tablet")), k.alice, k.bob)
	if op, err := opener(t, k.bob).Open(msg, bobParams(k)); err != nil || !op.Verified {
		t.Fatalf("second <to/>: %v %+v", err, op)
	}
	// A MUC message names the room; the caller passes the room as To.
	room := jid.MustParse("room@muc.example.org")
	msg = sealFor(t, imContent(room), k.alice, k.bob)
	p := bobParams(k)
	p.To = room
	if op, err := opener(t, k.bob).Open(msg, p); err != nil || !op.Verified {
		t.Fatalf("room: %v %+v", err, op)
	}
}

func TestOpenSignerNotSender(t *testing.T) {
	k := keys(t)
	// Mallory signs with his own key and sends from his account, claiming
	// to be Alice in the payload; Bob opens it as a message from Alice.
	msg := sealFor(t, imContent(bobJID), k.mallory, k.bob)
	op, err := opener(t, k.bob).Open(msg, bobParams(k))
	if err != nil {
		t.Fatal(err)
	}
	var se *SignerError
	if op.Verified || op.Signer != nil || !errors.As(op.Problems[0], &se) || !errors.Is(se, ErrUnknownSigner) {
		t.Fatalf("%+v", op)
	}
	if se.KeyID != k.mallory.entity.PrimaryKey.KeyId || op.SignerKeyID != se.KeyID {
		t.Errorf("key ID %X, want %X", se.KeyID, k.mallory.entity.PrimaryKey.KeyId)
	}

	// Even if Mallory's key were among the keys offered for Alice, it has no
	// xmpp:alice@example.org user ID.
	p := bobParams(k)
	p.SenderKeys = append(p.SenderKeys, k.mallory.Public())
	op, err = opener(t, k.bob).Open(msg, p)
	if err != nil {
		t.Fatal(err)
	}
	if op.Verified || op.Signer != k.mallory.Public() && op.Signer.Fingerprint() != k.mallory.Fingerprint() || !problemsIs(op, ErrUserID) {
		t.Fatalf("%+v", op)
	}

	// Bob's own key cannot stand in for Alice's: decryption keys and
	// verification keys are kept apart.
	msg = sealFor(t, imContent(bobJID), k.bob, k.bob)
	op, err = opener(t, k.bob).Open(msg, bobParams(k))
	if err != nil || op.Verified || !problemsIs(op, ErrUnknownSigner) {
		t.Fatalf("own key as sender: %v %+v", err, op)
	}
}

func TestOpenWrongUserID(t *testing.T) {
	k := keys(t)
	for _, uid := range []string{
		"Alice <alice@example.org>",       // e-mail style
		"Alice <xmpp:alice@example.org>",  // name added
		"xmpp:alice@example.org/balcony",  // full JID
		"xmpp:alice@example.com",          // other domain
		"alice@example.org",               // no scheme
		"xmpp:alice@example.org?message",  // URI query
		"XMPP:alice@example.org",          // scheme case
		" xmpp:alice@example.org",         // space
		"xmpp:alice@example.org\x00extra", // NUL
	} {
		t.Run(uid, func(t *testing.T) {
			e := rawEntity(t, "placeholder", t0.Add(-time.Hour), 0)
			renameUID(t, e, "placeholder", uid)
			impostor := mustKey(t, e)
			msg := sealFor(t, imContent(bobJID), impostor, k.bob)
			p := bobParams(k)
			p.SenderKeys = []*Key{impostor.Public()}
			op, err := opener(t, k.bob).Open(msg, p)
			if err != nil {
				t.Fatal(err)
			}
			if op.Verified || !problemsIs(op, ErrUserID) {
				t.Fatalf("%+v", op)
			}
			if err := impostor.ValidFor(aliceJID, t0); !errors.Is(err, ErrUserID) {
				t.Errorf("ValidFor: %v", err)
			}
		})
	}
	// The exact form, and its normalised variants, are accepted.
	for _, uid := range []string{"xmpp:alice@example.org", "xmpp:Alice@EXAMPLE.org"} {
		e := rawEntity(t, "placeholder", t0.Add(-time.Hour), 0)
		renameUID(t, e, "placeholder", uid)
		if err := mustKey(t, e).ValidFor(jid.MustParse("alice@example.org/res"), t0); err != nil {
			t.Errorf("%s: %v", uid, err)
		}
	}
}

// renameUID replaces a user ID of e with an arbitrary string, re-signed.
func renameUID(t testing.TB, e *openpgp.Entity, from, to string) {
	t.Helper()
	ident := e.Identities[from]
	delete(e.Identities, from)
	sig := *ident.SelfSignature
	if err := sig.SignUserId(to, e.PrimaryKey, e.PrivateKey, nil); err != nil {
		t.Fatal(err)
	}
	e.Identities[to] = &openpgp.Identity{Name: to, UserId: &packet.UserId{Id: to}, SelfSignature: &sig, Signatures: []*packet.Signature{&sig}}
}

func TestOpenKindRequired(t *testing.T) {
	k := keys(t)
	p := bobParams(k)

	c := imContent(bobJID)
	c.Kind = Crypt
	op, err := opener(t, k.bob).Open(sealFor(t, c, nil, k.bob), p)
	if err != nil {
		t.Fatal(err)
	}
	var ke *KindError
	if op.Verified || !errors.As(op.Problems[0], &ke) || ke.Want != Signcrypt || ke.Got != Crypt {
		t.Fatalf("crypt for IM: %+v", op)
	}

	c.Kind = Sign
	op, err = opener(t, k.bob).Open(sealFor(t, c, k.alice), p)
	if err != nil {
		t.Fatal(err)
	}
	if op.Verified || !problemsIs(op, ErrKind) || op.Signer == nil {
		t.Fatalf("sign for IM: %+v", op)
	}
	if !strings.Contains(op.Problems[0].Error(), "<signcrypt/> required, got <sign/>") {
		t.Errorf("message %q", op.Problems[0])
	}
}

// craft builds an OpenPGP message whose structure contradicts the kind of the
// content element inside it, as another implementation might.
func craft(t *testing.T, c Content, sign *Key, to ...*Key) []byte {
	t.Helper()
	c.Time = t0
	plain, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	var signer *openpgp.Entity
	if sign != nil {
		signer = sign.entity
	}
	var ents []*openpgp.Entity
	for _, k := range to {
		ents = append(ents, k.entity)
	}
	var out bytes.Buffer
	pc := &packet.Config{Time: func() time.Time { return t0 }}
	hints := &openpgp.FileHints{IsBinary: true}
	var w interface {
		Write([]byte) (int, error)
		Close() error
	}
	switch {
	case len(ents) > 0:
		w, err = openpgp.Encrypt(&out, ents, signer, hints, pc)
	case signer != nil:
		w, err = openpgp.Sign(&out, signer, hints, pc)
	default:
		var lw interface {
			Write([]byte) (int, error)
			Close() error
		}
		lw, err = packet.SerializeLiteral(nopWriteCloser{&out}, true, "", 0)
		w = lw
	}
	if err != nil {
		t.Fatal(err)
	}
	w.Write(plain)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

type nopWriteCloser struct{ *bytes.Buffer }

func (nopWriteCloser) Close() error { return nil }

func TestOpenStructureContradictsKind(t *testing.T) {
	k := keys(t)
	p := bobParams(k)
	p.Require = 0
	cases := []struct {
		name    string
		kind    Kind
		sign    *Key
		encrypt bool
		want    error
	}{
		{"unsigned signcrypt", Signcrypt, nil, true, ErrNotSigned},
		{"unencrypted signcrypt", Signcrypt, k.alice, false, ErrKind},
		{"signed crypt", Crypt, k.alice, true, ErrKind},
		{"encrypted sign", Sign, k.alice, true, ErrKind},
		{"unsigned sign", Sign, nil, false, ErrNotSigned},
		{"plain literal crypt", Crypt, nil, false, ErrKind},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := imContent(bobJID)
			c.Kind = tc.kind
			var to []*Key
			if tc.encrypt {
				to = []*Key{k.bob}
			}
			op, err := opener(t, k.bob).Open(craft(t, c, tc.sign, to...), p)
			if err != nil {
				t.Fatal(err)
			}
			if op.Verified || !problemsIs(op, tc.want) {
				t.Fatalf("%+v", op)
			}
			for _, e := range op.Problems {
				if e.Error() == "" || !strings.HasPrefix(e.Error(), "ox: ") {
					t.Errorf("error text %q", e)
				}
			}
		})
	}
}

func TestOpenTampered(t *testing.T) {
	k := keys(t)
	msg := sealFor(t, imContent(bobJID), k.alice, k.bob)
	o := opener(t, k.bob)
	// Flip one bit at a time through the whole message. Nothing may ever
	// open as verified content different from the original, and every
	// failure inside the encrypted data is the one opaque error.
	// One PKESK packet (new format, one-octet length), then the SEIPD packet.
	if msg[0] != 0xc1 || msg[1] >= 192 {
		t.Fatalf("unexpected first packet header % x", msg[:2])
	}
	encStart := 2 + int(msg[1])
	if msg[encStart] != 0xd2 {
		t.Fatalf("no SEIPD packet at %d: % x", encStart, msg[encStart:encStart+2])
	}
	step := 1
	if testing.Short() {
		step = 7
	}
	for i := 0; i < len(msg); i += step {
		bad := bytes.Clone(msg)
		bad[i] ^= 0x10
		op, err := o.Open(bad, bobParams(k))
		if err == nil {
			if op.Verified && payloadXML(t, op.Content.Payload) != `<body xmlns="jabber:client">Wherefore art thou?</body>` {
				t.Fatalf("byte %d: tampered content verified", i)
			}
			continue
		}
		if i > encStart+3 && !errors.Is(err, ErrDecrypt) {
			t.Errorf("byte %d in the encrypted data: %v", i, err)
		}
		if !errors.Is(err, ErrDecrypt) && !errors.Is(err, ErrNoKey) && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTooLarge) {
			t.Errorf("byte %d: unexpected error %v", i, err)
		}
	}
	// Truncation.
	for _, n := range []int{0, 1, 10, len(msg) / 2, len(msg) - 1} {
		if _, err := o.Open(msg[:n], bobParams(k)); err == nil {
			t.Errorf("truncated to %d bytes: no error", n)
		}
	}
	if _, err := o.Open([]byte("not OpenPGP at all"), bobParams(k)); !errors.Is(err, ErrMalformed) {
		t.Errorf("garbage: %v", err)
	}
}

func TestOpenExpiredOrRevokedSender(t *testing.T) {
	k := keys(t)
	// A key valid for a day, used an hour after its creation.
	created := t0.Add(-2 * time.Hour)
	e := rawEntity(t, "xmpp:alice@example.org", created, 24*time.Hour)
	short := mustKey(t, e)
	msg := sealFor(t, imContent(bobJID), short, k.bob)
	p := bobParams(k)
	p.SenderKeys = []*Key{short.Public()}
	if op, err := opener(t, k.bob).Open(msg, p); err != nil || !op.Verified {
		t.Fatalf("valid key: %v %+v", err, op)
	}
	if err := short.ValidFor(aliceJID, t0); err != nil {
		t.Errorf("ValidFor: %v", err)
	}
	// Two days later (live message), the key has expired.
	p.Time = t0.Add(48 * time.Hour)
	op, err := opener(t, k.bob).Open(msg, p)
	if err != nil || op.Verified || !problemsIs(op, ErrKeyExpired) {
		t.Fatalf("expired: %v %+v", err, op)
	}
	if err := short.ValidFor(aliceJID, p.Time); !errors.Is(err, ErrKeyExpired) {
		t.Errorf("ValidFor: %v", err)
	}
	if err := short.CanEncrypt(p.Time); !errors.Is(err, ErrKeyExpired) {
		t.Errorf("CanEncrypt: %v", err)
	}
	if exp, ok := short.Expires(); !ok || !exp.Equal(created.Add(24*time.Hour)) {
		t.Errorf("Expires %v %v", exp, ok)
	}

	// Revoked.
	// The message is made before the key is revoked.
	e = rawEntity(t, "xmpp:alice@example.org", created, 0)
	revoked := mustKey(t, e)
	msg = craft(t, imContent(bobJID), revoked, k.bob)
	if err := e.RevokeKey(packet.KeySuperseded, "new device", &packet.Config{Time: func() time.Time { return t0.Add(-time.Minute) }}); err != nil {
		t.Fatal(err)
	}
	p = bobParams(k)
	p.SenderKeys = []*Key{revoked.Public()}
	op, err = opener(t, k.bob).Open(msg, p)
	if err != nil || op.Verified || !problemsIs(op, ErrKeyRevoked) {
		t.Fatalf("revoked: %v %+v", err, op)
	}
	if !revoked.Revoked(t0) {
		t.Error("Revoked false")
	}
	if _, err := Seal(imContent(bobJID), revoked, []*Key{k.bob}, testConfig()); !errors.Is(err, ErrKeyRevoked) {
		t.Errorf("Seal with revoked key: %v", err)
	}
	if _, err := Seal(imContent(bobJID), k.alice, []*Key{revoked}, testConfig()); !errors.Is(err, ErrKeyRevoked) {
		t.Errorf("Seal to revoked key: %v", err)
	}

	// Revoking only the xmpp: user ID also stops the key speaking for Alice.
	e = rawEntity(t, "xmpp:alice@example.org", created, 0)
	uidRev := &packet.Signature{
		Version: 4, SigType: packet.SigTypeCertificationRevocation, PubKeyAlgo: e.PrimaryKey.PubKeyAlgo,
		Hash: e.Identities["xmpp:alice@example.org"].SelfSignature.Hash, CreationTime: t0.Add(-time.Minute),
		IssuerKeyId: &e.PrimaryKey.KeyId,
	}
	if err := uidRev.SignUserId("xmpp:alice@example.org", e.PrimaryKey, e.PrivateKey, nil); err != nil {
		t.Fatal(err)
	}
	e.Identities["xmpp:alice@example.org"].Revocations = append(e.Identities["xmpp:alice@example.org"].Revocations, uidRev)
	if err := mustKey(t, e).ValidFor(aliceJID, t0); !errors.Is(err, ErrKeyRevoked) {
		t.Errorf("revoked user ID: %v", err)
	}
}

func TestOpenTime(t *testing.T) {
	k := keys(t)
	p := bobParams(k)
	c := imContent(bobJID)
	// The sender's clock is an hour ahead.
	c.Time = t0.Add(time.Hour)
	msg := sealFor(t, c, k.alice, k.bob)
	op, err := opener(t, k.bob).Open(msg, p)
	if err != nil {
		t.Fatal(err)
	}
	var te *TimeError
	if op.Verified || op.Signer == nil || len(op.Problems) != 1 || !errors.As(op.Problems[0], &te) || op.Skew != time.Hour {
		t.Fatalf("%+v", op)
	}
	if !strings.Contains(te.Error(), "1h0m0s ahead") {
		t.Errorf("message %q", te)
	}
	// An archived message is judged against its archive time stamp.
	p.Time = t0.Add(time.Hour + time.Minute)
	if op, _ := opener(t, k.bob).Open(msg, p); len(op.Problems) != 0 || op.Skew != -time.Minute {
		t.Errorf("archive: %+v", op)
	}
	// The skew tolerance is configurable.
	o, _ := NewOpener([]*Key{k.bob}, &Config{MaxClockSkew: 2 * time.Hour})
	p.Time = t0
	if op, _ := o.Open(msg, p); len(op.Problems) != 0 {
		t.Errorf("tolerance: %+v", op)
	}

	// A sender key made moments ago on a clock a little ahead of ours is fine.
	e := rawEntity(t, "xmpp:alice@example.org", t0.Add(3*time.Minute), 0)
	fresh := mustKey(t, e)
	msg, err = Seal(imContent(bobJID), fresh, []*Key{k.bob}, &Config{Now: func() time.Time { return t0.Add(3 * time.Minute) }})
	if err != nil {
		t.Fatal(err)
	}
	p = bobParams(k)
	p.SenderKeys = []*Key{fresh.Public()}
	if op, err := opener(t, k.bob).Open(msg, p); err != nil || !op.Verified || len(op.Problems) != 0 {
		t.Fatalf("fresh key: %v %+v", err, op)
	}
	// One made a day in the future is not.
	e = rawEntity(t, "xmpp:alice@example.org", t0.Add(24*time.Hour), 0)
	future := mustKey(t, e)
	msg, err = Seal(imContent(bobJID), future, []*Key{k.bob}, &Config{Now: func() time.Time { return t0.Add(24 * time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	p.SenderKeys = []*Key{future.Public()}
	if op, err := opener(t, k.bob).Open(msg, p); err != nil || op.Verified || !problemsIs(op, ErrKeyExpired) || !problemsIs(op, ErrTime) {
		t.Fatalf("future key: %v %+v", err, op)
	}
}

func TestSealErrors(t *testing.T) {
	k := keys(t)
	cfg := testConfig()
	c := imContent(bobJID)
	if _, err := Seal(c, nil, []*Key{k.bob}, cfg); err == nil {
		t.Error("signcrypt without signer")
	}
	if _, err := Seal(c, k.alice, nil, cfg); err == nil {
		t.Error("signcrypt without recipients")
	}
	if _, err := Seal(c, k.alice.Public(), []*Key{k.bob}, cfg); !errors.Is(err, ErrNotSecret) {
		t.Errorf("public signer: %v", err)
	}
	noTo := c
	noTo.To = nil
	if _, err := Seal(noTo, k.alice, []*Key{k.bob}, cfg); err == nil {
		t.Error("signcrypt without <to/>")
	}
	crypt := c
	crypt.Kind = Crypt
	if _, err := Seal(crypt, k.alice, []*Key{k.bob}, cfg); err == nil {
		t.Error("signed crypt")
	}
	sign := c
	sign.Kind = Sign
	if _, err := Seal(sign, k.alice, []*Key{k.bob}, cfg); err == nil {
		t.Error("encrypted sign")
	}
	bad := c
	bad.Kind = 0
	if _, err := Seal(bad, k.alice, []*Key{k.bob}, cfg); err == nil {
		t.Error("invalid kind")
	}
	bad = c
	bad.Payload = []*xmltree.Element{xmltree.New(NSClient, "not a name")}
	if _, err := Seal(bad, k.alice, []*Key{k.bob}, cfg); err == nil {
		t.Error("bad payload")
	}
	locked := lockedKey(t, k.alice)
	if _, err := Seal(c, locked, []*Key{k.bob}, cfg); !errors.Is(err, ErrNotSecret) {
		t.Errorf("locked signer: %v", err)
	}
	if _, err := NewOpener([]*Key{locked}, nil); !errors.Is(err, ErrNotSecret) {
		t.Errorf("locked opener key: %v", err)
	}
	if _, err := Seal(c, k.alice, []*Key{k.bob}, &Config{Rand: bytes.NewReader(nil), Now: cfg.Now}); err == nil {
		t.Error("no error from an empty random source")
	}
}

// lockedKey returns a copy of k with its secret key material protected by
// the passphrase "pw".
func lockedKey(t testing.TB, k *Key) *Key {
	t.Helper()
	b, err := k.MarshalSecret()
	if err != nil {
		t.Fatal(err)
	}
	ks, err := ParseKeys(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := ks[0].entity.EncryptPrivateKeys([]byte("pw"), nil); err != nil {
		t.Fatal(err)
	}
	return ks[0]
}

func TestOpenConcurrent(t *testing.T) {
	k := keys(t)
	o := opener(t, k.bob)
	cache := NewKeyCache(0)
	alicePub, _ := k.alice.MarshalPublic(true)
	mallPub, _ := k.mallory.MarshalPublic(true)
	var msgs [][]byte
	for i := range 8 {
		signer := k.alice
		if i%4 == 3 {
			signer = k.mallory
		}
		msgs = append(msgs, sealFor(t, imContent(bobJID), signer, k.bob))
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i, msg := range msgs {
				data := alicePub
				if (i+w)%2 == 1 {
					data = mallPub
				}
				sender, err := cache.Parse(data)
				if err != nil {
					errs <- err
					return
				}
				p := bobParams(k)
				p.SenderKeys = sender
				op, err := o.Open(msg, p)
				if err != nil {
					errs <- err
					return
				}
				wantOK := i%4 != 3 && (i+w)%2 == 0
				if op.Verified != wantOK {
					errs <- errors.New("wrong verdict under concurrency")
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if cache.Len() != 2 {
		t.Errorf("cache holds %d entries", cache.Len())
	}
}

func TestOpenTooLarge(t *testing.T) {
	k := keys(t)
	big := bytes.Repeat([]byte("a"), MaxPlaintext+1)
	pc := &packet.Config{Time: func() time.Time { return t0 }}
	// Signed, not encrypted.
	var out bytes.Buffer
	w, err := openpgp.Sign(&out, k.alice.entity, &openpgp.FileHints{IsBinary: true}, pc)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(big)
	w.Close()
	if _, err := opener(t, k.bob).Open(out.Bytes(), bobParams(k)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("signed: %v", err)
	}
	// Encrypted: the size is only known before the integrity check, so it is
	// reported opaquely.
	out.Reset()
	w, err = openpgp.Encrypt(&out, []*openpgp.Entity{k.bob.entity}, k.alice.entity, &openpgp.FileHints{IsBinary: true}, pc)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(big)
	w.Close()
	if _, err := opener(t, k.bob).Open(out.Bytes(), bobParams(k)); !errors.Is(err, ErrDecrypt) {
		t.Errorf("encrypted: %v", err)
	}
}

func TestSealDeterministic(t *testing.T) {
	// With the randomness and the clock injected, sealing is reproducible.
	k := keys(t)
	a := sealFor(t, imContent(bobJID), k.alice, k.bob, k.alice)
	b := sealFor(t, imContent(bobJID), k.alice, k.bob, k.alice)
	if !bytes.Equal(a, b) {
		t.Error("same randomness and time, different messages")
	}
	other, err := Seal(imContent(bobJID), k.alice, []*Key{k.bob, k.alice}, &Config{Rand: mrandReader(2), Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(a, other) {
		t.Error("different randomness, same message")
	}
}

func TestRecipients(t *testing.T) {
	k := keys(t)
	expired := mustKey(t, rawEntity(t, "xmpp:bob@example.net", t0.Add(-48*time.Hour), 24*time.Hour))
	usable, unusable := Recipients(t0, []*Key{k.bob, expired, k.bob2, nil}, []*Key{k.alice, k.alice2, k.bob.Public()})
	var fprs []string
	for _, u := range usable {
		if u.Secret() {
			t.Error("secret key material in a recipient")
		}
		fprs = append(fprs, u.Fingerprint())
	}
	want := []string{k.bob.Fingerprint(), k.bob2.Fingerprint(), k.alice.Fingerprint(), k.alice2.Fingerprint()}
	if strings.Join(fprs, ",") != strings.Join(want, ",") {
		t.Errorf("usable %v", fprs)
	}
	var ke *KeyError
	if len(unusable) != 1 || !errors.As(unusable[0], &ke) || ke.Fingerprint != expired.Fingerprint() || !errors.Is(ke, ErrKeyExpired) {
		t.Errorf("unusable %v", unusable)
	}
	msg := sealFor(t, imContent(bobJID), k.alice, usable...)
	for _, own := range []*Key{k.bob, k.bob2, k.alice, k.alice2} {
		if _, err := opener(t, own).Open(msg, bobParams(k)); err != nil {
			t.Errorf("%s cannot read: %v", own, err)
		}
	}
}
