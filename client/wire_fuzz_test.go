package client

import (
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"io"
	"net"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stream"

	"github.com/balcony-im/balcony/eme"
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
	l := newLink(cc, nil)
	l.sess = sess
	c := w.c
	c.mu.Lock()
	c.link, c.bound, c.connected, c.serveDone = l, account, true, l.done
	c.mu.Unlock()
	w.done = l.done
	go c.serve(l)
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

// payloadOf returns the payload of a request (its only child).
func payloadOf(req *xmltree.Element) *xmltree.Element {
	if els := req.Elements(); len(els) == 1 {
		return els[0]
	}
	return xmltree.New("", "")
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

// capsOracle is XEP-0115 written out again from the specification, as
// a reference: §5.4's checks (duplicate identities, features and forms
// make the response ill-formed; a form without a hidden FORM_TYPE is
// ignored) and §5.1's verification string, extended forms included.
func capsOracle(q *xmltree.Element) (ver string, wellFormed bool) {
	type id struct{ c, t, l, n string }
	var ids []id
	for _, e := range q.ChildrenNamed(NSDiscoInfo, "identity") {
		ids = append(ids, id{e.AttrValue("category"), e.AttrValue("type"), langOf(e), e.AttrValue("name")})
	}
	var features []string
	for _, e := range q.ChildrenNamed(NSDiscoInfo, "feature") {
		features = append(features, e.AttrValue("var"))
	}
	type form struct {
		typ    string
		fields [][]string
	}
	var forms []form
	var formTypes []string
	wellFormed = true
	for _, x := range q.ChildrenNamed(NSDataForms, "x") {
		var f form
		hidden, typeFields := false, 0
		for _, fl := range x.ChildrenNamed(NSDataForms, "field") {
			var vals []string
			for _, v := range fl.ChildrenNamed(NSDataForms, "value") {
				vals = append(vals, v.Text())
			}
			if fl.AttrValue("var") != "FORM_TYPE" {
				f.fields = append(f.fields, append([]string{fl.AttrValue("var")}, vals...))
				continue
			}
			if typeFields++; typeFields > 1 {
				wellFormed = false
			}
			for _, v := range vals {
				if v != vals[0] {
					wellFormed = false
				}
			}
			if len(vals) > 0 {
				f.typ, hidden = vals[0], fl.AttrValue("type") == "hidden"
			}
		}
		if f.typ != "" {
			formTypes = append(formTypes, f.typ)
		}
		if hidden && f.typ != "" {
			forms = append(forms, f)
		}
	}
	for i := range ids {
		for j := range i {
			wellFormed = wellFormed && ids[i] != ids[j]
		}
	}
	for i := range features {
		wellFormed = wellFormed && !slices.Contains(features[:i], features[i])
	}
	for i := range formTypes {
		wellFormed = wellFormed && !slices.Contains(formTypes[:i], formTypes[i])
	}
	sort.Slice(ids, func(i, j int) bool {
		a, b := ids[i], ids[j]
		return a.c < b.c || a.c == b.c && (a.t < b.t || a.t == b.t && (a.l < b.l || a.l == b.l && a.n < b.n))
	})
	sort.Strings(features)
	sort.SliceStable(forms, func(i, j int) bool { return forms[i].typ < forms[j].typ })
	var s strings.Builder
	for _, i := range ids {
		s.WriteString(i.c + "/" + i.t + "/" + i.l + "/" + i.n + "<")
	}
	for _, f := range features {
		s.WriteString(f + "<")
	}
	for _, f := range forms {
		s.WriteString(f.typ + "<")
		sort.SliceStable(f.fields, func(i, j int) bool { return f.fields[i][0] < f.fields[j][0] })
		for _, fl := range f.fields {
			s.WriteString(fl[0] + "<")
			vals := slices.Sorted(slices.Values(fl[1:]))
			for _, v := range vals {
				s.WriteString(v + "<")
			}
		}
	}
	sum := sha1.Sum([]byte(s.String()))
	return base64.StdEncoding.EncodeToString(sum[:]), wellFormed
}

// FuzzDiscoInfo answers the client's disco#info queries with arbitrary
// <query/> elements. QueryInfo reads exactly the identities and features
// there are; VerifyCaps accepts a verification string exactly when it is
// the XEP-0115 hash of a well-formed answer (capsOracle): never a ver the
// answer does not hash to, never an ill-formed answer, and, with honest
// set, the right ver of every well-formed one.
func FuzzDiscoInfo(f *testing.F) {
	for _, s := range []string{
		// XEP-0115 §5.2 and §5.3 (with an extended form, XEP-0128), the
		// XEP-0030 §3.1 example, and Conversations' answer.
		`<query xmlns='http://jabber.org/protocol/disco#info' node='http://code.google.com/p/exodus#QgayPKawpkPSDYmwT/WM94uAlu0='><identity category='client' name='Exodus 0.9.1' type='pc'/><feature var='http://jabber.org/protocol/caps'/><feature var='http://jabber.org/protocol/disco#info'/><feature var='http://jabber.org/protocol/disco#items'/><feature var='http://jabber.org/protocol/muc'/></query>`,
		`<query xmlns='http://jabber.org/protocol/disco#info' node='http://psi-im.org#q07IKJEyjvHSyhy//CH0CxmKi8w='><identity xml:lang='en' category='client' name='Psi 0.11' type='pc'/><identity xml:lang='el' category='client' name='Ψ 0.11' type='pc'/><feature var='http://jabber.org/protocol/caps'/><feature var='http://jabber.org/protocol/disco#info'/><feature var='http://jabber.org/protocol/disco#items'/><feature var='http://jabber.org/protocol/muc'/><x xmlns='jabber:x:data' type='result'><field var='FORM_TYPE' type='hidden'><value>urn:xmpp:dataforms:softwareinfo</value></field><field var='ip_version' type='text-multi'><value>ipv4</value><value>ipv6</value></field><field var='os'><value>Mac</value></field><field var='os_version'><value>10.5.1</value></field><field var='software'><value>Psi</value></field><field var='software_version'><value>0.11</value></field></x></query>`,
		`<query xmlns='http://jabber.org/protocol/disco#info'><identity category='conference' type='text' name='Play-Specific Chatrooms'/><identity category='directory' type='chatroom' name='Play-Specific Chatrooms'/><feature var='http://jabber.org/protocol/disco#info'/><feature var='http://jabber.org/protocol/disco#items'/><feature var='http://jabber.org/protocol/muc'/><feature var='jabber:iq:register'/><feature var='jabber:iq:search'/><feature var='jabber:iq:time'/><feature var='jabber:iq:version'/></query>`,
		`<query xmlns="http://jabber.org/protocol/disco#info" node="http://conversations.im#sGj2nS0iwT/Yq+KbUJOPvsEGwMQ="><identity category="client" type="phone" name="Conversations"/><feature var="eu.siacs.conversations.axolotl.devicelist+notify"/><feature var="urn:xmpp:jingle:1"/><feature var="urn:xmpp:eme:0"/><feature var="urn:xmpp:receipts"/><feature var="http://jabber.org/protocol/chatstates"/></query>`,
		// Ill-formed (§5.4): a duplicate feature, a duplicate identity, two
		// forms of one FORM_TYPE, a FORM_TYPE of two values; a form
		// without a hidden FORM_TYPE (ignored); '<' inside a value.
		`<query xmlns='http://jabber.org/protocol/disco#info'><identity category='client' type='pc'/><feature var='a'/><feature var='a'/></query>`,
		`<query xmlns='http://jabber.org/protocol/disco#info'><identity category='client' type='pc'/><identity category='client' type='pc'/><feature var='a'/></query>`,
		`<query xmlns='http://jabber.org/protocol/disco#info'><feature var='a'/><x xmlns='jabber:x:data' type='result'><field var='FORM_TYPE' type='hidden'><value>urn:x</value></field></x><x xmlns='jabber:x:data' type='result'><field var='FORM_TYPE' type='hidden'><value>urn:x</value></field></x></query>`,
		`<query xmlns='http://jabber.org/protocol/disco#info'><feature var='a'/><x xmlns='jabber:x:data' type='result'><field var='FORM_TYPE' type='hidden'><value>urn:x</value><value>urn:y</value></field></x></query>`,
		`<query xmlns='http://jabber.org/protocol/disco#info'><feature var='a'/><x xmlns='jabber:x:data' type='result'><field var='FORM_TYPE'><value>urn:x</value></field><field var='f'><value>v</value></field></x></query>`,
		`<query xmlns='http://jabber.org/protocol/disco#info'><identity category='client' type='pc' name='a&lt;b'/><feature var='x&lt;y'/></query>`,
		`<query xmlns='http://jabber.org/protocol/disco#items'/>`,
	} {
		f.Add([]byte(s), "", true)
		f.Add([]byte(s), "QgayPKawpkPSDYmwT/WM94uAlu0=", false)
	}
	w := newFarEnd(f)
	f.Fuzz(func(t *testing.T, raw []byte, ver string, honest bool) {
		q, err := xmltree.Parse(raw, fuzzLimits)
		if err != nil {
			return
		}
		oracle, wellFormed := capsOracle(q)
		if honest {
			ver = oracle
		}
		w.setAnswer(t, func(req *xmltree.Element) []*xmltree.Element {
			if p := payloadOf(req); p.Name.Space != NSDiscoInfo {
				return []*xmltree.Element{errorReply(req, "cancel", "service-unavailable")}
			}
			return []*xmltree.Element{reply(req, xmltree.New(NSClient, "iq").Append(q))}
		})
		ctx := fuzzCtx(t)
		info, err := w.c.QueryInfo(ctx, juliet, "")
		isQuery := q.Name.Space == NSDiscoInfo && q.Name.Local == "query"
		if (err == nil) != isQuery {
			t.Fatalf("QueryInfo: %v for %s", err, raw)
		}
		if isQuery {
			if len(info.Identities) != len(q.ChildrenNamed(NSDiscoInfo, "identity")) || len(info.Features) != len(q.ChildrenNamed(NSDiscoInfo, "feature")) {
				t.Fatalf("%+v for %s", info, raw)
			}
			for i, e := range q.ChildrenNamed(NSDiscoInfo, "feature") {
				if info.Features[i] != e.AttrValue("var") || !info.Has(e.AttrValue("var")) {
					t.Fatalf("feature %d: %q for %s", i, info.Features[i], raw)
				}
			}
		}
		_, err = w.c.VerifyCaps(ctx, juliet, "https://example.org/client", ver)
		if want := isQuery && wellFormed && ver == oracle; (err == nil) != want {
			t.Fatalf("VerifyCaps(ver %q; the answer hashes to %s, well-formed %v): %v for %s", ver, oracle, wellFormed, err, raw)
		}
	})
}

// The XEP-0115 §5.3 example: an entity with an extended form (XEP-0128),
// whose verification string covers the form.
func TestVerifyCapsExtendedForm(t *testing.T) {
	const answer = `<query xmlns='http://jabber.org/protocol/disco#info' node='http://psi-im.org#q07IKJEyjvHSyhy//CH0CxmKi8w='><identity xml:lang='en' category='client' name='Psi 0.11' type='pc'/><identity xml:lang='el' category='client' name='Ψ 0.11' type='pc'/><feature var='http://jabber.org/protocol/caps'/><feature var='http://jabber.org/protocol/disco#info'/><feature var='http://jabber.org/protocol/disco#items'/><feature var='http://jabber.org/protocol/muc'/><x xmlns='jabber:x:data' type='result'><field var='FORM_TYPE' type='hidden'><value>urn:xmpp:dataforms:softwareinfo</value></field><field var='ip_version' type='text-multi'><value>ipv4</value><value>ipv6</value></field><field var='os'><value>Mac</value></field><field var='os_version'><value>10.5.1</value></field><field var='software'><value>Psi</value></field><field var='software_version'><value>0.11</value></field></x></query>`
	q, err := xmltree.Parse([]byte(answer), nil)
	if err != nil {
		t.Fatal(err)
	}
	if ver, ok := capsOracle(q); ver != "q07IKJEyjvHSyhy//CH0CxmKi8w=" || !ok {
		t.Fatalf("oracle: %s %v", ver, ok)
	}
	w := newFarEnd(t)
	w.setAnswer(t, func(req *xmltree.Element) []*xmltree.Element {
		return []*xmltree.Element{reply(req, xmltree.New(NSClient, "iq").Append(q))}
	})
	ctx := fuzzCtx(t)
	if _, err := w.c.VerifyCaps(ctx, juliet, "http://psi-im.org", "q07IKJEyjvHSyhy//CH0CxmKi8w="); err != nil {
		t.Errorf("the XEP's own example: %v", err)
	}
	// The hash of the identities and features alone does not cover the
	// form the answer has.
	ids := []Identity{{Category: "client", Type: "pc", Lang: "en", Name: "Psi 0.11"}, {Category: "client", Type: "pc", Lang: "el", Name: "Ψ 0.11"}}
	features := []string{"http://jabber.org/protocol/caps", "http://jabber.org/protocol/disco#info", "http://jabber.org/protocol/disco#items", "http://jabber.org/protocol/muc"}
	if _, err := w.c.VerifyCaps(ctx, juliet, "http://psi-im.org", CapsHash(ids, features)); err == nil {
		t.Error("a ver that leaves out the form accepted")
	}
}

// XEP-0115 §5.4: an answer with a feature or an identity given twice is
// ill-formed, even when the verification string is its hash.
func TestVerifyCapsIllFormed(t *testing.T) {
	w := newFarEnd(t)
	for _, answer := range []string{
		`<query xmlns='http://jabber.org/protocol/disco#info'><identity category='client' type='pc'/><feature var='urn:xmpp:eme:0'/><feature var='urn:xmpp:eme:0'/></query>`,
		`<query xmlns='http://jabber.org/protocol/disco#info'><identity category='client' type='pc'/><identity category='client' type='pc'/></query>`,
		`<query xmlns='http://jabber.org/protocol/disco#info'><x xmlns='jabber:x:data' type='result'><field var='FORM_TYPE' type='hidden'><value>urn:x</value></field></x><x xmlns='jabber:x:data' type='result'><field var='FORM_TYPE' type='hidden'><value>urn:x</value></field></x></query>`,
	} {
		q, err := xmltree.Parse([]byte(answer), nil)
		if err != nil {
			t.Fatal(err)
		}
		w.setAnswer(t, func(req *xmltree.Element) []*xmltree.Element {
			return []*xmltree.Element{reply(req, xmltree.New(NSClient, "iq").Append(q))}
		})
		ver, _ := capsOracle(q)
		if _, err := w.c.VerifyCaps(fuzzCtx(t), juliet, "https://example.org/client", ver); err == nil || !strings.Contains(err.Error(), "ill-formed") {
			t.Errorf("%s: %v", answer, err)
		}
	}
}

// fuzzQID stands for the query id of the client's archive query in
// FuzzArchive's inputs.
const fuzzQID = "Q"

// archiveAnswer is what FuzzArchive's server sends for one query: the
// stanzas of the input up to the first IQ answer, with fuzzQID replaced
// by the query's id, and the answer (an empty complete <fin/> if the
// input has none).
func archiveAnswer(req *xmltree.Element, stanzas []*xmltree.Element) []*xmltree.Element {
	qid := payloadOf(req).AttrValue("queryid")
	var out []*xmltree.Element
	for _, st := range stanzas {
		if st.Name.Local == "iq" && (st.AttrValue("type") == "result" || st.AttrValue("type") == "error") {
			return append(out, reply(req, st))
		}
		st = st.Copy()
		for _, r := range st.ChildrenNamed(NSMAM, "result") {
			if r.AttrValue("queryid") == fuzzQID {
				r.SetAttr("queryid", qid)
			}
		}
		out = append(out, st)
	}
	return append(out, reply(req, xmltree.New(NSClient, "iq").Append(xmltree.New(NSMAM, "fin", "complete", "true"))))
}

// archived returns what the client must collect from the stanzas of one
// answer: the messages from the account's own archive (from the bare JID,
// or no from) whose first <result/> is for the query and forwards a
// message.
func archived(stanzas []*xmltree.Element) []ArchivedMessage {
	var out []ArchivedMessage
	for _, st := range stanzas {
		if st.Name.Local == "iq" && (st.AttrValue("type") == "result" || st.AttrValue("type") == "error") {
			break
		}
		r := st.Child(NSMAM, "result")
		if from, ok := fromOf(st); st.Name.Local != "message" || !ok || !from.Equal(account.Bare()) || r == nil || r.AttrValue("queryid") != fuzzQID {
			continue
		}
		if fwd := r.Child(NSForward, "forwarded"); fwd != nil && fwd.Child(NSClient, "message") != nil {
			out = append(out, ArchivedMessage{ID: r.AttrValue("id"), Message: fwd.Child(NSClient, "message")})
		}
	}
	return out
}

// FuzzArchive answers the client's XEP-0313 queries with arbitrary
// results and <fin/> (XEP-0059 paging in it). QueryArchive collects
// exactly the results of the account's own archive for the query, in
// order, and reads the <fin/> as it is; an error answer is a StanzaError.
// History, against a server that answers every query alike, ends after
// the page repeats, delivers every archived message as a message or a
// notice marked as archived, and never delivers an encrypted one as
// plaintext.
func FuzzArchive(f *testing.F) {
	for _, s := range []string{
		// XEP-0313 §4.2 and §4.3, with XEP-0059 §2.2 paging, as Prosody
		// and ejabberd send them.
		`<message xmlns='jabber:client' id='aeb213' to='bob@example.org/desk'><result xmlns='urn:xmpp:mam:2' queryid='Q' id='28482-98726-73623'><forwarded xmlns='urn:xmpp:forward:0'><delay xmlns='urn:xmpp:delay' stamp='2010-07-10T23:08:25Z'/><message xmlns='jabber:client' from="witch@shakespeare.lit" to="macbeth@shakespeare.lit"><body>Hail to thee</body></message></forwarded></result></message>` +
			`<message xmlns='jabber:client' from='bob@example.org' id='f27' to='bob@example.org/desk'><result xmlns='urn:xmpp:mam:2' queryid='Q' id='5d398-28273-f7382'><forwarded xmlns='urn:xmpp:forward:0'><delay xmlns='urn:xmpp:delay' stamp='2010-07-10T23:09:32Z'/><message xmlns='jabber:client' to="witch@shakespeare.lit" from="macbeth@shakespeare.lit/desk"><body>Art thou a cat?</body><openpgp xmlns='urn:xmpp:openpgp:0'>AAAA</openpgp></message></forwarded></result></message>` +
			`<iq xmlns='jabber:client' type='result' id='juliet1'><fin xmlns='urn:xmpp:mam:2'><set xmlns='http://jabber.org/protocol/rsm'><first index='0'>28482-98726-73623</first><last>5d398-28273-f7382</last><count>23</count></set></fin></iq>`,
		`<iq xmlns='jabber:client' type='result' id='q29303'><fin xmlns='urn:xmpp:mam:2' complete='true'><set xmlns='http://jabber.org/protocol/rsm'><count>16</count></set></fin></iq>`,
		`<iq xmlns='jabber:client' type='error' id='q29303'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`,
		`<iq xmlns='jabber:client' type='result'/>`,
		// A page that never ends; results from others and for other
		// queries; a result without a message.
		`<message xmlns='jabber:client'><result xmlns='urn:xmpp:mam:2' queryid='Q' id='1'><forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client' from='a@b/c'><body>again</body></message></forwarded></result></message><iq xmlns='jabber:client' type='result'><fin xmlns='urn:xmpp:mam:2'><set xmlns='http://jabber.org/protocol/rsm'><first>1</first><last>1</last><count>x</count></set></fin></iq>`,
		`<message xmlns='jabber:client' from='mallory@evil.example'><result xmlns='urn:xmpp:mam:2' queryid='Q' id='forged'><forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client' from='bob@example.org'><body>forged</body></message></forwarded></result></message><message xmlns='jabber:client'><result xmlns='urn:xmpp:mam:2' queryid='other' id='2'><forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client'/></forwarded></result></message><message xmlns='jabber:client'><result xmlns='urn:xmpp:mam:2' queryid='Q' id='3'/></message>`,
	} {
		f.Add([]byte(s))
	}
	w := newFarEnd(f)
	f.Fuzz(func(t *testing.T, raw []byte) {
		wrap, err := xmltree.Parse([]byte("<s xmlns='jabber:client'>"+string(raw)+"</s>"), fuzzLimits)
		if err != nil {
			return
		}
		stanzas := wrap.Elements()
		if len(stanzas) > 64 {
			return
		}
		for _, st := range stanzas {
			if st.Name.Space != NSClient || st.Name.Local != "message" && st.Name.Local != "iq" && st.Name.Local != "presence" {
				return
			}
		}
		var queries atomic.Int32
		w.setAnswer(t, func(req *xmltree.Element) []*xmltree.Element {
			if p := payloadOf(req); p.Name.Space != NSMAM || p.Name.Local != "query" {
				return []*xmltree.Element{errorReply(req, "cancel", "service-unavailable")}
			}
			if queries.Add(1) > 8 {
				return []*xmltree.Element{errorReply(req, "wait", "resource-constraint")}
			}
			return archiveAnswer(req, stanzas)
		})
		ctx := fuzzCtx(t)
		var page *ArchivePage
		eventsOf(t, w.c, func() { page, err = w.c.QueryArchive(ctx, ArchiveQuery{With: juliet.Bare(), Max: 10}) })
		resp := archiveAnswer(xmltree.New(NSClient, "iq", "id", "x").Append(xmltree.New(NSMAM, "query")), stanzas)
		last := resp[len(resp)-1]
		fin := last.Child(NSMAM, "fin")
		if last.AttrValue("type") == "error" || fin == nil {
			if err == nil {
				t.Fatalf("QueryArchive accepted %s", last)
			}
			checkIQError(t, last, err)
		} else {
			if err != nil {
				t.Fatalf("QueryArchive: %v", err)
			}
			checkPage(t, page, fin, archived(stanzas))
			checkOpened(t, w.c, page.Messages)
		}

		queries.Store(0)
		n := 0
		eventsOf(t, w.c, func() {
			err = w.c.History(ctx, juliet.Bare(), HistoryOptions{Workers: 1}, func(ev Event) error {
				n++
				switch e := ev.(type) {
				case *MessageEvent:
					if !e.Origin.Archived {
						t.Fatalf("History delivered a message not marked archived: %+v", e)
					}
				case *NoticeEvent:
					if !e.Origin.Archived {
						t.Fatalf("History delivered a notice not marked archived: %+v", e)
					}
				default:
					t.Fatalf("History delivered %T", ev)
				}
				return nil
			})
		})
		if q := queries.Load(); q > 2 {
			t.Fatalf("History made %d queries to a server that repeats one page", q)
		}
		if want := len(archived(stanzas)); n > want {
			t.Fatalf("History delivered %d events for a page of %d messages", n, want)
		}
		queries.Store(0)
		eventsOf(t, w.c, func() {
			err = w.c.History(ctx, juliet.Bare(), HistoryOptions{Limit: 3, Workers: 1}, func(Event) error { return nil })
		})
		if q := queries.Load(); q > 2 {
			t.Fatalf("History with a limit made %d queries to a server that repeats one page", q)
		}
	})
}

// An archive that answers every query with the same page (a server that
// ignores XEP-0059 <after/> and <before/>) is read once: History reports
// it, and delivers nothing twice.
func TestHistoryPageAgain(t *testing.T) {
	page := func(req *xmltree.Element) []*xmltree.Element {
		qid := payloadOf(req).AttrValue("queryid")
		m := xmltree.New(NSClient, "message").Append(xmltree.New(NSMAM, "result", "queryid", qid, "id", "m1").Append(
			xmltree.New(NSForward, "forwarded").Append(xmltree.New(NSClient, "message", "from", "juliet@example.com/balcony").Append(
				xmltree.New(NSClient, "body").AppendText("hello")))))
		set := xmltree.New(NSRSM, "set").Append(xmltree.New(NSRSM, "first").AppendText("m1"), xmltree.New(NSRSM, "last").AppendText("m1"))
		return []*xmltree.Element{m, reply(req, xmltree.New(NSClient, "iq").Append(xmltree.New(NSMAM, "fin").Append(set)))}
	}
	w := newFarEnd(t)
	for _, limit := range []int{0, 5} {
		var queries atomic.Int32
		w.setAnswer(t, func(req *xmltree.Element) []*xmltree.Element {
			if queries.Add(1) > 8 {
				return []*xmltree.Element{errorReply(req, "wait", "resource-constraint")}
			}
			return page(req)
		})
		var bodies []string
		err := w.c.History(fuzzCtx(t), juliet.Bare(), HistoryOptions{Limit: limit}, func(ev Event) error {
			if m, ok := ev.(*MessageEvent); ok {
				bodies = append(bodies, m.Body)
			}
			return nil
		})
		if err == nil || !strings.Contains(err.Error(), "again") || queries.Load() != 2 {
			t.Errorf("limit %d: %d queries, %v", limit, queries.Load(), err)
		}
		if limit == 0 && !slices.Equal(bodies, []string{"hello"}) || limit > 0 && len(bodies) != 0 {
			t.Errorf("limit %d: delivered %q", limit, bodies)
		}
	}
}

// checkOpened turns archived messages into events as History does: one
// event or none for each, marked as archived with the archive's id, and
// never an encrypted message as plaintext.
func checkOpened(t *testing.T, c *Client, msgs []ArchivedMessage) {
	t.Helper()
	evs := c.NewArchiveReader(1).Open(context.Background(), msgs)
	if len(evs) != len(msgs) {
		t.Fatalf("%d events for %d messages", len(evs), len(msgs))
	}
	for i, ev := range evs {
		switch e := ev.(type) {
		case nil:
		case *MessageEvent:
			if !e.Origin.Archived || e.Origin.StanzaID != msgs[i].ID {
				t.Fatalf("origin %+v for %s", e.Origin, msgs[i].ID)
			}
			if det, err := eme.DetectElement(msgs[i].Message); e.Security.Mechanism == "" && (err != nil || det.Encrypted) {
				t.Fatalf("an encrypted archived message delivered as plaintext: %s", msgs[i].Message)
			}
		case *NoticeEvent:
			if !e.Origin.Archived || e.Origin.StanzaID != msgs[i].ID {
				t.Fatalf("origin %+v for %s", e.Origin, msgs[i].ID)
			}
		default:
			t.Fatalf("%T for an archived message", ev)
		}
	}
}

// checkPage compares a page with the <fin/> and the results sent.
func checkPage(t *testing.T, page *ArchivePage, fin *xmltree.Element, want []ArchivedMessage) {
	t.Helper()
	if page.Complete != (fin.AttrValue("complete") == "true") {
		t.Fatalf("complete %v for %s", page.Complete, fin)
	}
	set := fin.Child(NSRSM, "set")
	if set == nil {
		set = xmltree.New(NSRSM, "set")
	}
	count, err := strconv.Atoi(set.ChildText(NSRSM, "count"))
	if err != nil {
		count = -1
	}
	if page.First != set.ChildText(NSRSM, "first") || page.Last != set.ChildText(NSRSM, "last") || page.Count != count {
		t.Fatalf("paging %q %q %d for %s", page.First, page.Last, page.Count, fin)
	}
	if len(page.Messages) != len(want) {
		t.Fatalf("%d messages collected, want %d", len(page.Messages), len(want))
	}
	for i, m := range page.Messages {
		if m.ID != want[i].ID || string(m.Message.Marshal("")) != string(want[i].Message.Marshal("")) {
			t.Fatalf("message %d: %s %s, want %s %s", i, m.ID, m.Message, want[i].ID, want[i].Message)
		}
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
