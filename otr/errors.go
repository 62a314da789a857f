package otr

import "errors"

// ErrInvalidMessage is the one error returned for every received OTR
// message that fails authentication, decryption, a range check or parsing:
// a bad MAC or signature, a replayed counter, an unknown key id, an
// out-of-range Diffie-Hellman value, a non-minimal MPI. It deliberately
// carries no detail.
var ErrInvalidMessage = errors.New("otr: invalid or unreadable message")

// ErrFinished is returned by Send when the peer has ended the private
// conversation (MSGSTATE_FINISHED): the message is not sent, so that it
// cannot leak in plaintext. Call End to return to plaintext, or StartAKE
// to start a new private conversation.
var ErrFinished = errors.New("otr: the peer ended the private conversation; message not sent")

// ErrNotEncrypted is returned by operations that need an encrypted session
// (SMP, the extra symmetric key, heartbeats) when there is none.
var ErrNotEncrypted = errors.New("otr: no encrypted session")

// ErrNoSMP is returned by AnswerSMP when the peer has not started SMP.
var ErrNoSMP = errors.New("otr: no SMP request to answer")

// ErrDisabled is returned by operations that need OTR when the policy allows
// no protocol version.
var ErrDisabled = errors.New("otr: policy allows no OTR version")
