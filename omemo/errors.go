package omemo

import (
	"errors"
	"fmt"
	"strings"
)

// ErrInvalidMessage is the one error returned for every received key
// element that fails to parse, authenticate or decrypt, and for a payload
// that fails its tag: it deliberately carries no detail (no oracle).
var ErrInvalidMessage = errors.New("omemo: invalid or undecryptable message")

// ErrDuplicate is returned for a message whose key was already used: a
// copy delivered twice (carbons, archive catch-up) or a replay. XEP-0384
// §7 says to ignore it without a warning.
var ErrDuplicate = errors.New("omemo: message already decrypted")

// ErrNoSession is returned when a device has no session and the caller
// gave no bundle to build one (Encrypt), or when a message that is not a
// key exchange arrives from a device without a session (Decrypt; XEP-0384
// §7 then suggests building one and sending an empty message).
var ErrNoSession = errors.New("omemo: no session with that device")

// ErrUnknownPreKey is returned for a key exchange that names a pre-key or
// signed pre-key this device no longer has (already consumed, rotated out,
// or never ours).
var ErrUnknownPreKey = errors.New("omemo: key exchange uses an unknown pre-key")

// ErrInvalidBundle is wrapped by every error about a peer's bundle: a bad
// length, an invalid key, a signature that does not verify, no pre-keys.
var ErrInvalidBundle = errors.New("omemo: invalid bundle")

// ErrCorruptState is wrapped by errors about stored state that does not
// parse (a session, keys of the wrong size).
var ErrCorruptState = errors.New("omemo: corrupt stored state")

// RecipientError is the failure to encrypt for one device.
type RecipientError struct {
	Address Address
	Err     error
}

func (e *RecipientError) Error() string {
	return fmt.Sprintf("omemo: device %s: %v", e.Address, strings.TrimPrefix(e.Err.Error(), "omemo: "))
}

func (e *RecipientError) Unwrap() error { return e.Err }

// EncryptError lists the devices Encrypt could not encrypt for. The
// message it returns alongside is complete for every other device.
type EncryptError struct {
	Failed []*RecipientError
}

func (e *EncryptError) Error() string {
	parts := make([]string, len(e.Failed))
	for i, f := range e.Failed {
		parts[i] = strings.TrimPrefix(f.Error(), "omemo: ")
	}
	return "omemo: not encrypted for " + strings.Join(parts, "; ")
}

// Unwrap returns the per-device errors, so errors.Is finds ErrNoSession or
// ErrInvalidBundle among them.
func (e *EncryptError) Unwrap() []error {
	out := make([]error, len(e.Failed))
	for i, f := range e.Failed {
		out[i] = f
	}
	return out
}
