-- 0002: the message log (history).
--
-- Bodies are sealed. OTR and ESession messages are written only when the
-- user opted in (setting log.private_sessions).
CREATE TABLE messages (
	id        INTEGER PRIMARY KEY,
	stanza_id TEXT NOT NULL DEFAULT '',
	peer      TEXT NOT NULL,
	direction TEXT NOT NULL CHECK (direction IN ('in', 'out')),
	mechanism TEXT NOT NULL DEFAULT '' CHECK (mechanism IN ('', 'ox', 'otr', 'esession')),
	security  TEXT NOT NULL DEFAULT '',
	notice    INTEGER NOT NULL DEFAULT 0 CHECK (notice IN (0, 1)),
	body      BLOB NOT NULL, -- sealed
	time      INTEGER NOT NULL
) STRICT;
CREATE INDEX messages_peer_time ON messages (peer, time, id);
CREATE UNIQUE INDEX messages_stanza ON messages (peer, direction, stanza_id) WHERE stanza_id <> '';
