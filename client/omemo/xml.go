package omemo

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	engine "github.com/balcony-im/balcony/omemo"
	"github.com/balcony-im/balcony/xmltree"
)

// The PEP nodes of XEP-0384: OMEMO 2 (§5.3) keeps every device's bundle
// as one item of one node, OMEMO 0.3 one node per device.
const (
	NodeDevices2  = "urn:xmpp:omemo:2:devices"
	NodeBundles2  = "urn:xmpp:omemo:2:bundles"
	NodeDevices03 = "eu.siacs.conversations.axolotl.devicelist"
	// NodeBundles03Prefix is followed by the device id.
	NodeBundles03Prefix = "eu.siacs.conversations.axolotl.bundles:"
)

// Limits on what a peer publishes or sends; what goes beyond is ignored
// (devices, pre-keys) or refused (keys of a message).
const (
	// MaxDevices is how many devices of one account are read from a
	// device list.
	MaxDevices = 64
	// maxPreKeys is how many pre-keys of a bundle are read (XEP-0384 asks
	// for about 100).
	maxPreKeys = 200
	// maxKeys is how many <key/> elements a message may carry.
	maxKeys = 1000
	// MaxLabel is the longest device label kept, in bytes.
	MaxLabel = 200
)

// DevicesNode returns the device list node of generation g.
func DevicesNode(g engine.Generation) string {
	if g == engine.V2 {
		return NodeDevices2
	}
	return NodeDevices03
}

// BundleItem returns the node and item id of a device's bundle.
func BundleItem(g engine.Generation, id uint32) (node, item string) {
	sid := strconv.FormatUint(uint64(id), 10)
	if g == engine.V2 {
		return NodeBundles2, sid
	}
	return NodeBundles03Prefix + sid, "current"
}

// ParseError reports a device list, bundle or <encrypted/> element that
// cannot be used.
type ParseError struct {
	What string // "device list", "bundle", "encrypted", "envelope"
	Err  error
}

func (e *ParseError) Error() string { return "omemo: invalid " + e.What + ": " + e.Err.Error() }

func (e *ParseError) Unwrap() error { return e.Err }

func parseErr(what, format string, args ...any) error {
	return &ParseError{What: what, Err: fmt.Errorf(format, args...)}
}

// parseID reads a device, pre-key or signed pre-key id: 1 to 2^31-1.
func parseID(s string) (uint32, bool) {
	v, err := strconv.ParseUint(s, 10, 32)
	if err != nil || v == 0 || v > engine.MaxDeviceID {
		return 0, false
	}
	return uint32(v), true
}

func formatID(id uint32) string { return strconv.FormatUint(uint64(id), 10) }

// decodeB64 reads Base64 text, ignoring white space (some clients wrap
// it).
func decodeB64(s string) ([]byte, error) {
	if strings.ContainsAny(s, " \t\r\n") {
		s = strings.Map(func(r rune) rune {
			if r == ' ' || r == '\t' || r == '\r' || r == '\n' {
				return -1
			}
			return r
		}, s)
	}
	return base64.StdEncoding.DecodeString(s)
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// ListedDevice is one <device/> of a device list. Label and LabelSig are
// OMEMO 2's optional label and its signature (XEP-0384 §5.3.1), to be
// checked against the device's identity key (engine.VerifyLabel) before
// the label is shown.
type ListedDevice struct {
	ID       uint32
	Label    string
	LabelSig []byte
}

// ParseDeviceList reads a device list item's payload: <devices
// xmlns='urn:xmpp:omemo:2'> or <list xmlns='eu.siacs.conversations.axolotl'>.
// A <device/> with an invalid id is skipped, a repeated id counts once,
// and at most MaxDevices are read; an element of another name is an
// error.
func ParseDeviceList(g engine.Generation, el *xmltree.Element) ([]ListedDevice, error) {
	ns := g.Namespace()
	want := "list"
	if g == engine.V2 {
		want = "devices"
	}
	if el == nil || el.Name.Space != ns || el.Name.Local != want {
		return nil, parseErr("device list", "not a <%s xmlns='%s'/>", want, ns)
	}
	var out []ListedDevice
	seen := map[uint32]bool{}
	for _, d := range el.ChildrenNamed(ns, "device") {
		id, ok := parseID(d.AttrValue("id"))
		if !ok || seen[id] {
			continue
		}
		if len(out) == MaxDevices {
			break
		}
		seen[id] = true
		ld := ListedDevice{ID: id}
		if g == engine.V2 {
			label, hasLabel := d.LookupAttr("label")
			sig, err := decodeB64(d.AttrValue("labelsig"))
			if hasLabel && err == nil && len(sig) > 0 && len(label) <= MaxLabel {
				ld.Label, ld.LabelSig = label, sig
			}
		}
		out = append(out, ld)
	}
	return out, nil
}

// deviceListElement builds a device list payload.
func deviceListElement(g engine.Generation, devs []ListedDevice) *xmltree.Element {
	ns := g.Namespace()
	root := xmltree.New(ns, "list")
	if g == engine.V2 {
		root = xmltree.New(ns, "devices")
	}
	for _, d := range devs {
		e := xmltree.New(ns, "device", "id", formatID(d.ID))
		if g == engine.V2 && d.Label != "" && len(d.LabelSig) > 0 {
			e.SetAttr("label", d.Label)
			e.SetAttr("labelsig", b64(d.LabelSig))
		}
		root.Append(e)
	}
	return root
}

// bundleNames are the element and attribute names of a generation's
// bundle: signed pre-key, its signature, identity key, pre-key, and the
// id attributes of the signed pre-key and of the pre-keys.
type bundleNames struct{ spk, spks, ik, pk, spkID, pkID string }

func namesOf(g engine.Generation) bundleNames {
	if g == engine.V2 {
		return bundleNames{"spk", "spks", "ik", "pk", "id", "id"}
	}
	return bundleNames{"signedPreKeyPublic", "signedPreKeySignature", "identityKey", "preKeyPublic", "signedPreKeyId", "preKeyId"}
}

// ParseBundle reads the bundle of device id from its item's payload (XML
// only: the keys and signature are checked by engine.Bundle.Verify). A
// pre-key with an invalid id or key encoding is skipped; at most 200 are
// read.
func ParseBundle(g engine.Generation, id uint32, el *xmltree.Element) (*engine.Bundle, error) {
	ns, n := g.Namespace(), namesOf(g)
	if el == nil || el.Name.Space != ns || el.Name.Local != "bundle" {
		return nil, parseErr("bundle", "not a <bundle xmlns='%s'/>", ns)
	}
	b := &engine.Bundle{Generation: g, DeviceID: id}
	field := func(local string) ([]byte, error) {
		c := el.Child(ns, local)
		if c == nil {
			return nil, parseErr("bundle", "no <%s/>", local)
		}
		v, err := decodeB64(c.Text())
		if err != nil || len(v) == 0 {
			return nil, parseErr("bundle", "<%s/> is not Base64", local)
		}
		return v, nil
	}
	var err error
	if b.SignedPreKey, err = field(n.spk); err != nil {
		return nil, err
	}
	if b.SignedPreKeySignature, err = field(n.spks); err != nil {
		return nil, err
	}
	if b.IdentityKey, err = field(n.ik); err != nil {
		return nil, err
	}
	var ok bool
	if b.SignedPreKeyID, ok = parseID(el.Child(ns, n.spk).AttrValue(n.spkID)); !ok {
		return nil, parseErr("bundle", "invalid signed pre-key id")
	}
	pks := el.Child(ns, "prekeys")
	if pks == nil {
		return nil, parseErr("bundle", "no <prekeys/>")
	}
	for _, pk := range pks.ChildrenNamed(ns, n.pk) {
		if len(b.PreKeys) == maxPreKeys {
			break
		}
		id, ok := parseID(pk.AttrValue(n.pkID))
		key, err := decodeB64(pk.Text())
		if !ok || err != nil || len(key) == 0 {
			continue
		}
		b.PreKeys = append(b.PreKeys, engine.BundlePreKey{ID: id, PublicKey: key})
	}
	if len(b.PreKeys) == 0 {
		return nil, parseErr("bundle", "no usable pre-key")
	}
	return b, nil
}

// bundleElement builds a bundle item's payload.
func bundleElement(b *engine.Bundle) *xmltree.Element {
	ns, n := b.Generation.Namespace(), namesOf(b.Generation)
	root := xmltree.New(ns, "bundle")
	root.Append(xmltree.New(ns, n.spk, n.spkID, formatID(b.SignedPreKeyID)).AppendText(b64(b.SignedPreKey)))
	root.Append(xmltree.New(ns, n.spks).AppendText(b64(b.SignedPreKeySignature)))
	root.Append(xmltree.New(ns, n.ik).AppendText(b64(b.IdentityKey)))
	pks := xmltree.New(ns, "prekeys")
	for _, pk := range b.PreKeys {
		pks.Append(xmltree.New(ns, n.pk, n.pkID, formatID(pk.ID)).AppendText(b64(pk.PublicKey)))
	}
	return root.Append(pks)
}

// encryptedElement builds the <encrypted/> element of a message: OMEMO 2
// groups the keys by bare JID (<keys jid=…>), 0.3 lists them in the
// header with the IV.
func encryptedElement(m *engine.Message) *xmltree.Element {
	ns := m.Generation.Namespace()
	header := xmltree.New(ns, "header", "sid", formatID(m.SenderDeviceID))
	key := func(k engine.Key) *xmltree.Element {
		el := xmltree.New(ns, "key", "rid", formatID(k.Address.DeviceID))
		if k.PreKey {
			if m.Generation == engine.V2 {
				el.SetAttr("kex", "true")
			} else {
				el.SetAttr("prekey", "true")
			}
		}
		return el.AppendText(b64(k.Data))
	}
	if m.Generation == engine.V2 {
		byJID := map[string]*xmltree.Element{}
		for _, k := range m.Keys {
			keys := byJID[k.Address.JID]
			if keys == nil {
				keys = xmltree.New(ns, "keys", "jid", k.Address.JID)
				byJID[k.Address.JID] = keys
				header.Append(keys)
			}
			keys.Append(key(k))
		}
	} else {
		for _, k := range m.Keys {
			header.Append(key(k))
		}
		header.Append(xmltree.New(ns, "iv").AppendText(b64(m.IV)))
	}
	enc := xmltree.New(ns, "encrypted").Append(header)
	if m.Payload != nil {
		enc.Append(xmltree.New(ns, "payload").AppendText(b64(m.Payload)))
	}
	return enc
}

// received is what an <encrypted/> element carries for one device.
type received struct {
	sid uint32
	// found reports a key for the device; key and preKey are its
	// content.
	found  bool
	key    []byte
	preKey bool
	iv     []byte
	// payload is nil for an empty message.
	payload []byte
}

// errBool is a kex or prekey attribute that is not an XML Schema boolean.
var errBool = errors.New("the key exchange flag is not a boolean")

// parseEncrypted reads an <encrypted/> element of generation g for our
// device (self is our bare JID; OMEMO 0.3 does not name accounts, so only
// the device id is compared there). Every key is checked for form, not
// only ours, so that a malformed message is reported as such.
func parseEncrypted(g engine.Generation, enc *xmltree.Element, self string, device uint32) (*received, error) {
	ns := g.Namespace()
	if enc == nil || enc.Name.Space != ns || enc.Name.Local != "encrypted" {
		return nil, parseErr("encrypted", "not an <encrypted xmlns='%s'/>", ns)
	}
	header := enc.Child(ns, "header")
	if header == nil {
		return nil, parseErr("encrypted", "no <header/>")
	}
	r := new(received)
	var ok bool
	if r.sid, ok = parseID(header.AttrValue("sid")); !ok {
		return nil, parseErr("encrypted", "invalid sender device id %q", header.AttrValue("sid"))
	}
	n := 0
	read := func(forUs bool, k *xmltree.Element) error {
		if n++; n > maxKeys {
			return parseErr("encrypted", "more than %d keys", maxKeys)
		}
		rid, ok := parseID(k.AttrValue("rid"))
		if !ok {
			return parseErr("encrypted", "invalid recipient device id %q", k.AttrValue("rid"))
		}
		attr := "prekey"
		if g == engine.V2 {
			attr = "kex"
		}
		pre := false
		switch v := k.AttrValue(attr); v {
		case "true", "1":
			pre = true
		case "", "false", "0":
		default:
			return &ParseError{What: "encrypted", Err: fmt.Errorf("%w: %s=%q", errBool, attr, v)}
		}
		if !forUs || rid != device || r.found {
			return nil
		}
		data, err := decodeB64(k.Text())
		if err != nil || len(data) == 0 {
			return parseErr("encrypted", "the key for device %d is not Base64", rid)
		}
		r.found, r.key, r.preKey = true, data, pre
		return nil
	}
	if g == engine.V2 {
		for _, keys := range header.ChildrenNamed(ns, "keys") {
			forUs := keys.AttrValue("jid") == self
			for _, k := range keys.ChildrenNamed(ns, "key") {
				if err := read(forUs, k); err != nil {
					return nil, err
				}
			}
		}
	} else {
		for _, k := range header.ChildrenNamed(ns, "key") {
			if err := read(true, k); err != nil {
				return nil, err
			}
		}
		iv, err := decodeB64(header.ChildText(ns, "iv"))
		if err != nil || (len(iv) != 12 && len(iv) != 16) {
			return nil, parseErr("encrypted", "no IV of 12 or 16 bytes")
		}
		r.iv = iv
	}
	if p := enc.Child(ns, "payload"); p != nil {
		data, err := decodeB64(p.Text())
		if err != nil {
			return nil, parseErr("encrypted", "the payload is not Base64")
		}
		r.payload = data
	}
	return r, nil
}
