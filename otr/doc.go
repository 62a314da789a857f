// Package otr implements Off-the-Record Messaging protocol version 3 (the
// OTR development team's specification, as shipped with libotr 4.1.1; a
// stable, final protocol, superseded in spirit but not in deployment by
// OTRv4), with version 2 compatibility, for use over XMPP as described by
// XEP-0364 (Deferred).
//
// This package contains no XMPP and no network code. A Conversation is a
// pure state machine: the caller hands it each incoming message body and
// each message the user types, and transmits whatever the Conversation
// returns.
package otr
