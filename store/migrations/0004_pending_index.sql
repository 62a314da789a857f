-- 0004: the partial index of pending key changes, with the predicate the
-- queries now use.
--
-- The statements of the rules are shared with the PostgreSQL backend,
-- where booleans are TRUE and FALSE. SQLite uses a partial index only for
-- a query whose WHERE clause repeats the index's own condition, and
-- "acknowledged = FALSE" is not written "acknowledged = 0".
DROP INDEX key_events_pending;
CREATE INDEX key_events_pending ON key_events (acknowledged) WHERE acknowledged = FALSE;
