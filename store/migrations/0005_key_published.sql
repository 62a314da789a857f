-- 0005: when the stored data of a contact's key was published.
--
-- A contact may publish the same key again with a new date (OX: a renewed
-- expiry announces the key with a new date in its key list, XEP-0373
-- §4.2); the key data is fetched again when the date announced is newer
-- than the one of the data stored. Milliseconds since the epoch; NULL
-- when unknown.
ALTER TABLE contact_keys ADD COLUMN published INTEGER;
