package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// Account is the XMPP account a store belongs to. A store holds exactly one
// account: one store per account directory.
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
func (s *Store) Account(ctx context.Context) (Account, error) {
	var a Account
	err := s.read(ctx, "account", func(q querier) error {
		return q.QueryRowContext(ctx,
			`SELECT jid, resource, server, direct_tls FROM account WHERE id = 1`).
			Scan(&a.JID, &a.Resource, &a.Server, &a.DirectTLS)
	})
	return a, err
}

// SetAccount creates or updates the account record. The JID is normalised
// to a bare JID; changing the JID of an existing record is refused. A
// saved password is kept.
func (s *Store) SetAccount(ctx context.Context, a Account) error {
	const op = "set account"
	j, err := bareJID(a.JID)
	if err != nil {
		return wrap(op, err)
	}
	return s.update(ctx, op, func(tx *sql.Tx) error {
		var old string
		err := tx.QueryRowContext(ctx, `SELECT jid FROM account WHERE id = 1`).Scan(&old)
		switch {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return err
		case old != j:
			return fmt.Errorf("the store belongs to %s, not %s: use another account directory", old, j)
		}
		_, err = tx.ExecContext(ctx,
			`INSERT INTO account (id, jid, resource, server, direct_tls) VALUES (1, ?, ?, ?, ?)
			 ON CONFLICT (id) DO UPDATE SET resource = excluded.resource,
			   server = excluded.server, direct_tls = excluded.direct_tls`,
			j, a.Resource, a.Server, a.DirectTLS)
		return err
	})
}

// SetPassword saves the account password, sealed. The account record must
// exist. The caller keeps ownership of password and should clear it.
func (s *Store) SetPassword(ctx context.Context, password []byte) error {
	return s.update(ctx, "set password", func(tx *sql.Tx) error {
		blob, err := s.seal(password, "account.password")
		if err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `UPDATE account SET password = ? WHERE id = 1`, blob)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return failure(ErrNotFound, "no account record")
		}
		return nil
	})
}

// Password returns the saved account password, or ErrNotFound if none is
// saved. The caller should clear the returned slice after use.
func (s *Store) Password(ctx context.Context) ([]byte, error) {
	var pw []byte
	err := s.read(ctx, "password", func(q querier) error {
		var blob []byte
		if err := q.QueryRowContext(ctx, `SELECT password FROM account WHERE id = 1`).Scan(&blob); err != nil {
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
func (s *Store) ForgetPassword(ctx context.Context) error {
	return s.update(ctx, "forget password", func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE account SET password = NULL WHERE id = 1`)
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
func (s *Store) Setting(ctx context.Context, key string) (string, error) {
	var v string
	err := s.read(ctx, "setting", func(q querier) error {
		err := q.QueryRowContext(ctx, `SELECT value FROM settings WHERE key = ?`, key).Scan(&v)
		if errors.Is(err, sql.ErrNoRows) {
			return failure(ErrNotFound, fmt.Sprintf("setting %q", key))
		}
		return err
	})
	return v, err
}

// SetSetting sets a setting. Keys are free-form; settings are for
// preferences, never for secrets.
func (s *Store) SetSetting(ctx context.Context, key, value string) error {
	if key == "" {
		return wrap("set setting", errors.New("empty key"))
	}
	return s.update(ctx, "set setting", func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx,
			`INSERT INTO settings (key, value) VALUES (?, ?)
			 ON CONFLICT (key) DO UPDATE SET value = excluded.value`, key, value)
		return err
	})
}

// DeleteSetting removes a setting; removing an absent one is not an error.
func (s *Store) DeleteSetting(ctx context.Context, key string) error {
	return s.update(ctx, "delete setting", func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM settings WHERE key = ?`, key)
		return err
	})
}

// Settings returns all settings.
func (s *Store) Settings(ctx context.Context) (map[string]string, error) {
	m := make(map[string]string)
	err := s.read(ctx, "settings", func(q querier) error {
		rows, err := q.QueryContext(ctx, `SELECT key, value FROM settings`)
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
