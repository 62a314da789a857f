package esession

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"hash"
	"io"

	"github.com/balcony-im/balcony/esession/internal/xmlfrag"
)

// This file is XEP-0200 Stanza Encryption with the parameters XEP-0217
// fixes: aes128-ctr, HMAC-SHA256, no compression, no re-keying.

// maxBlocks is the number of blocks one key may encrypt before the session
// must be re-keyed or terminated (XEP-0200 §10.4, RFC 4344). This engine
// does not re-key, so a session that reaches it must be terminated.
const maxBlocks = 1 << 32

// maxDepth bounds element nesting in decrypted content.
const maxDepth = 64

// ErrKeyExhausted is returned when a direction has used its 2^32 blocks:
// terminate the session and negotiate a new one.
var ErrKeyExhausted = errors.New("esession: key used for 2^32 blocks; terminate and renegotiate")

// direction is the state of one direction of an encrypted session.
type direction struct {
	kc    [32]byte
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
	d.kc, d.km, d.ctr, d.used = k.kc, k.km, c, 0
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
	chk        xmlfrag.Checker
	lex        xmlfrag.Lexer
	scope      xmlfrag.Scope
	buf        []byte
	macIn      []byte
	tops       []xmlfrag.Top
}

func (ch *channel) wipe() {
	ch.send.wipe()
	ch.recv.wipe()
	clear(ch.buf)
	ch.buf = nil
}

const (
	cOpen  = "<c xmlns='" + NSStanzaEncryption + "'>"
	cClose = "</c>"
)

// seal encrypts stanza content (the serialised children of a stanza other
// than <thread/>, <amp/> and <error/>) and returns the <c/> element that
// replaces it (XEP-0200 §5-6).
func (ch *channel) seal(content []byte) ([]byte, error) {
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
	encLen := base64.StdEncoding.EncodedLen(n)
	out := make([]byte, 0, len(cOpen)+len("<data></data><mac></mac>")+encLen+44+len(cClose))
	out = append(out, cOpen...)
	macStart := len(out)
	if n > 0 {
		pt := ch.scratch(n)
		copy(pt, content)
		for i := len(content); i < n; i++ {
			pt[i] = ' '
		}
		d.xor(pt)
		out = append(out, "<data>"...)
		out = base64.StdEncoding.AppendEncode(out, pt)
		out = append(out, "</data>"...)
		clear(pt)
	} else {
		d.xor(nil)
	}
	// a_mac = HMAC(KM, m_content | C) with C before encryption (§5 step 5)
	d.mac.Reset()
	d.mac.Write(out[macStart:])
	d.mac.Write(d.ctr0[:])
	d.mac.Sum(d.sum[:0])
	out = append(out, "<mac>"...)
	out = base64.StdEncoding.AppendEncode(out, d.sum[:])
	out = append(out, "</mac>"...)
	out = append(out, cClose...)
	return out, nil
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
	data, mac []byte // base64 text
	hasData   bool
}

// parseC reads a <c/> element and leaves the MAC input in ch.macIn: its
// children other than <mac/>, without the whitespace between them and
// without attributes or namespace declarations, in received order. Any deviation from
// the XEP-0200 schema is an error: <key/> and <new/> are refused because
// this engine never re-keys.
func (ch *channel) parseC(c []byte) (cParts, error) {
	var p cParts
	lx, sc := &ch.lex, &ch.scope
	lx.Reset(c)
	lx.RawText = true // text is checked below: whitespace or base64 only
	sc.Reset("")
	var t xmlfrag.Token
	next := func() error {
		err := lx.Next(&t)
		if err == io.EOF {
			return xmlfrag.ErrSyntax
		}
		return err
	}
	skipSpace := func() error {
		for {
			if err := next(); err != nil {
				return err
			}
			if t.Kind != xmlfrag.Text || !isSpace(t.Data) {
				return nil
			}
		}
	}
	if err := skipSpace(); err != nil {
		return p, err
	}
	if t.Kind != xmlfrag.StartTag || string(t.Local) != "c" || t.Empty {
		return p, xmlfrag.ErrSyntax
	}
	if err := pushC200(sc, &t); err != nil {
		return p, err
	}
	var seenData, seenMAC bool
	ch.macIn = ch.macIn[:0]
	for {
		if err := skipSpace(); err != nil {
			return p, err
		}
		if t.Kind == xmlfrag.EndTag {
			if string(t.Local) != "c" {
				return p, xmlfrag.ErrSyntax
			}
			break
		}
		if t.Kind != xmlfrag.StartTag || t.Empty {
			return p, xmlfrag.ErrSyntax
		}
		name := t.Local // a slice of c
		if err := pushC200(sc, &t); err != nil {
			return p, err
		}
		if err := next(); err != nil {
			return p, err
		}
		if t.Kind != xmlfrag.Text || t.HasRef {
			return p, xmlfrag.ErrSyntax
		}
		text := t.Data
		if err := next(); err != nil {
			return p, err
		}
		if t.Kind != xmlfrag.EndTag || !bytes.Equal(t.Local, name) {
			return p, xmlfrag.ErrSyntax
		}
		sc.Pop()
		// The text of <data/> and <old/> is MACed as received and only
		// <data/> is decoded, after the MAC is verified: the strict base64
		// decoder then rejects anything else.
		switch string(name) {
		case "data":
			if seenData || len(text) == 0 {
				return p, xmlfrag.ErrSyntax
			}
		case "mac":
			if seenMAC || !isBase64(text) {
				return p, xmlfrag.ErrSyntax
			}
		case "old":
			// Published old MAC keys (§9): MACed, otherwise ignored.
		default: // key, new, or anything outside the schema
			return p, xmlfrag.ErrSyntax
		}
		if string(name) == "mac" {
			p.mac, seenMAC = text, true
			continue
		}
		if string(name) == "data" {
			p.data, p.hasData, seenData = text, true, true
		}
		ch.macIn = append(ch.macIn, '<')
		ch.macIn = append(ch.macIn, name...)
		ch.macIn = append(ch.macIn, '>')
		ch.macIn = append(ch.macIn, text...)
		ch.macIn = append(ch.macIn, "</"...)
		ch.macIn = append(ch.macIn, name...)
		ch.macIn = append(ch.macIn, '>')
	}
	for {
		err := lx.Next(&t)
		if err == io.EOF {
			break
		}
		if err != nil || t.Kind != xmlfrag.Text || !isSpace(t.Data) {
			return p, xmlfrag.ErrSyntax
		}
	}
	if p.mac == nil {
		return p, xmlfrag.ErrSyntax
	}
	return p, nil
}

// pushC200 enters an element that must be in the XEP-0200 namespace and
// carry no attributes other than namespace declarations.
func pushC200(sc *xmlfrag.Scope, t *xmlfrag.Token) error {
	for _, a := range t.Attrs {
		if !(a.Prefix == nil && string(a.Local) == "xmlns") && string(a.Prefix) != "xmlns" {
			return xmlfrag.ErrSyntax
		}
	}
	ns, err := sc.Push(t)
	if err != nil {
		return err
	}
	if string(ns) != NSStanzaEncryption {
		return xmlfrag.ErrSyntax
	}
	return nil
}

func isSpace(b []byte) bool {
	for _, c := range b {
		if c != ' ' && c != '\t' && c != '\r' && c != '\n' {
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

func isBase64(b []byte) bool {
	if len(b) == 0 || len(b)%4 != 0 {
		return false
	}
	ok := true
	for _, c := range b {
		ok = ok && base64Chars[c]
	}
	return ok
}

// open verifies and decrypts a received <c/> element (XEP-0200 §7) and
// checks that the plaintext is well-formed stanza content. It returns the
// content and its top-level elements. Every failure, whatever its cause,
// is errAuth and leaves the counter unchanged; the caller ends the session.
func (ch *channel) open(c []byte) ([]byte, []xmlfrag.Top, error) {
	d := &ch.recv
	if d.block == nil {
		return nil, nil, ErrEnded
	}
	if len(c) > MaxStanza {
		return nil, nil, errAuth
	}
	p, err := ch.parseC(c)
	if err != nil {
		return nil, nil, errAuth
	}
	d.mac.Reset()
	d.mac.Write(ch.macIn)
	d.mac.Write(d.ctr[:])
	d.mac.Sum(d.sum[:0])
	if len(p.mac) != base64.StdEncoding.EncodedLen(len(d.got)) {
		return nil, nil, errAuth
	}
	if n, err := strictBase64.Decode(d.got[:], p.mac); err != nil || n != len(d.got) {
		return nil, nil, errAuth
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
		return nil, nil, errAuth
	}
	var pt []byte
	if p.hasData {
		pt = make([]byte, base64.StdEncoding.DecodedLen(len(p.data)))
		n, err := strictBase64.Decode(pt, p.data)
		if err != nil {
			return nil, nil, errAuth
		}
		pt = pt[:n]
	}
	if d.used+blocks(len(pt)) > maxBlocks {
		return nil, nil, errAuth
	}
	// From here the keystream is consumed: a failure ends the session.
	d.xor(pt)
	tops, err := ch.chk.Validate(pt, nsClient, maxDepth, ch.tops[:0])
	if err != nil {
		clear(pt)
		return nil, nil, errAuth
	}
	ch.tops = tops
	end := len(pt)
	for end > 0 && (pt[end-1] == ' ' || pt[end-1] == '\n' || pt[end-1] == '\t' || pt[end-1] == '\r') {
		end--
	}
	if len(tops) > 0 && tops[len(tops)-1].End > end {
		end = len(pt)
	}
	return pt[:end], tops, nil
}

// strictBase64 rejects non-canonical encodings. (Strict returns a copy of
// the encoding: made once here, not per stanza.)
var strictBase64 = base64.StdEncoding.Strict()
