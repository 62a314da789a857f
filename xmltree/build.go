package xmltree

import "encoding/xml"

// buildFrame is an element being filled in: its index and the index of
// its next child.
type buildFrame struct{ el, next int }

// tree builds the tree the first pass recorded. It makes one allocation
// for all elements, one for all attributes and one for all child lists,
// each list capacity-limited so that an append to one never writes into
// another, plus one for each text node.
func (p *parser) tree() *Element {
	els := make([]Element, p.elements)
	var attrs []xml.Attr
	if len(p.attrs) > 0 {
		attrs = make([]xml.Attr, len(p.attrs))
	}
	var kids []Node
	if p.children > 0 {
		kids = make([]Node, p.children)
	}
	stk := p.build[:0]
	ei, ai, ki := 0, 0, 0
	for i := range p.evs {
		ev := &p.evs[i]
		switch ev.kind {
		case evStart:
			el := &els[ei]
			el.Name = xml.Name{Space: p.str(ev.space), Local: p.str(ev.name)}
			if n := ev.attrs; n > 0 {
				el.Attr = attrs[ai : ai+n : ai+n]
				for j, a := range p.attrs[ai : ai+n] {
					el.Attr[j] = xml.Attr{Name: xml.Name{Space: p.str(a.space), Local: p.str(a.local)}, Value: p.str(a.value)}
				}
				ai += n
			}
			if n := ev.kids; n > 0 {
				el.Children = kids[ki : ki+n : ki+n]
				ki += n
			}
			if len(stk) > 0 {
				f := &stk[len(stk)-1]
				els[f.el].Children[f.next] = el
				f.next++
			}
			stk = append(stk, buildFrame{el: ei})
			ei++
		case evEnd:
			stk = stk[:len(stk)-1]
		case evText:
			f := &stk[len(stk)-1]
			els[f.el].Children[f.next] = CharData(p.str(ev.name))
			f.next++
		}
	}
	p.build = stk
	return &els[0]
}
