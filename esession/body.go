package esession

// Body returns the text of the first jabber:client <body/> in Content, or
// "" and false.
func (m Message) Body() (string, bool) {
	for _, el := range m.Content {
		if el.Name.Space == nsClient && el.Name.Local == "body" {
			return el.Text(), true
		}
	}
	return "", false
}
