package store

import (
	"strings"
	"testing"
)

// TestQueryPlans checks that the queries run per message or per key use an
// index, so that their cost does not grow with the size of the history.
func TestQueryPlans(t *testing.T) {
	s := openTest(t)
	listOne, listOneArgs := listKeysQuery("a@b.c", "")
	for _, tc := range []struct {
		query string
		args  []any
		index string
	}{
		{queryDuplicate, []any{"a@b.c", "in", "x"}, "messages_stanza"},
		{queryPage, []any{"a@b.c", 1, 1, 2, 50}, "messages_peer_time"},
		{listOne, listOneArgs, "sqlite_autoindex_contact_keys_1"},
		{queryPending, nil, "key_events_pending"},
	} {
		rows, err := s.sq.db.Query("EXPLAIN QUERY PLAN "+tc.query, tc.args...)
		if err != nil {
			t.Fatal(err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			must(t, rows.Scan(&id, &parent, &unused, &detail))
			plan = append(plan, detail)
		}
		must(t, rows.Err())
		rows.Close()
		p := strings.Join(plan, "; ")
		if !strings.Contains(p, "SEARCH") || !strings.Contains(p, tc.index) {
			t.Errorf("%s\nplan %q does not search %s", tc.query, p, tc.index)
		}
	}
}
