package otr

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"mellium.im/xmpp/jid"

	engine "github.com/balcony-im/balcony/otr"
)

// encrypted returns the peer's current conversation if it is encrypted.
func (o *Mechanism) encrypted(peer jid.JID) (*otrPeer, *engine.Conversation, error) {
	if peer.Resourcepart() == "" {
		return nil, nil, fmt.Errorf("%w: %s", ErrFullJID, peer)
	}
	p := o.peers[peer.String()]
	if p == nil || p.current == nil || p.current.State() != engine.Encrypted {
		return nil, nil, fmt.Errorf("%w with %s", ErrNoSession, peer)
	}
	return p, p.current, nil
}

// StartSMP starts verifying the private conversation with peer by the
// Socialist Millionaires' Protocol: the peer must answer with the same
// secret. question, if not empty, is shown to the peer. The outcome
// arrives as a SecurityEvent: "otr-smp-succeeded" (the fingerprint is then
// recorded as verified), "otr-smp-failed" or "otr-smp-aborted".
func (o *Mechanism) StartSMP(ctx context.Context, peer jid.JID, question string, secret []byte) error {
	defer o.lockWire()()
	o.mu.Lock()
	defer o.mu.Unlock()
	p, conv, err := o.encrypted(peer)
	if err != nil {
		return err
	}
	msgs, err := conv.StartSMP(question, secret)
	if err != nil {
		return fmt.Errorf("client: OTR: %w", err)
	}
	return o.send(ctx, p, msgs)
}

// AnswerSMP answers the peer's SMP request with the user's secret. It
// fails with an error wrapping otr.ErrNoSMP if the peer has not asked.
func (o *Mechanism) AnswerSMP(ctx context.Context, peer jid.JID, secret []byte) error {
	defer o.lockWire()()
	o.mu.Lock()
	defer o.mu.Unlock()
	p, conv, err := o.encrypted(peer)
	if err != nil {
		return err
	}
	msgs, err := conv.AnswerSMP(secret)
	if err != nil {
		return fmt.Errorf("client: OTR: %w", err)
	}
	return o.send(ctx, p, msgs)
}

// AbortSMP aborts an SMP exchange with peer.
func (o *Mechanism) AbortSMP(ctx context.Context, peer jid.JID) error {
	defer o.lockWire()()
	o.mu.Lock()
	defer o.mu.Unlock()
	p, conv, err := o.encrypted(peer)
	if err != nil {
		return err
	}
	msgs, err := conv.AbortSMP()
	if err != nil {
		return fmt.Errorf("client: OTR: %w", err)
	}
	return o.send(ctx, p, msgs)
}

// Status returns the state of the conversation with peer (a full JID);
// a peer without one is in StatePlaintext.
func (o *Mechanism) Status(ctx context.Context, peer jid.JID) Status {
	o.mu.Lock()
	defer o.mu.Unlock()
	st := Status{Peer: peer, OurInstance: o.cfg.InstanceTag, Known: o.isKnown(ctx, peer)}
	p := o.peers[peer.String()]
	if p == nil || p.current == nil {
		return st
	}
	return o.status(ctx, p, st)
}

func (o *Mechanism) status(ctx context.Context, p *otrPeer, st Status) Status {
	conv := p.current
	st.Instances = len(p.byTag)
	st.Version = conv.ProtocolVersion()
	st.TheirInstance = conv.TheirInstanceTag()
	st.SMP = conv.SMPInProgress()
	fpr, verified, trustName := o.peerKey(ctx, p, conv)
	st.Fingerprint, st.Trust = fpr, trustName
	if conv.TheirKey() != nil {
		ssid := conv.SSID()
		st.SSID = hex.EncodeToString(ssid[:])
	}
	switch conv.State() {
	case engine.Encrypted:
		st.State = StatePrivateUnverified
		if verified {
			st.State = StatePrivateVerified
		}
	case engine.Finished:
		st.State = StateFinished
	}
	return st
}

// Sessions returns the state of every conversation, ordered by JID.
func (o *Mechanism) Sessions(ctx context.Context) []Status {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []Status
	for k, p := range o.peers {
		if p.current == nil {
			continue
		}
		out = append(out, o.status(ctx, p, Status{Peer: p.jid, OurInstance: o.cfg.InstanceTag, Known: o.known[k]}))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Peer.String() < out[j].Peer.String() })
	return out
}

// FingerprintURI returns the xmpp: URI that shares an account's OTR
// fingerprint out of band (XEP-0364 §6), e.g.
// "xmpp:alice@example.org?otr-fingerprint=AEA4D5...".
func FingerprintURI(account jid.JID, f engine.Fingerprint) string {
	return "xmpp:" + uriEscape(account.Bare().String()) + "?otr-fingerprint=" + strings.ToUpper(f.Hex())
}

// ParseFingerprintURI parses an xmpp: URI with an otr-fingerprint
// query component and returns the bare JID and the fingerprint.
func ParseFingerprintURI(uri string) (jid.JID, engine.Fingerprint, error) {
	rest, ok := strings.CutPrefix(uri, "xmpp:")
	if !ok {
		return jid.JID{}, engine.Fingerprint{}, errors.New("client: not an xmpp: URI")
	}
	rest = strings.TrimPrefix(rest, "//")
	path, query, _ := strings.Cut(rest, "?")
	path, _, _ = strings.Cut(path, "#")
	js, err := uriUnescape(path)
	if err != nil {
		return jid.JID{}, engine.Fingerprint{}, fmt.Errorf("client: xmpp: URI: %w", err)
	}
	j, err := jid.Parse(js)
	if err != nil {
		return jid.JID{}, engine.Fingerprint{}, fmt.Errorf("client: xmpp: URI: %w", err)
	}
	query, _, _ = strings.Cut(query, "#")
	for _, kv := range strings.FieldsFunc(query, func(r rune) bool { return r == ';' || r == '&' }) {
		k, v, _ := strings.Cut(kv, "=")
		if k != "otr-fingerprint" {
			continue
		}
		f, err := engine.ParseFingerprint(v)
		if err != nil {
			return jid.JID{}, engine.Fingerprint{}, fmt.Errorf("client: xmpp: URI: %w", err)
		}
		return j.Bare(), f, nil
	}
	return jid.JID{}, engine.Fingerprint{}, errors.New("client: the xmpp: URI has no otr-fingerprint")
}

// uriEscape percent-encodes what may not appear in the path of an xmpp:
// URI (RFC 5122 §2.2, as an IRI: non-ASCII characters are kept).
func uriEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 0x80, c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9',
			strings.IndexByte("-._~!$&'()*+,;=:@/", c) >= 0:
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

func uriUnescape(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+2 >= len(s) {
			return "", errors.New("bad percent-encoding")
		}
		v, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
		if err != nil {
			return "", errors.New("bad percent-encoding")
		}
		b.WriteByte(byte(v))
		i += 2
	}
	return b.String(), nil
}
