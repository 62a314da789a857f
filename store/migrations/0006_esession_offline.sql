-- 0006: XEP-0187 offline sessions, and keys looked up by fingerprint.
--
-- esession_offline holds the Diffie-Hellman secrets of the offline session
-- options the account published, until they expire (Unix milliseconds);
-- nonce is the options' N_A in hexadecimal, not secret. The secrets are
-- sealed, bound to the nonce.
CREATE TABLE esession_offline (
	nonce   TEXT PRIMARY KEY,
	secrets BLOB NOT NULL, -- sealed
	expires INTEGER NOT NULL
) STRICT;
CREATE INDEX esession_offline_expires ON esession_offline (expires);

-- esession_offline_used records the key exchanges received for offline
-- options (a hash of the sender's public value, or its nonce), so that a
-- replayed exchange is refused (XEP-0187 §5). Rows go with their options.
CREATE TABLE esession_offline_used (
	nonce    TEXT NOT NULL REFERENCES esession_offline (nonce) ON DELETE CASCADE,
	exchange TEXT NOT NULL,
	PRIMARY KEY (nonce, exchange)
) STRICT;

-- Which contacts a key (an Encrypted Sessions public key) is associated
-- with (XEP-0116 §10.4): looked up by mechanism and fingerprint.
CREATE INDEX contact_keys_fingerprint ON contact_keys (mechanism, fingerprint);
