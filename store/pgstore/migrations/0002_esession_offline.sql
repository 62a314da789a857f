-- 0002: XEP-0187 offline sessions, and keys looked up by fingerprint (the
-- SQLite store's migration 0006).
CREATE TABLE esession_offline (
	account_id bigint NOT NULL REFERENCES accounts ON DELETE CASCADE,
	nonce      text COLLATE "C" NOT NULL,
	secrets    bytea NOT NULL, -- sealed
	expires    bigint NOT NULL,
	PRIMARY KEY (account_id, nonce)
);
CREATE INDEX esession_offline_expires ON esession_offline (account_id, expires);

CREATE TABLE esession_offline_used (
	account_id bigint NOT NULL,
	nonce      text COLLATE "C" NOT NULL,
	exchange   text COLLATE "C" NOT NULL,
	PRIMARY KEY (account_id, nonce, exchange),
	FOREIGN KEY (account_id, nonce) REFERENCES esession_offline ON DELETE CASCADE
);

CREATE INDEX contact_keys_fingerprint ON contact_keys (account_id, mechanism, fingerprint);
