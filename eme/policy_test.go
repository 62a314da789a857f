package eme

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestParsePolicy(t *testing.T) {
	tests := []struct {
		in   string
		want Policy
		str  string
	}{
		{"plaintext", Policy{Mode: PlaintextAllowed}, "plaintext"},
		{"prefer", Policy{Mode: PreferEncryption}, "prefer"},
		{"require", Policy{Mode: RequireEncryption}, "require"},
		{"require:ox", Policy{Mode: RequireEncryption, Mechanism: OX}, "require:ox"},
		{" Require:OTR ", Policy{Mode: RequireEncryption, Mechanism: OTR}, "require:otr"},
		{"require:urn:xmpp:openpgp:0", Policy{Mode: RequireEncryption, Mechanism: OX}, "require:ox"},
		{"require:esession", Policy{Mode: RequireEncryption, Mechanism: ESession}, "require:esession"},
		{"require:http://www.xmpp.org/extensions/xep-0200.html#ns", Policy{Mode: RequireEncryption, Mechanism: ESession}, "require:esession"},
		{"require:omemo2", Policy{Mode: RequireEncryption, Mechanism: OMEMO2}, "require:omemo2"},
		{"require:legacy-openpgp", Policy{Mode: RequireEncryption, Mechanism: LegacyOpenPGP}, "require:legacy-openpgp"},
	}
	for _, tc := range tests {
		p, err := ParsePolicy(tc.in)
		if err != nil || p != tc.want {
			t.Errorf("ParsePolicy(%q) = %+v, %v; want %+v", tc.in, p, err, tc.want)
			continue
		}
		if s := p.String(); s != tc.str {
			t.Errorf("%+v.String() = %q, want %q", p, s, tc.str)
		}
		if back, err := ParsePolicy(p.String()); err != nil || back != p {
			t.Errorf("ParsePolicy(String()) = %+v, %v", back, err)
		}
	}
	// Every mechanism can be required by its short name and namespace.
	for _, m := range Mechanisms() {
		for _, s := range []string{"require:" + m.Short, "require:" + m.Namespace} {
			if p, err := ParsePolicy(s); err != nil || p.Mechanism != m.Namespace {
				t.Errorf("ParsePolicy(%q) = %+v, %v", s, p, err)
			}
		}
	}
	for _, bad := range []string{"", "plain", "require:", "require:rot13", "require:urn:example:x", "prefer:ox", "requireox", strings.Repeat("x", 10000)} {
		_, err := ParsePolicy(bad)
		var pe *ParseError
		if !errors.As(err, &pe) || !strings.HasPrefix(err.Error(), "eme: ") {
			t.Errorf("ParsePolicy(%.20q): err = %v, want *ParseError", bad, err)
		}
		if len(err.Error()) > 300 {
			t.Errorf("ParsePolicy error of %d bytes", len(err.Error()))
		}
	}
	if s := (Policy{Mode: 7}).String(); s != "Policy(7)" {
		t.Errorf("invalid mode String() = %q", s)
	}
}

func TestPolicyText(t *testing.T) {
	type config struct {
		Policy Policy `json:"policy"`
	}
	out, err := json.Marshal(config{Policy{Mode: RequireEncryption, Mechanism: OX}})
	if err != nil || string(out) != `{"policy":"require:ox"}` {
		t.Fatalf("json.Marshal = %s, %v", out, err)
	}
	var c config
	if err := json.Unmarshal([]byte(`{"policy":"prefer"}`), &c); err != nil || c.Policy.Mode != PreferEncryption {
		t.Errorf("json.Unmarshal = %+v, %v", c, err)
	}
	if err := json.Unmarshal([]byte(`{"policy":"sometimes"}`), &c); err == nil {
		t.Error("json.Unmarshal accepted an invalid policy")
	}
	if _, err := json.Marshal(config{Policy{Mode: -1}}); err == nil {
		t.Error("json.Marshal accepted an invalid mode")
	}
}

func TestCheckOutgoing(t *testing.T) {
	all := []string{"", LegacyOpenPGP, OTR, ESession, OX, OMEMO0, OMEMO1, OMEMO2, "urn:example:unknown"}
	tests := []struct {
		policy string
		allow  []string
	}{
		{"plaintext", all},
		{"prefer", all},
		{"require", []string{LegacyOpenPGP, OTR, ESession, OX, OMEMO0, OMEMO1, OMEMO2}},
		{"require:legacy-openpgp", []string{LegacyOpenPGP, OTR, ESession, OX, OMEMO0, OMEMO1, OMEMO2}},
		{"require:otr", []string{OTR, ESession, OX, OMEMO0, OMEMO1, OMEMO2}},
		{"require:esession", []string{OTR, ESession, OX, OMEMO0, OMEMO1, OMEMO2}},
		{"require:ox", []string{OX, OMEMO0, OMEMO1, OMEMO2}},
		{"require:omemo", []string{OX, OMEMO0, OMEMO1, OMEMO2}},
		{"require:omemo2", []string{OMEMO1, OMEMO2}},
	}
	for _, tc := range tests {
		p, err := ParsePolicy(tc.policy)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range all {
			allowed := false
			for _, a := range tc.allow {
				allowed = allowed || a == m
			}
			err := p.CheckOutgoing(m)
			if allowed != (err == nil) || p.Accepts(m) != allowed {
				t.Errorf("%s: CheckOutgoing(%q) = %v, Accepts = %v; want allowed = %v", tc.policy, m, err, p.Accepts(m), allowed)
			}
			in := p.CheckIncoming(m)
			if allowed != (in == nil) {
				t.Errorf("%s: CheckIncoming(%q) = %v", tc.policy, m, in)
			}
			if err == nil {
				continue
			}
			var de *DowngradeError
			if !errors.As(err, &de) || !errors.Is(err, ErrDowngrade) || de.Mechanism != m || de.Incoming || de.Policy != p {
				t.Errorf("%s: CheckOutgoing(%q) error %#v", tc.policy, m, err)
			}
			if !errors.As(in, &de) || !de.Incoming || !errors.Is(in, ErrDowngrade) {
				t.Errorf("%s: CheckIncoming(%q) error %#v", tc.policy, m, in)
			}
		}
	}
	// A hand-built policy that requires an unknown mechanism accepts only it.
	p := Policy{Mode: RequireEncryption, Mechanism: "urn:example:x"}
	if p.CheckOutgoing("urn:example:x") != nil || p.CheckOutgoing(OMEMO2) == nil || p.CheckOutgoing("") == nil {
		t.Error("policy requiring an unknown mechanism")
	}
}

func TestDowngradeErrorText(t *testing.T) {
	ox := Policy{Mode: RequireEncryption, Mechanism: OX}
	tests := []struct {
		err  error
		want string
	}{
		{ox.CheckOutgoing(""), "eme: refusing to send in the clear: the policy for this contact (require:ox) requires OpenPGP for XMPP (urn:xmpp:openpgp:0) or a mechanism at least as strong"},
		{ox.CheckOutgoing(OTR), "eme: refusing to send with OTR (urn:xmpp:otr:0): the policy for this contact (require:ox) requires OpenPGP for XMPP (urn:xmpp:openpgp:0) or a mechanism at least as strong"},
		{ox.CheckOutgoing("urn:example:\u202ex"), `eme: refusing to send with unknown mechanism "urn:example:x": the policy for this contact (require:ox) requires OpenPGP for XMPP (urn:xmpp:openpgp:0) or a mechanism at least as strong`},
		{Policy{Mode: RequireEncryption}.CheckIncoming(""), "eme: message received in the clear, but the policy for this contact (require) requires encryption"},
	}
	for _, tc := range tests {
		if tc.err == nil || tc.err.Error() != tc.want {
			t.Errorf("error = %v\nwant    %s", tc.err, tc.want)
		}
	}
}
