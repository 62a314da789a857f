package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"mellium.im/xmpp/jid"
)

// OutboxMessage is a message accepted for sending but not sent yet.
type OutboxMessage struct {
	ID        int64
	To        string    // full or bare JID
	Body      string    // the plaintext, sealed at rest
	Mechanism Mechanism // the mechanism to send it with; empty for none
	Created   time.Time
	// MessageID is the id the message keeps when it leaves (XEP-0359
	// origin-id), so that recipients recognise it if it is sent twice;
	// "" when none was given.
	MessageID string
	// Receipt asks the recipient for a delivery receipt (XEP-0184).
	Receipt bool
	// Type is the message's type attribute ("" stands for "chat") and
	// Thread its <thread/>, "" for none.
	Type, Thread string
	// Namespace is the XEP-0380 namespace to send it with when Mechanism
	// alone does not say which (OMEMO 0.3 or OMEMO 2); "" otherwise.
	Namespace string
}

// maxMessageID bounds the length of an outbox message id.
const maxMessageID = 256

// Enqueue adds a message to the outbox and returns its id. The body is
// sealed at rest. Remove it with Dequeue once it has been sent.
func (s *core) Enqueue(ctx context.Context, to, body string, m Mechanism) (int64, error) {
	return s.EnqueueMessage(ctx, OutboxMessage{To: to, Body: body, Mechanism: m})
}

// EnqueueMessage is Enqueue with the message's id, receipt request,
// type and thread (ID and Created of m are ignored).
func (s *core) EnqueueMessage(ctx context.Context, m OutboxMessage) (int64, error) {
	const op = "enqueue"
	j, err := jid.Parse(m.To)
	if err != nil {
		return 0, wrap(op, fmt.Errorf("invalid JID %q: %w", m.To, err))
	}
	if m.Mechanism != "" && !m.Mechanism.Valid() {
		return 0, wrap(op, fmt.Errorf("unknown mechanism %q", string(m.Mechanism)))
	}
	if len(m.MessageID) > maxMessageID || len(m.Thread) > maxMessageID {
		return 0, wrap(op, fmt.Errorf("message id or thread longer than %d bytes", maxMessageID))
	}
	switch m.Type {
	case "", "chat", "normal", "headline", "groupchat":
	default:
		return 0, wrap(op, fmt.Errorf("invalid message type %q", m.Type))
	}
	// Without an id or a receipt request the columns keep their defaults
	// (and the statement is the one of schemas before version 6).
	insert, args := `INSERT INTO outbox (/*account_id,*/ recipient, body, mechanism, created) VALUES (/*$account,*/ ?, ?, ?, ?) RETURNING id`,
		[]any{j.String(), []byte{}, m.Mechanism, s.nowMillis()}
	switch {
	case m.Namespace != "":
		insert = `INSERT INTO outbox (/*account_id,*/ recipient, body, mechanism, created, message_id, receipt, msg_type, thread, namespace) VALUES (/*$account,*/ ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`
		args = append(args, m.MessageID, m.Receipt, m.Type, m.Thread, m.Namespace)
	case m.MessageID != "" || m.Receipt || m.Type != "" || m.Thread != "":
		// (The statement of schema 8.)
		insert = `INSERT INTO outbox (/*account_id,*/ recipient, body, mechanism, created, message_id, receipt, msg_type, thread) VALUES (/*$account,*/ ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`
		args = append(args, m.MessageID, m.Receipt, m.Type, m.Thread)
	}
	var id int64
	err = s.update(ctx, op, func(q Querier) error {
		if err := q.QueryRow(ctx, insert, args...).Scan(&id); err != nil {
			return err
		}
		blob, err := s.seal([]byte(m.Body), "outbox", strconv.FormatInt(id, 10))
		if err != nil {
			return err
		}
		_, err = q.Exec(ctx, `UPDATE outbox SET body = ? WHERE /*account*/ id = ?`, blob, id)
		return err
	})
	return id, err
}

// Outbox returns the queued messages, oldest first. Only one process
// should send from the outbox at a time, or a message may be sent twice.
func (s *core) Outbox(ctx context.Context) ([]OutboxMessage, error) {
	var out []OutboxMessage
	err := s.read(ctx, "outbox", func(q Querier) error {
		rows, err := q.Query(ctx, `SELECT id, recipient, body, mechanism, created, message_id, receipt, msg_type, thread, namespace FROM outbox WHERE /*account*/ TRUE ORDER BY id`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var o OutboxMessage
			var blob []byte
			var m string
			var created int64
			if err := rows.Scan(&o.ID, &o.To, &blob, &m, &created, &o.MessageID, &o.Receipt, &o.Type, &o.Thread, &o.Namespace); err != nil {
				return err
			}
			body, err := s.open(blob, "outbox", strconv.FormatInt(o.ID, 10))
			if err != nil {
				return err
			}
			o.Body = string(body)
			clear(body)
			o.Mechanism = Mechanism(m)
			o.Created = fromMillis(created)
			out = append(out, o)
		}
		return rows.Err()
	})
	return out, err
}

// Dequeue removes a sent message from the outbox. ErrNotFound if id is not
// queued.
func (s *core) Dequeue(ctx context.Context, id int64) error {
	return s.update(ctx, "dequeue", func(q Querier) error {
		n, err := q.Exec(ctx, `DELETE FROM outbox WHERE /*account*/ id = ?`, id)
		if err != nil {
			return err
		}
		if n == 0 {
			return failure(ErrNotFound, fmt.Sprintf("outbox message %d", id))
		}
		return nil
	})
}

// Direction says whether a logged message was received or sent.
type Direction string

// Directions.
const (
	Incoming Direction = "in"
	Outgoing Direction = "out"
)

// LogEntry is one message in the history.
type LogEntry struct {
	ID int64
	// StanzaID is the message's id (origin-id or stanza-id); with Peer and
	// Direction it deduplicates messages delivered twice (MAM, carbons).
	// Empty disables deduplication.
	StanzaID  string
	Peer      string // bare JID of the other party
	Direction Direction
	Mechanism Mechanism // empty for an unencrypted message
	// Security is the security state shown with the message, in the
	// client's words (for example "verified", "untrusted", "plaintext").
	Security string
	// Notice is true when Body is a notice saying why a message could
	// not be read, rather than message text; render it as such.
	Notice bool
	Body   string // sealed at rest
	Time   time.Time
}

// LogMessage adds a message to the history and returns its id, or the id
// of the entry already logged with the same peer, direction and StanzaID.
// A zero e.Time means now.
//
// OTR and ESession messages are not logged (LogMessage returns 0 and nil)
// unless the setting SettingLogPrivateSessions is "true". Notices about
// messages that could not be read are logged whatever their mechanism:
// they contain no plaintext.
//
// Each call is one transaction, committed to stable storage (about a
// millisecond); use LogMessages for many messages at once.
func (s *core) LogMessage(ctx context.Context, e LogEntry) (int64, error) {
	ids, err := s.logMessages(ctx, "log message", []LogEntry{e})
	if err != nil {
		return 0, err
	}
	return ids[0], nil
}

// LogMessages logs several messages, for example a page of archived
// messages fetched with MAM, in one transaction: all or none are written.
// It returns one id per entry, with the meaning LogMessage gives it.
func (s *core) LogMessages(ctx context.Context, entries []LogEntry) ([]int64, error) {
	return s.logMessages(ctx, "log messages", entries)
}

func (s *core) logMessages(ctx context.Context, op string, entries []LogEntry) ([]int64, error) {
	type row struct {
		LogEntry
		t int64
	}
	rows := make([]row, len(entries))
	for i, e := range entries {
		p, err := bareJID(e.Peer)
		if err != nil {
			return nil, wrap(op, err)
		}
		if e.Direction != Incoming && e.Direction != Outgoing {
			return nil, wrap(op, fmt.Errorf("invalid direction %q", string(e.Direction)))
		}
		if e.Mechanism != "" && !e.Mechanism.Valid() {
			return nil, wrap(op, fmt.Errorf("unknown mechanism %q", string(e.Mechanism)))
		}
		e.Peer = p
		rows[i] = row{e, e.Time.UnixMilli()}
		if e.Time.IsZero() {
			rows[i].t = s.nowMillis()
		}
	}
	ids := make([]int64, len(entries))
	err := s.update(ctx, op, func(q Querier) error {
		clear(ids)
		var v string
		err := q.QueryRow(ctx, `SELECT value FROM settings WHERE /*account*/ key = ?`, SettingLogPrivateSessions).Scan(&v)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		logPrivate := v == "true"
		for i, e := range rows {
			if (e.Mechanism == OTR || e.Mechanism == ESession) && !e.Notice && !logPrivate {
				continue
			}
			if ids[i], err = s.logOne(ctx, q, e.LogEntry, e.t); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return ids, nil
}

// queryDuplicate finds a logged message by stanza id. The literal
// "stanza_id <> ”" lets SQLite use the partial unique index
// messages_stanza (TestQueryPlans).
const queryDuplicate = `SELECT id FROM messages
	WHERE /*account*/ peer = ? AND direction = ? AND stanza_id = ? AND stanza_id <> ''`

// queryPage reads a page of history, newest first, by keyset on (time, id);
// the parameters are peer, time, time, id and the limit.
const queryPage = `SELECT id, stanza_id, peer, direction, mechanism, security, notice, body, time FROM messages
	WHERE /*account*/ peer = ? AND (time < ? OR (time = ? AND id < ?))
	ORDER BY time DESC, id DESC LIMIT ?`

// logOne writes one validated entry, or finds its duplicate.
func (s *core) logOne(ctx context.Context, q Querier, e LogEntry, t int64) (int64, error) {
	var id int64
	if e.StanzaID != "" {
		err := q.QueryRow(ctx, queryDuplicate, e.Peer, e.Direction, e.StanzaID).Scan(&id)
		if err == nil {
			return id, nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return 0, err
		}
	}
	if err := q.QueryRow(ctx,
		`INSERT INTO messages (/*account_id,*/ stanza_id, peer, direction, mechanism, security, notice, body, time)
		 VALUES (/*$account,*/ ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
		e.StanzaID, e.Peer, e.Direction, e.Mechanism, e.Security, e.Notice, []byte{}, t).Scan(&id); err != nil {
		return 0, err
	}
	blob, err := s.seal([]byte(e.Body), "messages", strconv.FormatInt(id, 10))
	if err != nil {
		return 0, err
	}
	_, err = q.Exec(ctx, `UPDATE messages SET body = ? WHERE /*account*/ id = ?`, blob, id)
	return id, err
}

// MaxPage is the largest number of entries Messages returns at once.
const MaxPage = 1000

// Messages returns up to limit entries of the history with peer, in
// chronological order, that come before the entry with id before (0: the
// newest entries). To page backwards, pass the ID of the first entry
// returned as the next before. A limit of 0 or less means 50; limits above
// MaxPage are reduced to it. Entries are ordered by time, then by id.
func (s *core) Messages(ctx context.Context, peer string, before int64, limit int) ([]LogEntry, error) {
	const op = "messages"
	p, err := bareJID(peer)
	if err != nil {
		return nil, wrap(op, err)
	}
	if limit <= 0 {
		limit = 50
	}
	limit = min(limit, MaxPage)
	var out []LogEntry
	err = s.read(ctx, op, func(q Querier) error {
		var t int64 = 1<<63 - 1
		cursor := int64(1<<63 - 1)
		if before > 0 {
			err := q.QueryRow(ctx, `SELECT time FROM messages WHERE /*account*/ id = ? AND peer = ?`, before, p).Scan(&t)
			if errors.Is(err, sql.ErrNoRows) {
				return failure(ErrNotFound, fmt.Sprintf("message %d with %s", before, p))
			}
			if err != nil {
				return err
			}
			cursor = before
		}
		rows, err := q.Query(ctx, queryPage, p, t, t, cursor, limit)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var e LogEntry
			var dir, m string
			var blob []byte
			var ms int64
			if err := rows.Scan(&e.ID, &e.StanzaID, &e.Peer, &dir, &m, &e.Security, &e.Notice, &blob, &ms); err != nil {
				return err
			}
			body, err := s.open(blob, "messages", strconv.FormatInt(e.ID, 10))
			if err != nil {
				return err
			}
			e.Body = string(body)
			clear(body)
			e.Direction, e.Mechanism, e.Time = Direction(dir), Mechanism(m), fromMillis(ms)
			out = append(out, e)
		}
		return rows.Err()
	})
	slices.Reverse(out)
	return out, err
}

// DeleteMessages removes the whole history with peer and returns how many
// entries were removed. The bodies are overwritten in the database file
// (secure_delete).
func (s *core) DeleteMessages(ctx context.Context, peer string) (int64, error) {
	const op = "delete messages"
	p, err := bareJID(peer)
	if err != nil {
		return 0, wrap(op, err)
	}
	var n int64
	err = s.update(ctx, op, func(q Querier) error {
		var err error
		n, err = q.Exec(ctx, `DELETE FROM messages WHERE /*account*/ peer = ?`, p)
		return err
	})
	return n, err
}
