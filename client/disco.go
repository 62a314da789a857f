package client

import (
	"context"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
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
	iq := xmltree.New(NSClient, "iq", "type", "get", "to", to.String())
	q := xmltree.New(NSDiscoInfo, "query")
	if node != "" {
		q.SetAttr("node", node)
	}
	iq.Append(q)
	resp, err := c.IQ(ctx, iq)
	if err != nil {
		return DiscoInfo{}, err
	}
	rq := resp.Child(NSDiscoInfo, "query")
	if rq == nil {
		return DiscoInfo{}, errors.New("client: disco#info response without query")
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
	return info, nil
}

// VerifyCaps fetches disco#info for node#ver from the entity and checks
// that it hashes to ver (XEP-0115 §5.4).
func (c *Client) VerifyCaps(ctx context.Context, from jid.JID, node, ver string) (DiscoInfo, error) {
	info, err := c.QueryInfo(ctx, from, node+"#"+ver)
	if err != nil {
		return info, err
	}
	if got := CapsHash(info.Identities, info.Features); got != ver {
		return info, fmt.Errorf("client: caps hash mismatch for %s: advertised %s, computed %s", from, ver, got)
	}
	return info, nil
}
