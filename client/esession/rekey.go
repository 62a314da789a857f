package esession

import (
	"context"
	"errors"
	"fmt"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/client"
	"github.com/balcony-im/balcony/eme"
	engine "github.com/balcony-im/balcony/esession"
)

// This file drives what time calls for in sessions (XEP-0200 §9, §12.4):
// the engine has no timer of its own, so the mechanism calls its Tick now
// and then (old receiving keys expire after their grace period, idle
// sessions re-key or end), and Rekey starts a key exchange on demand.

func (e *Mechanism) tickInterval() time.Duration {
	switch iv := e.cfg.TickInterval; {
	case iv == 0:
		return DefaultTickInterval
	case iv < 0:
		return 0
	default:
		return iv
	}
}

// ticker calls Tick every iv until Shutdown.
func (e *Mechanism) ticker(iv time.Duration) {
	t := time.NewTicker(iv)
	defer t.Stop()
	for {
		select {
		case <-e.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), iv)
			e.Tick(ctx)
			cancel()
		}
	}
}

// Tick lets every session act on the clock (Config.Now): receiving keys
// past their grace period are destroyed, and a session silent for
// Config.IdleTimeout re-keys (KindRekeyed) or, when its rekey_freq does
// not allow it, ends. The mechanism calls it every Config.TickInterval;
// call it directly to drive a test clock. A stanza that cannot be sent
// ends its session: the contact could not read the next one.
func (e *Mechanism) Tick(ctx context.Context) {
	unlock := e.lockSend()
	res := e.m().Tick(e.clock())
	err := e.send(ctx, res.Out)
	unlock()
	if err != nil && len(res.Out) > 0 {
		e.lostStanzas(res.Out, err)
	}
	evs := e.eventsOf(res.Events)
	if len(evs) > 0 {
		e.emitAll(jid.JID{}, evs)
	}
	e.afterHandled(ctx, res)
}

// lostStanzas ends the sessions whose stanzas could not be sent.
func (e *Mechanism) lostStanzas(out []engine.Outbound, err error) {
	for _, o := range out {
		s := e.m().Session(o.To, o.Thread)
		if s == nil || s.State() == engine.StateEnded {
			continue
		}
		s.Close()
		p, _ := jid.Parse(s.Peer())
		e.emitAll(p, []*client.SecurityEvent{{Kind: KindTerminated, Message: eme.Msg(eme.MsgESTerminatedError, s.Peer(), "key exchange not sent", err.Error())}})
	}
}

// Rekey starts a key exchange in the newest established session with
// peer now (XEP-0200 §9): an encrypted stanza carrying a new
// Diffie-Hellman value, after which both sides use new keys; stanzas the
// contact sent under the old keys before it saw the new ones are still
// read during the grace period (Config.RekeyGrace), so nothing in flight
// is lost. It fails when the session's rekey_freq does not allow a key
// exchange (ErrRekeyNotAgreed) or not yet (engine.ErrRekeyTooSoon).
func (e *Mechanism) Rekey(ctx context.Context, peer jid.JID) (Info, error) {
	s, err := e.current(peer)
	if err != nil {
		return Info{}, err
	}
	unlock := e.lockSend()
	o, err := s.Rekey()
	if err == nil {
		err = e.send(ctx, []engine.Outbound{o})
	}
	unlock()
	switch {
	case errors.Is(err, engine.ErrNotSupported):
		return e.info(s), fmt.Errorf("%w (rekey_freq %d)", ErrRekeyNotAgreed, s.Params().RekeyFreq)
	case err != nil:
		return e.info(s), fmt.Errorf("client: re-keying the Encrypted Session with %s: %w", s.Peer(), err)
	}
	p, _ := jid.Parse(s.Peer())
	e.emitAll(p, []*client.SecurityEvent{{Kind: KindRekeyed, Message: eme.Msg(eme.MsgESRekeyed, s.Peer())}})
	e.notify()
	return e.info(s), nil
}

// ErrRekeyNotAgreed reports a Rekey in a session whose rekey_freq forbids
// key exchanges (XEP-0217 sessions never re-key): set Config.RekeyFreq on
// either side for the sessions to come.
var ErrRekeyNotAgreed = errors.New("client: the Encrypted Session does not allow key exchanges")
