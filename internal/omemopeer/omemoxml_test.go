package omemopeer_test

import (
	"encoding/base64"
	"fmt"
	"strconv"

	"github.com/balcony-im/balcony/omemo"
	"github.com/balcony-im/balcony/xmltree"
)

// The XML of XEP-0384's PEP items and <encrypted/> element, both
// generations, as far as the tests need it to read what the python-omemo
// peer publishes and sends and to publish and send with Balcony's engine.
// This is test scaffolding, not the OMEMO glue Balcony's client will have.

// Node names and item ids (XEP-0384 §5.3 for OMEMO 2, the 0.3 text for
// eu.siacs.conversations.axolotl).
const (
	nodeDevices2  = "urn:xmpp:omemo:2:devices"
	nodeBundles2  = "urn:xmpp:omemo:2:bundles"
	nodeDevices03 = "eu.siacs.conversations.axolotl.devicelist"
)

func nodeBundles03(id uint32) string {
	return "eu.siacs.conversations.axolotl.bundles:" + strconv.FormatUint(uint64(id), 10)
}

func generation(gen string) omemo.Generation {
	if gen == "2" {
		return omemo.V2
	}
	return omemo.V03
}

func devicesNode(g omemo.Generation) string {
	if g == omemo.V2 {
		return nodeDevices2
	}
	return nodeDevices03
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func unb64(s string) ([]byte, error) { return base64.StdEncoding.DecodeString(s) }

func parseID(s string) (uint32, error) {
	v, err := strconv.ParseUint(s, 10, 32)
	if err != nil || v == 0 || v > omemo.MaxDeviceID {
		return 0, fmt.Errorf("bad id %q", s)
	}
	return uint32(v), nil
}

// deviceListXML is <devices xmlns='urn:xmpp:omemo:2'> or
// <list xmlns='eu.siacs.conversations.axolotl'> naming ids.
func deviceListXML(g omemo.Generation, ids ...uint32) *xmltree.Element {
	root := xmltree.New(g.Namespace(), "list")
	if g == omemo.V2 {
		root = xmltree.New(g.Namespace(), "devices")
	}
	for _, id := range ids {
		root.Append(xmltree.New(g.Namespace(), "device", "id", strconv.FormatUint(uint64(id), 10)))
	}
	return root
}

// deviceListIDs reads a device list item's payload.
func deviceListIDs(g omemo.Generation, el *xmltree.Element) ([]uint32, error) {
	want := "list"
	if g == omemo.V2 {
		want = "devices"
	}
	if el == nil || el.Name.Space != g.Namespace() || el.Name.Local != want {
		return nil, fmt.Errorf("device list payload %v", el)
	}
	var ids []uint32
	for _, d := range el.ChildrenNamed(g.Namespace(), "device") {
		id, err := parseID(d.AttrValue("id"))
		if err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// bundle element names by generation: signed pre-key, its signature,
// identity key, pre-key, and the id attributes of the first and the last.
type bundleNames struct{ spk, spks, ik, pk, spkID, pkID string }

func names(g omemo.Generation) bundleNames {
	if g == omemo.V2 {
		return bundleNames{"spk", "spks", "ik", "pk", "id", "id"}
	}
	return bundleNames{"signedPreKeyPublic", "signedPreKeySignature", "identityKey", "preKeyPublic", "signedPreKeyId", "preKeyId"}
}

// bundleXML serialises an engine bundle as its PEP item payload.
func bundleXML(b *omemo.Bundle) *xmltree.Element {
	ns, n := b.Generation.Namespace(), names(b.Generation)
	root := xmltree.New(ns, "bundle")
	root.Append(xmltree.New(ns, n.spk, n.spkID, strconv.FormatUint(uint64(b.SignedPreKeyID), 10)).AppendText(b64(b.SignedPreKey)))
	root.Append(xmltree.New(ns, n.spks).AppendText(b64(b.SignedPreKeySignature)))
	root.Append(xmltree.New(ns, n.ik).AppendText(b64(b.IdentityKey)))
	pks := xmltree.New(ns, "prekeys")
	for _, pk := range b.PreKeys {
		pks.Append(xmltree.New(ns, n.pk, n.pkID, strconv.FormatUint(uint64(pk.ID), 10)).AppendText(b64(pk.PublicKey)))
	}
	return root.Append(pks)
}

// parseBundle reads a bundle item's payload for device id.
func parseBundle(g omemo.Generation, id uint32, el *xmltree.Element) (*omemo.Bundle, error) {
	ns, n := g.Namespace(), names(g)
	if el == nil || el.Name.Space != ns || el.Name.Local != "bundle" {
		return nil, fmt.Errorf("bundle payload %v", el)
	}
	b := &omemo.Bundle{Generation: g, DeviceID: id}
	var err error
	field := func(local string) []byte {
		c := el.Child(ns, local)
		if c == nil {
			err = fmt.Errorf("bundle without <%s/>", local)
			return nil
		}
		v, e := unb64(c.Text())
		if e != nil {
			err = fmt.Errorf("<%s/>: %w", local, e)
		}
		return v
	}
	b.SignedPreKey, b.SignedPreKeySignature, b.IdentityKey = field(n.spk), field(n.spks), field(n.ik)
	if err != nil {
		return nil, err
	}
	if b.SignedPreKeyID, err = parseID(el.Child(ns, n.spk).AttrValue(n.spkID)); err != nil {
		return nil, err
	}
	pks := el.Child(ns, "prekeys")
	if pks == nil {
		return nil, fmt.Errorf("bundle without <prekeys/>")
	}
	for _, pk := range pks.ChildrenNamed(ns, n.pk) {
		id, err := parseID(pk.AttrValue(n.pkID))
		if err != nil {
			return nil, err
		}
		key, err := unb64(pk.Text())
		if err != nil {
			return nil, err
		}
		b.PreKeys = append(b.PreKeys, omemo.BundlePreKey{ID: id, PublicKey: key})
	}
	return b, nil
}

// encryptedXML serialises an engine message as <encrypted/>: OMEMO 2
// groups the keys by JID, 0.3 lists them in the header with the IV. With
// explicitFalse, keys without a key exchange say so (kex='false',
// prekey='false'), which XML Schema's boolean allows.
func encryptedXML(m *omemo.Message, explicitFalse bool) *xmltree.Element {
	ns := m.Generation.Namespace()
	header := xmltree.New(ns, "header", "sid", strconv.FormatUint(uint64(m.SenderDeviceID), 10))
	key := func(k omemo.Key) *xmltree.Element {
		el := xmltree.New(ns, "key", "rid", strconv.FormatUint(uint64(k.Address.DeviceID), 10))
		attr := "prekey"
		if m.Generation == omemo.V2 {
			attr = "kex"
		}
		if k.PreKey {
			el.SetAttr(attr, "true")
		} else if explicitFalse {
			el.SetAttr(attr, "false")
		}
		return el.AppendText(b64(k.Data))
	}
	if m.Generation == omemo.V2 {
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

// incoming extracts from an <encrypted/> element what the engine needs to
// decrypt it for device to (whose account is to.JID), and the recipient
// devices of every key by JID (0.3 has no JIDs: its keys are listed under
// "").
func incoming(g omemo.Generation, enc *xmltree.Element, sender string, to omemo.Address) (*omemo.Incoming, map[string][]uint32, error) {
	ns := g.Namespace()
	if enc == nil || enc.Name.Space != ns || enc.Name.Local != "encrypted" {
		return nil, nil, fmt.Errorf("not an %v <encrypted/>: %v", g, enc)
	}
	header := enc.Child(ns, "header")
	if header == nil {
		return nil, nil, fmt.Errorf("no <header/>")
	}
	sid, err := parseID(header.AttrValue("sid"))
	if err != nil {
		return nil, nil, err
	}
	in := &omemo.Incoming{From: omemo.Address{JID: sender, DeviceID: sid}}
	rids := map[string][]uint32{}
	found := false
	read := func(jid string, k *xmltree.Element) error {
		rid, err := parseID(k.AttrValue("rid"))
		if err != nil {
			return err
		}
		rids[jid] = append(rids[jid], rid)
		if rid != to.DeviceID || (g == omemo.V2 && jid != to.JID) {
			return nil
		}
		found = true
		attr := "prekey"
		if g == omemo.V2 {
			attr = "kex"
		}
		switch v := k.AttrValue(attr); v {
		case "true", "1":
			in.PreKey = true
		case "", "false", "0":
		default:
			return fmt.Errorf("%s=%q", attr, v)
		}
		in.Key, err = unb64(k.Text())
		return err
	}
	if g == omemo.V2 {
		for _, keys := range header.ChildrenNamed(ns, "keys") {
			for _, k := range keys.ChildrenNamed(ns, "key") {
				if err := read(keys.AttrValue("jid"), k); err != nil {
					return nil, nil, err
				}
			}
		}
	} else {
		for _, k := range header.ChildrenNamed(ns, "key") {
			if err := read("", k); err != nil {
				return nil, nil, err
			}
		}
		if in.IV, err = unb64(header.ChildText(ns, "iv")); err != nil {
			return nil, nil, err
		}
	}
	if !found {
		return nil, rids, fmt.Errorf("no key for %v", to)
	}
	if p := enc.Child(ns, "payload"); p != nil {
		if in.Payload, err = unb64(p.Text()); err != nil {
			return nil, nil, err
		}
	}
	return in, rids, nil
}
