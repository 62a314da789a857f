-- 0008: what a queued message needs to leave as itself.
--
-- A message waiting in the outbox keeps the id it was given when queued,
-- so that sending it again after a crash is recognised by its recipients
-- (XEP-0359 origin-id), whether it asks for a delivery receipt
-- (XEP-0184), its type ('' for chat) and its thread. Rows queued before
-- have no id (the client gives them one when they leave), ask for no
-- receipt and are chat messages without a thread.
ALTER TABLE outbox ADD COLUMN message_id TEXT NOT NULL DEFAULT '';
ALTER TABLE outbox ADD COLUMN receipt INTEGER NOT NULL DEFAULT 0 CHECK (receipt IN (0, 1));
ALTER TABLE outbox ADD COLUMN msg_type TEXT NOT NULL DEFAULT '';
ALTER TABLE outbox ADD COLUMN thread TEXT NOT NULL DEFAULT '';
