-- 0003: arrival order.
--
-- Times are milliseconds, so two rows written within the same millisecond
-- cannot be ordered by time. Each of these tables gets a column seq that
-- strictly increases with every row written (max + 1 inside the write
-- transaction, which is serialised), and lists use it where they used the
-- fingerprint to break ties. Existing rows keep the order they were listed
-- in before.

-- contact_keys.seq is set when a key is first seen; a key decided about
-- before it was seen has none until then.
ALTER TABLE contact_keys ADD COLUMN seq INTEGER;
UPDATE contact_keys SET seq = o.n FROM (
	SELECT contact AS c, mechanism AS m, fingerprint AS f,
		row_number() OVER (ORDER BY first_seen, contact, mechanism, fingerprint) AS n
	FROM contact_keys WHERE first_seen IS NOT NULL) AS o
WHERE contact = o.c AND mechanism = o.m AND fingerprint = o.f;
CREATE UNIQUE INDEX contact_keys_seq ON contact_keys (seq);

-- own_keys.seq orders keys created in the same millisecond.
ALTER TABLE own_keys ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;
UPDATE own_keys SET seq = o.n FROM (
	SELECT mechanism AS m, fingerprint AS f,
		row_number() OVER (ORDER BY created, mechanism, fingerprint) AS n
	FROM own_keys) AS o
WHERE mechanism = o.m AND fingerprint = o.f;
CREATE UNIQUE INDEX own_keys_seq ON own_keys (seq);

-- retained_secrets.seq is renewed each time a secret is replaced, so the
-- chain written last comes first among secrets of the same time.
ALTER TABLE retained_secrets ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;
UPDATE retained_secrets SET seq = id;
CREATE UNIQUE INDEX retained_secrets_seq ON retained_secrets (seq);
