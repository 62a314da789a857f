package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// Account is the record of the XMPP account a store belongs to: one
// record per store (per account directory with SQLite, per account in a
// PostgreSQL store).
type Account struct {
	// JID is the account's bare JID. Once set it cannot change: the
	// store's keys and trust decisions belong to it.
	JID string
	// Resource is the resource to request at bind time; empty lets the
	// server choose.
	Resource string
	// Server is "host:port" to connect to; empty means look up the
	// domain's SRV records.
	Server string
	// DirectTLS connects with TLS from the first byte (XEP-0368) instead
	// of STARTTLS.
	DirectTLS bool
}

// Account returns the account record, or ErrNotFound if none is set.
func (s *core) Account(ctx context.Context) (Account, error) {
	var a Account
	err := s.read(ctx, "account", func(q Querier) error {
		return q.QueryRow(ctx,
			`SELECT jid, resource, server, direct_tls FROM account WHERE /*account*/ id = 1`).
			Scan(&a.JID, &a.Resource, &a.Server, &a.DirectTLS)
	})
	return a, err
}

// SetAccount creates or updates the account record. The JID is normalised
// to a bare JID; changing the JID of an existing record is refused. A
// saved password is kept.
func (s *core) SetAccount(ctx context.Context, a Account) error {
	const op = "set account"
	j, err := bareJID(a.JID)
	if err != nil {
		return wrap(op, err)
	}
	return s.update(ctx, op, func(q Querier) error {
		var old string
		err := q.QueryRow(ctx, `SELECT jid FROM account WHERE /*account*/ id = 1`).Scan(&old)
		switch {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return err
		case old != j:
			return fmt.Errorf("the store belongs to %s, not %s: use another account directory", old, j)
		}
		if o, ok := s.b.(accountOwner); ok && o.AccountJID() != j {
			return fmt.Errorf("the store belongs to %s, not %s", o.AccountJID(), j)
		}
		_, err = q.Exec(ctx,
			`INSERT INTO account (/*account_id,*/ id, jid, resource, server, direct_tls) VALUES (/*$account,*/ 1, ?, ?, ?, ?)
			 ON CONFLICT (/*account_id,*/ id) DO UPDATE SET resource = excluded.resource,
			   server = excluded.server, direct_tls = excluded.direct_tls`,
			j, a.Resource, a.Server, a.DirectTLS)
		return err
	})
}

// SetPassword saves the account password, sealed. The account record must
// exist. The caller keeps ownership of password and should clear it.
func (s *core) SetPassword(ctx context.Context, password []byte) error {
	return s.update(ctx, "set password", func(q Querier) error {
		blob, err := s.seal(password, "account.password")
		if err != nil {
			return err
		}
		n, err := q.Exec(ctx, `UPDATE account SET password = ? WHERE /*account*/ id = 1`, blob)
		if err != nil {
			return err
		}
		if n == 0 {
			return failure(ErrNotFound, "no account record")
		}
		return nil
	})
}

// Password returns the saved account password, or ErrNotFound if none is
// saved. The caller should clear the returned slice after use.
func (s *core) Password(ctx context.Context) ([]byte, error) {
	var pw []byte
	err := s.read(ctx, "password", func(q Querier) error {
		var blob []byte
		if err := q.QueryRow(ctx, `SELECT password FROM account WHERE /*account*/ id = 1`).Scan(&blob); err != nil {
			return err
		}
		if blob == nil {
			return failure(ErrNotFound, "no saved password")
		}
		var err error
		pw, err = s.open(blob, "account.password")
		return err
	})
	return pw, err
}

// ForgetPassword removes the saved password, if any.
func (s *core) ForgetPassword(ctx context.Context) error {
	return s.update(ctx, "forget password", func(q Querier) error {
		_, err := q.Exec(ctx, `UPDATE account SET password = NULL WHERE /*account*/ id = 1`)
		return err
	})
}

// Well-known settings keys.
const (
	// SettingLogPrivateSessions, set to "true", makes LogMessage record
	// OTR and ESession messages too. By default they are not logged:
	// both mechanisms promise the peer that the conversation is not kept
	// (OTR's deniability, XEP-0136's logging=mustnot).
	SettingLogPrivateSessions = "log.private_sessions"
)

// Setting returns the value of a setting, or ErrNotFound.
func (s *core) Setting(ctx context.Context, key string) (string, error) {
	var v string
	err := s.read(ctx, "setting", func(q Querier) error {
		err := q.QueryRow(ctx, `SELECT value FROM settings WHERE /*account*/ key = ?`, key).Scan(&v)
		if errors.Is(err, sql.ErrNoRows) {
			return failure(ErrNotFound, fmt.Sprintf("setting %q", key))
		}
		return err
	})
	return v, err
}

// SetSetting sets a setting. Keys are free-form; settings are for
// preferences, never for secrets.
func (s *core) SetSetting(ctx context.Context, key, value string) error {
	if key == "" {
		return wrap("set setting", errors.New("empty key"))
	}
	return s.update(ctx, "set setting", func(q Querier) error {
		_, err := q.Exec(ctx,
			`INSERT INTO settings (/*account_id,*/ key, value) VALUES (/*$account,*/ ?, ?)
			 ON CONFLICT (/*account_id,*/ key) DO UPDATE SET value = excluded.value`, key, value)
		return err
	})
}

// DeleteSetting removes a setting; removing an absent one is not an error.
func (s *core) DeleteSetting(ctx context.Context, key string) error {
	return s.update(ctx, "delete setting", func(q Querier) error {
		_, err := q.Exec(ctx, `DELETE FROM settings WHERE /*account*/ key = ?`, key)
		return err
	})
}

// Settings returns all settings.
func (s *core) Settings(ctx context.Context) (map[string]string, error) {
	m := make(map[string]string)
	err := s.read(ctx, "settings", func(q Querier) error {
		rows, err := q.Query(ctx, `SELECT key, value FROM settings WHERE /*account*/ TRUE`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var k, v string
			if err := rows.Scan(&k, &v); err != nil {
				return err
			}
			m[k] = v
		}
		return rows.Err()
	})
	return m, err
}

// accountOwner is implemented by backends holding several accounts, whose
// stores belong to a JID from the start: SetAccount refuses any other.
type accountOwner interface{ AccountJID() string }
