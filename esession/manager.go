package esession

import (
	"errors"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/balcony-im/balcony/xmltree"
)

// Manager keeps the sessions of one account, one per (peer bare JID,
// ThreadID), and routes received stanzas to them. It does no I/O: the
// client sends what the results hold. It is safe for concurrent use.
//
// JIDs are compared as given: pass them normalised (as mellium.im/xmpp/jid
// does).
type Manager struct {
	cfg      *config
	mu       sync.Mutex
	sessions map[sessionKey]*Session
	order    []sessionKey // creation order, for forgetting old sessions
}

type sessionKey struct{ peer, thread string }

// NewManager returns a Manager. It fails only for an invalid Config (a
// MODP group other than 14 to 18).
func NewManager(c *Config) (*Manager, error) {
	cfg, err := c.resolve()
	if err != nil {
		return nil, err
	}
	return &Manager{cfg: cfg, sessions: map[sessionKey]*Session{}}, nil
}

// Bare returns the bare JID of a JID (everything before the first "/").
func Bare(jid string) string {
	if i := strings.IndexByte(jid, '/'); i >= 0 {
		return jid[:i]
	}
	return jid
}

// StartOptions select what Start requests.
type StartOptions struct {
	// Plain requests a stanza session without end-to-end encryption
	// (security=c2s). The default is an encrypted session, offered without
	// any plain fallback so that it cannot be downgraded.
	Plain bool
	// Thread is the ThreadID to use; empty means a new one (XEP-0201).
	Thread string
	// ThreeMessage requests the 3-message SIGMA-I variant (XEP-0116
	// §4.2): both parties identify by public key, so it needs Config.Key
	// and Config.Keys; there is no SAS and no retained secret. XEP-0116
	// recommends it for sessions with services, not between clients.
	ThreeMessage bool
}

// Start begins a session with peer, a bare JID or, preferably, the full
// JID of the resource to talk to: a request to a bare JID may reach several
// resources, and a second answer ends the negotiation. It returns the
// request to send.
func (m *Manager) Start(peer string, opts *StartOptions) (*Session, Outbound, error) {
	if opts == nil {
		opts = &StartOptions{}
	}
	if peer == "" {
		return nil, Outbound{}, errors.New("esession: empty peer JID")
	}
	thread := opts.Thread
	if thread == "" {
		var err error
		if thread, err = NewThreadID(m.cfg.rand); err != nil {
			return nil, Outbound{}, err
		}
	}
	if opts.ThreeMessage && (opts.Plain || m.cfg.key == nil || m.cfg.keys == nil || m.cfg.cv.gajim) {
		return nil, Outbound{}, errors.New("esession: the 3-message variant needs an encrypted session, Config.Key and Config.Keys")
	}
	s := &Session{cfg: m.cfg, role: Initiator, thread: thread, peerBare: Bare(peer), peer: peer, wantE2E: !opts.Plain}
	// The exponentiations happen before the Manager is locked.
	o, err := s.start(opts.ThreeMessage)
	if err != nil {
		return nil, Outbound{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	k := sessionKey{s.peerBare, thread}
	if _, ok := m.sessions[k]; ok {
		s.Close()
		return nil, Outbound{}, errors.New("esession: thread already used with this peer")
	}
	if !m.room() {
		s.Close()
		return nil, Outbound{}, errors.New("esession: too many sessions")
	}
	m.add(k, s)
	return s, o, nil
}

// maxPendingPerPeer bounds the requests one peer can leave waiting for a
// decision, so that unanswered requests cannot crowd out others.
const maxPendingPerPeer = 4

// pending counts a peer's sessions waiting for the user. m.mu is held.
func (m *Manager) pending(peer string) int {
	n := 0
	for k, s := range m.sessions {
		if k.peer == peer && s.awaitingDecision() {
			n++
		}
	}
	return n
}

// room makes room for one more session if it can, forgetting the oldest
// ended ones. m.mu is held.
func (m *Manager) room() bool {
	if len(m.sessions) < m.cfg.maxSessions {
		return true
	}
	kept := m.order[:0]
	for _, k := range m.order {
		if s := m.sessions[k]; s != nil && s.State() == StateEnded && len(m.sessions) >= m.cfg.maxSessions {
			delete(m.sessions, k)
			continue
		}
		kept = append(kept, k)
	}
	m.order = kept
	return len(m.sessions) < m.cfg.maxSessions
}

func (m *Manager) add(k sessionKey, s *Session) {
	if _, ok := m.sessions[k]; !ok {
		m.order = append(m.order, k)
	}
	m.sessions[k] = s
}

// Session returns the session with peer (a bare or full JID) on thread, or
// nil.
func (m *Manager) Session(peer, thread string) *Session {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.sessions[sessionKey{Bare(peer), thread}]
}

// Sessions returns every session the Manager keeps, oldest first.
func (m *Manager) Sessions() []*Session {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]*Session, 0, len(m.order))
	for _, k := range m.order {
		if s := m.sessions[k]; s != nil {
			out = append(out, s)
		}
	}
	return out
}

// Forget drops a session (wiping it first if it is still live).
func (m *Manager) Forget(peer, thread string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := sessionKey{Bare(peer), thread}
	if s := m.sessions[k]; s != nil {
		s.Close()
		delete(m.sessions, k)
		for i, o := range m.order {
			if o == k {
				m.order = append(m.order[:i], m.order[i+1:]...)
				break
			}
		}
	}
}

// TerminateAll terminates every live session, as XEP-0217 §6 requires
// before going offline, and returns what to send. Sessions left waiting for
// an acknowledgement are then closed: call it just before disconnecting.
func (m *Manager) TerminateAll() []Outbound {
	var out []Outbound
	for _, s := range m.Sessions() {
		if s.State() == StateEnded {
			continue
		}
		if res, err := s.Terminate(); err == nil {
			out = append(out, res.Out...)
		}
		s.Close()
	}
	return out
}

// PeerUnavailable handles unavailable presence from fullJID, a resource of
// a peer (XEP-0155 §9.4), for every live session bound to that resource,
// as Config.OnUnavailable says: by default the sessions are kept and a
// PeerWentOffline event tells the user; with TerminateOnUnavailable each
// is terminated explicitly (the result holds the terminate stanzas to
// send) and its keys are wiped. A session is never closed silently.
// Presence from a bare JID, or from a resource no session is bound to,
// changes nothing.
func (m *Manager) PeerUnavailable(fullJID string) Result {
	var res Result
	if !strings.Contains(fullJID, "/") {
		return res
	}
	for _, s := range m.Sessions() {
		if s.Peer() == fullJID {
			s.peerUnavailable(&res, m.cfg.unavailable == TerminateOnUnavailable)
		}
	}
	return res
}

// receiveOther routes the <c/> of a presence or iq stanza to the newest
// active encrypted session bound to the sender's full JID that negotiated
// that kind. Without a <c/> the stanza is not the engine's.
func (m *Manager) receiveOther(in *Inbound) (Result, error) {
	if in.C == nil {
		return Result{Unhandled: true}, nil
	}
	all := m.Sessions()
	for i := len(all) - 1; i >= 0; i-- {
		s := all[i]
		if s.Peer() == in.From && s.State() == StateActive && s.Encrypted() && slices.Contains(s.Params().Stanzas, in.Kind) {
			return s.receiveOther(in)
		}
	}
	return Result{Events: []Event{Rejected{From: in.From, Reason: "encrypted " + in.Kind + " outside any session that carries them"}}}, nil
}

// Tick calls Session.Tick with now for every session and returns what
// they produced: old receiving keys expire, idle sessions re-key or
// terminate. The client calls it now and then (every few seconds, or at
// least every Config.RekeyGrace); the engine has no timer of its own.
func (m *Manager) Tick(now time.Time) Result {
	var res Result
	for _, s := range m.Sessions() {
		r := s.Tick(now)
		res.Out = append(res.Out, r.Out...)
		res.Events = append(res.Events, r.Events...)
	}
	return res
}

// Receive handles a received message stanza. The result holds what to
// send and the events to show; the error, if any, is also reported by an
// event (ErrAuthentication always comes with a Terminated event). Result.
// Unhandled marks an ordinary message for the client to process itself.
func (m *Manager) Receive(in *Inbound) (Result, error) {
	var res Result
	if in == nil || in.From == "" {
		return res, errors.New("esession: message without a sender")
	}
	if k := in.kind(); k != StanzaMessage {
		return m.receiveOther(in)
	}
	bare := Bare(in.From)
	m.mu.Lock()
	var s *Session
	if in.Thread != "" {
		s = m.sessions[sessionKey{bare, in.Thread}]
	}
	if s != nil {
		m.mu.Unlock()
		return s.receive(in)
	}
	locked := true
	defer func() {
		if locked {
			m.mu.Unlock()
		}
	}()
	reject := func(reason string) (Result, error) {
		res.Events = append(res.Events, Rejected{From: in.From, Thread: in.Thread, Reason: reason})
		return res, nil
	}
	switch {
	case in.Feature != nil:
		if in.Type == "error" {
			return reject("error for an unknown session")
		}
		pf, err := parseFeature(in.Feature, NSFeatureNeg, "feature")
		if err != nil || classify(pf.form) != kindRequest {
			// Not a stanza session request: XEP-0155 §4.3 answers 503, but
			// only to a peer that may learn that we are online (§10.1).
			if in.Subscribed && in.Thread != "" && (err != nil || pf.form.FormType() != FormTypeSSN) {
				var echo *parsedFeature
				if err == nil {
					echo = pf
				}
				res.Out = append(res.Out, Outbound{To: in.From, Type: "error", Thread: in.Thread,
					Payload: errorPayload(CondServiceUnavailable, nil, echoEl(echo))})
				res.Events = append(res.Events, Rejected{From: in.From, Thread: in.Thread, Reason: "unsupported feature negotiation"})
				return res, nil
			}
			return reject("unexpected negotiation message")
		}
		if in.Thread == "" {
			return reject("session request without a thread")
		}
		if m.pending(bare) >= maxPendingPerPeer || !m.room() {
			return reject("too many pending sessions")
		}
		s := &Session{cfg: m.cfg, role: Responder, thread: in.Thread, peerBare: bare, peer: in.From, bound: true}
		m.add(sessionKey{bare, in.Thread}, s)
		// Hold the session, not the Manager, while it answers (an
		// automatic acceptance computes an exponentiation).
		s.mu.Lock()
		defer s.mu.Unlock()
		m.mu.Unlock()
		locked = false
		s.onRequest(&res, pf, in)
		return res, nil
	case in.Init != nil:
		if m.cfg.offline != nil {
			m.mu.Unlock()
			locked = false
			return m.receiveOffline(in)
		}
		return reject("negotiation message for an unknown session")
	case in.C != nil:
		return reject("encrypted message for an unknown session")
	}
	res.Unhandled = true
	return res, nil
}

func echoEl(pf *parsedFeature) *xmltree.Element {
	if pf == nil {
		return nil
	}
	return pf.el
}
