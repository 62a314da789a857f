package esession

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/balcony-im/balcony/esession/form"
	"github.com/balcony-im/balcony/xmltree"
)

// State is the XEP-0155 state of a session (§3).
type State int

// States.
const (
	StatePending State = iota // negotiating
	StateActive               // negotiated
	StateEnded                // terminated, declined, cancelled or failed
)

func (s State) String() string {
	switch s {
	case StatePending:
		return "pending"
	case StateActive:
		return "active"
	}
	return "ended"
}

// Role says which side of the negotiation this client is.
type Role int

// Roles.
const (
	Initiator Role = iota // sent the request ("Alice")
	Responder             // received it ("Bob")
)

// Params are the negotiated session parameters.
type Params struct {
	Security   string // "e2e", "c2s" or "none"
	Logging    string // LoggingMay or LoggingMustNot (XEP-0136: off the record)
	Disclosure string // "never", or "" if not negotiated
	// SharePresence is true when both agreed to share presence for the
	// session (the XEP-0155 "presence" field set to may): each sends the
	// other directed presence (§9.3).
	SharePresence bool
	// The rest concerns encrypted sessions.
	Group     int      // MODP group
	Version   string   // ESession protocol version
	Cipher    string   // CipherAES128CTR, CipherAES192CTR or CipherAES256CTR
	Stanzas   []string // the stanza kinds encrypted: StanzaMessage, and maybe StanzaPresence and StanzaIQ
	RekeyFreq uint32   // the fewest stanzas between key exchanges (MaxRekeyFreq: never)
	// How the initiator and the responder identified: IdentifyNone,
	// IdentifyKey or IdentifyHash, and the signature algorithm.
	InitiatorKey, ResponderKey string
	SignAlg                    string
	ThreeMessage               bool // the SIGMA-I variant (XEP-0116 §4.2)
}

// step is the fine-grained protocol position.
type step int

const (
	stepRequested     step = iota // initiator: request sent
	stepAwaitDecision             // responder: request received, user to decide
	stepAccepted                  // responder: answer sent
	stepConfirming                // initiator: XEP-0217 message 3 sent
	stepActive                    // negotiated
	stepTerminating               // encrypted terminate sent, waiting for the ack
	stepMoving                    // asked to continue elsewhere
	stepMoved                     // encrypted session moved: keys wait for Handover
	stepEnded                     // over
)

// Session is one stanza session with a peer, identified by the peer's
// bare JID and the ThreadID. Its methods are safe for concurrent use.
type Session struct {
	mu       sync.Mutex
	cfg      *config
	role     Role
	thread   string
	peerBare string
	peer     string // where stanzas go: the bound full JID once known
	bound    bool
	step     step
	wantE2E  bool // the request asked for (or offered) an encrypted session
	params   Params
	reason   string
	endErr   error

	neg *negotiation // during negotiation
	ch  *channel     // encrypted and active

	sas              string
	sasConfirmed     bool
	chainVerified    bool
	secretMatched    bool
	continuityBroken bool
	rs               [32]byte
	rsCreated        time.Time
	haveRS           bool
	peerKey          *PublicKey // the key the peer identified with
	peerKeyVerified  bool       // ... which the user verified
	ossUsed          bool
	lastActive       time.Time // last stanza sent or received in the session
	offline          bool      // an XEP-0187 offline session

	renegotiating bool
	renegLogging  []string
	moveTo        string
	self          string // this client's JID, as the peer addresses it
}

// Thread returns the session's ThreadID.
func (s *Session) Thread() string { return s.thread }

// PeerBare returns the peer's bare JID.
func (s *Session) PeerBare() string { return s.peerBare }

// Role returns this client's role.
func (s *Session) Role() Role { return s.role }

// Peer returns the JID stanzas of the session are sent to: the full JID of
// the peer's resource once it is bound (XEP-0155 §4.2), otherwise the
// address the request was sent to.
func (s *Session) Peer() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peer
}

// State returns the session's state.
func (s *Session) State() State {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state()
}

func (s *Session) awaitingDecision() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.step == stepAwaitDecision
}

func (s *Session) state() State {
	switch s.step {
	case stepActive, stepTerminating, stepMoving, stepMoved:
		return StateActive
	case stepEnded:
		return StateEnded
	}
	return StatePending
}

// Encrypted reports whether the session is (or is being negotiated as)
// an encrypted session.
func (s *Session) Encrypted() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.wantE2E
}

// Params returns the negotiated parameters (valid once active).
func (s *Session) Params() Params {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.params
}

// SAS returns the short authentication string of an encrypted session, or
// "" before it is known.
func (s *Session) SAS() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sas
}

// Verified reports whether the session is authenticated: the user
// confirmed its SAS, or its retained secret continues a chain whose SAS
// the user confirmed, or the peer signed with a key the user verified
// for it. Without any of these, XEP-0217 is an unauthenticated
// Diffie-Hellman exchange.
func (s *Session) Verified() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sasConfirmed || s.chainVerified || s.peerKeyVerified
}

// Offline reports an XEP-0187 offline session: one this client started
// with a peer's published options (its stanzas must wait in the peer's
// offline storage), or one a peer started while this client was offline
// (this client only reads).
func (s *Session) Offline() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.offline
}

// PeerKey returns the public key the peer identified with, or nil.
func (s *Session) PeerKey() *PublicKey {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peerKey
}

// EndReason returns why the session ended, and the error if it failed.
func (s *Session) EndReason() (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reason, s.endErr
}

// ConfirmSAS records that the user compared the SAS with the peer out of
// band and found it equal. The session becomes verified and so does the
// retained secret it produced, if it is still stored, so that later
// sessions continuing the chain are verified without a comparison. A
// secret that a later session already replaced is not stored again
// (RetainedSecrets.Verify): that later session stays unverified until its
// own SAS is compared.
func (s *Session) ConfirmSAS() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.step == stepEnded {
		return ErrEnded
	}
	if !s.wantE2E || s.state() != StateActive || s.sas == "" {
		return ErrState
	}
	s.sasConfirmed = true
	if s.cfg.secrets != nil && s.haveRS {
		rs := s.rs
		_, err := s.cfg.secrets.Verify(s.peerBare, &rs)
		clear(rs[:])
		if err != nil {
			return fmt.Errorf("esession: marking the retained secret verified: %w", err)
		}
	}
	return nil
}

func (s *Session) out(payload ...*xmltree.Element) Outbound {
	return Outbound{To: s.peer, Thread: s.thread, Payload: payload, NoCopy: s.wantE2E}
}

// sealed returns the content encrypted in the session's <c/>.
func (s *Session) sealed(content ...*xmltree.Element) (Outbound, error) {
	if s.offline && s.role == Initiator {
		// XEP-0187 §3.5: the publisher never sends in an offline session.
		return Outbound{}, ErrNotSupported
	}
	p, err := s.ch.sealContent(content)
	if err != nil {
		return Outbound{}, err
	}
	o := s.out(p...)
	o.Encrypted = true
	return o, nil
}

// end moves the session to its final state and wipes every secret.
func (s *Session) end(reason string, err error) {
	s.step = stepEnded
	if s.reason == "" {
		s.reason = reason
	}
	if s.endErr == nil {
		s.endErr = err
	}
	if s.neg != nil {
		s.neg.wipe()
		s.neg = nil
	}
	if s.ch != nil {
		s.ch.wipe()
		s.ch = nil
	}
	clear(s.rs[:])
	s.haveRS = false
}

// violation is the error for a protocol violation: in an encrypted session
// (or its negotiation) it is the one opaque ErrAuthentication.
func (s *Session) violation() error {
	if s.wantE2E {
		return ErrAuthentication
	}
	return ErrProtocol
}

// fail ends the session on an error, returning the Terminated event.
func (s *Session) fail(res *Result, reason string, err error) {
	s.end(reason, err)
	res.Events = append(res.Events, Terminated{Session: s, Reason: reason, Err: err})
}

// failWith ends the session and sends the peer an error.
func (s *Session) failWith(res *Result, cond string, fields []string, reason string, err error) {
	res.Out = append(res.Out, Outbound{To: s.peer, Type: "error", Thread: s.thread,
		Payload: errorPayload(cond, fields, nil), NoCopy: s.wantE2E})
	s.fail(res, reason, err)
}

// Close ends the session without sending anything and wipes its keys.
// Use it when a terminate was sent and no acknowledgement is coming, or
// when discarding a request.
func (s *Session) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.step != stepEnded {
		s.end("closed", nil)
	}
}

// peerUnavailable applies the XEP-0155 §9.4 policy to the session.
func (s *Session) peerUnavailable(res *Result, terminate bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.step == stepEnded {
		return
	}
	if s.step == stepAwaitDecision {
		// No session yet: a request whose sender is gone is stale, and
		// answering it would go to nobody (XEP-0155 §4.2 asks for an
		// immediate session). It is discarded, whatever the policy.
		res.Events = append(res.Events, PeerWentOffline{Session: s, Terminated: true})
		s.fail(res, "request withdrawn: the requester went offline", nil)
		return
	}
	res.Events = append(res.Events, PeerWentOffline{Session: s, Terminated: terminate})
	if !terminate {
		return
	}
	s.terminateNow(res, "peer went offline")
}

// terminateNow terminates the session explicitly and ends it at once,
// without waiting for an acknowledgement: the terminate form (inside <c/>
// in an established encrypted session) unless nothing was agreed yet or
// our terminate is already sent.
func (s *Session) terminateNow(res *Result, reason string) {
	switch {
	case s.step == stepAwaitDecision || s.step == stepTerminating:
	case s.step == stepActive && s.wantE2E && !s.cfg.cv.gajim:
		if o, err := s.sealed(feature(terminateForm(false))); err == nil {
			res.Out = append(res.Out, o)
		}
	default:
		res.Out = append(res.Out, s.out(feature(terminateForm(false))))
	}
	s.fail(res, reason, nil)
}

// Decline declines a received request, with an optional reason (XEP-0155
// §4.3). The session ends.
func (s *Session) Decline(reason string) (Outbound, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.step == stepEnded {
		return Outbound{}, ErrEnded
	}
	if s.step != stepAwaitDecision {
		return Outbound{}, ErrState
	}
	o := s.out(feature(declineForm(reason)))
	s.end("declined", nil)
	return o, nil
}

// Accept accepts a received request. For an encrypted session it sends
// XEP-0217 message 2 and the session stays pending until message 3; for a
// plain session it stays pending until the requester completes it. If the
// request cannot be accepted, the result holds the error sent to the peer
// and Accept returns a *NegotiationError.
func (s *Session) Accept() (Result, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var res Result
	if s.step == stepEnded {
		return res, ErrEnded
	}
	if s.step != stepAwaitDecision {
		return res, ErrState
	}
	err := s.accept(&res)
	return res, err
}

// Seal prepares content (the children of a message, such as a
// jabber:client <body/>) for sending in the session. In an encrypted
// session it is serialised and encrypted into an XEP-0200 <c/>; in a plain
// session it is sent as is. It returns ErrKeyExhausted when the session
// has encrypted 2^32 blocks: terminate it and start a new one.
func (s *Session) Seal(content ...*xmltree.Element) (Outbound, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.step == stepEnded:
		return Outbound{}, ErrEnded
	case s.step != stepActive:
		return Outbound{}, ErrState
	}
	if !s.wantE2E {
		o := s.out(content...)
		o.Type = "chat"
		return o, nil
	}
	o, err := s.sealed(content...)
	if err != nil {
		return Outbound{}, err
	}
	o.Type = "chat"
	s.lastActive = s.cfg.now()
	return o, nil
}

// Terminate ends the session (XEP-0155 §7). An encrypted session sends the
// terminate form inside <c/> and destroys its sending keys; it keeps its
// receiving keys until the peer's encrypted acknowledgement arrives (or
// Close is called), so stanzas already in flight can still be read
// (XEP-0217 §6). Nothing more can be sent. In the gajim profile the
// terminate is sent in the clear and the session ends at once.
func (s *Session) Terminate() (Result, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var res Result
	switch s.step {
	case stepEnded:
		return res, ErrEnded
	case stepTerminating:
		return res, ErrState
	case stepAwaitDecision:
		s.fail(&res, "discarded", nil)
		return res, nil
	case stepActive:
		if s.wantE2E && !s.cfg.cv.gajim {
			o, err := s.sealed(feature(terminateForm(false)))
			if err != nil {
				s.fail(&res, "terminated", err)
				return res, nil
			}
			res.Out = append(res.Out, o)
			s.ch.send.wipe()
			s.step = stepTerminating
			return res, nil
		}
	}
	res.Out = append(res.Out, s.out(feature(terminateForm(false))))
	s.fail(&res, "terminated", nil)
	return res, nil
}

// parsedFeature is a received <feature/> with its data form.
type parsedFeature struct {
	el   *xmltree.Element // the <feature/>
	form *form.Form
}

// parseFeature reads a <feature xmlns=feature-neg/> or <init/> element
// holding exactly one data form.
func parseFeature(el *xmltree.Element, space, local string) (*parsedFeature, error) {
	if el.Name.Space != space || el.Name.Local != local {
		return nil, errors.New("esession: unexpected element")
	}
	kids := el.Elements()
	if len(kids) != 1 {
		return nil, errors.New("esession: negotiation element without exactly one form")
	}
	f, err := form.FromTree(kids[0])
	if err != nil {
		return nil, err
	}
	return &parsedFeature{el: el, form: f}, nil
}

// kind returns the stanza kind, StanzaMessage for "".
func (in *Inbound) kind() string {
	if in.Kind == "" {
		return StanzaMessage
	}
	return in.Kind
}

// SealStanza is Seal for a presence or iq stanza (or a message), which the
// session must have negotiated (Params.Stanzas; XEP-0200 §4): the content
// is encrypted into a <c/> of a stanza of that kind and type, without a
// thread. For an iq, set the returned Outbound's ID. Control forms and
// negotiation travel in messages only.
func (s *Session) SealStanza(kind, typ string, content ...*xmltree.Element) (Outbound, error) {
	if kind == StanzaMessage || kind == "" {
		o, err := s.Seal(content...)
		if err == nil && typ != "" {
			o.Type = typ
		}
		return o, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.established(); err != nil {
		return Outbound{}, err
	}
	if !slices.Contains(s.params.Stanzas, kind) {
		return Outbound{}, ErrNotSupported
	}
	o, err := s.sealed(content...)
	if err != nil {
		return Outbound{}, err
	}
	o.Kind, o.Type, o.Thread, o.NoCopy = kind, typ, "", false
	s.lastActive = s.cfg.now()
	return o, nil
}

// established reports whether the session is an established encrypted
// session that can send: ErrEnded or ErrState if not.
func (s *Session) established() error {
	switch {
	case s.step == stepEnded:
		return ErrEnded
	case s.step != stepActive || !s.wantE2E:
		return ErrState
	}
	return nil
}

// receiveOther handles a presence or iq stanza routed to this session:
// only its <c/> concerns the engine.
func (s *Session) receiveOther(in *Inbound) (Result, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var res Result
	if s.step != stepActive || !s.wantE2E || !slices.Contains(s.params.Stanzas, in.Kind) {
		res.Events = append(res.Events, Rejected{From: in.From, Reason: "no session carries " + in.Kind + " stanzas"})
		return res, nil
	}
	return s.openC(&res, in)
}

// receive handles a stanza the Manager routed to this session.
func (s *Session) receive(in *Inbound) (Result, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var res Result
	if s.step == stepEnded {
		res.Events = append(res.Events, Rejected{From: in.From, Thread: in.Thread, Reason: "session has ended"})
		return res, nil
	}
	if s.step == stepMoved {
		res.Events = append(res.Events, Rejected{From: in.From, Thread: in.Thread, Reason: "the session moved to another resource"})
		return res, nil
	}
	if in.To != "" && in.From == s.peer {
		s.self = in.To
	}
	var pf *parsedFeature
	var perr error
	if in.Feature != nil {
		pf, perr = parseFeature(in.Feature, NSFeatureNeg, "feature")
	}
	if s.bound && in.From != s.peer {
		// XEP-0155 §4.2: the session is bound to one resource. A second
		// answer to our request from another resource is an attack or a
		// race we cannot resolve: the negotiation ends (the other resource
		// gets a cancel so that it discards its state too).
		if s.role == Initiator && perr == nil && pf != nil && classify(pf.form) == kindAnswer {
			res.Out = append(res.Out, Outbound{To: in.From, Thread: s.thread, Payload: []*xmltree.Element{feature(completeForm(false))}, NoCopy: s.wantE2E})
			if s.step == stepActive && s.wantE2E {
				if o, err := s.sealed(feature(terminateForm(false))); err == nil {
					res.Out = append(res.Out, o)
				}
			} else {
				res.Out = append(res.Out, s.out(feature(completeForm(false))))
			}
			s.fail(&res, "answer from a second resource", ErrAuthentication)
			return res, ErrAuthentication
		}
		res.Events = append(res.Events, Rejected{From: in.From, Thread: in.Thread, Reason: "not from the session's resource " + s.peer})
		return res, nil
	}
	if perr != nil {
		if s.wantE2E || s.state() == StatePending {
			err := s.violation()
			s.fail(&res, "malformed negotiation message", err)
			return res, err
		}
		res.Events = append(res.Events, Rejected{From: in.From, Thread: in.Thread, Reason: "malformed negotiation form"})
		return res, nil
	}
	if in.Type == "error" {
		ne := parseError(in.Error)
		s.end("peer error: "+ne.Condition, ne)
		res.Events = append(res.Events, PeerError{Session: s, Err: ne})
		return res, nil
	}
	var k kind = -1
	if pf != nil {
		k = classify(pf.form)
	}
	switch s.step {
	case stepRequested:
		if k == kindAnswer {
			return s.onAnswer(&res, in, pf)
		}
	case stepAwaitDecision, stepAccepted:
		if s.step == stepAccepted && k == kindComplete {
			return s.onComplete(&res, pf, in)
		}
		if k == kindTerminate {
			s.end("cancelled by peer", nil)
			res.Events = append(res.Events, Terminated{Session: s, ByPeer: true, Reason: "cancelled by peer"})
			return res, nil
		}
	case stepConfirming:
		if in.Init != nil && pf == nil {
			return s.onMessage4(&res, in)
		}
	case stepActive, stepTerminating, stepMoving:
		return s.onActive(&res, in, pf, k)
	}
	if pf != nil || in.Init != nil {
		// Any other negotiation message, such as a replayed answer, ends
		// the negotiation (XEP-0217 §4.2: discard everything learned).
		err := s.violation()
		s.fail(&res, "unexpected negotiation message", err)
		return res, err
	}
	if in.C != nil {
		res.Events = append(res.Events, Rejected{From: in.From, Thread: in.Thread, Reason: "encrypted content before the session was established"})
		return res, nil
	}
	if s.wantE2E {
		res.Events = append(res.Events, Unencrypted{Session: s, From: in.From})
		return res, nil
	}
	res.Unhandled = true
	return res, nil
}

// onActive handles stanzas of an established session.
func (s *Session) onActive(res *Result, in *Inbound, pf *parsedFeature, k kind) (Result, error) {
	if !s.wantE2E {
		if in.C != nil {
			res.Events = append(res.Events, Rejected{From: in.From, Thread: in.Thread, Reason: "encrypted content in a plain session"})
			return *res, nil
		}
		if pf == nil {
			res.Unhandled = true
			return *res, nil
		}
		if !s.onControl(res, pf, k, false) {
			s.fail(res, "unexpected negotiation message", ErrProtocol)
			return *res, ErrProtocol
		}
		return *res, nil
	}
	if pf != nil {
		if k == kindTerminate {
			if !s.cfg.cv.gajim {
				// XEP-0217 §6: the terminate travels inside <c/>. One in
				// the clear is unauthenticated and changes nothing.
				res.Events = append(res.Events, Rejected{From: in.From, Thread: in.Thread, Reason: "unencrypted terminate for an encrypted session"})
				return *res, nil
			}
			// Gajim sends its terminate in the clear. It can only end the
			// session, which anyone able to inject stanzas can do anyway
			// with a bad <c/>.
			s.end("terminated by peer (unauthenticated)", nil)
			res.Events = append(res.Events, Terminated{Session: s, ByPeer: true, Reason: "terminated by peer (unauthenticated)"})
			return *res, nil
		}
		s.fail(res, "unexpected negotiation message", ErrAuthentication)
		return *res, ErrAuthentication
	}
	if in.Init != nil {
		s.fail(res, "unexpected negotiation message", ErrAuthentication)
		return *res, ErrAuthentication
	}
	if in.C == nil {
		res.Events = append(res.Events, Unencrypted{Session: s, From: in.From})
		return *res, nil
	}
	return s.openC(res, in)
}

// isFeature reports a feature negotiation form: decrypted, a session
// control form (XEP-0217 §6).
func isFeature(el *xmltree.Element) bool {
	return el.Name.Space == NSFeatureNeg && el.Name.Local == "feature"
}

// openC decrypts a <c/> and processes its content.
func (s *Session) openC(res *Result, in *Inbound) (Result, error) {
	msg, err := s.ch.open(in.C)
	if err != nil {
		// XEP-0200 §7 steps 3 and 6: terminate; not-acceptable MAY be sent.
		s.failWith(res, CondNotAcceptable, nil, "message authentication failed", ErrAuthentication)
		return *res, ErrAuthentication
	}
	s.lastActive = s.cfg.now()
	// Session control forms travel encrypted (XEP-0217 §6); the other
	// elements are the message.
	var ctl []*parsedFeature
	n := 0 // content elements
	for _, c := range msg.Children {
		el, ok := c.(*xmltree.Element)
		if !ok {
			continue
		}
		if !isFeature(el) {
			n++
			continue
		}
		pf, err := parseFeature(el, NSFeatureNeg, "feature")
		if err != nil {
			s.failWith(res, CondNotAcceptable, nil, "malformed encrypted negotiation form", ErrAuthentication)
			return *res, ErrAuthentication
		}
		ctl = append(ctl, pf)
	}
	var content []*xmltree.Element
	if n > 0 {
		content = make([]*xmltree.Element, 0, n)
		for _, c := range msg.Children {
			if el, ok := c.(*xmltree.Element); ok && !isFeature(el) {
				content = append(content, el)
			}
		}
	}
	// An iq is answered even when it carries nothing (an empty result, an
	// error whose condition is in the clear): its Message is reported.
	if len(content) > 0 || in.kind() == StanzaIQ {
		res.Events = append(res.Events, Message{Session: s, Content: content, Stripped: stripped(in.Other),
			Kind: in.kind(), Type: in.Type, ID: in.ID})
	}
	for _, pf := range ctl {
		if s.step == stepEnded {
			break
		}
		if !s.onControl(res, pf, classify(pf.form), true) {
			s.fail(res, "unexpected negotiation message", ErrAuthentication)
			return *res, ErrAuthentication
		}
	}
	return *res, nil
}
