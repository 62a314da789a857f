package ox

import "github.com/balcony-im/balcony/client"

// Unexported test helpers that the external tests (package client_test)
// use too.
var SealUnsignedForTest = sealUnsigned

// OnMetadataForTest hands x a notification of a key list, as the client
// does when one arrives.
func OnMetadataForTest(x *Mechanism, ev *client.PEPEvent) { x.onMetadata(ev) }
