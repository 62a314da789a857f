-- 0005: which generation of a mechanism a queued message leaves with (the
-- SQLite store's migration 9): OMEMO 0.3 and OMEMO 2 share the store
-- mechanism 'omemo'; the column holds the XEP-0380 namespace when the
-- mechanism alone does not say it, '' otherwise.
ALTER TABLE outbox ADD COLUMN namespace text NOT NULL DEFAULT '';
