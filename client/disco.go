package client

import (
	"context"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"

	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/eme"

	"github.com/balcony-im/balcony/xmltree"
)

// Identity is a XEP-0030 identity.
type Identity struct {
	Category, Type, Lang, Name string
}

// BaseFeatures are the service discovery features every Balcony client
// advertises; mechanisms add their own with AddFeature.
var BaseFeatures = []string{
	NSDiscoInfo,
	NSCaps,
	NSCarbons,
	NSReceipts,
	NSPing,
	NSVersion,
	NSSID,
	eme.NS, // XEP-0380 §5: supporting entities advertise urn:xmpp:eme:0
	"http://jabber.org/protocol/chatstates",
}

type discoState struct {
	mu         sync.Mutex
	identities []Identity
	features   map[string]bool
	ver        string
}

func (d *discoState) init() {
	d.identities = []Identity{{Category: "client", Type: "pc", Name: "Balcony"}}
	d.features = map[string]bool{}
	for _, f := range BaseFeatures {
		d.features[f] = true
	}
	d.ver = ""
}

// AddFeature advertises a disco#info feature. The caps hash changes; if
// the client is connected, a new presence announces it.
func (c *Client) AddFeature(features ...string) {
	c.disco.mu.Lock()
	changed := false
	for _, f := range features {
		if !c.disco.features[f] {
			c.disco.features[f] = true
			changed = true
		}
	}
	c.disco.ver = ""
	c.disco.mu.Unlock()
	if changed {
		_ = c.rebroadcast(context.Background())
	}
}

// Features returns our advertised features, sorted.
func (c *Client) Features() []string {
	c.disco.mu.Lock()
	defer c.disco.mu.Unlock()
	return c.disco.sortedFeatures()
}

func (d *discoState) sortedFeatures() []string {
	out := make([]string, 0, len(d.features))
	for f := range d.features {
		out = append(out, f)
	}
	sort.Strings(out)
	return out
}

// CapsVer returns our XEP-0115 verification string (SHA-1).
func (c *Client) CapsVer() string {
	c.disco.mu.Lock()
	defer c.disco.mu.Unlock()
	if c.disco.ver == "" {
		c.disco.ver = CapsHash(c.disco.identities, c.disco.sortedFeatures())
	}
	return c.disco.ver
}

// CapsHash computes the XEP-0115 §5.1 verification string with SHA-1 for
// identities and features (no extended forms).
func CapsHash(ids []Identity, features []string) string {
	return capsHash(ids, features, nil)
}

// capsForm is an extended disco#info form (XEP-0128) as XEP-0115 §5.1
// hashes it: its FORM_TYPE and its other fields.
type capsForm struct {
	formType string
	fields   []capsField
}

type capsField struct {
	name   string
	values []string
}

// capsHash computes the XEP-0115 §5.1 verification string with SHA-1.
func capsHash(ids []Identity, features []string, forms []capsForm) string {
	ids = append([]Identity(nil), ids...)
	sort.Slice(ids, func(i, j int) bool {
		a, b := ids[i], ids[j]
		if a.Category != b.Category {
			return a.Category < b.Category
		}
		if a.Type != b.Type {
			return a.Type < b.Type
		}
		if a.Lang != b.Lang {
			return a.Lang < b.Lang
		}
		return a.Name < b.Name
	})
	fs := append([]string(nil), features...)
	sort.Strings(fs)
	var s strings.Builder
	for _, id := range ids {
		fmt.Fprintf(&s, "%s/%s/%s/%s<", id.Category, id.Type, id.Lang, id.Name)
	}
	for _, f := range fs {
		s.WriteString(f)
		s.WriteByte('<')
	}
	forms = slices.Clone(forms)
	slices.SortStableFunc(forms, func(a, b capsForm) int { return strings.Compare(a.formType, b.formType) })
	for _, f := range forms {
		s.WriteString(f.formType + "<")
		fields := slices.Clone(f.fields)
		slices.SortStableFunc(fields, func(a, b capsField) int { return strings.Compare(a.name, b.name) })
		for _, fl := range fields {
			s.WriteString(fl.name + "<")
			for _, v := range slices.Sorted(slices.Values(fl.values)) {
				s.WriteString(v + "<")
			}
		}
	}
	sum := sha1.Sum([]byte(s.String()))
	return base64.StdEncoding.EncodeToString(sum[:])
}

func (d *discoState) answer(c *Client, req, q *xmltree.Element) *xmltree.Element {
	node := q.AttrValue("node")
	ver := c.CapsVer()
	if node != "" && node != c.cfg.CapsNode+"#"+ver {
		return errorReply(req, "cancel", "item-not-found")
	}
	resp := xmltree.New(NSDiscoInfo, "query")
	if node != "" {
		resp.SetAttr("node", node)
	}
	d.mu.Lock()
	for _, id := range d.identities {
		e := xmltree.New(NSDiscoInfo, "identity", "category", id.Category, "type", id.Type)
		if id.Name != "" {
			e.SetAttr("name", id.Name)
		}
		if id.Lang != "" {
			e.Attr = append(e.Attr, xmlLang(id.Lang))
		}
		resp.Append(e)
	}
	for _, f := range d.sortedFeatures() {
		resp.Append(xmltree.New(NSDiscoInfo, "feature", "var", f))
	}
	d.mu.Unlock()
	return resultReply(req, resp)
}

// DiscoInfo is the result of a disco#info query.
type DiscoInfo struct {
	Identities []Identity
	Features   []string
}

// Has reports whether the entity advertises feature.
func (d DiscoInfo) Has(feature string) bool {
	for _, f := range d.Features {
		if f == feature {
			return true
		}
	}
	return false
}

// QueryInfo sends a disco#info query to "to" for node (may be empty).
func (c *Client) QueryInfo(ctx context.Context, to jid.JID, node string) (DiscoInfo, error) {
	info, _, err := c.queryInfo(ctx, to, node)
	return info, err
}

// queryInfo is QueryInfo, which also returns the <query/> of the answer.
func (c *Client) queryInfo(ctx context.Context, to jid.JID, node string) (DiscoInfo, *xmltree.Element, error) {
	iq := xmltree.New(NSClient, "iq", "type", "get", "to", to.String())
	q := xmltree.New(NSDiscoInfo, "query")
	if node != "" {
		q.SetAttr("node", node)
	}
	iq.Append(q)
	resp, err := c.IQ(ctx, iq)
	if err != nil {
		return DiscoInfo{}, nil, err
	}
	rq := resp.Child(NSDiscoInfo, "query")
	if rq == nil {
		return DiscoInfo{}, nil, errors.New("client: disco#info response without query")
	}
	var info DiscoInfo
	for _, e := range rq.ChildrenNamed(NSDiscoInfo, "identity") {
		info.Identities = append(info.Identities, Identity{
			Category: e.AttrValue("category"), Type: e.AttrValue("type"),
			Name: e.AttrValue("name"), Lang: langOf(e),
		})
	}
	for _, e := range rq.ChildrenNamed(NSDiscoInfo, "feature") {
		info.Features = append(info.Features, e.AttrValue("var"))
	}
	return info, rq, nil
}

// VerifyCaps fetches disco#info for node#ver from the entity and checks
// that it hashes to ver with SHA-1 (XEP-0115 §5.4): an answer with two
// identical identities, features or extended forms (XEP-0128) is
// ill-formed, and the hash covers the extended forms whose FORM_TYPE is
// hidden.
func (c *Client) VerifyCaps(ctx context.Context, from jid.JID, node, ver string) (DiscoInfo, error) {
	info, rq, err := c.queryInfo(ctx, from, node+"#"+ver)
	if err != nil {
		return info, err
	}
	forms, err := capsForms(rq)
	if err == nil {
		err = capsDistinct(info)
	}
	if err != nil {
		return info, fmt.Errorf("client: ill-formed disco#info from %s (XEP-0115 §5.4): %w", from, err)
	}
	if got := capsHash(info.Identities, info.Features, forms); got != ver {
		return info, fmt.Errorf("client: caps hash mismatch for %s: advertised %s, computed %s", from, ver, got)
	}
	return info, nil
}

// capsDistinct checks XEP-0115 §5.4 steps 3.3 and 3.4: no two identities
// alike in category, type, language and name, no two features alike.
func capsDistinct(info DiscoInfo) error {
	ids := map[Identity]bool{}
	for _, id := range info.Identities {
		if ids[id] {
			return fmt.Errorf("identity %s/%s/%s/%s given twice", id.Category, id.Type, id.Lang, id.Name)
		}
		ids[id] = true
	}
	features := map[string]bool{}
	for _, f := range info.Features {
		if features[f] {
			return fmt.Errorf("feature %q given twice", f)
		}
		features[f] = true
	}
	return nil
}

// capsForms returns the extended forms of a disco#info answer that the
// verification string covers (XEP-0115 §5.4 steps 3.5 and 3.6): those
// whose FORM_TYPE field is hidden; a form without one is ignored. Two
// forms of one FORM_TYPE, or a form with two FORM_TYPE fields or with
// differing values in one, make the answer ill-formed.
func capsForms(q *xmltree.Element) ([]capsForm, error) {
	var forms []capsForm
	seen := map[string]bool{}
	for _, x := range q.ChildrenNamed(NSDataForms, "x") {
		var f capsForm
		typed, hidden := false, false
		for _, fl := range x.ChildrenNamed(NSDataForms, "field") {
			var values []string
			for _, v := range fl.ChildrenNamed(NSDataForms, "value") {
				values = append(values, v.Text())
			}
			if fl.AttrValue("var") != "FORM_TYPE" {
				f.fields = append(f.fields, capsField{name: fl.AttrValue("var"), values: values})
				continue
			}
			if typed {
				return nil, errors.New("a form with two FORM_TYPE fields")
			}
			typed = true
			for _, v := range values {
				if v != values[0] {
					return nil, fmt.Errorf("FORM_TYPE %q and %q in one form", values[0], v)
				}
			}
			if len(values) > 0 {
				f.formType, hidden = values[0], fl.AttrValue("type") == "hidden"
			}
		}
		if f.formType == "" {
			continue
		}
		if seen[f.formType] {
			return nil, fmt.Errorf("two forms of FORM_TYPE %q", f.formType)
		}
		seen[f.formType] = true
		if hidden {
			forms = append(forms, f)
		}
	}
	return forms, nil
}
