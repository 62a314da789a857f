-- 0008: what a queued message needs to leave as itself.
--
-- A message waiting in the outbox keeps the id it was given when queued,
-- so that sending it again after a crash is recognised by its recipients
-- (XEP-0359 origin-id), and whether it asks for a delivery receipt
-- (XEP-0184). Rows queued before have no id (the client gives them one
-- when they leave) and ask for no receipt.
ALTER TABLE outbox ADD COLUMN message_id TEXT NOT NULL DEFAULT '';
ALTER TABLE outbox ADD COLUMN receipt INTEGER NOT NULL DEFAULT 0 CHECK (receipt IN (0, 1));
