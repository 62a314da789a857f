-- 0004: what a queued message needs to leave as itself (the SQLite
-- store's migration 8): the id it was given when queued, so that sending
-- it again after a crash is recognised by its recipients (XEP-0359
-- origin-id), whether it asks for a delivery receipt (XEP-0184), its
-- type ('' for chat) and its thread.
ALTER TABLE outbox ADD COLUMN message_id text NOT NULL DEFAULT '';
ALTER TABLE outbox ADD COLUMN receipt boolean NOT NULL DEFAULT FALSE;
ALTER TABLE outbox ADD COLUMN msg_type text NOT NULL DEFAULT '';
ALTER TABLE outbox ADD COLUMN thread text NOT NULL DEFAULT '';
