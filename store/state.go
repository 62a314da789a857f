package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"unicode/utf8"
)

// maxStateName bounds the names of mechanism state values.
const maxStateName = 1024

// checkStateName validates the name of a mechanism state value.
func checkStateName(m Mechanism, name string) error {
	if !m.Valid() {
		return fmt.Errorf("unknown mechanism %q", string(m))
	}
	if name == "" || len(name) > maxStateName || !utf8.ValidString(name) {
		return fmt.Errorf("invalid state name %q", name)
	}
	return nil
}

// MechanismState returns the value a mechanism stored under name with
// UpdateMechanismState, opened, or nil when there is none: a missing name
// is not an error, so that mechanisms use this without knowing the
// store's errors. The caller should clear the value after use.
func (s *core) MechanismState(ctx context.Context, m Mechanism, name string) ([]byte, error) {
	const op = "mechanism state"
	if err := checkStateName(m, name); err != nil {
		return nil, wrap(op, err)
	}
	var out []byte
	err := s.read(ctx, op, func(q Querier) error {
		var blob []byte
		err := q.QueryRow(ctx, `SELECT value FROM mechanism_state WHERE /*account*/ mechanism = ? AND key = ?`, m, name).Scan(&blob)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		out, err = s.open(blob, "mechanism_state", string(m), name)
		if out == nil && err == nil {
			out = []byte{}
		}
		return err
	})
	return out, err
}

// MechanismStates returns every value mechanism m stored under a name that
// starts with prefix (every value for ""), opened, by name.
func (s *core) MechanismStates(ctx context.Context, m Mechanism, prefix string) (map[string][]byte, error) {
	const op = "mechanism states"
	if !m.Valid() {
		return nil, wrap(op, fmt.Errorf("unknown mechanism %q", string(m)))
	}
	if !utf8.ValidString(prefix) || len(prefix) > maxStateName {
		return nil, wrap(op, fmt.Errorf("invalid state name prefix %q", prefix))
	}
	query := `SELECT key, value FROM mechanism_state WHERE /*account*/ mechanism = ?`
	args := []any{m}
	if prefix != "" {
		// A range on the primary key (byte order in both databases)
		// rather than LIKE, whose wildcards names may contain.
		query += ` AND key >= ?`
		args = append(args, prefix)
		if end, ok := prefixEnd(prefix); ok {
			query += ` AND key < ?`
			args = append(args, end)
		}
	}
	out := map[string][]byte{}
	err := s.read(ctx, op, func(q Querier) error {
		clear(out)
		rows, err := q.Query(ctx, query, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var name string
			var blob []byte
			if err := rows.Scan(&name, &blob); err != nil {
				return err
			}
			v, err := s.open(blob, "mechanism_state", string(m), name)
			if err != nil {
				return err
			}
			if v == nil {
				v = []byte{}
			}
			out[name] = v
		}
		return rows.Err()
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// prefixEnd returns the smallest string greater than every string that
// starts with prefix, by bytes, when there is one that is valid UTF-8:
// prefix with its last byte incremented, for an ASCII last byte.
func prefixEnd(prefix string) (string, bool) {
	last := prefix[len(prefix)-1]
	if last >= 0x7f {
		return "", false
	}
	return prefix[:len(prefix)-1] + string(rune(last+1)), true
}

// UpdateMechanismState stores the values in set (sealed, each bound to its
// mechanism and name) and deletes the names in remove, in one
// transaction: a process killed meanwhile leaves all of it or none. A
// name in both is deleted. Nil values in set are not allowed (remove the
// name instead).
func (s *core) UpdateMechanismState(ctx context.Context, m Mechanism, set map[string][]byte, remove []string) error {
	const op = "update mechanism state"
	type row struct {
		name string
		blob []byte
	}
	rows := make([]row, 0, len(set))
	for name, v := range set {
		if err := checkStateName(m, name); err != nil {
			return wrap(op, err)
		}
		if v == nil {
			return wrap(op, fmt.Errorf("nil value for %q", name))
		}
		if slices.Contains(remove, name) {
			continue
		}
		blob, err := s.seal(v, "mechanism_state", string(m), name)
		if err != nil {
			return wrap(op, err)
		}
		rows = append(rows, row{name, blob})
	}
	for _, name := range remove {
		if err := checkStateName(m, name); err != nil {
			return wrap(op, err)
		}
	}
	// A stable order, so that two writers never lock rows in opposite
	// orders.
	slices.SortFunc(rows, func(a, b row) int {
		switch {
		case a.name < b.name:
			return -1
		case a.name > b.name:
			return 1
		}
		return 0
	})
	return s.update(ctx, op, func(q Querier) error {
		for _, r := range rows {
			if _, err := q.Exec(ctx,
				`INSERT INTO mechanism_state (/*account_id,*/ mechanism, key, value) VALUES (/*$account,*/ ?, ?, ?)
				 ON CONFLICT (/*account_id,*/ mechanism, key) DO UPDATE SET value = excluded.value`,
				m, r.name, r.blob); err != nil {
				return err
			}
		}
		for _, name := range remove {
			if _, err := q.Exec(ctx, `DELETE FROM mechanism_state WHERE /*account*/ mechanism = ? AND key = ?`, m, name); err != nil {
				return err
			}
		}
		return nil
	})
}
