package esession

import (
	"io"

	"github.com/balcony-im/balcony/esession/internal/xmlfrag"
)

// firstBody returns the text of the first top-level jabber:client <body/>
// in validated content.
func firstBody(content []byte) (string, bool) {
	var lx xmlfrag.Lexer
	var sc xmlfrag.Scope
	lx.Reset(content)
	sc.Reset(nsClient)
	var t xmlfrag.Token
	var text []byte
	in := false
	for {
		if err := lx.Next(&t); err == io.EOF || err != nil {
			return "", false
		}
		switch t.Kind {
		case xmlfrag.StartTag:
			depth := sc.Depth()
			ns, err := sc.Push(&t)
			if err != nil {
				return "", false
			}
			if depth == 0 && string(ns) == nsClient && string(t.Local) == "body" {
				if t.Empty {
					return "", true
				}
				in = true
			}
			if t.Empty {
				sc.Pop()
			}
		case xmlfrag.EndTag:
			sc.Pop()
			if in && sc.Depth() == 0 {
				return string(text), true
			}
		case xmlfrag.Text:
			if in && sc.Depth() == 1 {
				text = xmlfrag.AppendDecoded(text, t.Data)
			}
		case xmlfrag.CDATA:
			if in && sc.Depth() == 1 {
				text = append(text, t.Data...)
			}
		}
	}
}
