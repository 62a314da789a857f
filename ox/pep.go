package ox

import (
	"bytes"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/xmltree"
)

// PubKey is the item payload of a public key data node (XEP-0373 §4.1):
// <pubkey xmlns='urn:xmpp:openpgp:0'><data>BASE64</data></pubkey>.
type PubKey struct {
	// Data is the binary transferable public key; publish the output of
	// [Key.MarshalPublic] with minimal set.
	Data []byte

	// Date is the optional legacy 'date' attribute some clients send; the
	// XEP now puts the publication time in the item id ([FormatTime]).
	// Zero omits it.
	Date time.Time

	// Armored is set by parsing when the key data was ASCII armor (directly,
	// or Base64 of an armored file, as some clients publish) instead of
	// Base64 of the binary key. Data then holds the de-armored binary key.
	Armored bool
}

// Element returns the <pubkey/> element, the item to publish.
func (p PubKey) Element() *xmltree.Element {
	el := xmltree.New(NS, "pubkey")
	if !p.Date.IsZero() {
		el.SetAttr("date", FormatTime(p.Date))
	}
	return el.Append(xmltree.New(NS, "data").AppendText(base64.StdEncoding.EncodeToString(p.Data)))
}

// ParsePubKey parses a <pubkey/> element. It is strict about structure but
// tolerant of what real publishers do: white space in the Base64, missing
// padding, and ASCII armor (raw, or Base64 of armor text). A 'date' that
// does not parse is ignored, and so are unknown child elements.
func ParsePubKey(el *xmltree.Element) (*PubKey, error) {
	if el.Name.Space != NS || el.Name.Local != "pubkey" {
		return nil, fmt.Errorf("ox: expected <pubkey xmlns='%s'/>, got {%s}%s", NS, el.Name.Space, el.Name.Local)
	}
	p := new(PubKey)
	if v, ok := el.LookupAttr("date"); ok {
		p.Date, _ = ParseTime(v)
	}
	found := false
	for _, n := range el.Children {
		d, ok := n.(*xmltree.Element)
		if !ok || !inNS(d.Name, "data") {
			continue
		}
		if found {
			return nil, errors.New("ox: <pubkey/> with more than one <data/>")
		}
		found = true
		text, err := leafText(d)
		if err != nil {
			return nil, err
		}
		if p.Data, p.Armored, err = decodeKeyData(text); err != nil {
			return nil, fmt.Errorf("ox: <pubkey/> <data/>: %w", err)
		}
	}
	if !found {
		return nil, errors.New("ox: <pubkey/> without <data/>")
	}
	return p, nil
}

// inNS reports whether a child element has the given local name in the OX
// namespace; an empty namespace (an element built without one) counts as
// inherited.
func inNS(n xml.Name, local string) bool {
	return n.Local == local && (n.Space == NS || n.Space == "")
}

// decodeKeyData decodes Base64 key data, accepting ASCII armor in its place.
func decodeKeyData(text string) (data []byte, armored bool, err error) {
	if t := strings.TrimSpace(text); strings.HasPrefix(t, "-----BEGIN PGP") {
		data, err := dearmor([]byte(t))
		return data, true, err
	}
	data, err = decodeBase64(text)
	if err != nil {
		return nil, false, err
	}
	if t := bytes.TrimSpace(data); bytes.HasPrefix(t, []byte("-----BEGIN PGP")) {
		data, err := dearmor(t)
		return data, true, err
	}
	if len(data) == 0 {
		return nil, false, errors.New("empty key data")
	}
	return data, false, nil
}

func dearmor(b []byte) ([]byte, error) {
	block, err := armor.Decode(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("invalid ASCII armor: %w", err)
	}
	var out bytes.Buffer
	if _, err := out.ReadFrom(block.Body); err != nil {
		return nil, fmt.Errorf("invalid ASCII armor: %w", err)
	}
	return out.Bytes(), nil
}

// KeyMetadata is one <pubkey-metadata/> entry of the metadata node.
type KeyMetadata struct {
	// Fingerprint is the upper-case v4 fingerprint string.
	Fingerprint string

	// Date is when the key was published or updated; zero if the publisher
	// left it out or sent something unparseable (see the list's Problems).
	Date time.Time

	// Node is the data node to fetch the key from. It is built from the
	// fingerprint exactly as published, which differs from
	// PublicKeyNode(Fingerprint) only for non-conforming lower-case entries.
	Node string
}

// PublicKeysList is the item payload of the metadata node (XEP-0373 §4.2):
// <public-keys-list xmlns='urn:xmpp:openpgp:0'> with one <pubkey-metadata
// v4-fingerprint='…' date='…'/> per announced key.
type PublicKeysList struct {
	Keys []KeyMetadata

	// Problems lists what parsing had to repair or skip, one
	// [*MetadataError] per entry. Entries with an invalid fingerprint and
	// duplicates are dropped; lower-case fingerprints are kept (upper-cased,
	// with Node pointing at the published name) and entries without a valid
	// date are kept with a zero Date. Problems is never marshalled.
	Problems []error
}

// Problems found in a metadata list entry. They wrap into [*MetadataError].
var (
	ErrBadFingerprint       = errors.New("ox: invalid v4 fingerprint")
	ErrLowercaseFingerprint = errors.New("ox: fingerprint not in upper case")
	ErrDuplicateFingerprint = errors.New("ox: fingerprint listed twice")
	ErrMissingDate          = errors.New("ox: missing or invalid date")
)

// MetadataError describes a problem with one entry of a metadata list.
type MetadataError struct {
	Index       int    // position of the entry in the list
	Fingerprint string // the fingerprint as published
	Err         error
}

func (e *MetadataError) Error() string {
	return fmt.Sprintf("ox: public-keys-list entry %d (%q): %s", e.Index, e.Fingerprint, errText(e.Err))
}

func (e *MetadataError) Unwrap() error { return e.Err }

// Element returns the <public-keys-list/> element, the item to publish.
// Entries with a zero Date are written without a date; use [Merge] to give
// them one before publishing.
func (l PublicKeysList) Element() *xmltree.Element {
	el := xmltree.New(NS, "public-keys-list")
	el.Children = make([]xmltree.Node, 0, len(l.Keys))
	for _, k := range l.Keys {
		m := xmltree.New(NS, "pubkey-metadata", "v4-fingerprint", k.Fingerprint)
		if !k.Date.IsZero() {
			m.SetAttr("date", FormatTime(k.Date))
		}
		el.Append(m)
	}
	return el
}

// ParsePublicKeysList parses a <public-keys-list/> element; see
// PublicKeysList.Problems for how non-conforming entries are handled. An
// empty list is valid.
func ParsePublicKeysList(el *xmltree.Element) (*PublicKeysList, error) {
	if el.Name.Space != NS || el.Name.Local != "public-keys-list" {
		return nil, fmt.Errorf("ox: expected <public-keys-list xmlns='%s'/>, got {%s}%s", NS, el.Name.Space, el.Name.Local)
	}
	l := new(PublicKeysList)
	seen := map[string]bool{}
	index := 0
	for _, n := range el.Children {
		e, ok := n.(*xmltree.Element)
		if !ok || !inNS(e.Name, "pubkey-metadata") {
			continue
		}
		raw := e.AttrValue("v4-fingerprint")
		date, hasDate := e.LookupAttr("date")
		i := index
		index++
		problem := func(err error) {
			l.Problems = append(l.Problems, &MetadataError{Index: i, Fingerprint: raw, Err: err})
		}
		fpr, ok := CanonicalFingerprint(raw)
		if !ok || strings.ContainsAny(raw, " \t\r\n") {
			problem(ErrBadFingerprint)
			continue
		}
		if seen[fpr] {
			problem(ErrDuplicateFingerprint)
			continue
		}
		seen[fpr] = true
		if fpr != raw {
			problem(ErrLowercaseFingerprint)
		}
		m := KeyMetadata{Fingerprint: fpr, Node: PublicKeyNode(raw)}
		if hasDate {
			m.Date, _ = ParseTime(date)
		}
		if m.Date.IsZero() {
			problem(ErrMissingDate)
		}
		l.Keys = append(l.Keys, m)
	}
	return l, nil
}

// Contains reports whether the list announces the key with the given
// fingerprint (of either case). A client that sees its own metadata node
// change and finds its key missing should announce it again (XEP-0373 §6.3).
func (l PublicKeysList) Contains(fingerprint string) bool {
	fpr, ok := CanonicalFingerprint(fingerprint)
	if !ok {
		return false
	}
	for _, k := range l.Keys {
		if k.Fingerprint == fpr {
			return true
		}
	}
	return false
}

// Merge returns the list to publish when announcing keys: every entry of
// current, in order, then the added entries that were not there yet. It never
// drops other devices' entries. An added entry replaces the date of an
// existing one with the same fingerprint. Fingerprints are upper-cased (an
// entry whose fingerprint is invalid is dropped), duplicates are removed, and
// entries left without a date get the date of the first added entry, so the
// result is a valid list. Node is set to the canonical data node name.
//
// Publish the key to its data node first: XEP-0373 §4.2 forbids listing a key
// that is not available there yet.
func Merge(current []KeyMetadata, add ...KeyMetadata) []KeyMetadata {
	var fill time.Time
	for _, a := range add {
		if !a.Date.IsZero() {
			fill = a.Date
			break
		}
	}
	out := make([]KeyMetadata, 0, len(current)+len(add))
	index := map[string]int{}
	put := func(m KeyMetadata, replaceDate bool) {
		fpr, ok := CanonicalFingerprint(m.Fingerprint)
		if !ok {
			return
		}
		if i, ok := index[fpr]; ok {
			if replaceDate && !m.Date.IsZero() {
				out[i].Date = m.Date
			}
			return
		}
		index[fpr] = len(out)
		out = append(out, KeyMetadata{Fingerprint: fpr, Date: m.Date, Node: PublicKeyNode(fpr)})
	}
	for _, m := range current {
		put(m, false)
	}
	for _, m := range add {
		put(m, true)
	}
	for i := range out {
		if out[i].Date.IsZero() {
			out[i].Date = fill
		}
	}
	return out
}

// SelectAnnounced picks the key with the given fingerprint out of the keys
// parsed from a data node and checks that it belongs to owner at time now
// ([Key.ValidFor]). A data node may only hold the key its name announces.
func SelectAnnounced(keys []*Key, fingerprint string, owner jid.JID, now time.Time) (*Key, error) {
	fpr, ok := CanonicalFingerprint(fingerprint)
	if !ok {
		return nil, ErrBadFingerprint
	}
	var found *Key
	for _, k := range keys {
		if k.fpr == fpr {
			found = k
		}
	}
	if found == nil {
		return nil, &KeyError{fpr, errors.New("not in the published key data")}
	}
	if err := found.ValidFor(owner, now); err != nil {
		return nil, err
	}
	return found.Public(), nil
}

// SecretKey is the item payload of the secret-key node (XEP-0373 §5.4):
// <secretkey xmlns='urn:xmpp:openpgp:0'>BASE64</secretkey>, the Base64 text
// directly inside, without <data/>.
type SecretKey struct {
	// Data is the encrypted backup made by [SealBackup].
	Data []byte
}

// Element returns the <secretkey/> element, the item to publish.
func (s SecretKey) Element() *xmltree.Element {
	return xmltree.New(NS, "secretkey").AppendText(base64.StdEncoding.EncodeToString(s.Data))
}

// ParseSecretKey parses a <secretkey/> element and returns the backup it
// holds, ignoring white space in the Base64.
func ParseSecretKey(el *xmltree.Element) ([]byte, error) {
	if el.Name.Space != NS || el.Name.Local != "secretkey" {
		return nil, fmt.Errorf("ox: expected <secretkey xmlns='%s'/>, got {%s}%s", NS, el.Name.Space, el.Name.Local)
	}
	text, err := leafText(el)
	if err != nil {
		return nil, err
	}
	data, err := decodeBase64(text)
	if err != nil {
		return nil, fmt.Errorf("ox: <secretkey/>: %w", err)
	}
	if len(data) == 0 {
		return nil, errors.New("ox: empty <secretkey/>")
	}
	return data, nil
}
