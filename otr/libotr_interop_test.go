package otr_test

// Interoperability tests against libotr 4.1, the reference implementation,
// run as a child process through internal/libotrpeer. They skip when gcc,
// pkg-config or libotr's development files are missing, and fail instead
// when BALCONY_REQUIRE_INTEROP=1 (as in CI).

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/balcony-im/balcony/internal/libotrpeer"
	"github.com/balcony-im/balcony/otr"
)

// interopKey is our long-term key, generated once per test binary:
// GenerateKey searches for DSA parameters and takes about a second.
var interopKey = sync.OnceValues(func() (*otr.PrivateKey, error) {
	return otr.GenerateKey(nil)
})

func ourKey(t *testing.T) *otr.PrivateKey {
	t.Helper()
	k, err := interopKey()
	if err != nil {
		t.Fatalf("GenerateKey: %v", err)
	}
	return k
}

// session is our engine and a libotr peer talking to each other.
type session struct {
	t    *testing.T
	key  *otr.PrivateKey
	conv *otr.Conversation
	lib  *libotrpeer.Peer

	version     int  // protocol version the AKE must agree on (default 3)
	allowErrors bool // exchange tolerates unreadable messages and errors
}

func newSession(t *testing.T, cfg otr.Config, opts libotrpeer.Options) *session {
	t.Helper()
	lib := libotrpeer.Start(t, opts) // skips when libotr is unavailable
	if cfg.PrivateKey == nil {
		cfg.PrivateKey = ourKey(t)
	}
	conv, err := otr.NewConversation(cfg)
	if err != nil {
		t.Fatalf("NewConversation: %v", err)
	}
	return &session{t: t, key: cfg.PrivateKey, conv: conv, lib: lib, version: 3}
}

// ourMessage is a message our engine delivered to the user.
type ourMessage struct {
	text      string
	encrypted bool
}

// result is what both sides did while messages were relayed.
type result struct {
	ours   []ourMessage
	events []otr.Event
	lib    libotrpeer.Output

	fromUs, fromLib [][]byte // every message each side transmitted
	errs            []error  // what our Receive returned, in order
}

func (r *result) has(k otr.EventKind) bool {
	for _, e := range r.events {
		if e.Kind == k {
			return true
		}
	}
	return false
}

func (r *result) event(k otr.EventKind) *otr.Event {
	for i := range r.events {
		if r.events[i].Kind == k {
			return &r.events[i]
		}
	}
	return nil
}

func (r *result) kinds() []string {
	var s []string
	for _, e := range r.events {
		s = append(s, e.Kind.String())
	}
	return s
}

// exchange hands toLib to libotr and toUs to our engine, alternating, and
// then relays every reply in turn until neither side has anything to send.
// Any sign that one side could not read the other (an error from Receive, an
// unreadable/malformed/error event on either side) fails the test, since it
// always means an interoperability bug.
func (s *session) exchange(toLib, toUs [][]byte) *result {
	s.t.Helper()
	type hop struct {
		toLib bool
		msg   []byte
	}
	var queue []hop
	for i := 0; i < len(toLib) || i < len(toUs); i++ {
		if i < len(toLib) {
			queue = append(queue, hop{true, toLib[i]})
		}
		if i < len(toUs) {
			queue = append(queue, hop{false, toUs[i]})
		}
	}
	r := new(result)
	for steps := 0; len(queue) > 0; steps++ {
		if steps > 2000 {
			s.t.Fatal("messages keep bouncing between the two sides")
		}
		h := queue[0]
		queue = queue[1:]
		if h.toLib {
			out := s.lib.Receive(h.msg)
			for _, e := range out.Events {
				if s.allowErrors {
					break
				}
				if e.Kind == libotrpeer.KindMsg && libotrRejects[e.Msg] {
					s.t.Errorf("libotr rejected our message %s: %v", describe(h.msg), e)
				}
				if e.Kind == libotrpeer.KindSMP && (e.SMP == libotrpeer.SMPCheated || e.SMP == libotrpeer.SMPError) {
					s.t.Errorf("libotr reports SMP %s on our message %s", e.SMP, describe(h.msg))
				}
			}
			r.lib.Append(out)
			r.fromLib = append(r.fromLib, out.Net...)
			for _, m := range out.Net {
				queue = append(queue, hop{false, m})
			}
			continue
		}
		got, err := s.conv.Receive(h.msg)
		if err != nil && !s.allowErrors {
			s.t.Errorf("our Receive(%s): %v", describe(h.msg), err)
		}
		r.errs = append(r.errs, err)
		if got == nil {
			continue
		}
		for _, e := range got.Events {
			if s.allowErrors {
				break
			}
			switch e.Kind {
			case otr.EventUnreadable, otr.EventMalformed, otr.EventError, otr.EventSMPCheated:
				s.t.Errorf("our engine reports %v (%q) on libotr's %s", e.Kind, e.Text, describe(h.msg))
			}
		}
		r.events = append(r.events, got.Events...)
		if got.Plaintext != nil {
			r.ours = append(r.ours, ourMessage{string(got.Plaintext), got.Encrypted})
		}
		r.fromUs = append(r.fromUs, got.ToSend...)
		for _, m := range got.ToSend {
			queue = append(queue, hop{true, m})
		}
	}
	return r
}

// libotr message events that mean it could not use what we sent.
var libotrRejects = map[libotrpeer.MsgEvent]bool{
	libotrpeer.MsgSetupError:           true,
	libotrpeer.MsgRcvdUnreadable:       true,
	libotrpeer.MsgRcvdMalformed:        true,
	libotrpeer.MsgRcvdGeneralErr:       true,
	libotrpeer.MsgRcvdUnrecognized:     true,
	libotrpeer.MsgRcvdNotInPrivate:     true,
	libotrpeer.MsgRcvdForOtherInstance: true,
	libotrpeer.MsgReflected:            true,
	libotrpeer.MsgEncryptionError:      true,
}

// describe names an OTR message for failure reports without dumping it.
func describe(msg []byte) string {
	switch {
	case bytes.HasPrefix(msg, []byte("?OTR|")) || bytes.HasPrefix(msg, []byte("?OTR,")):
		return fmt.Sprintf("fragment %.40q", msg)
	case bytes.HasPrefix(msg, []byte("?OTR:")):
		if bin, ok := decodeOTR(msg); ok && len(bin) >= 3 {
			name := map[byte]string{0x02: "DH-Commit", 0x0a: "DH-Key", 0x11: "Reveal-Signature", 0x12: "Signature", 0x03: "Data"}[bin[2]]
			if name == "" {
				name = fmt.Sprintf("type %#02x", bin[2])
			}
			return fmt.Sprintf("v%d %s message (%d bytes)", binary.BigEndian.Uint16(bin), name, len(msg))
		}
	}
	return fmt.Sprintf("%.40q", msg)
}

func decodeOTR(msg []byte) ([]byte, bool) {
	body, ok := bytes.CutPrefix(msg, []byte("?OTR:"))
	if !ok {
		return nil, false
	}
	body, ok = bytes.CutSuffix(body, []byte("."))
	if !ok {
		return nil, false
	}
	bin, err := base64.StdEncoding.DecodeString(string(body))
	return bin, err == nil
}

// dataKeyIDs returns the sender and recipient key ids of an unfragmented v3
// data message (Protocol-v3 "Data Message": header, flags, key ids).
func dataKeyIDs(t *testing.T, msg []byte) (sender, recipient uint32) {
	t.Helper()
	bin, ok := decodeOTR(msg)
	if !ok || len(bin) < 20 || !bytes.Equal(bin[:3], []byte{0, 3, 3}) {
		t.Fatalf("not a v3 data message: %s", describe(msg))
	}
	return binary.BigEndian.Uint32(bin[12:]), binary.BigEndian.Uint32(bin[16:])
}

func fingerprintHex(k *otr.PublicKey) string {
	return strings.ToUpper(k.Fingerprint().Hex())
}

// akeByUs runs an AKE started by our query message.
func (s *session) akeByUs() *result {
	s.t.Helper()
	start, err := s.conv.StartAKE()
	if err != nil {
		s.t.Fatalf("StartAKE: %v", err)
	}
	if len(start) == 0 {
		s.t.Fatal("StartAKE returned nothing to send")
	}
	r := s.exchange(start, nil)
	s.checkSecure(r)
	return r
}

// akeByLibotr runs an AKE started by libotr's query message.
func (s *session) akeByLibotr() *result {
	s.t.Helper()
	q := s.lib.StartAKE()
	r := s.exchange(nil, q.Net)
	s.checkSecure(r)
	return r
}

// checkSecure checks that an AKE just completed and that both sides agree
// on everything the AKE establishes.
func (s *session) checkSecure(r *result) {
	s.t.Helper()
	t := s.t
	st := s.lib.State()
	if s.conv.State() != otr.Encrypted || st.MsgState != libotrpeer.Encrypted {
		t.Fatalf("after the AKE: ours %v, libotr %s (our events %v, libotr events %v)",
			s.conv.State(), st.MsgState, r.kinds(), r.lib.Events)
	}
	if !r.has(otr.EventGoneSecure) && !r.has(otr.EventRefreshed) {
		t.Errorf("our engine reported neither gone secure nor refreshed: %v", r.kinds())
	}
	if !r.lib.Has(libotrpeer.KindGoneSecure) && !r.lib.Has(libotrpeer.KindStillSecure) {
		t.Errorf("libotr reported neither gone_secure nor still_secure: %v", r.lib.Events)
	}
	if v := s.conv.ProtocolVersion(); v != s.version || st.Version != s.version {
		t.Errorf("protocol versions: ours %d, libotr %d; want %d", v, st.Version, s.version)
	}
	if ssid := s.conv.SSID(); !bytes.Equal(ssid[:], st.SSID) {
		t.Errorf("SSID: ours %x, libotr %x", ssid, st.SSID)
	}
	if s.version == 3 && (st.TheirInstance != s.conv.InstanceTag() || s.conv.TheirInstanceTag() != st.OurInstance) {
		t.Errorf("instance tags: libotr sees us as %08x (we are %08x); we see libotr as %08x (it is %08x)",
			st.TheirInstance, s.conv.InstanceTag(), s.conv.TheirInstanceTag(), st.OurInstance)
	}
	fp := s.lib.Fingerprint()
	if want := fingerprintHex(s.key.Public()); fp.Peer != want {
		t.Errorf("libotr sees our fingerprint as %s, ours is %s", fp.Peer, want)
	}
	if k := s.conv.TheirKey(); k == nil || fingerprintHex(k) != fp.Own {
		t.Errorf("we see libotr's key as %v, libotr's fingerprint is %s", k, fp.Own)
	}
}

// sendToLibotr sends text with our engine and checks libotr shows it,
// decrypted, exactly once.
func (s *session) sendToLibotr(text string) [][]byte {
	s.t.Helper()
	msgs, err := s.conv.Send([]byte(text))
	if err != nil {
		s.t.Fatalf("Send(%.30q): %v", text, err)
	}
	r := s.exchange(msgs, nil)
	if got := r.lib.Messages; len(got) != 1 || string(got[0].Text) != text || !got[0].Encrypted {
		s.t.Fatalf("we sent %.40q; libotr delivered %+v", text, got)
	}
	return msgs
}

// sendToUs sends text with libotr and checks our engine shows it, decrypted,
// exactly once.
func (s *session) sendToUs(text string) [][]byte {
	s.t.Helper()
	out := s.lib.Send([]byte(text))
	r := s.exchange(nil, out.Net)
	if len(r.ours) != 1 || r.ours[0].text != text || !r.ours[0].encrypted {
		s.t.Fatalf("libotr sent %.40q; we delivered %+v", text, r.ours)
	}
	return out.Net
}

func TestLibotrAKE(t *testing.T) {
	manual := libotrpeer.Options{Policy: libotrpeer.PolicyManual}
	t.Run("QueryFromUs", func(t *testing.T) {
		s := newSession(t, otr.Config{Policy: otr.PolicyManual}, manual)
		r := s.akeByUs()
		if !r.has(otr.EventGoneSecure) || !r.lib.Has(libotrpeer.KindGoneSecure) {
			t.Errorf("a first AKE must be gone secure on both sides: ours %v, libotr %v", r.kinds(), r.lib.Events)
		}
	})
	t.Run("QueryFromLibotr", func(t *testing.T) {
		s := newSession(t, otr.Config{Policy: otr.PolicyManual}, manual)
		s.akeByLibotr()
	})
	t.Run("QueryFromBoth", func(t *testing.T) {
		// Both sides send a query at once; both answer with a DH-Commit,
		// and the commit with the larger hashed g^x wins (Protocol-v3
		// "Authenticated Key Exchange", AUTHSTATE_AWAITING_DHKEY).
		s := newSession(t, otr.Config{Policy: otr.PolicyManual}, manual)
		ours, err := s.conv.StartAKE()
		if err != nil {
			t.Fatalf("StartAKE: %v", err)
		}
		r := s.exchange(ours, s.lib.StartAKE().Net)
		s.checkSecure(r)
	})
	t.Run("WhitespaceTagFromUs", func(t *testing.T) {
		s := newSession(t, otr.Config{Policy: otr.PolicyOpportunistic},
			libotrpeer.Options{Policy: libotrpeer.PolicyOpportunistic})
		msgs, err := s.conv.Send([]byte("hello"))
		if err != nil {
			t.Fatalf("Send: %v", err)
		}
		r := s.exchange(msgs, nil)
		if len(r.lib.Messages) != 1 || string(r.lib.Messages[0].Text) != "hello" || r.lib.Messages[0].Encrypted {
			t.Errorf("libotr delivered %+v, want the plaintext without its tag", r.lib.Messages)
		}
		s.checkSecure(r)
		s.sendToLibotr("and now privately")
	})
	t.Run("WhitespaceTagFromLibotr", func(t *testing.T) {
		s := newSession(t, otr.Config{Policy: otr.PolicyOpportunistic},
			libotrpeer.Options{Policy: libotrpeer.PolicyOpportunistic})
		out := s.lib.Send([]byte("hello"))
		r := s.exchange(nil, out.Net)
		if len(r.ours) != 1 || r.ours[0].text != "hello" || r.ours[0].encrypted {
			t.Errorf("we delivered %+v, want the plaintext without its tag", r.ours)
		}
		s.checkSecure(r)
		s.sendToUs("and now privately")
	})
	t.Run("V2", func(t *testing.T) {
		// libotr allows only version 2: the AKE falls back to it, with
		// no instance tags and v2 fragments.
		s := newSession(t, otr.Config{Policy: otr.PolicyManual, FragmentSize: 150},
			libotrpeer.Options{Policy: libotrpeer.PolicyAllowV2, FragmentSize: 150})
		s.version = 2
		for _, start := range []func() *result{s.akeByUs, s.akeByLibotr} {
			r := start()
			for _, m := range r.fromUs {
				if !bytes.HasPrefix(m, []byte("?OTR,")) && !bytes.HasPrefix(m, []byte("?OTR:AAI")) && !bytes.HasPrefix(m, []byte("?OTRv")) {
					t.Errorf("not a v2 message or fragment: %.30q", m)
				}
			}
		}
		long := strings.Repeat("version two ", 40)
		s.sendToLibotr(long)
		s.sendToUs(long)
		s.sendToLibotr("short")
	})
	t.Run("V3Only", func(t *testing.T) {
		s := newSession(t, otr.Config{Policy: otr.AllowV3},
			libotrpeer.Options{Policy: libotrpeer.PolicyAllowV3})
		s.akeByUs()
	})
}

func TestLibotrMessages(t *testing.T) {
	for _, initiator := range []string{"us", "libotr"} {
		t.Run("AKEBy"+initiator, func(t *testing.T) {
			s := newSession(t, otr.Config{Policy: otr.PolicyManual}, libotrpeer.Options{Policy: libotrpeer.PolicyManual})
			if initiator == "us" {
				s.akeByUs()
			} else {
				s.akeByLibotr()
			}
			// Round trips: each message acknowledges the other side's
			// newest DH key, so both sides must rotate keys every time.
			const rounds = 6
			var ourIDs, libIDs []uint32
			for i := range rounds {
				m := s.sendToLibotr(fmt.Sprintf("ping %d: <b>bold</b> & ünïcödé ✓", i))
				id, _ := dataKeyIDs(t, m[0])
				ourIDs = append(ourIDs, id)
				m = s.sendToUs(fmt.Sprintf("pong %d: <i>ok</i>", i))
				id, _ = dataKeyIDs(t, m[0])
				libIDs = append(libIDs, id)
			}
			for _, ids := range [][]uint32{ourIDs, libIDs} {
				for i := 1; i < len(ids); i++ {
					if ids[i] != ids[i-1]+1 {
						t.Errorf("sender key ids over %d round trips: ours %v, libotr %v; want +1 each round", rounds, ourIDs, libIDs)
						break
					}
				}
			}
			// Runs in one direction: no acknowledgement, no rotation.
			for i := range 3 {
				s.sendToLibotr(fmt.Sprintf("monologue %d", i))
			}
			for i := range 3 {
				s.sendToUs(fmt.Sprintf("reply %d", i))
			}
			s.sendToLibotr("last word")
		})
	}
}

func TestLibotrFragments(t *testing.T) {
	for _, sizes := range []struct{ ours, lib int }{{140, 140}, {200, 90}} {
		t.Run(fmt.Sprintf("ours%d_libotr%d", sizes.ours, sizes.lib), func(t *testing.T) {
			s := newSession(t, otr.Config{Policy: otr.PolicyManual, FragmentSize: sizes.ours},
				libotrpeer.Options{Policy: libotrpeer.PolicyManual, FragmentSize: sizes.lib})
			r := s.akeByUs()
			checkFragments(t, "our AKE messages", r.fromUs, sizes.ours, true)
			checkFragments(t, "libotr's AKE messages", r.fromLib, sizes.lib, false)
			r = s.akeByLibotr() // a re-AKE, started by the other side
			checkFragments(t, "our AKE messages", r.fromUs, sizes.ours, true)
			checkFragments(t, "libotr's AKE messages", r.fromLib, sizes.lib, false)

			long := strings.Repeat("Fragments must be reassembled in order. ", 25)
			msgs := s.sendToLibotr(long)
			checkFragments(t, "our data message", msgs, sizes.ours, true)
			net := s.sendToUs(long)
			checkFragments(t, "libotr's data message", net, sizes.lib, true)

			// SMP messages are long too.
			start, err := s.conv.StartSMP("", []byte("fragmented secret"))
			if err != nil {
				t.Fatalf("StartSMP: %v", err)
			}
			checkFragments(t, "our SMP1", start, sizes.ours, true)
			r = s.exchange(start, nil)
			if !r.lib.HasSMP(libotrpeer.SMPAskForSecret) {
				t.Fatalf("libotr did not get our fragmented SMP1: %v", r.lib.Events)
			}
			r = s.exchange(nil, s.lib.RespondSMP([]byte("fragmented secret")).Net)
			if !r.has(otr.EventSMPSucceeded) || !r.lib.HasSMP(libotrpeer.SMPSuccess) {
				t.Fatalf("fragmented SMP: ours %v, libotr %v", r.kinds(), r.lib.Events)
			}
		})
	}
}

// checkFragments checks that msgs hold fragments no longer than size, and
// at least one message long enough to need them. Only v3 fragments
// ("?OTR|") are accepted if v3 is set; otherwise v2-style ones ("?OTR,")
// too: libotr formats fragments by the context's protocol version, which
// is still unset in plaintext, so it splits a long query message (its
// default one is about 400 bytes) into "?OTR,k,n," fragments.
func checkFragments(t *testing.T, what string, msgs [][]byte, size int, v3 bool) {
	t.Helper()
	fragments := 0
	for i, m := range msgs {
		if len(m) > size {
			t.Errorf("%s: message %d is %d bytes, over %d", what, i, len(m), size)
		}
		switch {
		case bytes.HasPrefix(m, []byte("?OTR|")):
			fragments++
		case bytes.HasPrefix(m, []byte("?OTR,")) && !v3:
			fragments++
		case bytes.HasPrefix(m, []byte("?OTR,")):
			t.Errorf("%s: message %d is a v2-style fragment: %.30q", what, i, m)
		}
	}
	if fragments < 2 {
		t.Errorf("%s: %d fragments among %d messages; want several", what, fragments, len(msgs))
	}
}

func TestLibotrSMP(t *testing.T) {
	type tc struct {
		question       string
		secret, answer string
		success        bool
	}
	cases := map[string]tc{
		"Question/Success": {"Where did we meet?", "in Paris", "in Paris", true},
		"Question/Failure": {"Where did we meet?", "in Paris", "in Rome", false},
		"Secret/Success":   {"", "correct horse", "correct horse", true},
		"Secret/Failure":   {"", "correct horse", "battery staple", false},
	}
	for _, initiator := range []string{"Us", "Libotr"} {
		for name, c := range cases {
			t.Run("By"+initiator+"/"+name, func(t *testing.T) {
				t.Parallel() // SMP is the slowest part of libotr: use both cores
				s := newSession(t, otr.Config{Policy: otr.PolicyManual}, libotrpeer.Options{Policy: libotrpeer.PolicyManual})
				s.akeByUs()
				var r *result
				if initiator == "Us" {
					start, err := s.conv.StartSMP(c.question, []byte(c.secret))
					if err != nil {
						t.Fatalf("StartSMP: %v", err)
					}
					r = s.exchange(start, nil)
					ev := r.lib.SMPEvents()
					if c.question != "" && (len(ev) != 1 || ev[0].SMP != libotrpeer.SMPAskForAnswer || string(ev[0].Question) != c.question) ||
						c.question == "" && (len(ev) != 1 || ev[0].SMP != libotrpeer.SMPAskForSecret) {
						t.Fatalf("libotr's SMP events after our SMP1: %v", r.lib.Events)
					}
					r = s.exchange(nil, s.lib.RespondSMP([]byte(c.answer)).Net)
				} else {
					var out libotrpeer.Output
					if c.question != "" {
						out = s.lib.StartSMPQuestion(c.question, []byte(c.secret))
					} else {
						out = s.lib.StartSMP([]byte(c.secret))
					}
					r = s.exchange(nil, out.Net)
					if c.question != "" {
						if e := r.event(otr.EventSMPQuestion); e == nil || e.Text != c.question {
							t.Fatalf("our events after libotr's SMP1Q: %v", r.kinds())
						}
					} else if !r.has(otr.EventSMPSecretRequested) {
						t.Fatalf("our events after libotr's SMP1: %v", r.kinds())
					}
					answer, err := s.conv.AnswerSMP([]byte(c.answer))
					if err != nil {
						t.Fatalf("AnswerSMP: %v", err)
					}
					r = s.exchange(answer, nil)
				}
				ourWant, ourNot := otr.EventSMPFailed, otr.EventSMPSucceeded
				libWant, libNot := libotrpeer.SMPFailure, libotrpeer.SMPSuccess
				if c.success {
					ourWant, ourNot = ourNot, ourWant
					libWant, libNot = libNot, libWant
				}
				if !r.has(ourWant) || r.has(ourNot) || !r.lib.HasSMP(libWant) || r.lib.HasSMP(libNot) {
					t.Fatalf("want %v / %s: ours %v, libotr %v", ourWant, libWant, r.kinds(), r.lib.Events)
				}
				// libotr marks our key trusted after a successful SMP it
				// started, or answered without a question.
				wantTrust := c.success && (initiator == "Libotr" || c.question == "")
				if got := s.lib.Fingerprint().Trusted; got != wantTrust {
					t.Errorf("libotr trusts our key: %v, want %v", got, wantTrust)
				}
				// The session goes on, and SMP can run again.
				s.sendToLibotr("after SMP")
				s.sendToUs("after SMP too")
				if s.lib.State().SMPExpect != 1 {
					t.Errorf("libotr still expects SMP message %d", s.lib.State().SMPExpect)
				}
			})
		}
	}
}

func TestLibotrSMPAbort(t *testing.T) {
	t.Run("LibotrAborts", func(t *testing.T) {
		s := newSession(t, otr.Config{Policy: otr.PolicyManual}, libotrpeer.Options{Policy: libotrpeer.PolicyManual})
		s.akeByUs()
		start, err := s.conv.StartSMP("", []byte("secret"))
		if err != nil {
			t.Fatalf("StartSMP: %v", err)
		}
		s.exchange(start, nil)
		r := s.exchange(nil, s.lib.AbortSMP().Net)
		if !r.has(otr.EventSMPAborted) {
			t.Fatalf("our events after libotr's abort: %v", r.kinds())
		}
		s.smpWorks()
	})
	t.Run("WeAbort", func(t *testing.T) {
		s := newSession(t, otr.Config{Policy: otr.PolicyManual}, libotrpeer.Options{Policy: libotrpeer.PolicyManual})
		s.akeByUs()
		r := s.exchange(nil, s.lib.StartSMP([]byte("secret")).Net)
		if !r.has(otr.EventSMPSecretRequested) {
			t.Fatalf("our events after libotr's SMP1: %v", r.kinds())
		}
		abort, err := s.conv.AbortSMP()
		if err != nil {
			t.Fatalf("AbortSMP: %v", err)
		}
		r = s.exchange(abort, nil)
		if !r.lib.HasSMP(libotrpeer.SMPAbort) || !r.lib.HasTLV(6) {
			t.Fatalf("libotr after our abort: %v %v", r.lib.Events, r.lib.TLVs)
		}
		s.smpWorks()
	})
}

// smpWorks runs a successful SMP started by us.
func (s *session) smpWorks() {
	s.t.Helper()
	start, err := s.conv.StartSMP("", []byte("again"))
	if err != nil {
		s.t.Fatalf("StartSMP: %v", err)
	}
	s.exchange(start, nil)
	r := s.exchange(nil, s.lib.RespondSMP([]byte("again")).Net)
	if !r.has(otr.EventSMPSucceeded) || !r.lib.HasSMP(libotrpeer.SMPSuccess) {
		s.t.Fatalf("SMP after an abort: ours %v, libotr %v", r.kinds(), r.lib.Events)
	}
}

func TestLibotrEnd(t *testing.T) {
	t.Run("WeEnd", func(t *testing.T) {
		s := newSession(t, otr.Config{Policy: otr.PolicyManual}, libotrpeer.Options{Policy: libotrpeer.PolicyManual})
		s.akeByUs()
		s.sendToLibotr("bye")
		end, err := s.conv.End()
		if err != nil {
			t.Fatalf("End: %v", err)
		}
		if s.conv.State() != otr.Plaintext {
			t.Errorf("after End our state is %v", s.conv.State())
		}
		r := s.exchange(end, nil)
		if !r.lib.HasTLV(1) || len(r.lib.Messages) != 0 {
			t.Fatalf("libotr after our End: TLVs %v, messages %+v", r.lib.TLVs, r.lib.Messages)
		}
		if st := s.lib.State(); st.MsgState != libotrpeer.Finished {
			t.Fatalf("libotr state after our End: %s", st.MsgState)
		}
		out := s.lib.Send([]byte("hello?"))
		if len(out.Net) != 0 || !out.HasMsg(libotrpeer.MsgConnectionEnded) {
			t.Errorf("libotr in FINISHED sent %q, events %v", out.Net, out.Events)
		}
	})
	t.Run("LibotrEnds", func(t *testing.T) {
		s := newSession(t, otr.Config{Policy: otr.PolicyManual}, libotrpeer.Options{Policy: libotrpeer.PolicyManual})
		s.akeByLibotr()
		s.sendToUs("bye")
		r := s.exchange(nil, s.lib.End().Net)
		if !r.has(otr.EventPeerEnded) || len(r.ours) != 0 {
			t.Fatalf("our events after libotr's END: %v, delivered %+v", r.kinds(), r.ours)
		}
		if s.conv.State() != otr.Finished {
			t.Fatalf("our state after libotr's END: %v", s.conv.State())
		}
		msgs, err := s.conv.Send([]byte("are you there?"))
		if !errors.Is(err, otr.ErrFinished) || len(msgs) != 0 {
			t.Fatalf("Send in Finished = %q, %v; want nothing and ErrFinished", msgs, err)
		}
		if _, err := s.conv.End(); err != nil {
			t.Fatalf("End in Finished: %v", err)
		}
		if s.conv.State() != otr.Plaintext {
			t.Fatalf("after End in Finished our state is %v", s.conv.State())
		}
		// A new private conversation can start.
		s.akeByUs()
		s.sendToUs("welcome back")
	})
}

func TestLibotrReAKE(t *testing.T) {
	for _, who := range []string{"Us", "Libotr"} {
		t.Run("By"+who, func(t *testing.T) {
			s := newSession(t, otr.Config{Policy: otr.PolicyManual}, libotrpeer.Options{Policy: libotrpeer.PolicyManual})
			s.akeByUs()
			s.sendToLibotr("first session")
			s.sendToUs("first session too")
			old := s.conv.SSID()
			var r *result
			if who == "Us" {
				r = s.akeByUs()
			} else {
				r = s.akeByLibotr()
			}
			if !r.has(otr.EventRefreshed) {
				t.Errorf("a re-AKE while encrypted should report refreshed: %v", r.kinds())
			}
			if s.conv.SSID() == old {
				t.Errorf("re-AKE kept the old session id %x", old)
			}
			for i := range 3 {
				s.sendToLibotr(fmt.Sprintf("second session %d", i))
				s.sendToUs(fmt.Sprintf("second session reply %d", i))
			}
		})
	}
}

func TestLibotrFingerprint(t *testing.T) {
	s := newSession(t, otr.Config{Policy: otr.PolicyManual}, libotrpeer.Options{Policy: libotrpeer.PolicyManual})
	r := s.akeByLibotr()
	want := fingerprintHex(s.key.Public())
	var seen string
	for _, e := range r.lib.Events {
		if e.Kind == libotrpeer.KindNewFingerprint {
			seen = e.Fingerprint
		}
	}
	if seen != want {
		t.Errorf("libotr's new_fingerprint callback got %s, our fingerprint is %s", seen, want)
	}
	// libotr shows fingerprints as five groups of eight upper-case hex
	// digits, and so does Fingerprint.String.
	var groups []string
	for i := 0; i < 40; i += 8 {
		groups = append(groups, want[i:i+8])
	}
	if got := s.key.Public().Fingerprint().String(); got != strings.Join(groups, " ") {
		t.Errorf("Fingerprint.String = %q, libotr's form is %q", got, strings.Join(groups, " "))
	}
}

func TestLibotrExtraSymmetricKey(t *testing.T) {
	s := newSession(t, otr.Config{Policy: otr.PolicyManual}, libotrpeer.Options{Policy: libotrpeer.PolicyManual})
	s.akeByUs()
	libKey, out := s.lib.Symkey(0x00010203, []byte("transfer-1"))
	r := s.exchange(nil, out.Net)
	e := r.event(otr.EventExtraKey)
	if e == nil || e.Use != 0x00010203 || string(e.UseData) != "transfer-1" || e.Key != libKey {
		t.Fatalf("our extra-key event %+v, libotr's key %x", e, libKey)
	}
	ourKey, msgs, err := s.conv.ExtraSymmetricKey(42, []byte("transfer-2"))
	if err != nil {
		t.Fatalf("ExtraSymmetricKey: %v", err)
	}
	r = s.exchange(msgs, nil)
	var got *libotrpeer.Event
	for i := range r.lib.Events {
		if r.lib.Events[i].Kind == libotrpeer.KindSymkey {
			got = &r.lib.Events[i]
		}
	}
	if got == nil || got.Use != 42 || string(got.UseData) != "transfer-2" || !bytes.Equal(got.Key, ourKey[:]) {
		t.Fatalf("libotr's symkey event %+v, our key %x", got, ourKey)
	}
	// The two keys differ: each comes from the DH keys of the data message
	// that announced it (Protocol-v3 "Extra symmetric key"), and the
	// sides rotated keys in between.
	if ourKey == libKey || ourKey == [32]byte{} {
		t.Errorf("extra symmetric keys of two different data messages: ours %x, libotr's %x", ourKey, libKey)
	}
}

func TestLibotrRequireEncryption(t *testing.T) {
	t.Run("Libotr", func(t *testing.T) {
		// libotr holds a message typed in plaintext, sends a query, and
		// sends the message once our engine has completed the AKE.
		s := newSession(t, otr.Config{Policy: otr.PolicyManual}, libotrpeer.Options{Policy: libotrpeer.PolicyAlways})
		out := s.lib.Send([]byte("only encrypted"))
		if !out.HasMsg(libotrpeer.MsgEncryptionRequired) {
			t.Fatalf("libotr events: %v", out.Events)
		}
		r := s.exchange(nil, out.Net)
		s.checkSecure(r)
		if len(r.ours) != 1 || r.ours[0].text != "only encrypted" || !r.ours[0].encrypted {
			t.Fatalf("we delivered %+v, want libotr's held message, encrypted", r.ours)
		}
	})
	t.Run("Us", func(t *testing.T) {
		s := newSession(t, otr.Config{Policy: otr.PolicyAlways}, libotrpeer.Options{Policy: libotrpeer.PolicyManual})
		msgs, err := s.conv.Send([]byte("only encrypted"))
		if err != nil {
			t.Fatalf("Send: %v", err)
		}
		for _, m := range msgs {
			if bytes.Contains(m, []byte("only encrypted")) {
				t.Fatalf("the held message leaked: %q", m)
			}
		}
		r := s.exchange(msgs, nil)
		s.checkSecure(r)
		if got := r.lib.Messages; len(got) != 1 || string(got[0].Text) != "only encrypted" || !got[0].Encrypted {
			t.Fatalf("libotr delivered %+v, want our held message, encrypted", got)
		}
	})
}

func TestLibotrRestartedPeer(t *testing.T) {
	// We lose our session (a restart) but keep our instance tag, as a
	// client persisting it does. libotr's next data message is unreadable
	// to us: we answer with an OTR error, libotr (ERROR_START_AKE) answers
	// with a query and a new AKE runs. (libotr 4.1 keeps only messages
	// held for REQUIRE_ENCRYPTION, so the lost one is not resent.)
	s := newSession(t, otr.Config{Policy: otr.PolicyManual}, libotrpeer.Options{Policy: libotrpeer.PolicyOpportunistic})
	s.akeByUs()
	s.sendToUs("before the restart")
	s.sendToLibotr("ack")
	conv, err := otr.NewConversation(otr.Config{Policy: otr.PolicyManual, PrivateKey: s.key, InstanceTag: s.conv.InstanceTag()})
	if err != nil {
		t.Fatal(err)
	}
	s.conv = conv
	s.allowErrors = true
	out := s.lib.Send([]byte("lost?"))
	r := s.exchange(nil, out.Net)
	if len(r.errs) == 0 || !errors.Is(r.errs[0], otr.ErrInvalidMessage) || !r.has(otr.EventUnreadable) {
		t.Errorf("our first Receive after the restart: errors %v, events %v; want ErrInvalidMessage and unreadable", r.errs, r.kinds())
	}
	if !r.lib.HasMsg(libotrpeer.MsgRcvdGeneralErr) {
		t.Errorf("libotr did not see our OTR error: %v", r.lib.Events)
	}
	s.allowErrors = false
	s.checkSecure(r)
	if len(r.ours) != 0 {
		t.Errorf("we delivered %+v from a session we no longer have", r.ours)
	}
	s.sendToUs("lost? (typed again)")
	s.sendToLibotr("back")
}

func TestLibotrHeartbeat(t *testing.T) {
	// Our clock jumps past the heartbeat interval: the next message we
	// receive makes us send a heartbeat, which libotr reads and hides.
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	clock := func() time.Time { return now }
	s := newSession(t, otr.Config{Policy: otr.PolicyManual, Now: clock}, libotrpeer.Options{Policy: libotrpeer.PolicyManual})
	s.akeByUs()
	s.sendToLibotr("hello")
	now = now.Add(otr.HeartbeatInterval + time.Second)
	r := s.exchange(nil, s.lib.Send([]byte("are you there?")).Net)
	if len(r.ours) != 1 || r.ours[0].text != "are you there?" {
		t.Fatalf("we delivered %+v", r.ours)
	}
	if len(r.fromUs) != 1 || !r.lib.HasMsg(libotrpeer.MsgHeartbeatRcvd) || len(r.lib.Messages) != 0 {
		t.Fatalf("heartbeat: we sent %d messages; libotr events %v, messages %+v", len(r.fromUs), r.lib.Events, r.lib.Messages)
	}
	s.sendToLibotr("still here")
}

func TestLibotrKeyFiles(t *testing.T) {
	// A key libotr generated, read by ParseLibotrPrivateKeys, used by our
	// engine; and our key, written by MarshalLibotrPrivateKeys, used by
	// libotr. Each side must compute the same fingerprint for each key.
	const acct = "balcony@example.org"
	data, err := os.ReadFile(libotrpeer.KeyFile(t, acct, "xmpp"))
	if err != nil {
		t.Fatal(err)
	}
	keys, err := otr.ParseLibotrPrivateKeys(data)
	if err != nil {
		t.Fatalf("ParseLibotrPrivateKeys on libotr's file: %v", err)
	}
	if len(keys) != 1 || keys[0].Account != acct || keys[0].Protocol != "xmpp" || keys[0].Key == nil {
		t.Fatalf("parsed %+v", keys)
	}
	libotrKey := keys[0].Key

	exported, err := otr.MarshalLibotrPrivateKeys([]otr.AccountKey{{Account: "exported@example.org", Protocol: "xmpp", Key: ourKey(t)}})
	if err != nil {
		t.Fatalf("MarshalLibotrPrivateKeys: %v", err)
	}
	path := filepath.Join(t.TempDir(), "otr.private_key")
	if err := os.WriteFile(path, exported, 0o600); err != nil {
		t.Fatal(err)
	}
	// libotr signs with the key we exported; we sign with the key libotr
	// generated.
	s := newSession(t, otr.Config{Policy: otr.PolicyManual, PrivateKey: libotrKey},
		libotrpeer.Options{Account: "exported@example.org", KeyFile: path, Policy: libotrpeer.PolicyManual})
	if got, want := s.lib.Fingerprint().Own, fingerprintHex(ourKey(t).Public()); got != want {
		t.Errorf("libotr computes the exported key's fingerprint as %s, we as %s", got, want)
	}
	s.akeByUs() // checks libotr sees libotrKey's fingerprint as ours
	s.sendToLibotr("signed with a key libotr made")
	s.sendToUs("signed with a key Balcony made")
}

func TestLibotrRandomSchedule(t *testing.T) {
	// Both sides type at random moments while messages are in flight each
	// way (delivered in order per direction, as XMPP does), so data
	// messages cross and keys rotate under every interleaving: a message
	// may use the receiver's current or previous key and announce a key
	// the receiver has not acknowledged yet.
	steps := 600
	if testing.Short() {
		steps = 150
	}
	for _, frag := range []int{0, 160} {
		t.Run(fmt.Sprintf("FragmentSize%d", frag), func(t *testing.T) {
			s := newSession(t, otr.Config{Policy: otr.PolicyManual, FragmentSize: frag},
				libotrpeer.Options{Policy: libotrpeer.PolicyManual, FragmentSize: frag})
			s.akeByUs()
			rng := rand.New(rand.NewPCG(1, uint64(frag)))
			var toLib, toUs [][]byte
			var sentByUs, sentByLib, gotByLib, gotByUs []string
			n := 0
			keyIDs := map[uint32]bool{} // our sender key ids (unfragmented run)
			for step := 0; step < steps || len(toLib)+len(toUs) > 0; step++ {
				// Send rarely and deliver often, so that most messages
				// answer recent ones and keys rotate many times.
				choice := [...]int{0, 0, 0, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3}[rng.IntN(20)]
				if step >= steps {
					choice = 2 + rng.IntN(2) // drain
				}
				switch {
				case choice == 0:
					n++
					text := fmt.Sprintf("from us #%d %s", n, strings.Repeat("x", rng.IntN(200)))
					msgs, err := s.conv.Send([]byte(text))
					if err != nil {
						t.Fatalf("Send: %v", err)
					}
					sentByUs = append(sentByUs, text)
					if frag == 0 {
						id, _ := dataKeyIDs(t, msgs[0])
						keyIDs[id] = true
					}
					toLib = append(toLib, msgs...)
				case choice == 1:
					n++
					text := fmt.Sprintf("from libotr #%d %s", n, strings.Repeat("y", rng.IntN(200)))
					sentByLib = append(sentByLib, text)
					toUs = append(toUs, s.lib.Send([]byte(text)).Net...)
				case choice == 2 && len(toLib) > 0:
					out := s.lib.Receive(toLib[0])
					toLib = toLib[1:]
					for _, e := range out.Events {
						if e.Kind == libotrpeer.KindMsg && libotrRejects[e.Msg] {
							t.Fatalf("libotr rejected our message at step %d: %v", step, e)
						}
					}
					for _, m := range out.Messages {
						if !m.Encrypted {
							t.Fatalf("libotr delivered %q unencrypted", m.Text)
						}
						gotByLib = append(gotByLib, string(m.Text))
					}
					toUs = append(toUs, out.Net...)
				case choice == 3 && len(toUs) > 0:
					got, err := s.conv.Receive(toUs[0])
					toUs = toUs[1:]
					if err != nil {
						t.Fatalf("our Receive at step %d: %v", step, err)
					}
					if got.Plaintext != nil {
						if !got.Encrypted {
							t.Fatalf("we delivered %q unencrypted", got.Plaintext)
						}
						gotByUs = append(gotByUs, string(got.Plaintext))
					}
					toLib = append(toLib, got.ToSend...)
				}
			}
			if strings.Join(gotByLib, "\n") != strings.Join(sentByUs, "\n") {
				t.Errorf("libotr got %d of our %d messages, or not in order", len(gotByLib), len(sentByUs))
			}
			if strings.Join(gotByUs, "\n") != strings.Join(sentByLib, "\n") {
				t.Errorf("we got %d of libotr's %d messages, or not in order", len(gotByUs), len(sentByLib))
			}
			t.Logf("%d messages from us, %d from libotr, %d of our key ids", len(sentByUs), len(sentByLib), len(keyIDs))
			if len(sentByUs) < 10 || len(sentByLib) < 10 {
				t.Errorf("schedule too one-sided: %d and %d messages", len(sentByUs), len(sentByLib))
			}
			if frag == 0 && len(keyIDs) < len(sentByUs)/4 {
				t.Errorf("only %d key rotations over %d messages", len(keyIDs), len(sentByUs))
			}
		})
	}
}
