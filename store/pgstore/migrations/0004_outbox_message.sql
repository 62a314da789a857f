-- 0004: what a queued message needs to leave as itself (the SQLite
-- store's migration 8): the id it was given when queued, so that sending
-- it again after a crash is recognised by its recipients (XEP-0359
-- origin-id), and whether it asks for a delivery receipt (XEP-0184).
ALTER TABLE outbox ADD COLUMN message_id text NOT NULL DEFAULT '';
ALTER TABLE outbox ADD COLUMN receipt boolean NOT NULL DEFAULT FALSE;
