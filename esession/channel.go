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
	"math/big"

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

// channel is an established XEP-0200 session: one direction to send, one
// to receive.
type channel struct {
	send, recv direction
	pad        bool // pad plaintext with spaces to whole blocks
	cv         conv
	group      dhGroup
	x          []byte   // this side's current secret exponent
	peerPub    *big.Int // the peer's current public value
	buf        []byte
	macIn      []byte
}

// startRekeying hands the channel what XEP-0200 §9 re-keying needs: the
// group, this side's secret exponent and the peer's public value.
func (ch *channel) startRekeying(c *config, st *suite, x []byte, peer *big.Int) {
	ch.group, ch.x, ch.peerPub = st.group, x, peer
}

func (ch *channel) wipe() {
	clear(ch.x)
	ch.x = nil
	ch.send.wipe()
	ch.recv.wipe()
	clear(ch.buf)
	ch.buf = nil
}

var (
	nameC    = xml.Name{Space: NSStanzaEncryption, Local: "c"}
	nameData = xml.Name{Space: NSStanzaEncryption, Local: "data"}
	nameMAC  = xml.Name{Space: NSStanzaEncryption, Local: "mac"}
)

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
	var b []byte
	for _, el := range els {
		b = append(b, el.Marshal(nsClient)...)
	}
	return b
}

// seal encrypts stanza content (the serialised children of a stanza other
// than <thread/>, <amp/> and <error/>) and returns the <c/> element that
// replaces it (XEP-0200 §5-6).
func (ch *channel) seal(content []byte) (*xmltree.Element, error) {
	d := &ch.send
	if d.block == nil {
		return nil, ErrEnded
	}
	n := len(content)
	if ch.pad && n%blockSize != 0 {
		n += blockSize - n%blockSize
	}
	nb := blocks(n)
	if d.used+nb > maxBlocks {
		return nil, ErrKeyExhausted
	}
	d.ctr0 = d.ctr // C before encryption, MACed last (§5 step 5)
	c := &xmltree.Element{Name: nameC, Children: make([]xmltree.Node, 0, 2)}
	ch.macIn = ch.macIn[:0]
	if n > 0 {
		pt := ch.scratch(n)
		copy(pt, content)
		for i := len(content); i < n; i++ {
			pt[i] = ' '
		}
		d.xor(pt)
		data := base64.StdEncoding.EncodeToString(pt)
		clear(pt)
		c.Children = append(c.Children, &xmltree.Element{Name: nameData, Children: []xmltree.Node{xmltree.CharData(data)}})
		ch.macIn = appendMACInput(ch.macIn, "data", data)
	} else {
		d.xor(nil)
	}
	// a_mac = HMAC(KM, m_content | C) with C before encryption (§5 step 5)
	d.mac.Reset()
	d.mac.Write(ch.macIn)
	d.mac.Write(d.ctr0[:])
	d.mac.Sum(d.sum[:0])
	mac := base64.StdEncoding.EncodeToString(d.sum[:])
	c.Children = append(c.Children, &xmltree.Element{Name: nameMAC, Children: []xmltree.Node{xmltree.CharData(mac)}})
	return c, nil
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
}

// parseC reads a received <c/> element and leaves the MAC input in
// ch.macIn: its children other than <mac/>, in received order (XEP-0200
// §5 step 4). Any deviation from the XEP-0200 schema is an error: children
// in another namespace, attributes, element content, text other than
// whitespace between the children. <key/> and <new/> are refused because
// this engine never re-keys.
func (ch *channel) parseC(c *xmltree.Element) (cParts, error) {
	var p cParts
	if c.Name != nameC || len(c.Attr) != 0 {
		return p, errAuth
	}
	var seenData, seenMAC bool
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
		if !ok {
			return p, errAuth
		}
		// The text of <data/> and <old/> is MACed and only <data/> is
		// decoded, after the MAC is verified: the strict base64 decoder
		// then rejects anything else.
		switch el.Name.Local {
		case "data":
			if seenData || !isBase64(text) {
				return p, errAuth
			}
			p.data, p.hasData, seenData = text, true, true
		case "mac":
			if seenMAC || !isBase64(text) {
				return p, errAuth
			}
			p.mac, seenMAC = text, true
			continue
		case "old":
			// Published old MAC keys (§9): MACed, otherwise ignored.
			if !isBase64(text) {
				return p, errAuth
			}
		default: // key, new, or anything outside the schema
			return p, errAuth
		}
		ch.macIn = appendMACInput(ch.macIn, el.Name.Local, text)
	}
	if !seenMAC {
		return p, errAuth
	}
	return p, nil
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
	d.mac.Reset()
	d.mac.Write(ch.macIn)
	d.mac.Write(d.ctr[:])
	d.mac.Sum(d.sum[:0])
	if len(p.mac) != base64.StdEncoding.EncodedLen(len(d.got)) {
		return nil, errAuth
	}
	if n, err := strictBase64.Decode(d.got[:], []byte(p.mac)); err != nil || n != len(d.got) {
		return nil, errAuth
	}
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
	// The plaintext is parsed inside a jabber:client <message/> wrapper,
	// so that its unprefixed elements are in the stanza's namespace.
	const open, close = "<message xmlns='" + nsClient + "'>", "</message>"
	buf := ch.scratch(len(open) + base64.StdEncoding.DecodedLen(len(p.data)) + len(close))
	copy(buf, open)
	n := 0
	if p.hasData {
		n, err = strictBase64.Decode(buf[len(open):], []byte(p.data))
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
	return msg, nil
}

// strictBase64 rejects non-canonical encodings. (Strict returns a copy of
// the encoding: made once here, not per stanza.)
var strictBase64 = base64.StdEncoding.Strict()
