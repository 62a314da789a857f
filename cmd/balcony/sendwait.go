package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/client"
	esclient "github.com/balcony-im/balcony/client/esession"
	otrclient "github.com/balcony-im/balcony/client/otr"
	"github.com/balcony-im/balcony/eme"
)

// fateRecord is one step of a sent message's fate, as send reports it.
type fateRecord struct {
	Fate   string    `json:"fate"`
	Text   string    `json:"text"`
	Reason string    `json:"reason,omitempty"`
	Time   time.Time `json:"time"`
}

// doSend sends one message in a connected (or reconnecting) session and
// waits for its fate (client.FateEvent): success means the server
// acknowledged the message (XEP-0198), or wrote it when the server does
// not acknowledge, or the outbox holds it durably; with a.Receipt, the
// recipient confirmed it; with a.Wait, a queued message also left and was
// acknowledged. A failure comes back as an error with its reason.
func doSend(ctx context.Context, s *session, a sendArgs) (sendResult, error) {
	to, err := jid.Parse(a.To)
	if err != nil {
		return sendResult{}, err
	}
	c := s.client
	mech, err := chooseMechanism(ctx, s, to, a)
	if err != nil {
		return sendResult{}, err
	}
	if isOMEMO(mech) && s.omemo != nil && !s.announce {
		// A device that never announced itself is unknown to the contact,
		// whose client would warn about its message.
		if ok, err := s.omemo.Published(ctx); err == nil && !ok {
			s.announceOMEMO(ctx)
		}
	}
	ids := map[string]bool{}
	// Every step of the message's fate, read after Send returned (the
	// predicate runs in the event loop, under the lock held around Send).
	fates := s.watchAll(16, func(ev any) bool {
		fe, ok := ev.(*client.FateEvent)
		return ok && ids[fe.ID]
	})
	defer s.unwatch(fates)
	// A message OTR holds leaves when the private conversation starts.
	var secure *watcher
	if mech == eme.OTR && a.Wait > 0 {
		secure = s.watch(func(ev any) bool {
			se, ok := ev.(*client.SecurityEvent)
			return ok && se.Mechanism == eme.OTR && se.Peer.Equal(to) && (se.Kind == otrclient.KindPrivate || se.Kind == otrclient.KindVerified)
		})
		defer s.unwatch(secure)
	}
	s.watchers.mu.Lock()
	sent, err := c.Send(ctx, &client.Outgoing{To: to, Body: a.Body, Receipt: a.Receipt}, mech)
	if sent.ID != "" {
		ids[sent.ID] = true
	}
	s.watchers.mu.Unlock()
	switch {
	case errors.Is(err, esclient.ErrNoSession):
		return sendResult{}, withHint(err, "start one with: balcony esession start "+to.String())
	case errors.Is(err, otrclient.ErrFullJID):
		return sendResult{}, withHint(err, "name the contact's resource, e.g. "+to.Bare().String()+"/phone (see balcony otr status)")
	case errors.Is(err, otrclient.ErrNoSession):
		return sendResult{}, withHint(err, "start one with: balcony otr start --wait 30s "+to.String())
	case err != nil && isOMEMO(mech) && !errors.As(err, new(*client.OfflineError)):
		return sendResult{}, omemoSendHint(err, to)
	case errors.As(err, new(*client.OfflineError)):
		return sendResult{}, withHint(err, "wait for the connection to come back (balcony status), or send with --ox or --plain, which can wait in the outbox")
	}
	if err != nil && !sent.Queued && !errors.Is(err, client.ErrNotConnected) {
		return sendResult{}, withLibraryHint(err, s.e.lang)
	}
	res := sendResult{IDs: sent.IDs, Held: sent.Held, Queued: sent.Queued}
	if sent.Held {
		// The ids are those of the query; the message gets its own when it
		// leaves, so its fate cannot be followed here.
		if secure == nil {
			return res, nil
		}
		wctx, cancel := context.WithTimeout(ctx, a.Wait)
		defer cancel()
		if _, err := s.wait(wctx, secure); err != nil {
			return res, withHint(fmt.Errorf("the private conversation with %s did not start within %s; the message is still held", to, a.Wait),
				"the contact may be offline or may not speak OTR; see balcony otr status "+to.String())
		}
		res.Left = true
		return res, nil
	}
	// An ErrNotConnected left here means the stream went down while the
	// message was written: the client keeps it for the next stream
	// (XEP-0198 resend) and its fate follows.
	// A message queued behind older ones while connected leaves at once:
	// wait for it as for any other.
	leave := a.Wait > 0 || (res.Queued && c.Connected())
	if !res.Queued {
		// The server's acknowledgement is due now, not after the client's
		// usual wait for more stanzas to acknowledge at once.
		_ = c.RequestAck()
	}
	return res, awaitFate(ctx, a, leave, fates, &res)
}

// awaitFate reads the fates of a sent message until the send is settled
// (see doSend), recording each in res; with leave, a queued message must
// also have left.
func awaitFate(ctx context.Context, a sendArgs, leave bool, fates *watcher, res *sendResult) error {
	// stored: acknowledged, written without acknowledgements, or queued.
	stored := res.Queued
	left := false // acknowledged, or written to a server that does not acknowledge
	if res.Queued {
		res.Fates = append(res.Fates, fateRecord{Fate: client.FateQueued.String(),
			Text: fateText(&client.FateEvent{Fate: client.FateQueued}), Time: time.Now()})
	}
	for {
		if stored && !a.Receipt && (!res.Queued || !leave || left) {
			return nil
		}
		var ev any
		select {
		case ev = <-fates.ch:
		case <-ctx.Done():
			switch {
			case !stored:
				return withHint(errors.New("the server has not acknowledged the message yet"),
					"the connection may be down or stalled (see balcony status); a running listener resends it when the connection is back, and --wait DUR shows what becomes of it")
			case a.Receipt:
				return withHint(errors.New("no delivery receipt before the timeout"), "the recipient may be offline or may not send receipts")
			}
			return withHint(errors.New("the queued message has not left yet"), "it leaves when the connection is back")
		}
		fe := ev.(*client.FateEvent)
		rec := fateRecord{Fate: fe.Fate.String(), Text: fateText(fe), Time: fe.Time}
		switch fe.Fate {
		case client.FateQueued:
			if res.Queued {
				continue // recorded above
			}
			res.Queued, stored = true, true
		case client.FateSent:
			if !fe.Tracked {
				stored, left = true, true
			}
		case client.FateAcked:
			stored, left, res.Acked = true, true, true
		case client.FateDelivered:
			res.Delivered = fe.ID
			res.Fates = append(res.Fates, rec)
			return nil
		case client.FateFailed:
			rec.Reason = fateReason(fe)
			res.Fates = append(res.Fates, rec)
			return &fateError{reason: rec.Reason}
		}
		res.Fates = append(res.Fates, rec)
	}
}

// fateError reports a message that failed (FateFailed).
type fateError struct{ reason string }

func (e *fateError) Error() string { return "not delivered: " + e.reason }

// printFates prints the steps of a sent message's fate: JSON lines (type
// "fate") with asJSON, text lines with steps, nothing otherwise.
func printFates(e *env, res sendResult, steps, asJSON bool, to jid.JID) {
	if !steps && !asJSON {
		return
	}
	r := &renderer{w: e.stdout, json: asJSON, lang: e.lang}
	id := ""
	if len(res.IDs) > 0 {
		id = res.IDs[0]
	}
	for _, f := range res.Fates {
		if asJSON {
			r.jsonLine(jsonEvent{Type: "fate", Time: f.Time, To: to.String(), ID: id, Kind: f.Fate, Text: f.Text, Reason: f.Reason})
			continue
		}
		fmt.Fprintf(e.stdout, "%s: %s\n", f.Fate, escape(f.Text))
	}
}
