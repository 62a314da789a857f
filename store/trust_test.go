package store

import (
	"strings"
	"testing"
)

// fpr returns a distinct valid 40-digit fingerprint.
func fpr(c byte) string { return strings.Repeat(string(c), 40) }

func TestParseNames(t *testing.T) {
	for _, st := range []TrustState{Undecided, Verified, Blind, Untrusted} {
		got, err := ParseTrustState(strings.ToUpper(st.String()))
		if err != nil || got != st {
			t.Errorf("ParseTrustState(%q) = %v, %v", st, got, err)
		}
	}
	if _, err := ParseTrustState("trusted"); err == nil {
		t.Error("ParseTrustState accepted an unknown name")
	}
	for _, m := range Mechanisms() {
		if got, err := ParseMechanism(" " + strings.ToUpper(string(m))); err != nil || got != m {
			t.Errorf("ParseMechanism(%q) = %v, %v", m, got, err)
		}
	}
	if _, err := ParseMechanism("omemo2"); err == nil {
		t.Error("ParseMechanism accepted omemo2")
	}
	if !Verified.Usable() || !Blind.Usable() || Undecided.Usable() || Untrusted.Usable() {
		t.Error("Usable is wrong")
	}
}
