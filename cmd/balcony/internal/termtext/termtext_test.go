package termtext

import "testing"

func TestWithFingerprint(t *testing.T) {
	const fpr = "7e52d3ebd66afc26bd42f290098c3f05ee73d6953d9e9c7da6e1f01cc4a2c247"
	for _, tc := range []struct{ text, fpr, want string }{
		{"bob announced an OpenPGP key.", "2881DC87", "bob announced an OpenPGP key. (2881DC87)"},
		{"no key here", "", "no key here"},
		// Shown in groups (OMEMO's texts): not again.
		{"device 7 with the fingerprint 7e52d3eb d66afc26 bd42f290 098c3f05 ee73d695 3d9e9c7d a6e1f01c c4a2c247 (trust: blind).", fpr,
			"device 7 with the fingerprint 7e52d3eb d66afc26 bd42f290 098c3f05 ee73d695 3d9e9c7d a6e1f01c c4a2c247 (trust: blind)."},
		{"key 2881 DC87 changed", "2881dc87", "key 2881 DC87 changed"},
		// Only a part shown: the whole one is added.
		{"device 7e52d3eb", fpr, "device 7e52d3eb (" + fpr + ")"},
	} {
		if got := WithFingerprint(tc.text, tc.fpr); got != tc.want {
			t.Errorf("WithFingerprint(%q, %q) = %q, want %q", tc.text, tc.fpr, got, tc.want)
		}
	}
}
