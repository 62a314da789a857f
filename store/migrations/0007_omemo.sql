-- 0007: OMEMO (XEP-0384) and the sealed state of mechanisms.
--
-- The mechanism columns accept 'omemo'. SQLite cannot change a CHECK
-- constraint in place, so each table that has one is rebuilt with the
-- same columns, rows (ids included: sealed values are bound to them) and
-- indexes. key_events references contact_keys with ON DELETE CASCADE, so
-- it is copied aside and dropped first: dropping contact_keys while it
-- still referenced it would delete its rows.
--
-- mechanism_state holds what a mechanism keeps for itself, as sealed
-- values under names of its choosing: OMEMO's device id and identity key,
-- its pre-keys and its sessions, one row each, so that one message
-- changes a few rows in one transaction.

CREATE TEMP TABLE key_events_0007 AS SELECT * FROM key_events;
DROP TABLE key_events;
CREATE TEMP TABLE contact_keys_0007 AS SELECT * FROM contact_keys;
DROP TABLE contact_keys;

CREATE TABLE contact_keys (
	contact     TEXT NOT NULL,
	mechanism   TEXT NOT NULL CHECK (mechanism IN ('ox', 'otr', 'esession', 'omemo')),
	fingerprint TEXT NOT NULL,
	data        BLOB,
	trust       TEXT NOT NULL CHECK (trust IN ('undecided', 'verified', 'blind', 'untrusted')),
	first_seen  INTEGER,
	last_seen   INTEGER,
	announced   INTEGER NOT NULL DEFAULT 0 CHECK (announced IN (0, 1)),
	seq         INTEGER,
	published   INTEGER,
	PRIMARY KEY (contact, mechanism, fingerprint)
) STRICT;
INSERT INTO contact_keys (contact, mechanism, fingerprint, data, trust, first_seen, last_seen, announced, seq, published)
	SELECT contact, mechanism, fingerprint, data, trust, first_seen, last_seen, announced, seq, published FROM contact_keys_0007;
CREATE UNIQUE INDEX contact_keys_seq ON contact_keys (seq);
CREATE INDEX contact_keys_fingerprint ON contact_keys (mechanism, fingerprint);

CREATE TABLE key_events (
	id           INTEGER PRIMARY KEY,
	contact      TEXT NOT NULL,
	mechanism    TEXT NOT NULL,
	fingerprint  TEXT NOT NULL,
	kind         TEXT NOT NULL CHECK (kind IN ('first', 'changed', 'trust')),
	old_trust    TEXT CHECK (old_trust IN ('undecided', 'verified', 'blind', 'untrusted')),
	new_trust    TEXT NOT NULL CHECK (new_trust IN ('undecided', 'verified', 'blind', 'untrusted')),
	previous     TEXT NOT NULL DEFAULT '',
	time         INTEGER NOT NULL,
	acknowledged INTEGER NOT NULL DEFAULT 1 CHECK (acknowledged IN (0, 1)),
	FOREIGN KEY (contact, mechanism, fingerprint)
		REFERENCES contact_keys (contact, mechanism, fingerprint) ON DELETE CASCADE
) STRICT;
INSERT INTO key_events (id, contact, mechanism, fingerprint, kind, old_trust, new_trust, previous, time, acknowledged)
	SELECT id, contact, mechanism, fingerprint, kind, old_trust, new_trust, previous, time, acknowledged FROM key_events_0007;
CREATE INDEX key_events_key ON key_events (contact, mechanism, fingerprint);
CREATE INDEX key_events_pending ON key_events (acknowledged) WHERE acknowledged = FALSE;
DROP TABLE key_events_0007;
DROP TABLE contact_keys_0007;

CREATE TEMP TABLE own_keys_0007 AS SELECT * FROM own_keys;
DROP TABLE own_keys;
CREATE TABLE own_keys (
	mechanism   TEXT NOT NULL CHECK (mechanism IN ('ox', 'otr', 'esession', 'omemo')),
	fingerprint TEXT NOT NULL,
	public      BLOB NOT NULL,
	secret      BLOB NOT NULL, -- sealed
	created     INTEGER NOT NULL,
	active      INTEGER NOT NULL DEFAULT 0 CHECK (active IN (0, 1)),
	seq         INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (mechanism, fingerprint)
) STRICT;
INSERT INTO own_keys (mechanism, fingerprint, public, secret, created, active, seq)
	SELECT mechanism, fingerprint, public, secret, created, active, seq FROM own_keys_0007;
CREATE UNIQUE INDEX own_keys_one_active ON own_keys (mechanism) WHERE active = 1;
CREATE UNIQUE INDEX own_keys_seq ON own_keys (seq);
DROP TABLE own_keys_0007;

CREATE TEMP TABLE outbox_0007 AS SELECT * FROM outbox;
DROP TABLE outbox;
CREATE TABLE outbox (
	id        INTEGER PRIMARY KEY,
	recipient TEXT NOT NULL,
	body      BLOB NOT NULL, -- sealed
	mechanism TEXT NOT NULL DEFAULT '' CHECK (mechanism IN ('', 'ox', 'otr', 'esession', 'omemo')),
	created   INTEGER NOT NULL
) STRICT;
INSERT INTO outbox (id, recipient, body, mechanism, created)
	SELECT id, recipient, body, mechanism, created FROM outbox_0007;
DROP TABLE outbox_0007;

CREATE TEMP TABLE messages_0007 AS SELECT * FROM messages;
DROP TABLE messages;
CREATE TABLE messages (
	id        INTEGER PRIMARY KEY,
	stanza_id TEXT NOT NULL DEFAULT '',
	peer      TEXT NOT NULL,
	direction TEXT NOT NULL CHECK (direction IN ('in', 'out')),
	mechanism TEXT NOT NULL DEFAULT '' CHECK (mechanism IN ('', 'ox', 'otr', 'esession', 'omemo')),
	security  TEXT NOT NULL DEFAULT '',
	notice    INTEGER NOT NULL DEFAULT 0 CHECK (notice IN (0, 1)),
	body      BLOB NOT NULL, -- sealed
	time      INTEGER NOT NULL
) STRICT;
INSERT INTO messages (id, stanza_id, peer, direction, mechanism, security, notice, body, time)
	SELECT id, stanza_id, peer, direction, mechanism, security, notice, body, time FROM messages_0007;
CREATE INDEX messages_peer_time ON messages (peer, time, id);
CREATE UNIQUE INDEX messages_stanza ON messages (peer, direction, stanza_id) WHERE stanza_id <> '';
DROP TABLE messages_0007;

CREATE TABLE mechanism_state (
	mechanism TEXT NOT NULL CHECK (mechanism IN ('ox', 'otr', 'esession', 'omemo')),
	key       TEXT NOT NULL,
	value     BLOB NOT NULL, -- sealed
	PRIMARY KEY (mechanism, key)
) STRICT;
