-- 0009: which generation of a mechanism a queued message leaves with.
--
-- OMEMO has two generations with the same store mechanism ('omemo'),
-- OMEMO 0.3 (eu.siacs.conversations.axolotl) and OMEMO 2
-- (urn:xmpp:omemo:2): a message queued for one must leave with it. The
-- column holds the XEP-0380 namespace when the mechanism alone does not
-- say it, '' otherwise.
ALTER TABLE outbox ADD COLUMN namespace TEXT NOT NULL DEFAULT '';
