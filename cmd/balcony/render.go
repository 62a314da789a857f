package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/balcony-im/balcony/client"
	"github.com/balcony-im/balcony/cmd/balcony/internal/termtext"
	"github.com/balcony-im/balcony/eme"
)

// renderer prints events one per line. A message line is
//
//	TIME FROM [SECURITY] TEXT
//
// and a notice line is
//
//	TIME FROM !! TEXT
//
// The third field is always written by Balcony, and remote text is escaped
// so that it can never contain a line break: a sender cannot make a
// message look like a notice or start a line of their own.
type renderer struct {
	w     io.Writer
	json  bool
	color bool
	// lang is the language of hints (BCP 47); the library already wrote
	// event texts in the client's language.
	lang string
	// slash renders hints as the chat window's slash commands.
	slash bool
	// account, if set, tags every JSON line with the account it is for
	// (balcony serve runs many).
	account string
}

// hint is the sentence for what the user can do about an event, or "".
func (r *renderer) hint(h eme.Hint, fpr string) string {
	return hintText(h, fpr, r.slash, r.lang)
}

// withHint appends the hint sentence to text.
func (r *renderer) withHint(text string, h eme.Hint, fpr string) string {
	if t := r.hint(h, fpr); t != "" {
		return text + " " + t
	}
	return text
}

func (r *renderer) event(ev client.Event) {
	if r.linkEvent(ev) {
		return
	}
	if r.json {
		r.jsonEvent(ev)
		return
	}
	switch ev := ev.(type) {
	case *client.MessageEvent:
		if ev.Body == "" {
			// Chat states and other body-less messages: nothing to show,
			// but their warnings still are.
			for _, w := range ev.Security.Warnings {
				r.notice(ev.Time, ev.From.String(), "warning: "+w.Text)
			}
			return
		}
		who := ev.From.String()
		if ev.Origin.Carbon == client.CarbonSent {
			who = "me->" + ev.To.String()
		}
		state := securityLabel(ev.Security)
		extra := ""
		if ev.Origin.Archived {
			extra = " (archive)"
		} else if ev.Origin.Carbon != client.NotCarbon {
			extra = " (other device)"
		}
		if !ev.Origin.ClaimedTime.IsZero() {
			// A stamp the sender wrote: shown as its claim, never as the time.
			extra += " (dated " + ev.Origin.ClaimedTime.UTC().Format(time.RFC3339) + " by the sender)"
		}
		fmt.Fprintf(r.w, "%s %s [%s]%s %s\n", r.ts(ev.Time), escapeAddr(who), state, extra, escape(ev.Body))
		for _, w := range ev.Security.Warnings {
			r.notice(ev.Time, ev.From.String(), "warning: "+w.Text)
		}
	case *client.NoticeEvent:
		r.notice(ev.Time, ev.From.String(), r.withHint(ev.Text, ev.Hint, ""))
	case *client.SecurityEvent:
		txt := termtext.WithFingerprint(ev.Text, ev.Fingerprint)
		r.notice(time.Now(), ev.Peer.String(), r.withHint(txt, ev.Hint, ev.Fingerprint))
	case *client.ReceiptEvent:
		fmt.Fprintf(r.w, "%s %s [receipt] %s\n", r.ts(time.Now()), escapeAddr(ev.From.String()), escape(ev.ID))
	case *client.ErrorEvent:
		// The condition is one of RFC 6120's (the client checks); the id and
		// text are the sender's words, quoted and shortened.
		txt := "the server or contact answered message " + eme.QuoteRemote(ev.ID) + " with the error " + ev.Condition
		if q := eme.QuoteRemote(ev.Text); q != "" {
			txt += ", saying " + q
		}
		r.notice(time.Now(), ev.From.String(), txt)
	case *client.SubscriptionEvent:
		r.notice(time.Now(), ev.From.String(), "subscription: "+ev.Type)
	}
}

func (r *renderer) notice(t time.Time, from, text string) {
	if r.color {
		fmt.Fprintf(r.w, "%s %s \x1b[7;33m!!\x1b[0m \x1b[33m%s\x1b[0m\n", r.ts(t), escapeAddr(from), escape(text))
		return
	}
	fmt.Fprintf(r.w, "%s %s !! %s\n", r.ts(t), escapeAddr(from), escape(text))
}

func (r *renderer) ts(t time.Time) string {
	if t.IsZero() {
		t = time.Now()
	}
	return t.UTC().Format(time.RFC3339)
}

func securityLabel(s client.Security) string {
	if !s.Encrypted() {
		return "plaintext"
	}
	name := shortMechanism(s.Mechanism)
	label := name + " " + s.State()
	if s.Fingerprint != "" {
		label += " " + shortFingerprint(s.Fingerprint)
	}
	return label
}

func shortFingerprint(f string) string {
	f = strings.ReplaceAll(f, " ", "")
	if len(f) > 16 {
		return f[:16]
	}
	return f
}

// escapeAddr escapes an address for the FROM field (termtext.Addr).
func escapeAddr(s string) string { return termtext.Addr(s) }

// escape makes remote text safe for one terminal line (termtext.Line).
func escape(s string) string { return termtext.Line(s) }

type jsonEvent struct {
	// Account is the account the event is for (balcony serve only).
	Account   string    `json:"account,omitempty"`
	Type      string    `json:"type"`
	Time      time.Time `json:"time"`
	From      string    `json:"from,omitempty"`
	To        string    `json:"to,omitempty"`
	ID        string    `json:"id,omitempty"`
	Body      string    `json:"body,omitempty"`
	Text      string    `json:"text,omitempty"`
	Reason    string    `json:"reason,omitempty"`
	Mechanism string    `json:"mechanism,omitempty"`
	Security  string    `json:"security,omitempty"`
	Verified  bool      `json:"verified,omitempty"`
	Finger    string    `json:"fingerprint,omitempty"`
	Trust     string    `json:"trust,omitempty"`
	Warnings  []string  `json:"warnings,omitempty"`
	// WarningIDs are the catalogue IDs of Warnings, in the same order.
	WarningIDs []eme.MessageID `json:"warning_ids,omitempty"`
	Carbon     string          `json:"carbon,omitempty"`
	Archived   bool            `json:"archived,omitempty"`
	Kind       string          `json:"kind,omitempty"`
	// MessageID is the catalogue ID of a security event's text.
	MessageID eme.MessageID `json:"message_id,omitempty"`
	// Hint is what the user can do, and Command the balcony command for it.
	Hint    *eme.Hint `json:"hint,omitempty"`
	Command string    `json:"command,omitempty"`
	// Claimed is a delay stamp the message carried that is not believed.
	Claimed *time.Time `json:"claimed_time,omitempty"`
	// Resumed and Resumable describe a connection event (XEP-0198), and
	// Retry is the wait in seconds before a reconnection attempt.
	Resumed   bool    `json:"resumed,omitempty"`
	Resumable bool    `json:"resumable,omitempty"`
	Retry     float64 `json:"retry_seconds,omitempty"`
	// StanzaID is the id our own server gave the message (XEP-0359), the
	// same on every copy; CatchUp marks a message fetched from the archive
	// after a reconnection or a handover.
	StanzaID string `json:"stanza_id,omitempty"`
	CatchUp  bool   `json:"catch_up,omitempty"`
}

func (r *renderer) jsonEvent(ev client.Event) {
	var j jsonEvent
	switch ev := ev.(type) {
	case *client.MessageEvent:
		if ev.Body == "" {
			// As in text mode: a body-less message (a chat state, protocol
			// left-overs) is not a message; its warnings are notices.
			for _, w := range ev.Security.Warnings {
				r.jsonLine(jsonEvent{Type: "notice", Time: ev.Time, From: ev.From.String(), To: ev.To.String(), ID: ev.ID,
					Reason: "warning", Text: "warning: " + w.Text, Mechanism: ev.Security.Mechanism, MessageID: w.Message.ID})
			}
			return
		}
		j = jsonEvent{Type: "message", Time: ev.Time, From: ev.From.String(), To: ev.To.String(), ID: ev.ID, Body: ev.Body,
			Mechanism: ev.Security.Mechanism, Security: ev.Security.State(), Verified: ev.Security.Verified,
			Finger: ev.Security.Fingerprint, Trust: ev.Security.Trust, Carbon: ev.Origin.Carbon.String(), Archived: ev.Origin.Archived,
			StanzaID: ev.Origin.StanzaID, CatchUp: ev.Origin.CatchUp}
		for _, w := range ev.Security.Warnings {
			j.Warnings = append(j.Warnings, w.Text)
			j.WarningIDs = append(j.WarningIDs, w.Message.ID)
		}
		if !ev.Origin.ClaimedTime.IsZero() {
			j.Claimed = &ev.Origin.ClaimedTime
		}
	case *client.NoticeEvent:
		j = jsonEvent{Type: "notice", Time: ev.Time, From: ev.From.String(), To: ev.To.String(), ID: ev.ID, Text: ev.Text,
			Reason: ev.Reason.String(), Mechanism: ev.Namespace, Carbon: ev.Origin.Carbon.String(), Archived: ev.Origin.Archived,
			StanzaID: ev.Origin.StanzaID, CatchUp: ev.Origin.CatchUp}
		j.setHint(ev.Hint, "", r)
	case *client.SecurityEvent:
		j = jsonEvent{Type: "security", Time: time.Now(), From: ev.Peer.String(), Mechanism: ev.Mechanism, Kind: string(ev.Kind), Text: ev.Text,
			Finger: ev.Fingerprint, MessageID: ev.Message.ID}
		j.setHint(ev.Hint, ev.Fingerprint, r)
	case *client.ReceiptEvent:
		j = jsonEvent{Type: "receipt", Time: time.Now(), From: ev.From.String(), ID: ev.ID}
	case *client.ErrorEvent:
		j = jsonEvent{Type: "error", Time: time.Now(), From: ev.From.String(), ID: ev.ID, Reason: ev.Condition, Text: ev.Text}
	default:
		return
	}
	r.jsonLine(j)
}

func (r *renderer) jsonLine(j jsonEvent) {
	j.Account = r.account
	b, _ := json.Marshal(j)
	r.w.Write(append(jsonSafe(b), '\n'))
}

// jsonSafe escapes what encoding/json leaves raw but a terminal or a
// careless consumer would interpret: C1 controls and bidirectional
// formatting characters (\u escapes are valid in any JSON string).
func jsonSafe(b []byte) []byte {
	var out []byte
	for i, r := range string(b) {
		if (unicode.IsControl(r) && r > 0x7f) || unicode.Is(unicode.Bidi_Control, r) || r == '\u2028' || r == '\u2029' {
			if out == nil {
				out = append(make([]byte, 0, len(b)+16), b[:i]...)
			}
			out = fmt.Appendf(out, `\u%04x`, r)
			continue
		}
		if out != nil {
			out = utf8.AppendRune(out, r)
		}
	}
	if out == nil {
		return b
	}
	return out
}

// setHint records a hint and balcony's command for it.
func (j *jsonEvent) setHint(h eme.Hint, fpr string, r *renderer) {
	if h.Action == eme.ActionNone {
		return
	}
	j.Hint = &h
	j.Command = hintCommand(h, fpr, r.slash)
}
