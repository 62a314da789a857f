package otr

// Policy is a set of OTR policy flags. The values are libotr's
// OTRL_POLICY_* values so that settings can be shared with libotr-based
// clients.
//
// The zero Policy is PolicyNever: OTR is disabled and a Conversation passes
// every message through untouched.
type Policy uint32

// Policy flags (Protocol-v3 "Policies").
const (
	// AllowV2 allows OTR protocol version 2.
	AllowV2 Policy = 0x02
	// AllowV3 allows OTR protocol version 3.
	AllowV3 Policy = 0x04
	// RequireEncryption refuses to send unencrypted messages: messages typed
	// in plaintext state are held and a query message is sent instead.
	RequireEncryption Policy = 0x08
	// SendWhitespaceTag advertises OTR support with the whitespace tag on
	// plaintext messages until the peer replies in plaintext.
	SendWhitespaceTag Policy = 0x10
	// WhitespaceStartAKE starts the AKE when a whitespace tag is received.
	WhitespaceStartAKE Policy = 0x20
	// ErrorStartAKE replies to an OTR error message with a query message.
	ErrorStartAKE Policy = 0x40
)

// libotr's policy presets.
const (
	PolicyNever         Policy = 0
	PolicyManual        Policy = AllowV2 | AllowV3
	PolicyOpportunistic Policy = AllowV2 | AllowV3 | SendWhitespaceTag | WhitespaceStartAKE | ErrorStartAKE
	PolicyAlways        Policy = AllowV2 | AllowV3 | RequireEncryption | WhitespaceStartAKE | ErrorStartAKE
)

func (p Policy) has(f Policy) bool { return p&f == f }

// versionsAllowed reports whether any protocol version is allowed; without
// one OTR is off.
func (p Policy) enabled() bool { return p&(AllowV2|AllowV3) != 0 }
