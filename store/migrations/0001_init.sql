-- 0001: the initial Balcony store schema.
--
-- Times are Unix milliseconds (UTC). Columns holding sealed values
-- (XChaCha20-Poly1305 under the store's data key, bound to their row) are
-- marked "sealed"; they are never stored in the clear.

-- meta holds the schema version and the key material of the store
-- (salt, Argon2id parameters, wrapped data key). Its shape never changes,
-- so any version of Balcony can read the schema version from it.
CREATE TABLE meta (
	key   TEXT PRIMARY KEY,
	value ANY
) STRICT;

CREATE TABLE settings (
	key   TEXT PRIMARY KEY,
	value TEXT NOT NULL
) STRICT;

-- The account this store belongs to: at most one row.
CREATE TABLE account (
	id         INTEGER PRIMARY KEY CHECK (id = 1),
	jid        TEXT NOT NULL,
	resource   TEXT NOT NULL DEFAULT '',
	server     TEXT NOT NULL DEFAULT '',
	direct_tls INTEGER NOT NULL DEFAULT 0 CHECK (direct_tls IN (0, 1)),
	password   BLOB -- sealed; NULL when no password is saved
) STRICT;

-- Own key pairs, per mechanism. At most one active key per mechanism.
CREATE TABLE own_keys (
	mechanism   TEXT NOT NULL CHECK (mechanism IN ('ox', 'otr', 'esession')),
	fingerprint TEXT NOT NULL,
	public      BLOB NOT NULL,
	secret      BLOB NOT NULL, -- sealed
	created     INTEGER NOT NULL,
	active      INTEGER NOT NULL DEFAULT 0 CHECK (active IN (0, 1)),
	PRIMARY KEY (mechanism, fingerprint)
) STRICT;
CREATE UNIQUE INDEX own_keys_one_active ON own_keys (mechanism) WHERE active = 1;

-- Contacts' keys and the trust decision for each.
-- first_seen is NULL for a key the user decided about before it was seen.
CREATE TABLE contact_keys (
	contact     TEXT NOT NULL,
	mechanism   TEXT NOT NULL CHECK (mechanism IN ('ox', 'otr', 'esession')),
	fingerprint TEXT NOT NULL,
	data        BLOB,
	trust       TEXT NOT NULL CHECK (trust IN ('undecided', 'verified', 'blind', 'untrusted')),
	first_seen  INTEGER,
	last_seen   INTEGER,
	announced   INTEGER NOT NULL DEFAULT 0 CHECK (announced IN (0, 1)),
	PRIMARY KEY (contact, mechanism, fingerprint)
) STRICT;

-- History of contacts' keys: first key seen, key changes (a further key
-- for a contact who had one; reported until acknowledged) and trust
-- decisions.
CREATE TABLE key_events (
	id           INTEGER PRIMARY KEY,
	contact      TEXT NOT NULL,
	mechanism    TEXT NOT NULL,
	fingerprint  TEXT NOT NULL,
	kind         TEXT NOT NULL CHECK (kind IN ('first', 'changed', 'trust')),
	old_trust    TEXT CHECK (old_trust IN ('undecided', 'verified', 'blind', 'untrusted')),
	new_trust    TEXT NOT NULL CHECK (new_trust IN ('undecided', 'verified', 'blind', 'untrusted')),
	previous     TEXT NOT NULL DEFAULT '', -- space-separated fingerprints known before a change
	time         INTEGER NOT NULL,
	acknowledged INTEGER NOT NULL DEFAULT 1 CHECK (acknowledged IN (0, 1)),
	FOREIGN KEY (contact, mechanism, fingerprint)
		REFERENCES contact_keys (contact, mechanism, fingerprint) ON DELETE CASCADE
) STRICT;
CREATE INDEX key_events_key ON key_events (contact, mechanism, fingerprint);
CREATE INDEX key_events_pending ON key_events (acknowledged) WHERE acknowledged = 0;

-- The account's OTR instance tag, created once.
CREATE TABLE otr_instance (
	id  INTEGER PRIMARY KEY CHECK (id = 1),
	tag INTEGER NOT NULL CHECK (tag >= 256 AND tag <= 4294967295)
) STRICT;

-- ESession (XEP-0217) retained secrets shared with a peer's clients.
-- created is when the secret was computed (it expires after a lifetime).
CREATE TABLE retained_secrets (
	id       INTEGER PRIMARY KEY,
	peer     TEXT NOT NULL,
	secret   BLOB NOT NULL, -- sealed
	verified INTEGER NOT NULL DEFAULT 0 CHECK (verified IN (0, 1)),
	created  INTEGER NOT NULL
) STRICT;
CREATE INDEX retained_secrets_peer ON retained_secrets (peer);

-- Messages accepted for sending but not yet sent.
CREATE TABLE outbox (
	id        INTEGER PRIMARY KEY,
	recipient TEXT NOT NULL,
	body      BLOB NOT NULL, -- sealed
	mechanism TEXT NOT NULL DEFAULT '' CHECK (mechanism IN ('', 'ox', 'otr', 'esession')),
	created   INTEGER NOT NULL
) STRICT;
