package esession

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"hash"
	"slices"
	"strconv"

	"github.com/balcony-im/balcony/xmltree"
)

// This file is XEP-0200 Stanza Encryption with the parameters XEP-0217
// fixes: aes128-ctr, HMAC-SHA256, no compression, no re-keying.

// maxBlocks is the number of blocks one key may encrypt before the session
// must be re-keyed or terminated (XEP-0200 §10.4, RFC 4344). This engine
// does not re-key, so a session that reaches it must be terminated.
const maxBlocks = 1 << 32

// contentLimits bound the decrypted content of one stanza.
var contentLimits = xmltree.Limits{MaxDepth: 64, MaxNodes: 8192, MaxBytes: MaxStanza}

// ErrKeyExhausted is returned when a direction has used its 2^32 blocks:
// terminate the session and negotiate a new one.
var ErrKeyExhausted = errors.New("esession: key used for 2^32 blocks; terminate and renegotiate")

// direction is the state of one direction of an encrypted session.
type direction struct {
	kc    [32]byte
	kcLen int
	km    [32]byte
	ctr   counter
	used  uint64 // blocks under the current key
	block cipher.Block
	// stream is AES-CTR started at the direction's first counter value.
	// Every stanza consumes whole blocks of it (the unused end of a
	// partial block is discarded), so its position always equals ctr.
	stream cipher.Stream
	mac    hash.Hash
	// scratch space kept here so it does not escape per stanza
	skip [blockSize]byte
	ctr0 counter
	sum  [32]byte
	got  [32]byte
}

func (d *direction) init(k *keySet, c counter, cv conv) {
	d.kc, d.kcLen, d.km, d.ctr, d.used = k.kc, k.kcLen, k.km, c, 0
	b, err := aes.NewCipher(d.kc[:k.kcLen])
	if err != nil {
		panic(err)
	}
	d.block = b
	iv := cv.start(c)
	d.stream = cipher.NewCTR(b, iv[:])
	d.mac = hmac.New(sha256.New, d.km[:])
}

// xor applies the next blocks of keystream to buf and advances the counter
// by one per full or partial block (one for an empty buf), discarding the
// rest of a partial block (XEP-0200 §5 step 3).
func (d *direction) xor(buf []byte) {
	d.stream.XORKeyStream(buf, buf)
	if r := len(buf) % blockSize; r != 0 || len(buf) == 0 {
		d.stream.XORKeyStream(d.skip[:blockSize-r], d.skip[:blockSize-r])
	}
	nb := blocks(len(buf))
	d.ctr.add(nb)
	d.used += nb
}

// wipe clears the keys this package holds. The AES key schedule and the
// HMAC pads inside the standard library's objects cannot be cleared; they
// are dropped for the garbage collector.
func (d *direction) wipe() {
	clear(d.sum[:])
	clear(d.got[:])
	clear(d.kc[:])
	clear(d.km[:])
	clear(d.ctr[:])
	d.block, d.stream, d.mac, d.used = nil, nil, nil, 0
}

// rekey resets the direction to new keys at its current counter
// (XEP-0200 §9: the counters continue across key exchanges).
func (d *direction) rekey(kc *[32]byte, kcLen int, km *[32]byte, cv conv) {
	d.init(&keySet{kc: *kc, kcLen: kcLen, km: *km}, d.ctr, cv)
}

// channel is an established XEP-0200 session: one direction to send, one
// to receive, and the re-keying state (rekey.go).
type channel struct {
	send, recv direction
	pad        bool // pad plaintext with spaces to whole blocks
	cv         conv
	rk         rekeying
	buf        []byte // plaintext: to encrypt, or decrypted
	txt        []byte // base64 text of a sealed <c/>
	macIn      []byte
}

func (ch *channel) wipe() {
	ch.rk.wipe()
	ch.send.wipe()
	ch.recv.wipe()
	clear(ch.buf)
	ch.buf, ch.txt = nil, nil
}

var (
	nameC    = xml.Name{Space: NSStanzaEncryption, Local: "c"}
	nameData = xml.Name{Space: NSStanzaEncryption, Local: "data"}
	nameMAC  = xml.Name{Space: NSStanzaEncryption, Local: "mac"}
	nameNew  = xml.Name{Space: NSStanzaEncryption, Local: "new"}
	nameKey  = xml.Name{Space: NSStanzaEncryption, Local: "key"}
)

// leaf returns a <c/> child with text, and writes its MAC input to the
// sending MAC.
func (ch *channel) leaf(name xml.Name, text string) *xmltree.Element {
	ch.macIn = appendMACInput(ch.macIn[:0], name.Local, text)
	ch.send.mac.Write(ch.macIn)
	return textElement(name, text)
}

// leafBase64 is leaf with the base64 encoding of raw as text, encoded once
// into the channel's buffer, which is MACed in place.
func (ch *channel) leafBase64(name xml.Name, raw []byte) *xmltree.Element {
	n := base64.StdEncoding.EncodedLen(len(raw))
	ch.macIn = append(ch.macIn[:0], '<')
	ch.macIn = append(ch.macIn, name.Local...)
	ch.macIn = append(ch.macIn, '>')
	start := len(ch.macIn)
	ch.macIn = slices.Grow(ch.macIn, n+len(name.Local)+3)[:start+n]
	base64.StdEncoding.Encode(ch.macIn[start:], raw)
	text := string(ch.macIn[start:])
	ch.macIn = append(ch.macIn, "</"...)
	ch.macIn = append(ch.macIn, name.Local...)
	ch.macIn = append(ch.macIn, '>')
	ch.send.mac.Write(ch.macIn)
	return textElement(name, text)
}

// textElement is an element holding text only; element and child list are
// allocated together.
func textElement(name xml.Name, text string) *xmltree.Element {
	e := &struct {
		el   xmltree.Element
		kids [1]xmltree.Node
	}{}
	e.kids[0] = xmltree.CharData(text)
	e.el = xmltree.Element{Name: name, Children: e.kids[:]}
	return &e.el
}

// appendMACInput appends the MAC input of one child of <c/> as XEP-0200
// §5 step 4 defines m_content: the element without whitespace, attributes
// or namespace declarations, "<name>text</name>". The sender and the
// receiver compute it with this function from the tree, so it does not
// depend on how the XML was written; the text of every child is checked
// to be base64 before use, which needs no escaping.
func appendMACInput(dst []byte, name, text string) []byte {
	dst = append(dst, '<')
	dst = append(dst, name...)
	dst = append(dst, '>')
	dst = append(dst, text...)
	dst = append(dst, "</"...)
	dst = append(dst, name...)
	return append(dst, '>')
}

// marshalContent serialises stanza children for encryption (XEP-0200 §5
// step 1): each element as it is written into a jabber:client stanza.
func marshalContent(els []*xmltree.Element) []byte {
	return appendContent(nil, els)
}

// appendContent is marshalContent appending to dst. When dst has to grow,
// the old buffer, which may hold plaintext, is cleared.
func appendContent(dst []byte, els []*xmltree.Element) []byte {
	for _, el := range els {
		old := dst
		dst = el.AppendXML(dst, nsClient)
		if cap(dst) != cap(old) {
			clear(old[:cap(old)])
		}
	}
	return dst
}

// sealedC is what seal returns: the <c/> element, its child list, its
// <data/> and <mac/> children with theirs, and the payload list of an
// Outbound, in one allocation.
type sealedC struct {
	c               xmltree.Element
	kids            [4]xmltree.Node
	data, mac       xmltree.Element
	dataKid, macKid [1]xmltree.Node
	payload         [1]*xmltree.Element
}

// The MAC input around the base64 text of <data/> (§5 step 4, as
// appendMACInput writes it).
var (
	macDataOpen  = []byte("<data>")
	macDataClose = []byte("</data>")
)

// macB64Len is the length of the base64 text of a 32-byte MAC.
const macB64Len = 44

// seal encrypts stanza content (the serialised children of a stanza other
// than <thread/>, <amp/> and <error/>) and returns the <c/> element that
// replaces it (XEP-0200 §5-6). When a key exchange is due (rekey.go) the
// stanza carries a <key/>, and the keys change after it.
func (ch *channel) seal(content []byte) (*xmltree.Element, error) {
	ch.buf = ch.grow(ch.buf[:0], len(content))
	ch.buf = append(ch.buf, content...)
	p, err := ch.sealBuf()
	if err != nil {
		return nil, err
	}
	return p[0], nil
}

// sealContent is seal of stanza children, serialised straight into the
// channel's buffer (§5 step 1). It returns the payload of the Outbound:
// the <c/> alone.
func (ch *channel) sealContent(els []*xmltree.Element) ([]*xmltree.Element, error) {
	ch.buf = appendContent(ch.buf[:0], els)
	return ch.sealBuf()
}

// grow returns b with room for n more bytes; when it has to move, the old
// buffer is cleared.
func (ch *channel) grow(b []byte, n int) []byte {
	if cap(b)-len(b) >= n {
		return b
	}
	nb := make([]byte, len(b), 2*cap(b)+n)
	copy(nb, b)
	clear(b[:cap(b)])
	return nb
}

// sealBuf encrypts the plaintext in ch.buf, which it clears, as seal
// describes. The encryption and the base64 text happen in the channel's
// buffers; the one string made holds the text of <data/> and of <mac/>.
func (ch *channel) sealBuf() ([]*xmltree.Element, error) {
	d := &ch.send
	defer func() { clear(ch.buf) }()
	if d.block == nil {
		return nil, ErrEnded
	}
	n := len(ch.buf)
	if ch.pad && n%blockSize != 0 {
		n += blockSize - n%blockSize
	}
	nb := blocks(n)
	if d.used+nb > maxBlocks {
		return nil, ErrKeyExhausted
	}
	var next *rekeyStep
	if ch.rk.due(d.used) {
		var err error
		if next, err = ch.rk.initiate(); err != nil {
			return nil, err
		}
	}
	pt := ch.grow(ch.buf, n-len(ch.buf))
	for len(pt) < n {
		pt = append(pt, ' ')
	}
	ch.buf = pt
	d.ctr0 = d.ctr // C before encryption, MACed last (§5 step 5)
	// a_mac = HMAC(KM, m_content | C) with C before encryption (§5 step
	// 5): m_content is written to the MAC child by child as it is made.
	d.mac.Reset()
	out := &sealedC{}
	c := &out.c
	c.Name, c.Children = nameC, out.kids[:0]
	// The base64 text of <data/>, then that of <mac/>, in ch.txt.
	k := base64.StdEncoding.EncodedLen(n)
	ch.txt = slices.Grow(ch.txt[:0], k+macB64Len)[:k+macB64Len]
	d.xor(pt)
	if n > 0 {
		base64.StdEncoding.Encode(ch.txt[:k], pt)
		d.mac.Write(macDataOpen)
		d.mac.Write(ch.txt[:k])
		d.mac.Write(macDataClose)
		out.data = xmltree.Element{Name: nameData, Children: out.dataKid[:]}
		c.Children = append(c.Children, &out.data) // its text is set below
	}
	// §5 step 4: <new/> counts the peer's keys received since we last sent.
	if ch.rk.newKeys > 0 {
		c.Children = append(c.Children, ch.leaf(nameNew, strconv.Itoa(ch.rk.newKeys)))
		ch.rk.newKeys = 0
	}
	if next != nil {
		c.Children = append(c.Children, ch.leafBase64(nameKey, mpi(next.pub)))
	}
	d.mac.Write(d.ctr0[:])
	d.mac.Sum(d.sum[:0])
	base64.StdEncoding.Encode(ch.txt[k:], d.sum[:])
	text := string(ch.txt)
	out.dataKid[0] = xmltree.CharData(text[:k])
	out.macKid[0] = xmltree.CharData(text[k:])
	out.mac = xmltree.Element{Name: nameMAC, Children: out.macKid[:]}
	c.Children = append(c.Children, &out.mac)
	ch.rk.exchanged++
	if next != nil {
		// §9.2: the stanza went under the old keys; later ones use the new.
		ch.rk.sent(next, &ch.send, ch.cv)
	}
	out.payload[0] = c
	return out.payload[:], nil
}

func (ch *channel) scratch(n int) []byte {
	if cap(ch.buf) < n {
		clear(ch.buf)
		ch.buf = make([]byte, n)
	}
	return ch.buf[:n]
}

// cParts are the children of a received <c/> element.
type cParts struct {
	data, mac string // base64 text
	hasData   bool
	dataAt    int    // where data starts in the MAC input
	key       string // a <key/>: the peer's new public value, base64
	newKeys   int    // the value of a <new/>: our keys the peer has seen
}

// parseC reads a received <c/> element and leaves the MAC input in
// ch.macIn: its children other than <mac/>, in received order (XEP-0200
// §5 step 4). Any deviation from the XEP-0200 schema is an error: children
// in another namespace, attributes, element content, text other than
// whitespace between the children, a repeated child. <key/> and <new/>
// are refused in a session that does not re-key.
func (ch *channel) parseC(c *xmltree.Element) (cParts, error) {
	var p cParts
	if c.Name != nameC || len(c.Attr) != 0 {
		return p, errAuth
	}
	var seen [4]bool // data, mac, key, new (old may repeat)
	ch.macIn = ch.macIn[:0]
	for _, n := range c.Children {
		el, ok := n.(*xmltree.Element)
		if !ok {
			if t, ok := n.(xmltree.CharData); !ok || !isSpace(string(t)) {
				return p, errAuth
			}
			continue
		}
		if el.Name.Space != NSStanzaEncryption || len(el.Attr) != 0 {
			return p, errAuth
		}
		text, ok := leafText(el)
		name := el.Name.Local
		if i := slotOf(name); !ok || i >= 0 && seen[i] {
			return p, errAuth
		} else if i >= 0 {
			seen[i] = true
		}
		// The text of <data/>, <key/> and <old/> is MACed and decoded only
		// after the MAC is verified: the strict base64 decoder then
		// rejects anything else.
		switch name {
		case "data":
			p.data, p.hasData = text, true
			p.dataAt = len(ch.macIn) + len("<data>")
		case "mac":
			if !isBase64(text) {
				return p, errAuth
			}
			p.mac = text
			continue
		case "old":
			// Published old MAC keys (§10): MACed, otherwise ignored.
		case "key":
			if !ch.rk.enabled {
				return p, errAuth
			}
			p.key = text
		case "new":
			k, err := strconv.Atoi(text)
			if !ch.rk.enabled || err != nil || k <= 0 || strconv.Itoa(k) != text {
				return p, errAuth
			}
			p.newKeys = k
		default: // anything outside the schema
			return p, errAuth
		}
		// <data/> is decoded by the strict decoder after the MAC check,
		// which rejects anything but canonical base64: no check here.
		if name != "new" && name != "data" && !isBase64(text) {
			return p, errAuth
		}
		ch.macIn = appendMACInput(ch.macIn, name, text)
	}
	if !seen[1] {
		return p, errAuth
	}
	return p, nil
}

// slotOf numbers the children of <c/> that may appear once: data, mac,
// key, new; -1 for the others.
func slotOf(name string) int {
	switch name {
	case "data":
		return 0
	case "mac":
		return 1
	case "key":
		return 2
	case "new":
		return 3
	}
	return -1
}

// leafText returns the text of an element that has no element children.
func leafText(el *xmltree.Element) (string, bool) {
	switch len(el.Children) {
	case 0:
		return "", true
	case 1:
		t, ok := el.Children[0].(xmltree.CharData)
		return string(t), ok
	}
	return "", false // the parser merges adjacent text: several nodes hold an element
}

func isSpace(b string) bool {
	for i := 0; i < len(b); i++ {
		if c := b[i]; c != ' ' && c != '\t' && c != '\r' && c != '\n' {
			return false
		}
	}
	return true
}

var base64Chars = func() (t [256]bool) {
	for _, c := range []byte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=") {
		t[c] = true
	}
	return t
}()

func isBase64(b string) bool {
	if len(b) == 0 || len(b)%4 != 0 {
		return false
	}
	ok := true
	for i := 0; i < len(b); i++ {
		ok = ok && base64Chars[b[i]]
	}
	return ok
}

// open verifies and decrypts a received <c/> element (XEP-0200 §7) and
// parses the plaintext as stanza content, which must be well-formed
// (§7 step 6). It returns the parsed content, the children of a
// jabber:client <message/>. Every failure, whatever its cause, is errAuth
// and leaves the counter unchanged unless the keystream was used; the
// caller ends the session.
func (ch *channel) open(c *xmltree.Element) (*xmltree.Element, error) {
	d := &ch.recv
	if d.block == nil {
		return nil, ErrEnded
	}
	p, err := ch.parseC(c)
	if err != nil {
		return nil, errAuth
	}
	if len(p.data) > base64.StdEncoding.EncodedLen(MaxStanza) {
		return nil, errAuth
	}
	if len(p.mac) != base64.StdEncoding.EncodedLen(len(d.got)) {
		return nil, errAuth
	}
	// 44 characters decode to 33 bytes when the last has no padding: the
	// decoder writes up to DecodedLen, so it gets room for that, and
	// anything but exactly 32 bytes is refused.
	var macText [44]byte // base64 of 32 bytes
	var macRaw [33]byte
	if n, err := strictBase64.Decode(macRaw[:], macText[:copy(macText[:], p.mac)]); err != nil || n != len(d.got) {
		return nil, errAuth
	}
	copy(d.got[:], macRaw[:len(d.got)])
	// §7 step 1: <new/> selects the key set the peer used.
	if p.newKeys > 0 && p.newKeys >= len(ch.rk.sets) {
		return nil, errAuth
	}
	mac := d.mac
	if p.newKeys > 0 {
		mac = hmac.New(sha256.New, ch.rk.sets[p.newKeys].km[:])
	}
	mac.Reset()
	mac.Write(ch.macIn)
	mac.Write(d.ctr[:])
	mac.Sum(d.sum[:0])
	ok := subtle.ConstantTimeCompare(d.sum[:], d.got[:]) == 1
	if !ok && ch.cv.gajim && d.ctr[0] == 0 {
		// Gajim MACs the counter it sends as an MPI, and the one it
		// receives as 16 bytes; they differ when the top byte is zero.
		d.mac.Reset()
		d.mac.Write(ch.macIn)
		d.mac.Write(mpiBytes(d.ctr[:]))
		d.mac.Sum(d.sum[:0])
		ok = subtle.ConstantTimeCompare(d.sum[:], d.got[:]) == 1
	}
	if !ok {
		return nil, errAuth
	}
	if p.newKeys > 0 {
		// The peer has our newer keys: the older sets are done with.
		ch.rk.advance(p.newKeys, d, ch.cv)
	}
	// The plaintext is parsed inside a jabber:client <message/> wrapper,
	// so that its unprefixed elements are in the stanza's namespace.
	const open, close = "<message xmlns='" + nsClient + "'>", "</message>"
	buf := ch.scratch(len(open) + base64.StdEncoding.DecodedLen(len(p.data)) + len(close))
	copy(buf, open)
	n := 0
	if p.hasData {
		// The text is decoded from its copy in the MAC input rather than
		// converted (an allocation per stanza).
		n, err = strictBase64.Decode(buf[len(open):], ch.macIn[p.dataAt:p.dataAt+len(p.data)])
		if err != nil {
			return nil, errAuth
		}
	}
	if d.used+blocks(n) > maxBlocks {
		return nil, errAuth
	}
	// From here the keystream is consumed: a failure ends the session.
	pt := buf[len(open) : len(open)+n]
	d.xor(pt)
	buf = buf[:len(open)+n+len(close)] // within the scratch buffer
	copy(buf[len(open)+n:], close)
	msg, err := xmltree.Parse(buf, &contentLimits)
	clear(buf)
	if err != nil {
		return nil, errAuth
	}
	ch.rk.exchanged++
	if p.key != "" {
		// §9.3: the peer's new keys apply to the stanzas after this one.
		if err := ch.rk.accept(p.key, &ch.send, d, ch.cv); err != nil {
			return nil, errAuth
		}
	}
	return msg, nil
}

// strictBase64 rejects non-canonical encodings. (Strict returns a copy of
// the encoding: made once here, not per stanza.)
var strictBase64 = base64.StdEncoding.Strict()
