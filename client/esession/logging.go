package esession

import (
	"context"
	"slices"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/client"
	"github.com/balcony-im/balcony/eme"
	engine "github.com/balcony-im/balcony/esession"
	"github.com/balcony-im/balcony/xmltree"
)

// This file is the XEP-0136 side of sessions: the user's logging
// preference becomes the engine's OTR mode (XEP-0136 §9.1), and a
// session agreed as logging=mustnot (XEP-0155 §4.1) is kept out of every
// store: its stanzas carry the no-store and no-permanent-store hints
// (XEP-0334), and the server's archiving preferences (the <prefs/> of
// XEP-0313 version 0.6, since moved to XEP-0441) are checked where the
// account's archive is offered, the contact added to "never" while the
// session lasts when the server would archive it.

// NSMAM is the XEP-0313 namespace, also its preferences'.
const NSMAM = "urn:xmpp:mam:2"

// archiveTimeout bounds the archive preference requests.
const archiveTimeout = 20 * time.Second

// otrMode is the engine's OTR mode for a logging preference: "may" offers
// may first and accepts mustnot when the contact asks (the client honours
// it), "mustnot" offers and accepts mustnot only.
func otrMode(logging string) engine.OTRMode {
	if logging == engine.LoggingMustNot {
		return engine.OTRRequire
	}
	return engine.OTRConcede
}

// archivePrefs is the account's archiving preferences.
type archivePrefs struct {
	def           string // always, roster or never
	always, never []string
}

// archives reports whether the server archives messages with peer.
// "roster" counts as archiving: the contact may be in the roster.
func (p *archivePrefs) archives(peer string) bool {
	switch {
	case slices.Contains(p.never, peer):
		return false
	case slices.Contains(p.always, peer):
		return true
	}
	return p.def != "never"
}

func (p *archivePrefs) element() *xmltree.Element {
	el := xmltree.New(NSMAM, "prefs", "default", p.def)
	list := func(name string, jids []string) *xmltree.Element {
		l := xmltree.New(NSMAM, name)
		for _, j := range jids {
			l.Append(xmltree.New(NSMAM, "jid").AppendText(j))
		}
		return l
	}
	return el.Append(list("always", p.always), list("never", p.never))
}

func parsePrefs(el *xmltree.Element) (*archivePrefs, bool) {
	if el == nil {
		return nil, false
	}
	p := &archivePrefs{def: el.AttrValue("default")}
	switch p.def {
	case "always", "roster", "never":
	default:
		return nil, false
	}
	for _, name := range []string{"always", "never"} {
		l := el.Child(NSMAM, name)
		if l == nil {
			continue
		}
		for _, j := range l.ChildrenNamed(NSMAM, "jid") {
			if name == "always" {
				p.always = append(p.always, j.Text())
			} else {
				p.never = append(p.never, j.Text())
			}
		}
	}
	return p, true
}

// prefs reads the archiving preferences; ok is false when the account's
// archive is not offered.
func (e *Mechanism) prefs(ctx context.Context) (*archivePrefs, bool, error) {
	self := e.h.Self().Bare()
	info, err := e.h.QueryInfo(ctx, self, "")
	if err != nil || !info.Has(NSMAM) {
		return nil, false, nil
	}
	resp, err := e.h.IQ(ctx, xmltree.New(client.NSClient, "iq", "type", "get").Append(xmltree.New(NSMAM, "prefs")))
	if err != nil {
		return nil, true, err
	}
	p, ok := parsePrefs(resp.Child(NSMAM, "prefs"))
	if !ok {
		return nil, true, errMalformedPrefs
	}
	return p, true, nil
}

func (e *Mechanism) setPrefs(ctx context.Context, p *archivePrefs) error {
	_, err := e.h.IQ(ctx, xmltree.New(client.NSClient, "iq", "type", "set").Append(p.element()))
	return err
}

var errMalformedPrefs = &client.StanzaError{Condition: "undefined-condition", Text: "malformed archiving preferences"}

// keepOutOfArchive makes sure the server does not archive the messages of
// a session that must not be stored, in the background, and tells the
// user what was found and done (KindLogging).
func (e *Mechanism) keepOutOfArchive(s *engine.Session) {
	if e.h == nil {
		return
	}
	peer := s.PeerBare()
	e.mu.Lock()
	_, checked := e.archived[peer]
	if !checked {
		e.archived[peer] = false
	}
	e.mu.Unlock()
	if checked {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), archiveTimeout)
		defer cancel()
		msg := e.excludeFromArchive(ctx, peer)
		p, _ := jid.Parse(s.Peer())
		e.emitAll(p, []*client.SecurityEvent{{Kind: KindLogging, Message: msg}})
		e.notify()
	}()
}

// excludeFromArchive does the archive check for peer and says what it
// found.
func (e *Mechanism) excludeFromArchive(ctx context.Context, peer string) eme.Message {
	p, offered, err := e.prefs(ctx)
	switch {
	case !offered:
		return eme.Msg(eme.MsgESArchiveNone, peer)
	case err != nil:
		return eme.Msg(eme.MsgESArchiveUnknown, peer, err.Error())
	case !p.archives(peer):
		return eme.Msg(eme.MsgESArchiveOff, peer)
	}
	p.always = slices.DeleteFunc(p.always, func(j string) bool { return j == peer })
	p.never = append(p.never, peer)
	if err := e.setPrefs(ctx, p); err != nil {
		return eme.Msg(eme.MsgESArchiveUnknown, peer, err.Error())
	}
	e.mu.Lock()
	e.archived[peer] = true
	e.mu.Unlock()
	return eme.Msg(eme.MsgESArchiveExcluded, peer)
}

// sessionEnded takes back the archiving exception made for the session's
// contact once no session that must not be stored is left with it.
func (e *Mechanism) sessionEnded(s *engine.Session) {
	peer := s.PeerBare()
	for _, o := range e.m().Sessions() {
		if o != s && o.PeerBare() == peer && o.State() == engine.StateActive && o.Params().Logging == engine.LoggingMustNot {
			return
		}
	}
	e.mu.Lock()
	added, checked := e.archived[peer]
	e.mu.Unlock()
	if !checked || e.h == nil {
		return
	}
	if !added {
		e.mu.Lock()
		delete(e.archived, peer)
		e.mu.Unlock()
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), archiveTimeout)
		defer cancel()
		e.restoreArchive(ctx, peer)
	}()
}

// restoreArchive removes from the archive's "never" list the contacts
// (peer, or every one with peer "") that this client put there.
func (e *Mechanism) restoreArchive(ctx context.Context, peer string) {
	e.mu.Lock()
	var peers []string
	for p, added := range e.archived {
		if peer == "" || p == peer {
			if added {
				peers = append(peers, p)
			}
			delete(e.archived, p)
		}
	}
	e.mu.Unlock()
	if len(peers) == 0 || e.h == nil {
		return
	}
	p, offered, err := e.prefs(ctx)
	if err != nil || !offered {
		e.log().Warn("taking back the archiving exceptions failed", "peers", peers, "err", err)
		return
	}
	p.never = slices.DeleteFunc(p.never, func(j string) bool { return slices.Contains(peers, j) })
	if err := e.setPrefs(ctx, p); err != nil {
		e.log().Warn("taking back the archiving exceptions failed", "peers", peers, "err", err)
		return
	}
	for _, peer := range peers {
		pj, _ := jid.Parse(peer)
		e.emitAll(pj, []*client.SecurityEvent{{Kind: KindLogging, Message: eme.Msg(eme.MsgESArchiveRestored, peer)}})
	}
}

// MustNotLog reports whether nothing of the conversation with peer on
// thread may be stored: the session on that thread agreed
// logging=mustnot. A client's message log skips such messages.
func (e *Mechanism) MustNotLog(peer jid.JID, thread string) bool {
	if thread == "" {
		return false
	}
	s := e.m().Session(peer.Bare().String(), thread)
	return s != nil && s.Encrypted() && s.Params().Logging == engine.LoggingMustNot
}
