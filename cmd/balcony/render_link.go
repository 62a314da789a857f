package main

import (
	"fmt"
	"time"

	"github.com/balcony-im/balcony/client"
	"github.com/balcony-im/balcony/eme"
)

// The connection and the fates of sent messages, as listen shows them:
//
//	TIME connection !! disconnected: REASON; resuming
//	TIME me->TO [acked] ID TEXT
//
// A connection line is a notice from "connection" (the word is Balcony's:
// no address contains a space, and no JID is that bare word with "!!"
// after it, since the FROM field of a message is always a full address).

// connectionText is the sentence for a connection event.
func connectionText(ev *client.ConnectionEvent) string {
	switch ev.State {
	case client.Connected:
		if ev.Resumed {
			return "connection back, stream resumed as " + ev.JID.String() + ": nothing was lost"
		}
		return "connected as " + ev.JID.String()
	case client.Disconnected:
		txt := "disconnected"
		if ev.Err != nil {
			txt += ": " + ev.Err.Error()
		}
		if ev.Resumable {
			return txt + "; the stream can be resumed"
		}
		return txt
	case client.Reconnecting:
		return fmt.Sprintf("reconnecting in %s", ev.Retry.Round(10*time.Millisecond))
	}
	return ev.State.String()
}

// fateText is the sentence for a fate (after the message id).
func fateText(ev *client.FateEvent) string {
	switch ev.Fate {
	case client.FateQueued:
		return "queued: it leaves when the connection is back"
	case client.FateSent:
		if ev.Tracked {
			return "written to the server, awaiting its acknowledgement"
		}
		return "written to the server (it does not acknowledge messages)"
	case client.FateAcked:
		return "acknowledged by the server"
	case client.FateDelivered:
		return "delivered to the recipient"
	case client.FateFailed:
		return "failed: " + fateReason(ev)
	}
	return ev.Fate.String()
}

// fateReason says why a message failed: the error condition and the
// remote text (quoted, shortened), or the client's reason.
func fateReason(ev *client.FateEvent) string {
	if ev.Condition != "" {
		r := ev.Condition
		if q := eme.QuoteRemote(ev.Text); q != "" {
			r += ", saying " + q
		}
		return r
	}
	if ev.Err != nil {
		return ev.Err.Error()
	}
	return "unknown"
}

// linkEvent prints a connection or fate event; it reports false for
// other events.
func (r *renderer) linkEvent(ev client.Event) bool {
	switch ev := ev.(type) {
	case *client.ConnectionEvent:
		if r.json {
			j := jsonEvent{Type: "connection", Time: ev.Time, Kind: ev.State.String(), Text: connectionText(ev),
				Resumed: ev.Resumed, Resumable: ev.Resumable}
			if ev.State == client.Connected {
				j.To = ev.JID.String()
			}
			if ev.Err != nil {
				j.Reason = ev.Err.Error()
			}
			if ev.State == client.Reconnecting {
				j.Retry = ev.Retry.Seconds()
			}
			r.jsonLine(j)
			return true
		}
		r.notice(ev.Time, "connection", connectionText(ev))
		return true
	case *client.FateEvent:
		if r.json {
			j := jsonEvent{Type: "fate", Time: ev.Time, To: ev.To.String(), ID: ev.ID, Kind: ev.Fate.String(), Text: fateText(ev)}
			if ev.Fate == client.FateFailed {
				j.Reason = fateReason(ev)
			}
			r.jsonLine(j)
			return true
		}
		fmt.Fprintf(r.w, "%s %s [%s] %s %s\n", r.ts(ev.Time), escapeAddr("me->"+ev.To.String()), ev.Fate, escape(ev.ID), escape(fateText(ev)))
		return true
	}
	return false
}
