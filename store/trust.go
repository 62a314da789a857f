package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/balcony-im/balcony/trust"
)

// ContactKey is a contact's key for one mechanism and the trust decision
// about it (see trust.ContactKey).
type ContactKey = trust.ContactKey

// Seen is what RecordSeenKey found (see trust.Seen).
type Seen = trust.Seen

// KeyChange reports a new key for a contact who already had another one
// (see trust.KeyChange).
type KeyChange = trust.KeyChange

// EventKind says what a KeyEvent records.
type EventKind int

const (
	// FirstKey: the contact's first key for the mechanism was seen.
	FirstKey EventKind = iota
	// KeyChanged: a further key was seen (a KeyChange).
	KeyChanged
	// TrustChanged: the trust state was set.
	TrustChanged
)

var eventNames = [...]string{FirstKey: "first", KeyChanged: "changed", TrustChanged: "trust"}

// String returns "first", "changed" or "trust".
func (k EventKind) String() string {
	if k < 0 || int(k) >= len(eventNames) {
		return fmt.Sprintf("EventKind(%d)", int(k))
	}
	return eventNames[k]
}

// KeyEvent is one entry in the history of a contact's keys.
type KeyEvent struct {
	ID          int64
	Contact     string
	Mechanism   Mechanism
	Fingerprint string
	Kind        EventKind
	// OldTrust is the state before a TrustChanged event (Undecided for a
	// key decided before it was seen); NewTrust the state after any
	// event.
	OldTrust TrustState
	NewTrust TrustState
	Previous []string // KeyChanged: the keys seen before
	Time     time.Time
	// Acknowledged is false for a KeyChanged event the user has not
	// acknowledged yet.
	Acknowledged bool
}

// DefaultTrust returns the state RecordSeenKey gives a newly seen key of
// mechanism m: first is true if the contact has no other key seen for m.
//
// The rules:
//
//   - OX: the first key is Blind (trust on first use, as Gajim does)
//     unless Options.NoBlindTrust; every later key is Undecided until the
//     user decides (messages it signs are never shown as verified before).
//   - OTR: every fingerprint, first or not, is recorded Undecided (OTR's
//     "unverified"); a successful SMP run or a manual fingerprint
//     comparison marks it Verified with SetTrust.
//   - ESession: public keys (XEP-0116) are recorded Undecided; a confirmed
//     SAS marks them Verified with SetTrust. The retained-secret chain of
//     XEP-0217 has its own verified flag (RetainedSecret.Verified).
//   - OMEMO: blind trust before verification. Every device key (first or
//     not) is Blind unless Options.NoBlindTrust, until the user verified
//     one key of the contact: from then on RecordSeenKey records new keys
//     of that contact Undecided, and OMEMO encrypts to none of them until
//     the user decides. Keys trusted blindly before keep their state.
//
// In every mechanism a further key for a contact is reported as a
// KeyChange.
func (s *core) DefaultTrust(m Mechanism, first bool) TrustState {
	switch {
	case s.noBlind:
	case m == OX && first, m == OMEMO:
		return Blind
	}
	return Undecided
}

// anyVerified reports whether the contact has a key of mechanism m that
// the user verified.
func anyVerified(ctx context.Context, q Querier, c string, m Mechanism) (bool, error) {
	var n int
	err := q.QueryRow(ctx,
		`SELECT count(*) FROM contact_keys WHERE /*account*/ contact = ? AND mechanism = ? AND trust = 'verified'`, c, m).Scan(&n)
	return n > 0, err
}

// RecordSeenKey records that contact used or announced the key with the
// given fingerprint for mechanism m, and returns what changed. A new key
// gets DefaultTrust unless the user decided about it in advance; a known
// key gets its last-seen time and, if data is not nil, its data updated.
// The key row and its history entry are written in one transaction.
func (s *core) RecordSeenKey(ctx context.Context, contact string, m Mechanism, fingerprint string, data []byte) (Seen, error) {
	const op = "record seen key"
	c, fpr, err := keyID(contact, m, fingerprint)
	if err != nil {
		return Seen{}, wrap(op, err)
	}
	var seen Seen
	err = s.update(ctx, op, func(q Querier) error {
		seen = Seen{}
		now := s.nowMillis()
		old, err := getKey(ctx, q, c, m, fpr)
		exists := err == nil
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if exists && !old.FirstSeen.IsZero() {
			if _, err := q.Exec(ctx,
				`UPDATE contact_keys SET last_seen = ?, data = coalesce(?, data)
				 WHERE /*account*/ contact = ? AND mechanism = ? AND fingerprint = ?`,
				now, data, c, m, fpr); err != nil {
				return err
			}
			k, err := getKey(ctx, q, c, m, fpr)
			seen.Key = k
			return err
		}

		others, err := seenFingerprints(ctx, q, c, m, fpr)
		if err != nil {
			return err
		}
		trust := s.DefaultTrust(m, len(others) == 0)
		if m == OMEMO && trust == Blind {
			verified, err := anyVerified(ctx, q, c, m)
			if err != nil {
				return err
			}
			if verified {
				trust = Undecided
			}
		}
		if exists {
			trust = old.Trust // decided before it was seen
			_, err = q.Exec(ctx,
				`UPDATE contact_keys SET first_seen = ?, last_seen = ?, data = coalesce(?, data), seq = `+nextKeySeq+`
				 WHERE /*account*/ contact = ? AND mechanism = ? AND fingerprint = ?`,
				now, now, data, c, m, fpr)
		} else {
			_, err = q.Exec(ctx,
				`INSERT INTO contact_keys (/*account_id,*/ contact, mechanism, fingerprint, data, trust, first_seen, last_seen, seq)
				 VALUES (/*$account,*/ ?, ?, ?, ?, ?, ?, ?, `+nextKeySeq+`)`,
				c, m, fpr, data, trust.String(), now, now)
		}
		if err != nil {
			return err
		}
		kind := FirstKey
		if len(others) > 0 {
			kind = KeyChanged
		}
		var id int64
		if err := q.QueryRow(ctx,
			`INSERT INTO key_events (/*account_id,*/ contact, mechanism, fingerprint, kind, new_trust, previous, time, acknowledged)
			 VALUES (/*$account,*/ ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
			c, m, fpr, kind.String(), trust.String(), strings.Join(others, " "), now, kind != KeyChanged).Scan(&id); err != nil {
			return err
		}
		if seen.Key, err = getKey(ctx, q, c, m, fpr); err != nil {
			return err
		}
		seen.New = true
		if kind == KeyChanged {
			seen.Change = &KeyChange{ID: id, Contact: c, Mechanism: m, Fingerprint: fpr,
				Previous: others, Trust: trust, Time: fromMillis(now)}
		}
		return nil
	})
	if err != nil {
		return Seen{}, err
	}
	return seen, nil
}

// SetTrust records the user's decision (or a protocol proof such as OTR
// SMP) about a contact's key, with a history entry, in one transaction. A
// key never seen is recorded with the decision in advance (FirstSeen
// zero), so a fingerprint scanned from a QR code is trusted when the key
// shows up. Setting the state a key already has changes nothing.
func (s *core) SetTrust(ctx context.Context, contact string, m Mechanism, fingerprint string, t TrustState) error {
	const op = "set trust"
	if !t.Valid() {
		return wrap(op, fmt.Errorf("invalid trust state %d", int(t)))
	}
	c, fpr, err := keyID(contact, m, fingerprint)
	if err != nil {
		return wrap(op, err)
	}
	return s.update(ctx, op, func(q Querier) error {
		old := Undecided
		k, err := getKey(ctx, q, c, m, fpr)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			_, err = q.Exec(ctx,
				`INSERT INTO contact_keys (/*account_id,*/ contact, mechanism, fingerprint, trust) VALUES (/*$account,*/ ?, ?, ?, ?)`,
				c, m, fpr, t.String())
		case err != nil:
			return err
		case k.Trust == t:
			return nil
		default:
			old = k.Trust
			_, err = q.Exec(ctx,
				`UPDATE contact_keys SET trust = ? WHERE /*account*/ contact = ? AND mechanism = ? AND fingerprint = ?`,
				t.String(), c, m, fpr)
		}
		if err != nil {
			return err
		}
		_, err = q.Exec(ctx,
			`INSERT INTO key_events (/*account_id,*/ contact, mechanism, fingerprint, kind, old_trust, new_trust, time)
			 VALUES (/*$account,*/ ?, ?, ?, 'trust', ?, ?, ?)`,
			c, m, fpr, old.String(), t.String(), s.nowMillis())
		return err
	})
}

// Trust returns the trust state of a contact's key, or ErrNotFound if the
// key is unknown.
func (s *core) Trust(ctx context.Context, contact string, m Mechanism, fingerprint string) (TrustState, error) {
	const op = "trust"
	c, fpr, err := keyID(contact, m, fingerprint)
	if err != nil {
		return Undecided, wrap(op, err)
	}
	var t TrustState
	err = s.read(ctx, op, func(q Querier) error {
		k, err := getKey(ctx, q, c, m, fpr)
		if errors.Is(err, sql.ErrNoRows) {
			return failure(ErrNotFound, fmt.Sprintf("%s key %s of %s", m, fpr, c))
		}
		t = k.Trust
		return err
	})
	return t, err
}

// ListKeys returns contacts' keys, ordered by contact, mechanism and the
// order in which they were first seen; keys decided about but never seen
// come last. An empty contact matches every contact and an empty mechanism
// every mechanism.
func (s *core) ListKeys(ctx context.Context, contact string, m Mechanism) ([]ContactKey, error) {
	const op = "list keys"
	if contact != "" {
		var err error
		if contact, err = bareJID(contact); err != nil {
			return nil, wrap(op, err)
		}
	}
	if m != "" && !m.Valid() {
		return nil, wrap(op, fmt.Errorf("unknown mechanism %q", string(m)))
	}
	query, args := listKeysQuery(contact, m)
	var keys []ContactKey
	err := s.read(ctx, op, func(q Querier) error {
		rows, err := q.Query(ctx, query, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			k, err := scanKey(rows, true)
			if err != nil {
				return err
			}
			keys = append(keys, k)
		}
		return rows.Err()
	})
	return keys, err
}

// listKeysQuery filters only on what is given, so that a contact's keys
// are found through the primary key index.
func listKeysQuery(contact string, m Mechanism) (string, []any) {
	where, args := keyFilter(contact, m)
	return `SELECT ` + listedKeyColumns + ` FROM contact_keys` + where +
		` ORDER BY contact, mechanism, seq IS NULL, seq, fingerprint`, args
}

// keyFilter is the WHERE clause selecting a contact's (or every
// contact's) keys or events for a mechanism (or every mechanism).
func keyFilter(contact string, m Mechanism) (string, []any) {
	where := []string{"TRUE"}
	var args []any
	if contact != "" {
		where, args = append(where, "contact = ?"), append(args, contact)
	}
	if m != "" {
		where, args = append(where, "mechanism = ?"), append(args, m)
	}
	return " WHERE /*account*/ " + strings.Join(where, " AND "), args
}

// nextKeySeq numbers a key when it is first seen: contact_keys.seq
// increases strictly in the order keys arrive, even within one
// millisecond (first_seen is in milliseconds). Write transactions are
// serialised, so max + 1 is never taken twice.
const nextKeySeq = `(SELECT coalesce(max(seq), 0) + 1 FROM contact_keys WHERE /*account*/ TRUE)`

// SetAnnouncedKeys records which of the contact's known keys for m are in
// its published key list: those listed are marked announced, the others
// not, in one transaction. Fingerprints not yet recorded with
// RecordSeenKey are ignored.
func (s *core) SetAnnouncedKeys(ctx context.Context, contact string, m Mechanism, fingerprints []string) error {
	const op = "set announced keys"
	c, err := bareJID(contact)
	if err != nil {
		return wrap(op, err)
	}
	fprs := make([]string, len(fingerprints))
	for i, f := range fingerprints {
		if fprs[i], err = NormalizeFingerprint(m, f); err != nil {
			return wrap(op, err)
		}
	}
	return s.update(ctx, op, func(q Querier) error {
		if _, err := q.Exec(ctx,
			`UPDATE contact_keys SET announced = FALSE WHERE /*account*/ contact = ? AND mechanism = ?`, c, m); err != nil {
			return err
		}
		for _, f := range fprs {
			if _, err := q.Exec(ctx,
				`UPDATE contact_keys SET announced = TRUE WHERE /*account*/ contact = ? AND mechanism = ? AND fingerprint = ?`,
				c, m, f); err != nil {
				return err
			}
		}
		return nil
	})
}

// SetKeyPublished records the date the contact announced with the key
// data stored for fingerprint (see ContactKey.Published). A key not yet
// recorded with RecordSeenKey is ErrNotFound.
func (s *core) SetKeyPublished(ctx context.Context, contact string, m Mechanism, fingerprint string, published time.Time) error {
	const op = "set key published"
	c, fpr, err := keyID(contact, m, fingerprint)
	if err != nil {
		return wrap(op, err)
	}
	return s.update(ctx, op, func(q Querier) error {
		n, err := q.Exec(ctx,
			`UPDATE contact_keys SET published = ? WHERE /*account*/ contact = ? AND mechanism = ? AND fingerprint = ?`,
			published.UnixMilli(), c, m, fpr)
		if err != nil {
			return err
		}
		if n == 0 {
			return failure(ErrNotFound, "no key "+fpr+" recorded for "+c)
		}
		return nil
	})
}

// DeleteContactKey forgets a contact's key, its trust decision and its
// history. If the contact uses the key again it is treated as new.
func (s *core) DeleteContactKey(ctx context.Context, contact string, m Mechanism, fingerprint string) error {
	const op = "delete contact key"
	c, fpr, err := keyID(contact, m, fingerprint)
	if err != nil {
		return wrap(op, err)
	}
	return s.update(ctx, op, func(q Querier) error {
		n, err := q.Exec(ctx,
			`DELETE FROM contact_keys WHERE /*account*/ contact = ? AND mechanism = ? AND fingerprint = ?`, c, m, fpr)
		if err != nil {
			return err
		}
		if n == 0 {
			return failure(ErrNotFound, fmt.Sprintf("%s key %s of %s", m, fpr, c))
		}
		return nil
	})
}

// KeyEvents returns the history of contacts' keys, oldest first. Empty
// contact or mechanism match all.
func (s *core) KeyEvents(ctx context.Context, contact string, m Mechanism) ([]KeyEvent, error) {
	const op = "key events"
	if contact != "" {
		var err error
		if contact, err = bareJID(contact); err != nil {
			return nil, wrap(op, err)
		}
	}
	if m != "" && !m.Valid() {
		return nil, wrap(op, fmt.Errorf("unknown mechanism %q", string(m)))
	}
	where, args := keyFilter(contact, m)
	var evs []KeyEvent
	err := s.read(ctx, op, func(q Querier) error {
		rows, err := q.Query(ctx, `SELECT `+eventColumns+` FROM key_events`+where+` ORDER BY id`, args...)
		if err != nil {
			return err
		}
		evs, err = scanEvents(rows)
		return err
	})
	return evs, err
}

// PendingKeyChanges returns the key changes not yet acknowledged, oldest
// first, so that a change is shown even if the process that recorded it
// ended before showing it.
func (s *core) PendingKeyChanges(ctx context.Context) ([]KeyChange, error) {
	var changes []KeyChange
	err := s.read(ctx, "pending key changes", func(q Querier) error {
		rows, err := q.Query(ctx, queryPending)
		if err != nil {
			return err
		}
		evs, err := scanEvents(rows)
		for _, e := range evs {
			changes = append(changes, KeyChange{ID: e.ID, Contact: e.Contact, Mechanism: e.Mechanism,
				Fingerprint: e.Fingerprint, Previous: e.Previous, Trust: e.NewTrust, Time: e.Time})
		}
		return err
	})
	return changes, err
}

// AcknowledgeKeyChange marks a key change as shown to the user. It fails
// with ErrNotFound if id is not a pending change.
func (s *core) AcknowledgeKeyChange(ctx context.Context, id int64) error {
	return s.update(ctx, "acknowledge key change", func(q Querier) error {
		n, err := q.Exec(ctx,
			`UPDATE key_events SET acknowledged = TRUE WHERE /*account*/ id = ? AND acknowledged = FALSE`, id)
		if err != nil {
			return err
		}
		if n == 0 {
			return failure(ErrNotFound, fmt.Sprintf("pending key change %d", id))
		}
		return nil
	})
}

// keyID validates and normalises the identity of a contact's key.
func keyID(contact string, m Mechanism, fingerprint string) (string, string, error) {
	c, err := bareJID(contact)
	if err != nil {
		return "", "", err
	}
	if !m.Valid() {
		return "", "", fmt.Errorf("unknown mechanism %q", string(m))
	}
	fpr, err := NormalizeFingerprint(m, fingerprint)
	if err != nil {
		return "", "", err
	}
	return c, fpr, nil
}

const keyColumns = `contact, mechanism, fingerprint, data, trust, first_seen, last_seen, announced`

// listedKeyColumns are keyColumns and the publication date (schema version
// 5), which only ListKeys reads.
const listedKeyColumns = keyColumns + `, published`

// queryPending lists the unacknowledged key changes. The literal FALSE
// lets SQLite use the partial index key_events_pending (TestQueryPlans).
const queryPending = `SELECT ` + eventColumns + ` FROM key_events WHERE /*account*/ acknowledged = FALSE ORDER BY id`

func getKey(ctx context.Context, q Querier, c string, m Mechanism, fpr string) (ContactKey, error) {
	return scanKey(q.QueryRow(ctx,
		`SELECT `+keyColumns+` FROM contact_keys WHERE /*account*/ contact = ? AND mechanism = ? AND fingerprint = ?`, c, m, fpr), false)
}

// scanKey reads keyColumns, or listedKeyColumns when listed.
func scanKey(r scanner, listed bool) (ContactKey, error) {
	var k ContactKey
	var m, trust string
	var first, last, published sql.NullInt64
	dest := []any{&k.Contact, &m, &k.Fingerprint, &k.Data, &trust, &first, &last, &k.Announced}
	if listed {
		dest = append(dest, &published)
	}
	if err := r.Scan(dest...); err != nil {
		return ContactKey{}, err
	}
	k.Mechanism = Mechanism(m)
	t, err := ParseTrustState(trust)
	if err != nil {
		return ContactKey{}, err
	}
	k.Trust = t
	if first.Valid {
		k.FirstSeen = fromMillis(first.Int64)
	}
	if last.Valid {
		k.LastSeen = fromMillis(last.Int64)
	}
	if published.Valid {
		k.Published = fromMillis(published.Int64)
	}
	return k, nil
}

// seenFingerprints returns the contact's other keys for m that have been
// seen, oldest first.
func seenFingerprints(ctx context.Context, q Querier, c string, m Mechanism, except string) ([]string, error) {
	rows, err := q.Query(ctx,
		`SELECT fingerprint FROM contact_keys
		 WHERE /*account*/ contact = ? AND mechanism = ? AND fingerprint <> ? AND first_seen IS NOT NULL
		 ORDER BY seq`, c, m, except)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var fprs []string
	for rows.Next() {
		var f string
		if err := rows.Scan(&f); err != nil {
			return nil, err
		}
		fprs = append(fprs, f)
	}
	return fprs, rows.Err()
}

const eventColumns = `id, contact, mechanism, fingerprint, kind, old_trust, new_trust, previous, time, acknowledged`

func scanEvents(rows Rows) ([]KeyEvent, error) {
	defer rows.Close()
	var evs []KeyEvent
	for rows.Next() {
		var e KeyEvent
		var m, kind, newTrust, previous string
		var oldTrust sql.NullString
		var t int64
		if err := rows.Scan(&e.ID, &e.Contact, &m, &e.Fingerprint, &kind, &oldTrust, &newTrust, &previous, &t, &e.Acknowledged); err != nil {
			return nil, err
		}
		e.Mechanism = Mechanism(m)
		switch kind {
		case "first":
			e.Kind = FirstKey
		case "changed":
			e.Kind = KeyChanged
		case "trust":
			e.Kind = TrustChanged
		default:
			return nil, fmt.Errorf("unknown key event kind %q", kind)
		}
		var err error
		if e.NewTrust, err = ParseTrustState(newTrust); err != nil {
			return nil, err
		}
		if oldTrust.Valid {
			if e.OldTrust, err = ParseTrustState(oldTrust.String); err != nil {
				return nil, err
			}
		}
		if previous != "" {
			e.Previous = strings.Fields(previous)
		}
		e.Time = fromMillis(t)
		evs = append(evs, e)
	}
	return evs, rows.Err()
}
