package esession

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"sort"
	"strings"

	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/client"
	"github.com/balcony-im/balcony/eme"
	engine "github.com/balcony-im/balcony/esession"
)

// StartOptions select what Start asks for.
type StartOptions struct {
	// ThreeMessage asks for the 3-message SIGMA-I exchange (XEP-0116
	// §4.2): both sides identify with their public keys, and there is no
	// SAS to compare. It needs this account's key (GenerateKey) and a
	// Store; the contact's key is fetched over PEP first.
	ThreeMessage bool
	// Password is a secret the user shares with the contact, who enters it
	// too when accepting: it goes into the session key (XEP-0116 "other
	// shared secret"), so that only someone who knows it can complete the
	// negotiation. It is kept until the session is established or fails.
	Password []byte
}

// Start asks peer for an Encrypted Session on a new ThreadID (XEP-0201)
// and returns at once; an KindEstablished event (or KindDeclined,
// KindFailed) follows. peer should be a full JID: for a bare JID the
// one resource online that supports Encrypted Sessions is chosen, or the
// request goes to the bare JID when no resource is known. With a Store,
// the contact's published key is fetched first (FetchKey), so that a
// changed key is reported before the session.
func (e *Mechanism) Start(ctx context.Context, peer jid.JID, opts *StartOptions) (Info, error) {
	if opts == nil {
		opts = &StartOptions{}
	}
	to := peer
	if peer.Resourcepart() == "" {
		var err error
		if to, err = e.chooseResource(ctx, peer); err != nil {
			return Info{}, err
		}
	}
	for _, s := range e.newestFirst(to) {
		if !s.Encrypted() || e.isEnding(s) {
			continue
		}
		switch {
		case s.State() == engine.StateActive:
			return e.info(s), fmt.Errorf("%w (%s, thread %s)", ErrExists, s.Peer(), s.Thread())
		case s.State() == engine.StatePending && s.Role() == engine.Initiator:
			// An unanswered earlier request: replace it.
			e.m().Forget(s.PeerBare(), s.Thread())
		}
	}
	if opts.ThreeMessage && e.Key() == "" {
		return Info{}, ErrNoKey
	}
	if e.cfg.Store != nil && e.h != nil {
		if _, err := e.FetchKey(ctx, to.Bare()); err != nil {
			if opts.ThreeMessage {
				return Info{}, err
			}
			e.log().Info("no Encrypted Sessions key of the contact", "peer", to.Bare().String(), "err", err)
		}
	}
	e.passwords.set(to.Bare().String(), opts.Password)
	s, o, err := e.m().Start(to.String(), &engine.StartOptions{ThreeMessage: opts.ThreeMessage})
	if err != nil {
		e.passwords.forget(to.Bare().String())
		return Info{}, fmt.Errorf("client: %w", err)
	}
	if len(opts.Password) > 0 {
		e.mu.Lock()
		e.extraLocked(s).password = true
		e.mu.Unlock()
	}
	// The Info is taken before the send lock is released, which the
	// contact's answer needs: Start always reports "requested".
	unlock := e.lockSend()
	err = e.send(ctx, []engine.Outbound{o})
	info := e.info(s)
	unlock()
	if err != nil {
		e.m().Forget(s.PeerBare(), s.Thread())
		e.passwords.forget(s.PeerBare())
		return Info{}, err
	}
	e.notify()
	return info, nil
}

// ErrNoKey reports an operation that needs this account's signing key
// (XEP-0116 public-key identity) when there is none: make one with
// GenerateKey.
var ErrNoKey = errors.New("client: this account has no Encrypted Sessions key")

// chooseResource picks the resource of a bare JID to negotiate with.
func (e *Mechanism) chooseResource(ctx context.Context, peer jid.JID) (jid.JID, error) {
	res := e.h.Resources(peer)
	sort.Slice(res, func(i, j int) bool { return res[i].String() < res[j].String() })
	switch len(res) {
	case 0:
		return peer, nil
	case 1:
		return res[0], nil
	}
	var able []jid.JID
	for _, r := range res {
		info, err := e.h.QueryInfo(ctx, r, "")
		if err == nil && info.Has(engine.FeatureESession) {
			able = append(able, r)
		}
	}
	if len(able) == 1 {
		return able[0], nil
	}
	if len(able) > 1 {
		res = able
	}
	names := make([]string, len(res))
	for i, r := range res {
		names[i] = r.String()
	}
	return jid.JID{}, fmt.Errorf("%w: %s", ErrAmbiguousResource, strings.Join(names, ", "))
}

// awaiting returns the newest request from peer that waits for the user.
func (e *Mechanism) awaiting(peer jid.JID) (*engine.Session, error) {
	for _, s := range e.newestFirst(peer) {
		e.mu.Lock()
		x := e.extra[s]
		asking := x != nil && x.asking
		e.mu.Unlock()
		if asking && s.State() == engine.StatePending {
			return s, nil
		}
	}
	return nil, fmt.Errorf("%w request from %s waits for an answer", ErrNoSession, peer)
}

// AcceptOptions say how to accept a request.
type AcceptOptions struct {
	// Password is the secret shared with the contact, if the contact
	// asked for the session with one (StartOptions.Password): the session
	// is established only if both entered the same.
	Password []byte
}

// Accept accepts the newest request from peer that waits for the user.
// For an Encrypted Session the negotiation continues; an
// KindEstablished event follows.
func (e *Mechanism) Accept(ctx context.Context, peer jid.JID, opts *AcceptOptions) (Info, error) {
	if opts == nil {
		opts = &AcceptOptions{}
	}
	s, err := e.awaiting(peer)
	if err != nil {
		return Info{}, err
	}
	e.passwords.set(s.PeerBare(), opts.Password)
	unlock := e.lockSend()
	res, aerr := s.Accept()
	keyEvents, serr := e.handled(ctx, &res)
	unlock()
	e.mu.Lock()
	x := e.extraLocked(s)
	x.asking, x.password = false, len(opts.Password) > 0
	e.mu.Unlock()
	if aerr != nil {
		e.passwords.forget(s.PeerBare())
	}
	e.emitAll(jid.JID{}, append(keyEvents, e.eventsOf(res.Events)...))
	e.afterHandled(ctx, res)
	if aerr != nil {
		return e.info(s), fmt.Errorf("client: accepting the Encrypted Session with %s: %w", s.Peer(), aerr)
	}
	return e.info(s), serr
}

// Decline declines the newest request from peer that waits for the user,
// with an optional reason.
func (e *Mechanism) Decline(ctx context.Context, peer jid.JID, reason string) (Info, error) {
	s, err := e.awaiting(peer)
	if err != nil {
		return Info{}, err
	}
	o, err := s.Decline(reason)
	e.mu.Lock()
	e.extraLocked(s).asking = false
	e.mu.Unlock()
	if err != nil {
		return e.info(s), fmt.Errorf("client: %w", err)
	}
	unlock := e.lockSend()
	err = e.send(ctx, []engine.Outbound{o})
	unlock()
	e.notify()
	return e.info(s), err
}

// current returns the newest established encrypted session with peer.
func (e *Mechanism) current(peer jid.JID) (*engine.Session, error) {
	for _, s := range e.newestFirst(peer) {
		if s.Encrypted() && s.State() == engine.StateActive {
			return s, nil
		}
	}
	return nil, fmt.Errorf("%w with %s", ErrNoSession, peer)
}

// SAS returns the newest established session with peer, whose SAS the
// user compares with the contact.
func (e *Mechanism) SAS(peer jid.JID) (Info, error) {
	s, err := e.current(peer)
	if err != nil {
		return Info{}, err
	}
	return e.info(s), nil
}

// ConfirmSAS records that the user compared the short authentication
// string sas with the contact over a channel they trust and found it
// equal. Only the established session with peer whose SAS is sas (and,
// when thread is not empty, whose thread is thread) is confirmed: a
// session that started after the user read the SAS has another one and
// stays unverified. The session is verified, and so is its retained
// secret: later sessions that continue the chain are verified without a
// comparison. With no such session the error wraps ErrSASMismatch (or
// ErrNoSession when there is no established session at all).
func (e *Mechanism) ConfirmSAS(peer jid.JID, sas, thread string) (Info, error) {
	if _, err := e.current(peer); err != nil {
		return Info{}, err
	}
	want := normalizeSAS(sas)
	var s *engine.Session
	for _, c := range e.newestFirst(peer) {
		if !c.Encrypted() || c.State() != engine.StateActive || thread != "" && c.Thread() != thread {
			continue
		}
		if got := normalizeSAS(c.SAS()); got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1 {
			s = c
			break
		}
	}
	if s == nil {
		return Info{}, fmt.Errorf("%w: no established Encrypted Session with %s has the SAS %q", ErrSASMismatch, peer, sas)
	}
	if err := s.ConfirmSAS(); err != nil {
		return e.info(s), fmt.Errorf("client: %w", err)
	}
	if err := e.verifyPeerKey(context.Background(), s); err != nil {
		e.log().Warn("recording the contact's key as verified failed", "peer", s.PeerBare(), "err", err)
	}
	p, _ := jid.Parse(s.Peer())
	e.h.Emit(&client.SecurityEvent{Peer: p, Mechanism: e.Namespace(), Kind: KindVerified, Fingerprint: s.SAS(),
		Message: eme.Msg(eme.MsgESConfirmed, s.Peer())})
	e.notify()
	return e.info(s), nil
}

// normalizeSAS folds what a user may type differently (case, spaces,
// dashes) so that a SAS read aloud and typed back compares equal.
func normalizeSAS(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == ' ' || r == '-' || r == '\t':
			return -1
		case 'A' <= r && r <= 'Z':
			return r + 'a' - 'A'
		}
		return r
	}, s)
}

// End terminates the newest live session with peer: an established
// encrypted session sends the encrypted terminate form and ends when the
// contact acknowledges it (a KindTerminated event); a request or
// negotiation is abandoned at once. The Info returned is the session as
// End left it, before the contact's answer could be read: "ending" while
// the acknowledgement is awaited (WaitFor it), "ended" when nothing was
// awaited.
func (e *Mechanism) End(ctx context.Context, peer jid.JID) (Info, error) {
	for _, s := range e.newestFirst(peer) {
		if s.State() == engine.StateEnded || e.isEnding(s) {
			continue
		}
		unlock := e.lockSend()
		err := e.terminateLocked(ctx, s)
		info := e.info(s)
		unlock()
		return info, err
	}
	return Info{}, fmt.Errorf("%w with %s", ErrNoSession, peer)
}

// terminateLocked is terminate for a caller that holds the send lock.
func (e *Mechanism) terminateLocked(ctx context.Context, s *engine.Session) error {
	res, err := s.Terminate()
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	if s.State() != engine.StateEnded {
		e.mu.Lock()
		e.extraLocked(s).ending = true
		e.mu.Unlock()
	}
	serr := e.send(ctx, res.Out)
	e.emitAll(jid.JID{}, e.eventsOf(res.Events))
	e.track(res.Events)
	for _, ev := range res.Events {
		if t, ok := ev.(engine.Terminated); ok {
			e.sessionEnded(t.Session)
		}
	}
	e.notify()
	return serr
}

// Status describes every session the mechanism keeps, oldest first.
func (e *Mechanism) Status() []Info {
	all := e.m().Sessions()
	out := make([]Info, len(all))
	for i, s := range all {
		out[i] = e.info(s)
	}
	return out
}

// WaitFor waits until cond holds for the session with peer on thread (or,
// with an empty thread, for the newest session with peer) and returns its
// state, or ctx's error with the last state seen.
func (e *Mechanism) WaitFor(ctx context.Context, peer jid.JID, thread string, cond func(Info) bool) (Info, error) {
	for {
		e.mu.Lock()
		ch := e.changed
		e.mu.Unlock()
		var s *engine.Session
		if thread != "" {
			s = e.m().Session(peer.Bare().String(), thread)
		} else if list := e.newestFirst(peer); len(list) > 0 {
			s = list[0]
		}
		var info Info
		if s != nil {
			info = e.info(s)
			if cond(info) {
				return info, nil
			}
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return info, ctx.Err()
		}
	}
}

func (e *Mechanism) info(s *engine.Session) Info {
	i := Info{Peer: s.Peer(), Thread: s.Thread(), Initiator: s.Role() == engine.Initiator,
		Encrypted: s.Encrypted(), SAS: s.SAS(), Verified: s.Verified()}
	e.mu.Lock()
	x := e.extra[s]
	var xs sessionExtra
	if x != nil {
		xs = *x
	}
	e.mu.Unlock()
	i.SecretMatched, i.ContinuityBroken, i.Password = xs.secretMatched, xs.continuityBroken, xs.password
	if k := s.PeerKey(); k != nil {
		i.PeerKey = Fingerprint(k)
	}
	switch s.State() {
	case engine.StatePending:
		switch {
		case i.Initiator && i.SAS == "":
			i.State = "requested"
		case xs.asking:
			i.State = "asking"
		default:
			i.State = "negotiating"
		}
	case engine.StateActive:
		i.State = "active"
		switch {
		case xs.ending:
			i.State = "ending"
		case xs.moved:
			i.State = "moved"
		}
	default:
		i.State = "ended"
		i.EndReason, _ = s.EndReason()
	}
	if i.State == "active" || i.State == "ending" || i.State == "moved" {
		p := s.Params()
		i.ThreeMessage, i.Logging, i.SharePresence, i.RekeyFreq = p.ThreeMessage, p.Logging, p.SharePresence, p.RekeyFreq
		i.Stanzas, i.Offline = p.Stanzas, s.Offline()
	}
	return i
}
