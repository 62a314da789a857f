package libotrpeer

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Output is everything libotr did during one request.
type Output struct {
	// Net holds the messages to transmit to the peer, in order (one per
	// fragment; inject_message and messages libotr left unchanged).
	Net [][]byte
	// Messages holds what to show the user.
	Messages []Message
	// TLVs holds the TLVs of received data messages (SMP ones included).
	TLVs []TLV
	// Events holds libotr's UI callbacks in the order they were made.
	Events []Event

	results [][]string // FPR, STATE, ... answer lines, split
}

// Message is a message libotr delivers to the user.
type Message struct {
	Text      []byte
	Encrypted bool // it came in an OTR data message
}

// TLV is a TLV record libotr found in a data message.
type TLV struct {
	Type uint16
	Data []byte
}

// EventKind says which libotr callback made an Event.
type EventKind string

// SMPEvent is an OtrlSMPEvent (message.h) without its prefix.
type SMPEvent string

// MsgEvent is an OtrlMessageEvent (message.h) without its prefix.
type MsgEvent string

// Event is one libotr callback. Which fields are set depends on Kind.
type Event struct {
	Kind EventKind

	SMP      SMPEvent // KindSMP
	Progress int      // KindSMP: progress percent
	Question []byte   // KindSMP: the question of ASK_FOR_ANSWER, nil if none

	Msg  MsgEvent // KindMsg
	Text []byte   // KindMsg: the message libotr attached, nil if none
	Code int      // KindMsg: the gcry error code, usually 0

	IsReply  bool   // KindStillSecure: we initiated the AKE
	Instance uint32 // KindGoneSecure: the peer's instance tag

	Fingerprint string // KindNewFingerprint: 40 upper-case hex digits

	Use     uint32 // KindSymkey
	UseData []byte // KindSymkey
	Key     []byte // KindSymkey: the 32-byte extra symmetric key
}

func (e Event) String() string {
	switch e.Kind {
	case KindSMP:
		if e.Question != nil {
			return fmt.Sprintf("SMP %s %d%% %q", e.SMP, e.Progress, e.Question)
		}
		return fmt.Sprintf("SMP %s %d%%", e.SMP, e.Progress)
	case KindMsg:
		if e.Text != nil {
			return fmt.Sprintf("MSG %s %q", e.Msg, e.Text)
		}
		return fmt.Sprintf("MSG %s", e.Msg)
	case KindStillSecure:
		return fmt.Sprintf("STILL_SECURE reply=%v", e.IsReply)
	}
	return string(e.Kind)
}

// Has reports whether out holds an event of the given kind.
func (o Output) Has(kind EventKind) bool {
	for _, e := range o.Events {
		if e.Kind == kind {
			return true
		}
	}
	return false
}

// SMPEvents returns the SMP events in order.
func (o Output) SMPEvents() []Event {
	var evs []Event
	for _, e := range o.Events {
		if e.Kind == KindSMP {
			evs = append(evs, e)
		}
	}
	return evs
}

// HasSMP reports whether out holds the given SMP event.
func (o Output) HasSMP(ev SMPEvent) bool {
	for _, e := range o.Events {
		if e.Kind == KindSMP && e.SMP == ev {
			return true
		}
	}
	return false
}

// HasMsg reports whether out holds the given message event.
func (o Output) HasMsg(ev MsgEvent) bool {
	for _, e := range o.Events {
		if e.Kind == KindMsg && e.Msg == ev {
			return true
		}
	}
	return false
}

// HasTLV reports whether out holds a TLV of the given type.
func (o Output) HasTLV(typ uint16) bool {
	for _, t := range o.TLVs {
		if t.Type == typ {
			return true
		}
	}
	return false
}

// Append adds other's contents to o.
func (o *Output) Append(other Output) {
	o.Net = append(o.Net, other.Net...)
	o.Messages = append(o.Messages, other.Messages...)
	o.TLVs = append(o.TLVs, other.TLVs...)
	o.Events = append(o.Events, other.Events...)
	o.results = append(o.results, other.results...)
}

func (o Output) result(name string) []string {
	for _, r := range o.results {
		if r[0] == name {
			return r[1:]
		}
	}
	return nil
}

// ParseError reports an output line the driver does not understand.
type ParseError struct {
	Line   string
	Reason string
}

func (e *ParseError) Error() string {
	return fmt.Sprintf("libotrpeer: bad output line %q: %s", abbreviate(e.Line), e.Reason)
}

// parse adds one output line (not OK or ERR) to o.
func (o *Output) parse(line string) error {
	f := strings.Split(line, " ")
	bad := func(reason string) error { return &ParseError{Line: line, Reason: reason} }
	want := func(n int) error {
		if len(f) != n {
			return bad(fmt.Sprintf("want %d fields, have %d", n, len(f)))
		}
		return nil
	}
	var errs []error
	switch f[0] {
	case "NET":
		if err := want(2); err != nil {
			return err
		}
		b := decField(f[1], &errs)
		if b == nil {
			errs = append(errs, errors.New("absent message"))
		}
		o.Net = append(o.Net, b)
	case "MSG":
		if err := want(3); err != nil {
			return err
		}
		if f[2] != "ENC" && f[2] != "PLAIN" {
			return bad("want ENC or PLAIN")
		}
		b := decField(f[1], &errs)
		if b == nil {
			errs = append(errs, errors.New("absent message"))
		}
		o.Messages = append(o.Messages, Message{Text: b, Encrypted: f[2] == "ENC"})
	case "TLV":
		if err := want(3); err != nil {
			return err
		}
		typ, err := strconv.ParseUint(f[1], 10, 16)
		errs = append(errs, err)
		o.TLVs = append(o.TLVs, TLV{Type: uint16(typ), Data: decField(f[2], &errs)})
	case "EVT":
		if len(f) < 2 {
			return bad("no event kind")
		}
		e := Event{Kind: EventKind(f[1])}
		switch e.Kind {
		case KindGoneSecure:
			if err := want(3); err != nil {
				return err
			}
			e.Instance = parseHex32(f[2], &errs)
		case KindGoneInsecure, KindCreatePrivkey:
			if err := want(2); err != nil {
				return err
			}
		case KindStillSecure:
			if err := want(3); err != nil {
				return err
			}
			e.IsReply = f[2] == "1"
		case KindSMP:
			if err := want(5); err != nil {
				return err
			}
			e.SMP = SMPEvent(f[2])
			e.Progress = parseInt(f[3], &errs)
			e.Question = decField(f[4], &errs)
		case KindMsg:
			if err := want(5); err != nil {
				return err
			}
			e.Msg = MsgEvent(f[2])
			e.Text = decField(f[3], &errs)
			e.Code = parseInt(f[4], &errs)
		case KindSymkey:
			if err := want(5); err != nil {
				return err
			}
			use, err := strconv.ParseUint(f[2], 10, 32)
			errs = append(errs, err)
			e.Use = uint32(use)
			e.UseData = decField(f[3], &errs)
			e.Key, err = hex.DecodeString(f[4])
			errs = append(errs, err)
			if len(e.Key) != 32 {
				errs = append(errs, errors.New("symkey is not 32 bytes"))
			}
		case KindNewFingerprint:
			if err := want(3); err != nil {
				return err
			}
			if len(f[2]) != 40 {
				return bad("fingerprint is not 40 hex digits")
			}
			_, err := hex.DecodeString(f[2])
			errs = append(errs, err)
			e.Fingerprint = f[2]
		default:
			return bad("unknown event")
		}
		o.Events = append(o.Events, e)
	case "FPR", "STATE", "INSTAG", "SYMKEY", "VERSION":
		o.results = append(o.results, f)
	default:
		return bad("unknown line")
	}
	if err := errors.Join(errs...); err != nil {
		return bad(err.Error())
	}
	return nil
}

// Event kinds, one per callback of OtrlMessageAppOps.
const (
	KindGoneSecure     EventKind = "GONE_SECURE"
	KindGoneInsecure   EventKind = "GONE_INSECURE"
	KindStillSecure    EventKind = "STILL_SECURE"
	KindSMP            EventKind = "SMP"             // handle_smp_event
	KindMsg            EventKind = "MSG"             // handle_msg_event
	KindSymkey         EventKind = "SYMKEY"          // received_symkey
	KindNewFingerprint EventKind = "NEW_FINGERPRINT" // new_fingerprint
	KindCreatePrivkey  EventKind = "CREATE_PRIVKEY"  // create_privkey
)

// SMP events.
const (
	SMPError        SMPEvent = "ERROR"
	SMPAbort        SMPEvent = "ABORT"
	SMPCheated      SMPEvent = "CHEATED"
	SMPAskForAnswer SMPEvent = "ASK_FOR_ANSWER"
	SMPAskForSecret SMPEvent = "ASK_FOR_SECRET"
	SMPInProgress   SMPEvent = "IN_PROGRESS"
	SMPSuccess      SMPEvent = "SUCCESS"
	SMPFailure      SMPEvent = "FAILURE"
)

// Message events.
const (
	MsgEncryptionRequired   MsgEvent = "ENCRYPTION_REQUIRED"
	MsgEncryptionError      MsgEvent = "ENCRYPTION_ERROR"
	MsgConnectionEnded      MsgEvent = "CONNECTION_ENDED"
	MsgSetupError           MsgEvent = "SETUP_ERROR"
	MsgReflected            MsgEvent = "MSG_REFLECTED"
	MsgResent               MsgEvent = "MSG_RESENT"
	MsgRcvdNotInPrivate     MsgEvent = "RCVDMSG_NOT_IN_PRIVATE"
	MsgRcvdUnreadable       MsgEvent = "RCVDMSG_UNREADABLE"
	MsgRcvdMalformed        MsgEvent = "RCVDMSG_MALFORMED"
	MsgHeartbeatRcvd        MsgEvent = "LOG_HEARTBEAT_RCVD"
	MsgHeartbeatSent        MsgEvent = "LOG_HEARTBEAT_SENT"
	MsgRcvdGeneralErr       MsgEvent = "RCVDMSG_GENERAL_ERR"
	MsgRcvdUnencrypted      MsgEvent = "RCVDMSG_UNENCRYPTED"
	MsgRcvdUnrecognized     MsgEvent = "RCVDMSG_UNRECOGNIZED"
	MsgRcvdForOtherInstance MsgEvent = "RCVDMSG_FOR_OTHER_INSTANCE"
)
