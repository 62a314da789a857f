package esession

import (
	"crypto/dsa" //lint:ignore SA1019 test keys for the dsa-sha256 identities
	"crypto/rsa"
	"encoding/json"
	"math/big"
	"os"
	"strconv"
	"sync"
	"testing"
)

// testKeys are the RSA and DSA keys of testdata/keys.json (generated once:
// DSA parameters take seconds to make), by name: rsa_alice, rsa_bob,
// rsa_mallory, dsa_alice, dsa_bob.
var testKeys = sync.OnceValues(func() (map[string]*PrivateKey, error) {
	b, err := os.ReadFile("testdata/keys.json")
	if err != nil {
		return nil, err
	}
	var raw map[string]map[string]string
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, err
	}
	hex := func(s string) *big.Int { n, _ := new(big.Int).SetString(s, 16); return n }
	out := map[string]*PrivateKey{}
	for name, v := range raw {
		if v["N"] != "" {
			e, _ := strconv.Atoi(v["E"])
			k := &rsa.PrivateKey{PublicKey: rsa.PublicKey{N: hex(v["N"]), E: e}, D: hex(v["D"]),
				Primes: []*big.Int{hex(v["P"]), hex(v["Q"])}}
			if err := k.Validate(); err != nil {
				return nil, err
			}
			k.Precompute()
			out[name] = &PrivateKey{RSA: k}
			continue
		}
		out[name] = &PrivateKey{DSA: &dsa.PrivateKey{PublicKey: dsa.PublicKey{
			Parameters: dsa.Parameters{P: hex(v["P"]), Q: hex(v["Q"]), G: hex(v["G"])}, Y: hex(v["Y"])}, X: hex(v["X"])}}
	}
	return out, nil
})

func testKey(t testing.TB, name string) *PrivateKey {
	t.Helper()
	keys, err := testKeys()
	if err != nil {
		t.Fatal(err)
	}
	k := keys[name]
	if k == nil {
		t.Fatalf("no test key %q", name)
	}
	return k
}
