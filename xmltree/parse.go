package xmltree

import (
	"strconv"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
)

// SyntaxError reports input that Parse refuses: XML that is not well
// formed (XML 1.0), a name that is not an NCName, a document type
// declaration, a declared encoding other than UTF-8, or anything but
// white space, comments and processing instructions around the element.
type SyntaxError struct {
	Offset int // byte offset in the input where the problem was found
	Msg    string
}

func (e *SyntaxError) Error() string {
	return "xmltree: " + e.Msg + " at byte " + strconv.Itoa(e.Offset)
}

const xmlURL = "http://www.w3.org/XML/1998/namespace"

// Parse parses exactly one element from b. Leading and trailing white
// space, comments and processing instructions are allowed; anything else
// is an error. Errors are ErrLimit or of type *SyntaxError. The tree
// shares one copy of b: it does not refer to b itself.
func Parse(b []byte, lim *Limits) (*Element, error) {
	p := parserPool.Get().(*parser)
	el, err := p.parse(b, lim)
	p.reset()
	parserPool.Put(p)
	return el, err
}

var parserPool = sync.Pool{New: func() any { return new(parser) }}

// parser holds the state of one Parse. Parsing runs in two passes: the
// first reads the input, checks everything and records the tree as
// events that hold offsets and no pointers; the second (build.go)
// allocates the tree at its exact size and fills it in. The scratch
// slices are reused through parserPool.
type parser struct {
	s      string // the input
	i      int    // read position in s
	lim    Limits
	budget int
	nodes  int

	open      []frame   // elements whose end tag has not been read
	ns        []binding // namespace declarations in scope, innermost last
	tag       []rawAttr // attributes of the start tag being read
	evs       []event   // the tree, in document order
	attrs     []attr    // kept attributes of all elements, in order
	strs      []string  // strings that are not substrings of s
	buf       []byte    // character data being decoded
	needClose bool      // the top element was an empty-element tag
	elements  int       // start events
	children  int       // children of all elements

	// Character data read since the top element's last child, merged
	// into one text node when the next child or the end tag comes:
	// pend 0 none, 1 the substring text, 2 the bytes in textBuf.
	pend    int
	text    sref
	textBuf []byte

	build []buildFrame
}

// sref is a string of the tree: s[off:end] if off >= 0, else
// strs[-off-1].
type sref struct{ off, end int }

func (p *parser) str(r sref) string {
	if r.off >= 0 {
		return p.s[r.off:r.end]
	}
	return p.strs[-r.off-1]
}

func (p *parser) keep(s string) sref {
	p.strs = append(p.strs, s)
	return sref{off: -len(p.strs)}
}

// srefXML is the xml prefix's namespace, strs[0] while parsing.
var srefXML = sref{off: -1}

type frame struct {
	ev     int // index of the start event
	qs, qe int // the raw qualified name, matched by the end tag
	ns     int // len(parser.ns) before the element's declarations
}

type binding struct{ prefix, uri sref }

// rawAttr is an attribute as written: prefix and local name (prefix
// empty if the name does not split) and value.
type rawAttr struct{ prefix, local, value sref }

// attr is a kept attribute with its namespace resolved.
type attr struct{ space, local, value sref }

const (
	evStart = iota
	evEnd
	evText
)

type event struct {
	kind  int
	name  sref // start: local name; text: the text
	space sref // start: namespace
	attrs int  // start: number of kept attributes, next in parser.attrs
	kids  int  // start: number of children
}

func (p *parser) reset() {
	// The scratch may hold decrypted text: clear what was used.
	clear(p.buf)
	clear(p.textBuf)
	clear(p.strs[:cap(p.strs)])
	p.open, p.ns, p.tag, p.evs, p.attrs, p.strs = p.open[:0], p.ns[:0], p.tag[:0], p.evs[:0], p.attrs[:0], p.strs[:0]
	const keep = 1 << 16
	if cap(p.buf) > keep {
		p.buf = nil
	}
	if cap(p.textBuf) > keep {
		p.textBuf = nil
	}
	if cap(p.evs) > keep {
		p.evs, p.attrs, p.open = nil, nil, nil
	}
	p.s, p.i, p.needClose, p.pend, p.elements, p.children = "", 0, false, 0, 0, 0
}

func (p *parser) fail(msg string) error { return &SyntaxError{Offset: p.i, Msg: msg} }

func (p *parser) eof() error { return p.fail("unexpected end of input") }

// parse mirrors what Parse has always done with encoding/xml's tokens:
// the prolog (white space, comments, an XML declaration), one element
// read under the limits, then white space and comments.
func (p *parser) parse(b []byte, lim *Limits) (*Element, error) {
	p.lim = DefaultLimits
	if lim != nil {
		p.lim = *lim
	}
	p.budget, p.nodes = p.lim.MaxBytes, 0
	p.s = string(b)
	p.keep(xmlURL)
	for {
		if p.i >= len(p.s) {
			return nil, &SyntaxError{Offset: p.i, Msg: "no element"}
		}
		if ok, err := p.misc("text before element"); err != nil {
			return nil, err
		} else if !ok {
			break
		}
	}
	if err := p.start(true); err != nil {
		return nil, err
	}
	if err := p.content(); err != nil {
		return nil, err
	}
	for p.i < len(p.s) {
		if ok, err := p.misc("trailing data"); err != nil {
			return nil, err
		} else if !ok {
			return nil, p.fail("trailing data")
		}
	}
	return p.tree(), nil
}

// misc reads one token outside the element: character data that must be
// white space (after references are expanded), a comment, or (before the
// element only) an XML declaration. It reports false, with p.i unchanged,
// for anything else.
func (p *parser) misc(what string) (bool, error) {
	var (
		text sref
		dec  bool
		err  error
	)
	switch rest := p.s[p.i:]; {
	case rest[0] != '<':
		text, dec, err = p.chars(0)
	case strings.HasPrefix(rest, "<![CDATA["):
		text, dec, err = p.cdata()
	case strings.HasPrefix(rest, "<!--"):
		return true, p.comment()
	case strings.HasPrefix(rest, "<?"):
		// RFC 6120 §11.1: no processing instructions in XMPP; only an XML
		// declaration, and only before the element.
		at := p.i
		target, err := p.procInst()
		if err == nil && (target != "xml" || what != "text before element") {
			p.i = at
			if what != "text before element" {
				return false, p.fail("trailing data")
			}
			return false, p.fail("processing instructions are not allowed")
		}
		return true, err
	case strings.HasPrefix(rest, "<!"):
		return false, p.fail("directives (DTDs) are not allowed")
	default:
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if dec && !isSpace(string(p.buf)) || !dec && !isSpace(p.str(text)) {
		return false, p.fail(what)
	}
	return true, nil
}

// isSpace reports whether s is only white space as bytes.TrimSpace sees
// it (Unicode White_Space).
func isSpace(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
		case c < utf8.RuneSelf:
			return false
		default:
			for _, r := range s[i:] {
				if !unicode.IsSpace(r) {
					return false
				}
			}
			return true
		}
	}
	return true
}

// content reads the root element's content up to its end tag, checking
// the limits before each token as FromTokens does.
func (p *parser) content() error {
	for len(p.open) > 0 {
		if p.budget < 0 || p.nodes > p.lim.MaxNodes {
			return ErrLimit
		}
		if p.needClose {
			p.needClose = false
			p.end()
			continue
		}
		if p.i >= len(p.s) {
			return p.eof()
		}
		var (
			text   sref
			dec    bool
			isText bool
			err    error
		)
		switch rest := p.s[p.i:]; {
		case rest[0] != '<':
			text, dec, err = p.chars(0)
			isText = true
		case len(rest) < 2:
			err = p.eof()
		case rest[1] == '/':
			err = p.endTag()
		case rest[1] == '?':
			// RFC 6120 §11.1: no processing instructions in XMPP.
			err = p.fail("processing instructions are not allowed")
		case rest[1] != '!':
			err = p.start(false)
		case strings.HasPrefix(rest, "<![CDATA["):
			text, dec, err = p.cdata()
			isText = true
		case strings.HasPrefix(rest, "<!--"):
			err = p.comment()
		default:
			err = p.fail("directives (DTDs) are not allowed")
		}
		if err != nil {
			return err
		}
		if isText {
			p.nodes++
			p.addText(text, dec)
		}
	}
	return nil
}

// addText adds a piece of character data to the pending text: text, or
// p.buf if dec.
func (p *parser) addText(text sref, dec bool) {
	if dec {
		p.budget -= len(p.buf)
	} else {
		p.budget -= text.end - text.off
	}
	switch {
	case p.pend == 0 && !dec:
		p.pend, p.text = 1, text
		return
	case p.pend == 0:
		p.textBuf = p.textBuf[:0]
	case p.pend == 1:
		p.textBuf = append(p.textBuf[:0], p.str(p.text)...)
	}
	p.pend = 2
	if dec {
		p.textBuf = append(p.textBuf, p.buf...)
	} else {
		p.textBuf = append(p.textBuf, p.str(text)...)
	}
}

// flushText makes the pending text the top element's next child.
func (p *parser) flushText() {
	if p.pend == 0 {
		return
	}
	t := p.text
	if p.pend == 2 {
		t = p.keep(string(p.textBuf))
	}
	p.pend = 0
	p.evs = append(p.evs, event{kind: evText, name: t})
	p.evs[p.open[len(p.open)-1].ev].kids++
	p.children++
}

// end closes the top element.
func (p *parser) end() {
	p.flushText()
	f := &p.open[len(p.open)-1]
	p.evs = append(p.evs, event{kind: evEnd})
	p.ns = p.ns[:f.ns]
	p.open = p.open[:len(p.open)-1]
}

// endTag reads an end tag, which must name the top element exactly as
// its start tag did.
func (p *parser) endTag() error {
	p.i += 2
	f := &p.open[len(p.open)-1]
	want := p.s[f.qs:f.qe]
	j := p.i + len(want)
	if !strings.HasPrefix(p.s[p.i:], want) || j < len(p.s) && (p.s[j] >= utf8.RuneSelf || nameByte[p.s[j]]) {
		return p.fail("element <" + want + "> not closed by its end tag")
	}
	p.i = j
	p.space()
	if p.i >= len(p.s) {
		return p.eof()
	}
	if p.s[p.i] != '>' {
		return p.fail("invalid characters in end tag")
	}
	p.i++
	p.end()
	return nil
}

// start reads a start tag or empty-element tag and opens the element,
// applying namespace declarations and the limits in FromTokens' order.
func (p *parser) start(root bool) error {
	p.i++
	qs := p.i
	prefix, local, err := p.qname()
	if err != nil {
		return err
	}
	qe := p.i
	p.tag = p.tag[:0]
	empty := false
	for {
		p.space()
		if p.i >= len(p.s) {
			return p.eof()
		}
		c := p.s[p.i]
		if c == '/' {
			if p.i+1 >= len(p.s) {
				return p.eof()
			}
			if p.s[p.i+1] != '>' {
				p.i++
				return p.fail("expected /> in element")
			}
			p.i += 2
			empty = true
			break
		}
		if c == '>' {
			p.i++
			break
		}
		ap, al, err := p.qname()
		if err != nil {
			return err
		}
		p.space()
		if p.i >= len(p.s) {
			return p.eof()
		}
		if p.s[p.i] != '=' {
			return p.fail("attribute name without =")
		}
		p.i++
		p.space()
		if p.i >= len(p.s) {
			return p.eof()
		}
		q := p.s[p.i]
		if q != '"' && q != '\'' {
			return p.fail("unquoted attribute value")
		}
		p.i++
		v, dec, err := p.chars(q)
		if err != nil {
			return err
		}
		if dec {
			v = p.keep(string(p.buf))
		}
		p.tag = append(p.tag, rawAttr{prefix: ap, local: al, value: v})
	}

	// Namespace declarations apply to the element's own name and
	// attributes (Namespaces in XML §6.1).
	nsMark := len(p.ns)
	for _, a := range p.tag {
		switch {
		case p.is(a.prefix, "xmlns"):
			p.ns = append(p.ns, binding{a.local, a.value})
		case a.prefix.off == a.prefix.end && p.is(a.local, "xmlns"):
			p.ns = append(p.ns, binding{a.prefix, a.value})
		}
	}
	if !root && len(p.open) >= p.lim.MaxDepth {
		return ErrLimit
	}
	if !ncName(p.str(local)) {
		return p.fail("invalid element or attribute name")
	}
	for _, a := range p.tag {
		if !ncName(p.str(a.local)) {
			return p.fail("invalid element or attribute name")
		}
	}

	ev := event{kind: evStart, name: local, space: p.elementSpace(prefix, local)}
	size := p.len(ev.space) + p.len(local)
	for _, a := range p.tag {
		space := p.attrSpace(a.prefix)
		size += p.len(space) + p.len(a.local) + p.len(a.value)
		if !(p.is(space, "xmlns") || p.len(space) == 0 && p.is(a.local, "xmlns")) {
			p.attrs = append(p.attrs, attr{space: space, local: a.local, value: a.value})
			ev.attrs++
		}
	}
	p.budget -= size
	if !root {
		p.nodes++
		p.flushText()
		p.evs[p.open[len(p.open)-1].ev].kids++
		p.children++
	}
	p.elements++
	p.open = append(p.open, frame{ev: len(p.evs), qs: qs, qe: qe, ns: nsMark})
	p.evs = append(p.evs, ev)
	p.needClose = empty
	return nil
}

func (p *parser) len(r sref) int {
	if r.off >= 0 {
		return r.end - r.off
	}
	return len(p.strs[-r.off-1])
}

func (p *parser) is(r sref, s string) bool {
	if r.off >= 0 {
		return r.end-r.off == len(s) && p.s[r.off:r.end] == s
	}
	return p.strs[-r.off-1] == s
}

// lookup returns the namespace bound to prefix.
func (p *parser) lookup(prefix sref) (sref, bool) {
	s := p.str(prefix)
	for i := len(p.ns) - 1; i >= 0; i-- {
		if p.str(p.ns[i].prefix) == s {
			return p.ns[i].uri, true
		}
	}
	return sref{}, false
}

// elementSpace resolves an element's prefix as encoding/xml does: the
// xml prefix is always its namespace, an element named xmlns or with the
// xmlns prefix is left alone, and an unbound prefix stands for itself.
func (p *parser) elementSpace(prefix, local sref) sref {
	switch {
	case p.is(prefix, "xmlns"):
		return prefix
	case p.is(prefix, "xml"):
		return srefXML
	case prefix.off == prefix.end && p.is(local, "xmlns"):
		return prefix
	}
	if uri, ok := p.lookup(prefix); ok {
		return uri
	}
	return prefix
}

// attrSpace resolves an attribute's prefix: no prefix is no namespace.
func (p *parser) attrSpace(prefix sref) sref {
	switch {
	case prefix.off == prefix.end || p.is(prefix, "xmlns"):
		return prefix
	case p.is(prefix, "xml"):
		return srefXML
	}
	if uri, ok := p.lookup(prefix); ok {
		return uri
	}
	return prefix
}
