package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"

	otrclient "github.com/balcony-im/balcony/client/otr"
	"github.com/balcony-im/balcony/otr"
	"github.com/balcony-im/balcony/store"
)

func TestOTRPolicyNames(t *testing.T) {
	for _, tc := range []struct {
		name string
		pol  otr.Policy
		auto otrclient.AutoStart
	}{
		{"manual", otr.PolicyManual, otrclient.AutoStartNever},
		{"opportunistic", otr.PolicyOpportunistic &^ otr.SendWhitespaceTag, otrclient.AutoStartKnown},
		{"advertise", otr.PolicyOpportunistic, otrclient.AutoStartKnown},
		{"always", otr.PolicyAlways, otrclient.AutoStartAlways},
	} {
		pol, auto, err := otrPolicyByName(tc.name)
		if err != nil || pol != tc.pol || auto != tc.auto {
			t.Errorf("%s: %v %v %v", tc.name, pol, auto, err)
		}
		if got := otrPolicyLabel(pol); got != tc.name {
			t.Errorf("label of %s: %s", tc.name, got)
		}
	}
	var ue *usageError
	if _, _, err := otrPolicyByName("Always"); !errors.As(err, &ue) {
		t.Errorf("unknown policy: %v", err)
	}
	if got := otrPolicyLabel(otr.AllowV3); got != "0x4" {
		t.Errorf("label of a custom policy: %s", got)
	}
}

func TestOTRLibotrAccountNames(t *testing.T) {
	for name, want := range map[string]bool{
		"alice@example.org":         true,
		"alice@example.org/Pidgin":  true,
		"Alice@Example.org/Laptop":  true,
		"alice@example.org.evil":    false,
		"bob@example.org/alice":     false,
		"not a jid@@":               false,
		"mallory@example.org/alice": false,
	} {
		if got := libotrAccountIs(name, "alice@example.org"); got != want {
			t.Errorf("libotrAccountIs(%q) = %v", name, got)
		}
	}
}

// TestOTROwnKey checks that the key is created once, kept sealed in the
// store, and that importing another key makes it the active one.
func TestOTROwnKey(t *testing.T) {
	ctx := context.Background()
	st, err := store.Create(t.TempDir(), store.Options{Unencrypted: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, _, err := otrOwnKey(ctx, st, false); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("no key yet: %v", err)
	}
	k1, created, err := otrOwnKey(ctx, st, true)
	if err != nil || !created {
		t.Fatalf("create: %v %v", created, err)
	}
	k2, created, err := otrOwnKey(ctx, st, true)
	if err != nil || created || k2.Fingerprint() != k1.Fingerprint() {
		t.Fatalf("load: %v %v", created, err)
	}
	own, err := st.OwnKeys(ctx, store.OTR)
	if err != nil || len(own) != 1 || own[0].Fingerprint != strings.ToUpper(k1.Fingerprint().Hex()) || !own[0].Active {
		t.Fatalf("own keys %+v %v", own, err)
	}
	var pub otr.PublicKey
	if err := pub.UnmarshalBinary(own[0].Public); err != nil || !pub.Equal(k1.Public()) {
		t.Fatalf("stored public key: %v", err)
	}

	data, err := os.ReadFile("../../otr/testdata/privkeys-libotr.txt")
	if err != nil {
		t.Fatal(err)
	}
	keys, err := otr.ParseLibotrPrivateKeys(data)
	if err != nil {
		t.Fatal(err)
	}
	imported := keys[4].Key
	if err := otrStoreKey(ctx, st, imported); err != nil {
		t.Fatal(err)
	}
	k3, _, err := otrOwnKey(ctx, st, true)
	if err != nil || k3.Fingerprint() != imported.Fingerprint() {
		t.Fatalf("after import: %v", err)
	}
	// Importing the first key again switches back (it already exists).
	if err := otrStoreKey(ctx, st, k1); err != nil {
		t.Fatal(err)
	}
	if k4, _, err := otrOwnKey(ctx, st, false); err != nil || k4.Fingerprint() != k1.Fingerprint() {
		t.Fatalf("after re-import: %v", err)
	}

	// The policy setting.
	if name, err := otrPolicyName(ctx, st); err != nil || name != defaultOTRPolicy {
		t.Fatalf("default policy %q %v", name, err)
	}
	if err := st.SetSetting(ctx, settingOTRPolicy, "bogus"); err != nil {
		t.Fatal(err)
	}
	if _, err := otrPolicyName(ctx, st); err == nil {
		t.Fatal("a bogus stored policy was accepted")
	}
}

func TestOTRPrint(t *testing.T) {
	var out bytes.Buffer
	e := &env{stdout: &out, stderr: &out}
	res := otrResult{Own: "AAAAAAAA BBBBBBBB CCCCCCCC DDDDDDDD EEEEEEEE", Policy: "opportunistic", Sessions: []otrInfo{
		{Peer: "bob@example.org/desk", State: "private-verified", Fingerprint: "11111111 22222222 33333333 44444444 55555555",
			Trust: "verified", SSID: "0123456789abcdef", Version: 3, OurInstance: 0x1234, TheirInstance: 0x5678, SMP: true},
		{Peer: "carol@example.org/x", State: "finished"},
		{Peer: "dave@example.org/y", State: "plaintext"},
	}}
	printOTR(e, otrArgs{Op: "status"}, res)
	want := `own fingerprint AAAAAAAA BBBBBBBB CCCCCCCC DDDDDDDD EEEEEEEE, policy opportunistic
bob@example.org/desk: private, verified
  fingerprint 11111111 22222222 33333333 44444444 55555555 (verified)
  session id 0123456789abcdef, protocol version 3, instance tags 0x1234 (ours) 0x5678 (theirs)
  verification under way
carol@example.org/x: finished (the contact ended the private conversation)
dave@example.org/y: not private
`
	if out.String() != want {
		t.Errorf("status output:\n%s\nwant:\n%s", out.String(), want)
	}
	out.Reset()
	printOTR(e, otrArgs{Op: "start"}, otrResult{Session: otrInfo{Peer: "bob@example.org/desk"}})
	if out.String() != "asked bob@example.org/desk for a private conversation\n" {
		t.Errorf("start without waiting: %q", out.String())
	}
}

func TestOTRControlWithoutMechanism(t *testing.T) {
	raw, _ := json.Marshal(otrArgs{Op: "status"})
	if _, err := handleOTR(context.Background(), &session{}, raw); err == nil || !strings.Contains(err.Error(), "no OTR mechanism") {
		t.Fatalf("handleOTR without OTR: %v", err)
	}
}
