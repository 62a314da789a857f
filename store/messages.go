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
}

// Enqueue adds a message to the outbox and returns its id. The body is
// sealed at rest. Remove it with Dequeue once it has been sent.
func (s *Store) Enqueue(ctx context.Context, to, body string, m Mechanism) (int64, error) {
	const op = "enqueue"
	j, err := jid.Parse(to)
	if err != nil {
		return 0, wrap(op, fmt.Errorf("invalid JID %q: %w", to, err))
	}
	if m != "" && !m.valid() {
		return 0, wrap(op, fmt.Errorf("unknown mechanism %q", string(m)))
	}
	var id int64
	err = s.update(ctx, op, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx,
			`INSERT INTO outbox (recipient, body, mechanism, created) VALUES (?, x'', ?, ?)`,
			j.String(), m, s.nowMillis())
		if err != nil {
			return err
		}
		if id, err = res.LastInsertId(); err != nil {
			return err
		}
		blob, err := s.seal([]byte(body), "outbox", strconv.FormatInt(id, 10))
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE outbox SET body = ? WHERE id = ?`, blob, id)
		return err
	})
	return id, err
}

// Outbox returns the queued messages, oldest first. Only one process
// should send from the outbox at a time, or a message may be sent twice.
func (s *Store) Outbox(ctx context.Context) ([]OutboxMessage, error) {
	var out []OutboxMessage
	err := s.read(ctx, "outbox", func(q querier) error {
		rows, err := q.QueryContext(ctx, `SELECT id, recipient, body, mechanism, created FROM outbox ORDER BY id`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var o OutboxMessage
			var blob []byte
			var m string
			var created int64
			if err := rows.Scan(&o.ID, &o.To, &blob, &m, &created); err != nil {
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
func (s *Store) Dequeue(ctx context.Context, id int64) error {
	return s.update(ctx, "dequeue", func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM outbox WHERE id = ?`, id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
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
func (s *Store) LogMessage(ctx context.Context, e LogEntry) (int64, error) {
	ids, err := s.logMessages(ctx, "log message", []LogEntry{e})
	if err != nil {
		return 0, err
	}
	return ids[0], nil
}

// LogMessages logs several messages, for example a page of archived
// messages fetched with MAM, in one transaction: all or none are written.
// It returns one id per entry, with the meaning LogMessage gives it.
func (s *Store) LogMessages(ctx context.Context, entries []LogEntry) ([]int64, error) {
	return s.logMessages(ctx, "log messages", entries)
}

func (s *Store) logMessages(ctx context.Context, op string, entries []LogEntry) ([]int64, error) {
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
		if e.Mechanism != "" && !e.Mechanism.valid() {
			return nil, wrap(op, fmt.Errorf("unknown mechanism %q", string(e.Mechanism)))
		}
		e.Peer = p
		rows[i] = row{e, e.Time.UnixMilli()}
		if e.Time.IsZero() {
			rows[i].t = s.nowMillis()
		}
	}
	ids := make([]int64, len(entries))
	err := s.update(ctx, op, func(tx *sql.Tx) error {
		clear(ids)
		var v string
		err := tx.QueryRowContext(ctx, `SELECT value FROM settings WHERE key = ?`, SettingLogPrivateSessions).Scan(&v)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		logPrivate := v == "true"
		st, err := prepareLog(ctx, tx)
		if err != nil {
			return err
		}
		defer st.close()
		for i, e := range rows {
			if (e.Mechanism == OTR || e.Mechanism == ESession) && !e.Notice && !logPrivate {
				continue
			}
			if ids[i], err = s.logOne(ctx, st, e.LogEntry, e.t); err != nil {
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
	WHERE peer = ? AND direction = ? AND stanza_id = ? AND stanza_id <> ''`

// queryPage reads a page of history, newest first, by keyset on (time, id).
const queryPage = `SELECT id, stanza_id, peer, direction, mechanism, security, notice, body, time FROM messages
	WHERE peer = ?1 AND (time < ?2 OR (time = ?2 AND id < ?3))
	ORDER BY time DESC, id DESC LIMIT ?4`

// logStmts are the statements logOne runs, prepared once per transaction.
type logStmts struct{ dup, insert, body *sql.Stmt }

func prepareLog(ctx context.Context, tx *sql.Tx) (*logStmts, error) {
	var st logStmts
	var err error
	if st.dup, err = tx.PrepareContext(ctx, queryDuplicate); err != nil {
		return nil, err
	}
	if st.insert, err = tx.PrepareContext(ctx,
		`INSERT INTO messages (stanza_id, peer, direction, mechanism, security, notice, body, time)
		 VALUES (?, ?, ?, ?, ?, ?, x'', ?)`); err != nil {
		st.close()
		return nil, err
	}
	if st.body, err = tx.PrepareContext(ctx, `UPDATE messages SET body = ? WHERE id = ?`); err != nil {
		st.close()
		return nil, err
	}
	return &st, nil
}

func (st *logStmts) close() {
	for _, s := range []*sql.Stmt{st.dup, st.insert, st.body} {
		if s != nil {
			s.Close()
		}
	}
}

// logOne writes one validated entry, or finds its duplicate.
func (s *Store) logOne(ctx context.Context, st *logStmts, e LogEntry, t int64) (int64, error) {
	var id int64
	if e.StanzaID != "" {
		err := st.dup.QueryRowContext(ctx, e.Peer, e.Direction, e.StanzaID).Scan(&id)
		if err == nil {
			return id, nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return 0, err
		}
	}
	res, err := st.insert.ExecContext(ctx, e.StanzaID, e.Peer, e.Direction, e.Mechanism, e.Security, e.Notice, t)
	if err != nil {
		return 0, err
	}
	if id, err = res.LastInsertId(); err != nil {
		return 0, err
	}
	blob, err := s.seal([]byte(e.Body), "messages", strconv.FormatInt(id, 10))
	if err != nil {
		return 0, err
	}
	_, err = st.body.ExecContext(ctx, blob, id)
	return id, err
}

// MaxPage is the largest number of entries Messages returns at once.
const MaxPage = 1000

// Messages returns up to limit entries of the history with peer, in
// chronological order, that come before the entry with id before (0: the
// newest entries). To page backwards, pass the ID of the first entry
// returned as the next before. A limit of 0 or less means 50; limits above
// MaxPage are reduced to it. Entries are ordered by time, then by id.
func (s *Store) Messages(ctx context.Context, peer string, before int64, limit int) ([]LogEntry, error) {
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
	err = s.read(ctx, op, func(q querier) error {
		var t int64 = 1<<63 - 1
		cursor := int64(1<<63 - 1)
		if before > 0 {
			err := q.QueryRowContext(ctx, `SELECT time FROM messages WHERE id = ? AND peer = ?`, before, p).Scan(&t)
			if errors.Is(err, sql.ErrNoRows) {
				return failure(ErrNotFound, fmt.Sprintf("message %d with %s", before, p))
			}
			if err != nil {
				return err
			}
			cursor = before
		}
		rows, err := q.QueryContext(ctx, queryPage, p, t, cursor, limit)
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
func (s *Store) DeleteMessages(ctx context.Context, peer string) (int64, error) {
	const op = "delete messages"
	p, err := bareJID(peer)
	if err != nil {
		return 0, wrap(op, err)
	}
	var n int64
	err = s.update(ctx, op, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM messages WHERE peer = ?`, p)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return n, err
}

// checkSealed opens every sealed value in the database.
func (s *Store) checkSealed(ctx context.Context, q querier) error {
	type source struct {
		table, query string
		ad           func(cols []string) []string
	}
	sources := []source{
		{"account.password", `SELECT password FROM account WHERE password IS NOT NULL`, func([]string) []string { return nil }},
		{"own_keys", `SELECT secret, mechanism, fingerprint FROM own_keys`, func(c []string) []string { return c }},
		{"retained_secrets", `SELECT secret, peer, id FROM retained_secrets`, func(c []string) []string { return c }},
		{"outbox", `SELECT body, id FROM outbox`, func(c []string) []string { return c }},
	}
	v, err := schemaVersion(ctx, q)
	if err != nil {
		return err
	}
	if v >= 2 {
		sources = append(sources, source{"messages", `SELECT body, id FROM messages`, func(c []string) []string { return c }})
	}
	for _, src := range sources {
		rows, err := q.QueryContext(ctx, src.query)
		if err != nil {
			return err
		}
		cols, _ := rows.Columns()
		for rows.Next() {
			var blob []byte
			ids := make([]string, len(cols)-1)
			dest := []any{&blob}
			for i := range ids {
				dest = append(dest, &ids[i])
			}
			if err := rows.Scan(dest...); err != nil {
				rows.Close()
				return err
			}
			pt, err := s.open(blob, src.table, src.ad(ids)...)
			clear(pt)
			if err != nil {
				rows.Close()
				return &opError{kind: ErrCorrupt, detail: fmt.Sprintf("sealed value in %s %v", src.table, ids), cause: errSealed}
			}
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return err
		}
	}
	return nil
}
