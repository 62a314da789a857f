package eme

import (
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
)

// otrEncoded builds an encoded OTR message of the given version and type,
// with a v3 header (instance tags) for version 3 and some filler.
func otrEncoded(version int, typ byte) string {
	b := []byte{byte(version >> 8), byte(version), typ}
	if version == 3 {
		b = append(b, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x01) // sender, receiver instance tags
	}
	b = append(b, []byte("filler bytes standing in for the message body")...)
	return "?OTR:" + base64.StdEncoding.EncodeToString(b) + "."
}

// otrFragments splits msg into n fragments in the v3 or v2 format of the
// OTR specification (§Fragmentation).
func otrFragments(msg string, n int, v3 bool) []string {
	size := (len(msg) + n - 1) / n
	var out []string
	for k := 1; k <= n; k++ {
		piece := msg[(k-1)*size : min(k*size, len(msg))]
		if v3 {
			out = append(out, fmt.Sprintf("?OTR|%x|%x,%05d,%05d,%s,", 0x5a73a599, 0x27e31597, k, n, piece))
		} else {
			out = append(out, fmt.Sprintf("?OTR,%d,%d,%s,", k, n, piece))
		}
	}
	return out
}

// The whitespace tags of OTR v3 §Whitespace tag and XEP-0364 §2.
const (
	wsBase = "\x20\x09\x20\x20\x09\x09\x09\x09\x20\x09\x20\x09\x20\x09\x20\x20"
	wsV1   = "\x20\x09\x20\x09\x20\x20\x09\x20"
	wsV2   = "\x20\x20\x09\x09\x20\x20\x09\x20"
	wsV3   = "\x20\x20\x09\x09\x20\x20\x09\x09"
)

const libotrQuery = "?OTRv23?\n<b>alice@example.org</b> has requested an <a href=\"https://otr.cypherpunks.ca/\">Off-the-Record private conversation</a>.  However, you do not have a plugin to support that.\nSee <a href=\"https://otr.cypherpunks.ca/\">https://otr.cypherpunks.ca/</a> for more information."

func TestClassifyOTR(t *testing.T) {
	data3 := otrEncoded(3, 0x03)
	data2 := otrEncoded(2, 0x03)
	tests := []struct {
		name    string
		body    string
		kind    OTRKind
		version int
	}{
		{"plain", "Hello Juliet", OTRNone, 0},
		{"empty", "", OTRNone, 0},
		{"data v3", data3, OTRData, 3},
		{"data v2", data2, OTRData, 2},
		{"data v1", otrEncoded(1, 0x03), OTRData, 1},
		{"data in markup", "<p>" + data3 + "</p>", OTRData, 3},
		{"DH-Commit v3", otrEncoded(3, 0x02), OTRKeyExchange, 3},
		{"DH-Key v3", otrEncoded(3, 0x0a), OTRKeyExchange, 3},
		{"Reveal Signature v2", otrEncoded(2, 0x11), OTRKeyExchange, 2},
		{"Signature v3", otrEncoded(3, 0x12), OTRKeyExchange, 3},
		{"Key Exchange v1", otrEncoded(1, 0x0a), OTRKeyExchange, 1},
		{"unknown type v3", otrEncoded(3, 0x7f), OTREncoded, 3},
		{"unknown version", otrEncoded(4, 0x03), OTREncoded, 4},
		{"fragment v3 first", otrFragments(data3, 3, true)[0], OTRFragment, 3},
		{"fragment v3 last", otrFragments(data3, 3, true)[2], OTRFragment, 3},
		{"fragment v2", otrFragments(data2, 2, false)[1], OTRFragment, 2},
		{"fragment v3 of a query", otrFragments(libotrQuery, 4, true)[0], OTRFragment, 3},
		{"fragment k > n", "?OTR|5a73a599|27e31597,00004,00003,abc,", OTRNone, 0},
		{"fragment k = 0", "?OTR,0,3,abc,", OTRNone, 0},
		{"fragment n > 65535", "?OTR,1,65536,abc,", OTRNone, 0},
		{"fragment tag > 32 bits", "?OTR|100000000|1,1,1,abc,", OTRNone, 0},
		{"fragment empty piece", "?OTR,1,3,,", OTRNone, 0},
		{"fragment unterminated", "?OTR,1,3,abc", OTRNone, 0},
		{"query v2 v3", "?OTRv23?", OTRQuery, 3},
		{"query v1 v2", "?OTR?v2?", OTRQuery, 2},
		{"query v1", "?OTR?", OTRQuery, 1},
		{"query future", "?OTRv24x?", OTRQuery, 2},
		{"query none", "?OTRv?", OTRQuery, 0},
		{"query libotr", libotrQuery, OTRQuery, 3},
		{"XEP-0380 example 1", "?OTR?v23?...", OTRQuery, 3},
		{"error", "?OTR Error: You sent encrypted data to alice, who wasn't expecting it.", OTRError, 0},
		{"whitespace v3", "Hello" + wsBase + wsV2 + wsV3, OTRWhitespaceTag, 3},
		{"whitespace v2", wsBase + wsV2 + " Hello", OTRWhitespaceTag, 2},
		{"whitespace v1", "Hi" + wsBase + wsV1, OTRWhitespaceTag, 1},
		{"whitespace base only", "Hi" + wsBase, OTRWhitespaceTag, 0},
		{"not base64 after colon", "?OTR: what is this?", OTRNone, 0},
		{"short after colon", "?OTR:AA", OTRNone, 0},
		{"other suffix", "?OTRx is not OTR", OTRNone, 0},
		{"lower case", "?otrv23?", OTRNone, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			kind, version := ClassifyOTR(tc.body)
			if kind != tc.kind || version != tc.version {
				t.Errorf("ClassifyOTR(%.40q) = %v, %d; want %v, %d", tc.body, kind, version, tc.kind, tc.version)
			}
		})
	}
}

func TestOTRKindProperties(t *testing.T) {
	for k := OTRNone; k <= OTREncoded; k++ {
		if k.Encrypted() && k.Control() {
			t.Errorf("%v is both encrypted and control", k)
		}
		if strings.Contains(k.String(), "?") {
			t.Errorf("OTRKind %d has no name", int(k))
		}
	}
	for _, k := range []OTRKind{OTRData, OTRFragment, OTREncoded} {
		if !k.Encrypted() {
			t.Errorf("%v does not count as encrypted", k)
		}
	}
	for _, k := range []OTRKind{OTRQuery, OTRError, OTRKeyExchange} {
		if !k.Control() {
			t.Errorf("%v does not count as control", k)
		}
	}
	for _, k := range []OTRKind{OTRNone, OTRWhitespaceTag} {
		if k.Encrypted() || k.Control() {
			t.Errorf("%v counts as encrypted or control", k)
		}
	}
	if s := OTRKind(99).String(); s != "OTRKind(?)" {
		t.Errorf("OTRKind(99).String() = %q", s)
	}
}
