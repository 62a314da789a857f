-- 0003: OMEMO (XEP-0384) and the sealed state of mechanisms, as the
-- SQLite store's version 7.
--
-- The mechanism columns accept 'omemo' (the constraints keep the names
-- PostgreSQL gave them). mechanism_state holds what a mechanism keeps for
-- itself, as sealed values under names of its choosing.

ALTER TABLE own_keys DROP CONSTRAINT own_keys_mechanism_check,
	ADD CONSTRAINT own_keys_mechanism_check CHECK (mechanism IN ('ox', 'otr', 'esession', 'omemo'));
ALTER TABLE contact_keys DROP CONSTRAINT contact_keys_mechanism_check,
	ADD CONSTRAINT contact_keys_mechanism_check CHECK (mechanism IN ('ox', 'otr', 'esession', 'omemo'));
ALTER TABLE outbox DROP CONSTRAINT outbox_mechanism_check,
	ADD CONSTRAINT outbox_mechanism_check CHECK (mechanism IN ('', 'ox', 'otr', 'esession', 'omemo'));
ALTER TABLE messages DROP CONSTRAINT messages_mechanism_check,
	ADD CONSTRAINT messages_mechanism_check CHECK (mechanism IN ('', 'ox', 'otr', 'esession', 'omemo'));

CREATE TABLE mechanism_state (
	account_id bigint NOT NULL REFERENCES accounts ON DELETE CASCADE,
	mechanism  text COLLATE "C" NOT NULL CHECK (mechanism IN ('ox', 'otr', 'esession', 'omemo')),
	key        text COLLATE "C" NOT NULL,
	value      bytea NOT NULL, -- sealed
	PRIMARY KEY (account_id, mechanism, key)
);
