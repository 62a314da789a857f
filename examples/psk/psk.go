// Package psk is an example of an end-to-end encryption mechanism written
// outside Balcony's module, against its public API only: it plugs into a
// client.Client with Client.Register like Balcony's own mechanisms, has an
// EME namespace of its own (urn:example:balcony:psk:0), and its messages
// go through the same pipeline (EME tag, fallback body, hints, policy,
// notices on clients that lack it).
//
// The mechanism itself is deliberately small: both parties hold the same
// secret, agreed out of band; each message body is encrypted with
// AES-256-GCM under a key derived from it (HKDF-SHA-256), the sender's and
// recipient's bare JIDs authenticated with it. It has no forward secrecy
// and no per-device keys; it exists to show the seam, not to replace OMEMO
// or OpenPGP for XMPP.
package psk

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strings"

	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/client"
	"github.com/balcony-im/balcony/eme"
	"github.com/balcony-im/balcony/xmltree"
)

// NS is the mechanism's EME namespace and the namespace of its payload
// element, <psk xmlns='urn:example:balcony:psk:0'>base64</psk>.
const NS = "urn:example:balcony:psk:0"

// Name is the mechanism's name in EME tags and fallback bodies.
const Name = "Pre-shared key example"

// Mechanism encrypts message bodies with a secret both parties share.
type Mechanism struct {
	aead cipher.AEAD
	self func() jid.JID // the account's address, from the Host
}

// New returns the mechanism for the shared secret (at least 16 bytes).
func New(secret []byte) (*Mechanism, error) {
	if len(secret) < 16 {
		return nil, errors.New("psk: the shared secret needs at least 16 bytes")
	}
	key, err := hkdf.Key(sha256.New, secret, nil, "balcony example psk v0", 32)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Mechanism{aead: aead}, nil
}

// Attach implements client.Attacher: the mechanism learns whose account it
// serves, to bind each message to its sender.
func (m *Mechanism) Attach(h client.Host) error {
	m.self = h.Self
	return nil
}

// Namespace implements client.Mechanism.
func (m *Mechanism) Namespace() string { return NS }

// Needs implements client.Mechanism: a fallback body for clients without
// the mechanism, the store hint so the archive keeps the message, and the
// name for the EME tag.
func (m *Mechanism) Needs() client.Needs {
	return client.Needs{FallbackBody: true, Hints: []string{"store"}, Name: Name}
}

// aad binds a message to its sender and recipient (bare JIDs).
func aad(from, to jid.JID) []byte {
	return []byte(from.Bare().String() + "\x00" + to.Bare().String())
}

// Seal implements client.Mechanism.
func (m *Mechanism) Seal(_ context.Context, out *client.Outgoing) (client.Sealed, error) {
	if m.self == nil {
		return client.Sealed{}, errors.New("psk: not registered with a client")
	}
	nonce := make([]byte, m.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return client.Sealed{}, err
	}
	ct := m.aead.Seal(nonce, nonce, []byte(out.Body), aad(m.self(), out.To))
	st := xmltree.New(client.NSClient, "message")
	st.Append(xmltree.New(NS, "psk").AppendText(base64.StdEncoding.EncodeToString(ct)))
	return client.Sealed{Stanzas: []*xmltree.Element{st}}, nil
}

// Open implements client.Mechanism. A message that does not decrypt (another
// secret, altered on the way, or claiming another sender) is refused with
// eme.ReasonVerificationFailed and never shown.
func (m *Mechanism) Open(_ context.Context, in *client.Incoming) (*client.Opened, error) {
	el := in.Stanza.Child(NS, "psk")
	if el == nil {
		return nil, &client.OpenError{Reason: eme.ReasonMalformed, Detail: "no <psk/> element"}
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(el.Text()))
	if err != nil || len(raw) < m.aead.NonceSize()+m.aead.Overhead() {
		return nil, &client.OpenError{Reason: eme.ReasonMalformed, Detail: "bad <psk/> payload"}
	}
	n := m.aead.NonceSize()
	pt, err := m.aead.Open(nil, raw[:n], raw[n:], aad(in.From, in.To))
	if err != nil {
		return nil, &client.OpenError{Reason: eme.ReasonVerificationFailed, Detail: "psk: authentication failed"}
	}
	// Everyone who holds the secret could have written it: authenticated
	// as coming from a holder of the secret, never verified.
	return &client.Opened{Body: string(pt), Security: client.Security{Mechanism: NS, Name: Name, Authenticated: true}}, nil
}
