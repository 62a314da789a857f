package ox

// Unexported test helpers that the external tests (package client_test)
// use too.
var SealUnsignedForTest = sealUnsigned
