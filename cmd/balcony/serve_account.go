package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/client"
	"github.com/balcony-im/balcony/store"
)

// settingCheckpoint is the setting in which balcony serve keeps an
// account's checkpoint, in the account's store (shared by every host
// with PostgreSQL).
const settingCheckpoint = "serve:checkpoint"

// maxRecent bounds the ids a checkpoint lists after its archive id, and
// maxSettled the settled ids it keeps.
const (
	maxRecent  = 500
	maxSettled = 200
)

// checkpoint records what balcony serve has written of an account's
// messages, so that the next run (on this host or, after a handover, on
// another) catches up from the archive (XEP-0313) where this one stopped
// and writes none of them again.
//
// Messages reach a serving process in the order the server archived them
// for each sender, but not across senders (the client processes senders
// in parallel lanes), and a catch-up runs beside live delivery; so the
// position of the last message written is not a safe place to resume
// from. After is: every message the archive holds up to it has been
// written, or was overtaken by more than the settle time. Recent lists,
// oldest first, the stanza-ids (XEP-0359, our server's, the same as the
// archive's) of the messages written after it; an id leaves Recent for
// After once it was written more than the settle time ago. The next run
// catches up after After and drops what Recent lists.
//
// Around a handover the order in which messages are written is not the
// archive's (what the server stored while nobody was bound, delivered
// on the initial presence, live messages, and the catch-up, interleave):
// ids settle in the order written, so the id that becomes After may be
// older in the archive than ids that settled before it, and a catch-up
// after it fetches those again. Settled therefore keeps, oldest first,
// the last maxSettled ids that left Recent, and the next run drops them
// too.
type checkpoint struct {
	After   string      `json:"after,omitempty"`
	Recent  []delivered `json:"recent,omitempty"`
	Settled []string    `json:"settled,omitempty"`
	seen    map[string]bool
}

type delivered struct {
	ID string `json:"id"`
	At int64  `json:"at"` // when it was written, Unix milliseconds
}

func loadCheckpoint(ctx context.Context, st store.SettingStore) (*checkpoint, error) {
	ck := &checkpoint{}
	v, err := st.Setting(ctx, settingCheckpoint)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return nil, err
	default:
		if err := json.Unmarshal([]byte(v), ck); err != nil {
			return nil, fmt.Errorf("the checkpoint of balcony serve is damaged: %w", err)
		}
	}
	ck.seen = make(map[string]bool, len(ck.Recent)+len(ck.Settled))
	for _, id := range ck.Settled {
		ck.seen[id] = true
	}
	now := time.Now().UnixMilli()
	for i, d := range ck.Recent {
		ck.seen[d.ID] = true
		// The previous run may have stopped in the middle of the settle
		// time: its ids are kept for a whole settle time from now, so
		// that copies the server delivers again after a handover (stanzas
		// the old session had not acknowledged) are still recognised.
		ck.Recent[i].At = max(d.At, now)
	}
	return ck, nil
}

// resumeFrom is the archive id the next catch-up starts after ("" for
// none: nothing was ever written).
func (ck *checkpoint) resumeFrom() string {
	if ck.After == "" && len(ck.Recent) > 0 {
		// Nothing settled yet: the first message written is the earliest
		// known place.
		return ck.Recent[0].ID
	}
	return ck.After
}

// written reports whether a message with this stanza-id was written.
func (ck *checkpoint) written(id string) bool { return ck.seen[id] }

// add records a written message and settles what is old enough.
func (ck *checkpoint) add(id string, now time.Time, settle time.Duration) {
	ck.Recent = append(ck.Recent, delivered{ID: id, At: now.UnixMilli()})
	ck.seen[id] = true
	limit := now.Add(-settle).UnixMilli()
	n := 0
	for n < len(ck.Recent) && (ck.Recent[n].At <= limit || len(ck.Recent)-n > maxRecent) {
		ck.After = ck.Recent[n].ID
		ck.Settled = append(ck.Settled, ck.Recent[n].ID)
		n++
	}
	ck.Recent = append(ck.Recent[:0:0], ck.Recent[n:]...)
	if k := len(ck.Settled) - maxSettled; k > 0 {
		for _, id := range ck.Settled[:k] {
			delete(ck.seen, id)
		}
		ck.Settled = append(ck.Settled[:0:0], ck.Settled[k:]...)
	}
}

// merge adds what a former holder recorded after ck was read (o, read
// again later): the ids it lists and its archive id, each a message
// written. The place to resume from does not move: the catch-up drops
// what either lists.
func (ck *checkpoint) merge(o *checkpoint) {
	for _, id := range o.Settled {
		if !ck.seen[id] && id != ck.After {
			ck.Settled = append(ck.Settled, id)
			ck.seen[id] = true
		}
	}
	add := func(id string, at int64) {
		if id == "" || id == ck.After || ck.seen[id] {
			return
		}
		ck.Recent = append(ck.Recent, delivered{ID: id, At: at})
		ck.seen[id] = true
	}
	add(o.After, time.Now().UnixMilli())
	for _, d := range o.Recent {
		add(d.ID, d.At)
	}
}

func (ck *checkpoint) save(ctx context.Context, st store.SettingStore) error {
	b, err := json.Marshal(ck)
	if err != nil {
		return err
	}
	return st.SetSetting(ctx, settingCheckpoint, string(b))
}

// served is one account a serve process runs.
type served struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// stop ends the account's session and waits until its last events are
// written.
func (a *served) stop() {
	a.cancel()
	<-a.done
}

// startAccount runs the account in a goroutine of its own (see
// runAccount); ended receives its JID when it stops by itself.
func (sv *server) startAccount(ctx context.Context, j string, fence *hostFence, holds func(context.Context) error, delay time.Duration, ended chan<- string) *served {
	ctx, cancel := context.WithCancel(ctx)
	a := &served{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(a.done)
		err := sv.runAccount(ctx, j, fence, holds, delay)
		if err != nil && ctx.Err() == nil {
			sv.sink.status(j, "failed", oneLine(err.Error()))
			sv.logf("%s: %v", j, err)
		}
		if ctx.Err() == nil && ended != nil {
			select {
			case ended <- j:
			case <-ctx.Done():
			}
		}
	}()
	return a
}

// runAccount serves one account until ctx ends: after delay (the fence
// delay of a lock just taken), it opens the account's store, sets up its
// client and mechanisms as balcony listen does, serves its control
// socket, connects (retrying), catches up from the checkpoint, and
// writes every event as a JSON line, recording each written message in
// the checkpoint before the next event. The goroutines it needs are the
// client's own, this one, and the control socket's.
//
// With a shared store, holds confirms on the host's lock connection that
// the host still holds the account's lock; the client asks it before
// every connection (the first, each reconnection, each resumption), so
// a host that lost the lock never connects the account, whatever the
// timing. Every host binds the account under the same full JID, so the
// XMPP server itself ends the session of a former host when the next
// binds (RFC 6120 §7.7.2.2): at no moment are two sessions of the
// account bound. A session the server replaced, or a reconnection
// refused for want of the lock, ends the account here; the host unlocks
// it, and takes it again later if it is free.
func (sv *server) runAccount(ctx context.Context, j string, fence *hostFence, holds func(context.Context) error, delay time.Duration) error {
	// The fence ends everything at once: the delay, the store, a
	// connection being made, the event loop.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer fence.afterFunc(cancel)()
	if delay > 0 {
		sv.sink.status(j, "waiting", fmt.Sprintf("serving in %s (fence delay)", delay))
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
	a, st, err := sv.src.open(ctx, j)
	if err != nil {
		return err
	}
	ck, err := loadCheckpoint(ctx, st)
	if err != nil {
		st.Close()
		return err
	}
	pw, err := st.Password(ctx)
	if err != nil {
		st.Close()
		return withHint(fmt.Errorf("no saved password for %s: %w", j, err), "save it in the account's store (balcony serve add, or balcony account password --save)")
	}
	pass := string(pw)
	clear(pw)
	sess, err := newSession(ctx, sv.e, a, st, pass, func(cfg *client.Config) {
		cfg.Reconnect = true
		cfg.LastArchiveID = ck.resumeFrom()
		cfg.Logger = sv.clientLog
		cfg.BeforeConnect = func(ctx context.Context) error {
			if fence.isSet() {
				return errFenced
			}
			if holds == nil {
				return nil
			}
			return holds(ctx)
		}
	})
	if err != nil {
		return err
	}
	defer sess.Close()
	stopControl, err := serveControl(ctx, sess)
	if err != nil {
		return err
	}
	defer stopControl()
	c := sess.client
	for backoff := time.Second; ; backoff = min(2*backoff, time.Minute) {
		if err = sess.dial(ctx); err == nil {
			break
		}
		if errors.Is(err, client.ErrConnectRefused) {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		sv.sink.status(j, "failed", oneLine(err.Error()))
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
	if err := sameResource(c.JID(), a.Resource, holds != nil); err != nil {
		c.Abort()
		return err
	}
	// The server replaced the session of a former holder (if any) when
	// this one bound, so that holder receives nothing more: what it
	// recorded since the checkpoint was read joins it, and the catch-up
	// does not write it again.
	if again, err := loadCheckpoint(ctx, st); err == nil {
		ck.merge(again)
	}
	sv.sink.status(j, "connected", c.JID().String())
	out := &accountOut{sink: sv.sink, fence: fence}
	stop := false
	r := &renderer{w: out, json: true, lang: sv.e.lang, account: j}
	handle := func(ev client.Event) {
		if out.fenced() {
			return
		}
		var sid string
		switch ev := ev.(type) {
		case *client.MessageEvent:
			sid = ev.Origin.StanzaID
		case *client.NoticeEvent:
			sid = ev.Origin.StanzaID
		}
		if sid != "" && ck.written(sid) {
			// Written before the handover (or the restart): the catch-up
			// fetched it again.
			return
		}
		out.refused = false
		r.event(ev)
		sess.offer(ev)
		if sid == "" || out.refused {
			return
		}
		ck.add(sid, time.Now(), sv.opts.settle)
		// The next event waits until this message is recorded, so that a
		// handover writes at most this one again. A fenced host records
		// nothing more: the account may be served elsewhere already.
		for failed := false; !out.fenced(); failed = true {
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), sv.opts.saveTimeout)
			err := ck.save(sctx, st)
			cancel()
			if err == nil {
				if failed {
					sv.logf("%s: checkpoint saved again", j)
				}
				return
			}
			if !failed {
				sv.logf("%s: saving the checkpoint: %v; trying again", j, err)
			}
			time.Sleep(sv.opts.saveTimeout / 4)
		}
	}
	for {
		select {
		case <-ctx.Done():
			// Stopped, or fenced: at once, whatever the host's loop is
			// busy with.
			stop = true
		case ev, ok := <-c.Events():
			if !ok {
				return nil
			}
			handle(ev)
			if why := sessionOver(ev, a.Resource, holds != nil); why != "" {
				// The client will not reconnect by itself.
				if !out.fenced() {
					sv.sink.status(j, "replaced", why)
				}
				stop = true
			}
		}
		if stop {
			// What the client still delivers while it closes is written;
			// a fenced account's connection is dropped at once instead
			// (nothing more goes out for it, not even an acknowledgement:
			// the server keeps the rest for whoever takes over).
			closed := make(chan struct{})
			go func() {
				if out.fenced() {
					c.Abort()
				} else {
					c.Close()
				}
				close(closed)
			}()
			// A fence during a graceful close cuts it short.
			stopAbort := fence.afterFunc(func() { c.Abort() })
			for ev := range c.Events() {
				handle(ev)
			}
			<-closed
			stopAbort()
			sv.sink.status(j, "stopped", "")
			return nil
		}
	}
}

// sameResource checks that the server bound the resource asked for:
// with a shared store the exclusion of hosts rests on every host using
// the same full JID (a server that picked another resource would let
// two sessions of the account live side by side).
func sameResource(bound jid.JID, want string, shared bool) error {
	if !shared || bound.Resourcepart() == want {
		return nil
	}
	return withHint(fmt.Errorf("the server bound %s, not the resource %q asked for: hosts could not replace each other's sessions", bound, want),
		"use a server that keeps the requested resource (Prosody and ejabberd do)")
}

// sessionOver tells, for an event of the account's client, why its
// session is over for good ("" when it is not): the server replaced it
// by a session of the same full JID (another host took the account), a
// reconnection was refused (the host no longer holds the account's
// lock), or a reconnection bound another resource.
func sessionOver(ev client.Event, resource string, shared bool) string {
	ce, ok := ev.(*client.ConnectionEvent)
	switch {
	case !ok:
		return ""
	case ce.State == client.Disconnected && errors.Is(ce.Err, client.ErrReplaced):
		return "another session bound the account's resource"
	case ce.State == client.Disconnected && errors.Is(ce.Err, client.ErrConnectRefused):
		return oneLine(ce.Err.Error())
	case ce.State == client.Connected:
		if err := sameResource(ce.JID, resource, shared); err != nil {
			return err.Error()
		}
	}
	return ""
}
