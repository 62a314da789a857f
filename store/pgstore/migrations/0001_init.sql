-- 0001: the Balcony store schema for PostgreSQL: the tables of the SQLite
-- store (store/migrations, up to its version 4), each keyed by account.
--
-- Every per-account table has account_id leading its primary key and
-- indexes and references accounts with ON DELETE CASCADE, so rows of
-- different accounts never mix and deleting an account deletes its data.
-- Times are Unix milliseconds (UTC), as in SQLite. Columns holding sealed
-- values are marked "sealed". Text that lists are ordered by uses the "C"
-- collation, so orders are byte orders, as in SQLite.

-- meta holds the schema version. Its shape never changes.
CREATE TABLE meta (
	key   text PRIMARY KEY,
	value text NOT NULL
);

-- One row per account held: its bare JID and how its data key is
-- protected (by a passphrase through Argon2id, or by a key). The data key
-- itself is only stored wrapped.
CREATE TABLE accounts (
	account_id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	jid            text COLLATE "C" NOT NULL UNIQUE,
	created        bigint NOT NULL,
	encryption     text NOT NULL CHECK (encryption IN ('argon2id-xchacha20poly1305', 'key-xchacha20poly1305')),
	store_id       bytea NOT NULL CHECK (length(store_id) = 16),
	kdf_salt       bytea,
	kdf_time       integer,
	kdf_memory_kib integer,
	kdf_threads    integer,
	wrapped_key    bytea NOT NULL,
	CHECK ((encryption = 'argon2id-xchacha20poly1305') =
		(kdf_salt IS NOT NULL AND kdf_time IS NOT NULL AND kdf_memory_kib IS NOT NULL AND kdf_threads IS NOT NULL))
);

CREATE TABLE settings (
	account_id bigint NOT NULL REFERENCES accounts ON DELETE CASCADE,
	key        text COLLATE "C" NOT NULL,
	value      text NOT NULL,
	PRIMARY KEY (account_id, key)
);

-- The account's record (SetAccount): at most one row per account.
CREATE TABLE account (
	account_id bigint NOT NULL REFERENCES accounts ON DELETE CASCADE,
	id         smallint NOT NULL CHECK (id = 1),
	jid        text NOT NULL,
	resource   text NOT NULL DEFAULT '',
	server     text NOT NULL DEFAULT '',
	direct_tls boolean NOT NULL DEFAULT FALSE,
	password   bytea, -- sealed; NULL when no password is saved
	PRIMARY KEY (account_id, id)
);

-- Own key pairs, per mechanism. At most one active key per mechanism.
CREATE TABLE own_keys (
	account_id  bigint NOT NULL REFERENCES accounts ON DELETE CASCADE,
	mechanism   text COLLATE "C" NOT NULL CHECK (mechanism IN ('ox', 'otr', 'esession')),
	fingerprint text COLLATE "C" NOT NULL,
	public      bytea NOT NULL,
	secret      bytea NOT NULL, -- sealed
	created     bigint NOT NULL,
	active      boolean NOT NULL DEFAULT FALSE,
	seq         bigint NOT NULL,
	PRIMARY KEY (account_id, mechanism, fingerprint)
);
CREATE UNIQUE INDEX own_keys_one_active ON own_keys (account_id, mechanism) WHERE active;
CREATE UNIQUE INDEX own_keys_seq ON own_keys (account_id, seq);

-- Contacts' keys and the trust decision for each. first_seen and seq are
-- NULL for a key the user decided about before it was seen; seq orders
-- keys as they arrived.
CREATE TABLE contact_keys (
	account_id  bigint NOT NULL REFERENCES accounts ON DELETE CASCADE,
	contact     text COLLATE "C" NOT NULL,
	mechanism   text COLLATE "C" NOT NULL CHECK (mechanism IN ('ox', 'otr', 'esession')),
	fingerprint text COLLATE "C" NOT NULL,
	data        bytea,
	trust       text NOT NULL CHECK (trust IN ('undecided', 'verified', 'blind', 'untrusted')),
	first_seen  bigint,
	last_seen   bigint,
	announced   boolean NOT NULL DEFAULT FALSE,
	seq         bigint,
	published   bigint,
	PRIMARY KEY (account_id, contact, mechanism, fingerprint)
);
CREATE UNIQUE INDEX contact_keys_seq ON contact_keys (account_id, seq);

-- History of contacts' keys: first key seen, key changes (reported until
-- acknowledged) and trust decisions.
CREATE TABLE key_events (
	account_id   bigint NOT NULL,
	id           bigint GENERATED ALWAYS AS IDENTITY,
	contact      text COLLATE "C" NOT NULL,
	mechanism    text COLLATE "C" NOT NULL,
	fingerprint  text COLLATE "C" NOT NULL,
	kind         text NOT NULL CHECK (kind IN ('first', 'changed', 'trust')),
	old_trust    text CHECK (old_trust IN ('undecided', 'verified', 'blind', 'untrusted')),
	new_trust    text NOT NULL CHECK (new_trust IN ('undecided', 'verified', 'blind', 'untrusted')),
	previous     text NOT NULL DEFAULT '',
	time         bigint NOT NULL,
	acknowledged boolean NOT NULL DEFAULT TRUE,
	PRIMARY KEY (account_id, id),
	FOREIGN KEY (account_id, contact, mechanism, fingerprint)
		REFERENCES contact_keys (account_id, contact, mechanism, fingerprint) ON DELETE CASCADE
);
CREATE INDEX key_events_key ON key_events (account_id, contact, mechanism, fingerprint);
CREATE INDEX key_events_pending ON key_events (account_id, id) WHERE acknowledged = FALSE;

-- The account's OTR instance tag, created once.
CREATE TABLE otr_instance (
	account_id bigint NOT NULL REFERENCES accounts ON DELETE CASCADE,
	id         smallint NOT NULL CHECK (id = 1),
	tag        bigint NOT NULL CHECK (tag >= 256 AND tag <= 4294967295),
	PRIMARY KEY (account_id, id)
);

-- ESession (XEP-0217) retained secrets shared with a peer's clients.
CREATE TABLE retained_secrets (
	account_id bigint NOT NULL REFERENCES accounts ON DELETE CASCADE,
	id         bigint GENERATED ALWAYS AS IDENTITY,
	peer       text COLLATE "C" NOT NULL,
	secret     bytea NOT NULL, -- sealed
	verified   boolean NOT NULL DEFAULT FALSE,
	created    bigint NOT NULL,
	seq        bigint NOT NULL,
	PRIMARY KEY (account_id, id)
);
CREATE INDEX retained_secrets_peer ON retained_secrets (account_id, peer);
CREATE UNIQUE INDEX retained_secrets_seq ON retained_secrets (account_id, seq);

-- Messages accepted for sending but not yet sent.
CREATE TABLE outbox (
	account_id bigint NOT NULL REFERENCES accounts ON DELETE CASCADE,
	id         bigint GENERATED ALWAYS AS IDENTITY,
	recipient  text NOT NULL,
	body       bytea NOT NULL, -- sealed
	mechanism  text NOT NULL DEFAULT '' CHECK (mechanism IN ('', 'ox', 'otr', 'esession')),
	created    bigint NOT NULL,
	PRIMARY KEY (account_id, id)
);

-- The message log. OTR and ESession messages are written only when the
-- account opted in (setting log.private_sessions).
CREATE TABLE messages (
	account_id bigint NOT NULL REFERENCES accounts ON DELETE CASCADE,
	id         bigint GENERATED ALWAYS AS IDENTITY,
	stanza_id  text NOT NULL DEFAULT '',
	peer       text COLLATE "C" NOT NULL,
	direction  text NOT NULL CHECK (direction IN ('in', 'out')),
	mechanism  text NOT NULL DEFAULT '' CHECK (mechanism IN ('', 'ox', 'otr', 'esession')),
	security   text NOT NULL DEFAULT '',
	notice     boolean NOT NULL DEFAULT FALSE,
	body       bytea NOT NULL, -- sealed
	time       bigint NOT NULL,
	PRIMARY KEY (account_id, id)
);
CREATE INDEX messages_peer_time ON messages (account_id, peer, time, id);
CREATE UNIQUE INDEX messages_stanza ON messages (account_id, peer, direction, stanza_id) WHERE stanza_id <> '';
