package store_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/balcony-im/balcony/store"
)

// The main flow: open (or create) an account's store, record the keys a
// contact uses, report a key change, and record the user's decision.
func Example() {
	ctx := context.Background()
	base, err := os.MkdirTemp("", "balcony-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(base)

	// In the balcony command the passphrase is read from the terminal.
	passphrase := []byte("correct horse battery staple")
	s, err := store.Create(filepath.Join(base, "juliet@capulet.lit"), store.Options{Passphrase: passphrase})
	clear(passphrase)
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	if err := s.SetAccount(ctx, store.Account{JID: "juliet@capulet.lit"}); err != nil {
		log.Fatal(err)
	}

	// Romeo announces his first OX key: trusted blindly.
	const romeo = "romeo@montague.lit"
	seen, err := s.RecordSeenKey(ctx, romeo, store.OX, "8A5D 6B1C 0E2F 3A4B 5C6D 7E8F 9A0B 1C2D 3E4F 5A6B", []byte("key 1"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("first key:", seen.Key.Trust)

	// Later a second key appears: undecided, and the user must be told.
	seen, err = s.RecordSeenKey(ctx, romeo, store.OX, "0123456789ABCDEF0123456789ABCDEF01234567", []byte("key 2"))
	if err != nil {
		log.Fatal(err)
	}
	if ch := seen.Change; ch != nil {
		fmt.Printf("%s has a new %s key %s (%v), after %d other\n", ch.Contact, ch.Mechanism, ch.Fingerprint[:8], ch.Trust, len(ch.Previous))
		if err := s.AcknowledgeKeyChange(ctx, ch.ID); err != nil {
			log.Fatal(err)
		}
	}

	// The user compares fingerprints and verifies the new key.
	if err := s.SetTrust(ctx, romeo, store.OX, "0123456789abcdef0123456789abcdef01234567", store.Verified); err != nil {
		log.Fatal(err)
	}
	keys, err := s.ListKeys(ctx, romeo, store.OX)
	if err != nil {
		log.Fatal(err)
	}
	for _, k := range keys {
		fmt.Println(k.Fingerprint, k.Trust, k.Trust.Usable())
	}
	// Output:
	// first key: blind
	// romeo@montague.lit has a new ox key 01234567 (undecided), after 1 other
	// 8A5D6B1C0E2F3A4B5C6D7E8F9A0B1C2D3E4F5A6B blind true
	// 0123456789ABCDEF0123456789ABCDEF01234567 verified true
}

// An ESession engine keeps XEP-0217 retained secrets through these
// methods: look the peer's secrets up, then replace the one that matched
// with the new secret, carrying the "SAS verified" flag along the chain.
// Confirming a SAS replaces a secret by itself with Verified set.
func ExampleStore_ReplaceRetainedSecret() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "balcony-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	s, err := store.Create(dir, store.Options{Passphrase: []byte("correct horse battery staple")})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	const peer = "romeo@montague.lit"
	// First session: no secret yet. Then the user confirms the SAS.
	if err := s.ReplaceRetainedSecret(ctx, peer, nil, store.RetainedSecret{Value: []byte("secret 1")}); err != nil {
		log.Fatal(err)
	}
	if err := s.ReplaceRetainedSecret(ctx, peer, []byte("secret 1"), store.RetainedSecret{Value: []byte("secret 1"), Verified: true}); err != nil {
		log.Fatal(err)
	}
	// Second session: secret 1 matched (srshash), so the chain continues.
	old, err := s.RetainedSecrets(ctx, peer)
	if err != nil {
		log.Fatal(err)
	}
	next := store.RetainedSecret{Value: []byte("secret 2"), Verified: old[0].Verified}
	if err := s.ReplaceRetainedSecret(ctx, peer, old[0].Value, next); err != nil {
		log.Fatal(err)
	}
	now, err := s.RetainedSecrets(ctx, peer)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%d secret, %q, verified %v\n", len(now), now[0].Value, now[0].Verified)
	// Output:
	// 1 secret, "secret 2", verified true
}
