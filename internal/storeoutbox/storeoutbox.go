// Package storeoutbox keeps the messages a client (package client) sends
// while offline in Balcony's store, so that they leave when the
// connection is back and survive a restart of the process: it adapts
// store.OutboxStore to client.Outbox. XEP-0198 (Stream Management, Draft)
// decides when a queued message has left: the client removes it once the
// server acknowledged it.
//
// A queued message keeps its id (XEP-0359 origin-id), its receipt request
// (XEP-0184), type and thread; its body is sealed at rest by the store.
//
// It joins the client and the store, which know nothing of each other,
// so it belongs with the command (layer 5 of docs/ARCHITECTURE.md), not
// with the client's mechanism glue, which never imports the store.
package storeoutbox

import (
	"context"
	"errors"
	"fmt"

	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/client"
	"github.com/balcony-im/balcony/eme"
	"github.com/balcony-im/balcony/store"
)

// Store is client.Outbox over a store's outbox.
type Store struct {
	S store.OutboxStore
}

var _ client.Outbox = Store{}

// Put stores m durably (the store commits before it returns) and sets
// m.Key.
func (o Store) Put(ctx context.Context, m *client.QueuedMessage) error {
	mech, ns, err := storeMechanism(m.Mechanism)
	if err != nil {
		return err
	}
	typ := m.Type
	if typ == "chat" {
		typ = ""
	}
	key, err := o.S.EnqueueMessage(ctx, store.OutboxMessage{To: m.To.String(), Body: m.Body, Mechanism: mech,
		MessageID: m.ID, Receipt: m.Receipt, Type: typ, Thread: m.Thread, Namespace: ns})
	if err != nil {
		return err
	}
	m.Key = key
	return nil
}

// Queued returns the stored messages, oldest first. A message queued
// without an id (by an older version) gets one made of its creation time
// and store key, the same at every call, so that sending it twice after
// a crash keeps one id.
func (o Store) Queued(ctx context.Context) ([]client.QueuedMessage, error) {
	list, err := o.S.Outbox(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]client.QueuedMessage, 0, len(list))
	for _, m := range list {
		to, err := jid.Parse(m.To)
		if err != nil {
			return nil, fmt.Errorf("storeoutbox: message %d has an invalid recipient: %w", m.ID, err)
		}
		id := m.MessageID
		if id == "" {
			id = fmt.Sprintf("outbox-%d-%d", m.Created.UnixMilli(), m.ID)
		}
		typ := m.Type
		if typ == "" {
			typ = "chat"
		}
		out = append(out, client.QueuedMessage{Key: m.ID, To: to, ID: id, Type: typ, Thread: m.Thread, Body: m.Body,
			Receipt: m.Receipt, Mechanism: namespace(m.Mechanism, m.Namespace), Queued: m.Created})
	}
	return out, nil
}

// Remove deletes a message that left or failed for good; one already
// gone is no error.
func (o Store) Remove(ctx context.Context, key int64) error {
	err := o.S.Dequeue(ctx, key)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	return err
}

// storeMechanism maps an EME namespace to the store's name, and the
// namespace to keep beside it when the name does not say it (OMEMO's
// generations); only mechanisms whose messages may wait
// (client.Needs.Deferrable) reach the outbox.
func storeMechanism(ns string) (store.Mechanism, string, error) {
	switch ns {
	case "":
		return "", "", nil
	case eme.OX:
		return store.OX, "", nil
	case eme.OMEMO0, eme.OMEMO2:
		return store.OMEMO, ns, nil
	}
	return "", "", fmt.Errorf("storeoutbox: messages of %s are not kept", eme.DisplayName(ns, ""))
}

// namespace is the EME namespace of a stored message: the one kept with
// it, or the mechanism's.
func namespace(m store.Mechanism, ns string) string {
	switch {
	case ns != "":
		return ns
	case m == store.OX:
		return eme.OX
	}
	return ""
}
