package client

import (
	"context"
	"encoding/xml"
	"errors"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stream"

	"github.com/balcony-im/balcony/xmltree"
)

// Fuzz targets for the answers to the client's own requests: disco#info
// and entity capabilities, archive queries and History, the roster, pubsub
// items and node configuration. The client runs a real mellium session and
// its own read loop over an in-memory pipe; the far end is the one part a
// fuzz target plays, the server or peer whose answers are fuzzed.

// farEnd is the far end of an in-memory stream to a client.
type farEnd struct {
	c      *Client
	mu     sync.Mutex
	answer func(req *xmltree.Element) []*xmltree.Element
	done   chan struct{} // closed when the client's read loop ends
}

// newFarEnd connects a test client to an in-memory far end that answers
// nothing until setAnswer.
func newFarEnd(tb testing.TB) *farEnd {
	tb.Helper()
	w := &farEnd{c: newTestClient(tb)}
	w.connect(tb)
	return w
}

// connect starts a stream: a mellium session for the account over one end
// of a pipe, served by the client's read loop; the test's side on the
// other.
func (w *farEnd) connect(tb testing.TB) {
	tb.Helper()
	cc, sc := net.Pipe()
	ready := func(_ context.Context, in, out *stream.Info, _ *xmpp.Session, _ any) (xmpp.SessionState, io.ReadWriter, any, error) {
		in.XMLNS, out.XMLNS = NSClient, NSClient
		return xmpp.Ready, nil, nil, nil
	}
	sess, err := xmpp.NewSession(context.Background(), account.Domain(), account, cc, 0, ready)
	if err != nil {
		tb.Fatal(err)
	}
	done := make(chan struct{})
	c := w.c
	c.mu.Lock()
	c.sess, c.bound, c.connected, c.serveDone = sess, account, true, done
	c.mu.Unlock()
	w.done = done
	go c.serve(sess, done)
	go w.serve(sc)
}

// serve reads the client's stanzas and queues the answers, which another
// goroutine writes: the client's read loop itself writes (answers to IQ
// requests among the answers), so reading must never wait for writing.
func (w *farEnd) serve(conn net.Conn) {
	out := newQueue[[]byte]()
	go func() {
		for {
			b, ok := out.pop()
			if !ok {
				return
			}
			if _, err := conn.Write(b); err != nil {
				return
			}
		}
	}()
	defer out.close()
	defer conn.Close()
	dec := xml.NewDecoder(conn)
	for {
		tok, err := dec.Token()
		if err != nil {
			return
		}
		start, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		req, err := xmltree.FromTokens(dec, start, nil)
		if err != nil {
			return
		}
		w.mu.Lock()
		answer := w.answer
		w.mu.Unlock()
		if answer == nil || req.Name.Local != "iq" {
			continue
		}
		for _, st := range answer(req) {
			out.push(st.Marshal(""))
		}
	}
}

// setAnswer makes fn answer the client's requests from now on, on a live
// stream: a stream an earlier input ended (with XML the client's reader
// refused) is replaced.
func (w *farEnd) setAnswer(tb testing.TB, fn func(req *xmltree.Element) []*xmltree.Element) {
	tb.Helper()
	select {
	case <-w.done:
		w.connect(tb)
	default:
	}
	w.mu.Lock()
	w.answer = fn
	w.mu.Unlock()
}

// reply is the IQ answer to req: type result or error as the fuzz input
// says (anything else would be a request to the client), its id, from
// the address asked.
func reply(req, resp *xmltree.Element) *xmltree.Element {
	resp = resp.Copy()
	resp.Name = xml.Name{Space: NSClient, Local: "iq"}
	if resp.AttrValue("type") != "error" {
		resp.SetAttr("type", "result")
	}
	resp.SetAttr("id", req.AttrValue("id"))
	if to := req.AttrValue("to"); to != "" {
		resp.SetAttr("from", to)
	} else {
		resp.RemoveAttr("from")
	}
	return resp
}

// juliet is the contact whose answers, and whose archive with us, the
// targets fuzz.
var juliet = jid.MustParse("juliet@example.com/balcony")

func fuzzCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// checkIQError checks the error of a request answered with resp: a
// StanzaError with a defined condition for an error answer.
func checkIQError(t *testing.T, resp *xmltree.Element, err error) {
	t.Helper()
	if resp.AttrValue("type") != "error" {
		return
	}
	var se *StanzaError
	if !errors.As(err, &se) || !stanzaConditions[se.Condition] {
		t.Fatalf("error answer gave %v", err)
	}
}

// rosterOracle is the roster RFC 6121 §2.1.3 makes of a roster result:
// each item with a valid JID, the last for a contact winning.
func rosterOracle(q *xmltree.Element) map[string]*xmltree.Element {
	out := map[string]*xmltree.Element{}
	for _, it := range q.ChildrenNamed(NSRoster, "item") {
		if j, err := jid.Parse(it.AttrValue("jid")); err == nil {
			out[j.Bare().String()] = it
		}
	}
	return out
}

// FuzzRosterResult answers the client's roster request with arbitrary
// answers. FetchRoster returns, and emits, exactly the contacts of a
// roster result, with their names, subscriptions and groups, sorted; it
// fails on an answer without roster, with a StanzaError for an error.
func FuzzRosterResult(f *testing.F) {
	for _, s := range []string{
		// RFC 6121 §2.1.3 and §2.1.4 examples.
		`<iq xmlns='jabber:client' type='result'><query xmlns='jabber:iq:roster' ver='ver11'><item jid='romeo@example.net' name='Romeo' subscription='both'><group>Friends</group></item><item jid='mercutio@example.com' name='Mercutio' subscription='from'/><item jid='benvolio@example.net' name='Benvolio' subscription='both'/></query></iq>`,
		`<iq xmlns='jabber:client' type='result'><query xmlns='jabber:iq:roster' ver='ver7'><item jid='nurse@example.com' ask='subscribe'/><item jid='juliet@example.com/balcony' subscription='to'><group>a</group><group>b</group><group/></item></query></iq>`,
		`<iq xmlns='jabber:client' type='result'/>`,
		`<iq xmlns='jabber:client' type='error'><error type='wait'><internal-server-error xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`,
		`<iq xmlns='jabber:client' type='result'><query xmlns='jabber:iq:roster'><item jid='x@y' name='first'/><item jid='X@Y' name='last'/><item jid='@@'/><item/></query></iq>`,
	} {
		f.Add([]byte(s))
	}
	w := newFarEnd(f)
	f.Fuzz(func(t *testing.T, raw []byte) {
		resp, err := xmltree.Parse(raw, fuzzLimits)
		if err != nil || resp.Name.Space != NSClient {
			return
		}
		w.setAnswer(t, func(req *xmltree.Element) []*xmltree.Element { return []*xmltree.Element{reply(req, resp)} })
		var items []RosterItem
		evs := eventsOf(t, w.c, func() { items, err = w.c.FetchRoster(fuzzCtx(t)) })
		q := resp.Child(NSRoster, "query")
		if resp.AttrValue("type") == "error" || q == nil {
			if err == nil {
				t.Fatalf("FetchRoster accepted %s", raw)
			}
			checkIQError(t, resp, err)
			return
		}
		if err != nil {
			t.Fatalf("FetchRoster: %v for %s", err, raw)
		}
		want := rosterOracle(q)
		if len(items) != len(want) || !slices.IsSortedFunc(items, func(a, b RosterItem) int { return strings.Compare(a.JID.String(), b.JID.String()) }) {
			t.Fatalf("%d items (want %d) for %s", len(items), len(want), raw)
		}
		for _, it := range items {
			e := want[it.JID.String()]
			if e == nil {
				t.Fatalf("%s is no contact of %s", it.JID, raw)
			}
			var groups []string
			for _, g := range e.ChildrenNamed(NSRoster, "group") {
				groups = append(groups, g.Text())
			}
			if it.Name != e.AttrValue("name") || it.Subscription != cmpOr(e.AttrValue("subscription"), "none") || it.Ask != e.AttrValue("ask") || !slices.Equal(it.Groups, groups) {
				t.Fatalf("%+v for %s", it, raw)
			}
		}
		var re *RosterEvent
		for _, ev := range evs {
			if r, ok := ev.(*RosterEvent); ok {
				re = r
			}
		}
		if re == nil || !slices.EqualFunc(re.Items, items, sameItem) || !slices.EqualFunc(w.c.Roster(), items, sameItem) {
			t.Fatalf("roster event %v, roster %v", re, w.c.Roster())
		}
	})
}

// FuzzPubSubResults answers the client's pubsub requests (XEP-0060) with
// arbitrary answers: FetchItems returns exactly the items there are (id
// and first payload), NodeConfig the first value of each field, Publish
// nothing; an error answer is a StanzaError, and matches
// ErrPreconditionNotMet exactly when it carries that condition (§7.1.5).
func FuzzPubSubResults(f *testing.F) {
	for _, s := range []string{
		// XEP-0060 §6.5.2, §8.2.1, §7.1.2 and §7.1.5, and an OX key list
		// (XEP-0373 §4.5) as Prosody returns it.
		`<iq xmlns='jabber:client' type='result' from='pubsub.shakespeare.lit' id='items1'><pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='princely_musings'><item id='368866411b877c30064a5f62b917cffe'><entry xmlns='http://www.w3.org/2005/Atom'><title>The Uses of This World</title></entry></item><item id='3300659945416e274474e469a1f0154c'/></items></pubsub></iq>`,
		`<iq xmlns='jabber:client' type='result'><pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><configure node='princely_musings'><x xmlns='jabber:x:data' type='form'><field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#node_config</value></field><field var='pubsub#access_model' type='list-single'><value>whitelist</value><option><value>open</value></option></field><field var='pubsub#persist_items' type='boolean'><value>1</value><value>0</value></field></x></configure></pubsub></iq>`,
		`<iq xmlns='jabber:client' type='result'><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='urn:xmpp:openpgp:0:public-keys'><item id='current'/></publish></pubsub></iq>`,
		`<iq xmlns='jabber:client' type='error'><error type='cancel'><conflict xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><precondition-not-met xmlns='http://jabber.org/protocol/pubsub#errors'/></error></iq>`,
		`<iq xmlns='jabber:client' type='error'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`,
		`<iq xmlns='jabber:client' type='result'><pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='urn:xmpp:openpgp:0:public-keys:1357B01865B2503C18453D208CAC2A9678548E35'><item id='2020-01-21T10:46:21Z'><pubkey xmlns='urn:xmpp:openpgp:0'><data>BASE64_OPENPGP_PUBLIC_KEY</data></pubkey></item></items></pubsub></iq>`,
	} {
		f.Add([]byte(s), uint8(0))
		f.Add([]byte(s), uint8(1))
		f.Add([]byte(s), uint8(2))
	}
	w := newFarEnd(f)
	f.Fuzz(func(t *testing.T, raw []byte, which uint8) {
		resp, err := xmltree.Parse(raw, fuzzLimits)
		if err != nil || resp.Name.Space != NSClient {
			return
		}
		w.setAnswer(t, func(req *xmltree.Element) []*xmltree.Element { return []*xmltree.Element{reply(req, resp)} })
		ctx := fuzzCtx(t)
		isError := resp.AttrValue("type") == "error"
		switch which % 3 {
		case 0:
			items, err := w.c.FetchItems(ctx, juliet, "urn:xmpp:openpgp:0:public-keys", 1)
			if isError {
				checkIQError(t, resp, err)
				return
			}
			if err != nil {
				t.Fatalf("FetchItems: %v", err)
			}
			var want []*xmltree.Element
			if ps := resp.Child(NSPubSub, "pubsub"); ps != nil && ps.Child(NSPubSub, "items") != nil {
				want = ps.Child(NSPubSub, "items").ChildrenNamed(NSPubSub, "item")
			}
			if len(items) != len(want) {
				t.Fatalf("%d items, want %d", len(items), len(want))
			}
			for i, it := range items {
				els := want[i].Elements()
				if it.ID != want[i].AttrValue("id") || (len(els) == 0) != (it.Payload == nil) || len(els) > 0 && string(it.Payload.Marshal("")) != string(els[0].Marshal("")) {
					t.Fatalf("item %d: %+v", i, it)
				}
			}
		case 1:
			cfg, err := w.c.NodeConfig(ctx, "urn:xmpp:openpgp:0:secret-key")
			if isError {
				checkIQError(t, resp, err)
				return
			}
			var form *xmltree.Element
			if ps := resp.Child(NSPubSubOwner, "pubsub"); ps != nil && ps.Child(NSPubSubOwner, "configure") != nil {
				form = ps.Child(NSPubSubOwner, "configure").Child(NSDataForms, "x")
			} else if err == nil {
				t.Fatalf("NodeConfig accepted %s", raw)
			} else {
				return
			}
			if err != nil {
				t.Fatalf("NodeConfig: %v", err)
			}
			if form == nil {
				form = xmltree.New(NSDataForms, "x")
			}
			for _, fl := range form.ChildrenNamed(NSDataForms, "field") {
				if v, ok := cfg[fl.AttrValue("var")]; !ok || !slices.ContainsFunc(form.ChildrenNamed(NSDataForms, "field"), func(e *xmltree.Element) bool {
					return e.AttrValue("var") == fl.AttrValue("var") && e.ChildText(NSDataForms, "value") == v
				}) {
					t.Fatalf("field %q: %q", fl.AttrValue("var"), v)
				}
			}
		case 2:
			err := w.c.Publish(ctx, "urn:xmpp:openpgp:0:public-keys", "current", xmltree.New("urn:xmpp:openpgp:0", "public-keys-list"), NodeOptions{"access_model": "open"})
			if !isError {
				if err != nil {
					t.Fatalf("Publish: %v", err)
				}
				return
			}
			checkIQError(t, resp, err)
			e := resp.Child("", "error")
			if want := e != nil && e.Child(NSPubSubErrors, "precondition-not-met") != nil; errors.Is(err, ErrPreconditionNotMet) != want {
				t.Fatalf("precondition-not-met %v for %s", !want, raw)
			}
		}
	})
}
