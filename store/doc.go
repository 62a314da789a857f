// Package store is Balcony's persistent state for one XMPP account: own
// keys, contacts' keys and the user's trust decisions, OTR instance tag and
// fingerprints, ESession (XEP-0217) retained secrets, an outbox and a
// message log, kept in an SQLite database through modernc.org/sqlite (pure
// Go, no cgo), with secrets encrypted at rest.
//
// # Files
//
// One store lives in one account directory, created with mode 0700, as
// the file balcony.db (mode 0600) plus SQLite's balcony.db-wal and
// balcony.db-shm while open. Open tightens wider permissions and refuses
// files owned by another user (on Unix; elsewhere protect the directory
// with the system's access control lists). Several processes may open the
// same directory at once.
//
// Creating a store is an explicit step. Create makes a new store and
// fails with ErrExists if the directory already holds a store file; it
// builds the database under a temporary name and links it into place when
// complete, so a crash leaves no half-made store. Open opens an existing
// store and never creates one: without a store file it fails with
// ErrNoStore, and an empty file or one that is not an SQLite database is
// ErrCorrupt and is left exactly as it is (no -wal or -shm file is
// created). A damaged store is therefore never silently replaced by an
// empty one, which would lose every key, trust decision and retained
// secret and start trust on first use over.
//
// The database runs in WAL mode with synchronous=FULL, foreign keys and
// secure_delete on. Every change that touches more than one row is one
// transaction; a process killed at any point leaves either the whole
// change or none of it. Open runs PRAGMA quick_check and reports a damaged
// file as ErrCorrupt; Check runs the full integrity check.
//
// # Schema migrations
//
// The schema is versioned by embedded files migrations/NNNN_name.sql. The
// version is recorded in the meta table; Create applies them all, Open applies the missing
// migrations in order, each in its own transaction with the version
// update, so an interrupted upgrade leaves the previous version intact
// and several processes opening an old store apply each migration once. A
// database with a version newer than LatestSchemaVersion is refused with
// ErrNewerSchema and left untouched. Migrations only add to the schema, so
// an older process that still has the store open keeps working until it
// exits.
//
// # Secrets at rest
//
// Each store has a random 256-bit data key. Secrets (own secret keys such
// as OX secret keys and the OTR DSA key, ESession retained secrets, a
// saved account password) and message text (outbox and log bodies) are
// sealed with XChaCha20-Poly1305 under the data key, with associated data
// naming the table and the row, so a sealed value copied into another row
// does not open. The data key is wrapped with a key derived from the
// user's passphrase by Argon2id (DefaultKDFParams: 3 passes, 64 MiB, 4
// lanes, recorded per store) and a random 16-byte salt. Open derives that
// key once, unwraps the data key (a wrong passphrase fails authentication:
// ErrWrongPassphrase, and nothing is written) and keeps it, in a
// fixed-size array, until Close clears it. ChangePassphrase re-wraps the
// data key in one transaction.
//
// Bots that run unattended may opt out with Options.Unencrypted: the data
// key is then stored in the clear and secrets are protected only by file
// permissions. The mode is recorded when the store is created and a later
// Open with the other mode fails with ErrEncryptionMode, so an encrypted
// store never silently opens as an unencrypted one or the other way round.
//
// Go cannot guarantee that no copy of a key stays in memory: the AEAD
// keeps its own copy of the data key, and the garbage collector may move
// or copy values. Secrets returned by methods are fresh slices the caller
// should clear after use. This package never logs or prints.
//
// # Trust
//
// Trust is recorded per (contact, mechanism, fingerprint) as Undecided,
// Verified, Blind or Untrusted, with a history of every first key, key
// change and decision (KeyEvents). The account is implicit: one store per
// account. RecordSeenKey applies each mechanism's rule to a newly seen key
// (see DefaultTrust):
//
//   - OX: the first key of a contact is trusted blindly (Blind) unless
//     Options.NoBlindTrust; later keys are Undecided until the user
//     decides.
//   - OTR: fingerprints are recorded Undecided ("unverified") on the first
//     AKE; SMP success marks them Verified (SetTrust).
//   - ESession: XEP-0116 public keys are recorded Undecided and marked
//     Verified after SAS confirmation; the XEP-0217 retained-secret chain
//     carries its own verified flag, set by ReplaceRetainedSecret after
//     SAS confirmation and carried along the chain.
//
// A new key for a contact who already had one for the same mechanism is
// always reported: RecordSeenKey returns a KeyChange and the change stays
// in PendingKeyChanges until AcknowledgeKeyChange, so it is shown even if
// the process ends first.
//
// # Message log
//
// The log is minimal: one row per message with its stanza id, peer,
// direction, mechanism, security state, body or notice and time, paged
// with Messages. OTR and ESession messages are not logged unless the user
// opts in with the setting SettingLogPrivateSessions: both mechanisms
// promise the peer that the conversation is not kept.
//
// # Concurrency
//
// A *Store is safe for concurrent use by multiple goroutines. Write
// transactions of one process are serialised in the process; between
// processes SQLite's lock serialises them, each waiting up to
// Options.BusyTimeout before failing with ErrLocked. Readers never block
// and never see a partial transaction.
//
// # Other backends
//
// The packages that use the store (the client and the balcony command)
// depend on small interfaces of their own, each listing the few methods it
// calls, for example
//
//	type TrustStore interface {
//		RecordSeenKey(ctx context.Context, contact string, m store.Mechanism, fpr string, data []byte) (store.Seen, error)
//		SetTrust(ctx context.Context, contact string, m store.Mechanism, fpr string, t store.TrustState) error
//		Trust(ctx context.Context, contact string, m store.Mechanism, fpr string) (store.TrustState, error)
//		ListKeys(ctx context.Context, contact string, m store.Mechanism) ([]store.ContactKey, error)
//	}
//
// with a compile-time check var _ TrustStore = (*store.Store)(nil). The
// value types (Mechanism, TrustState, ContactKey, Seen, KeyChange,
// RetainedSecret, LogEntry, ...) and the sentinel errors belong to this
// package and are backend-neutral, so a second backend implements the same
// interfaces and returns the same types and errors.
//
// A PostgreSQL backend for deployments that run many accounts on several
// hosts would be a separate package (for example store/pgstore, using
// github.com/jackc/pgx/v5 through pgxpool) holding one pool for all
// accounts and handing out a per-account value that implements the
// interfaces:
//
//   - Schema: the same tables with an account_id column (referencing an
//     accounts table keyed by bare JID) leading every primary key and
//     index, so rows of different accounts never mix. BLOB becomes bytea,
//     the INTEGER times become bigint (or timestamptz), booleans become
//     boolean, STRICT CHECKs carry over, the partial unique indexes keep
//     their WHERE clauses, INSERT ... ON CONFLICT is the same syntax. Its
//     migrations are its own numbered files, applied by the same rule: one
//     transaction each, the version in a meta table, refusing a newer
//     schema.
//   - Transactions: each multi-row method maps to one pgx transaction.
//     Methods that read then write (RecordSeenKey, SetTrust,
//     ReplaceRetainedSecret) use SERIALIZABLE isolation with a retry on
//     serialization_failure (SQLSTATE 40001), or SELECT ... FOR UPDATE on
//     the key row, where SQLite relies on BEGIN IMMEDIATE. A lock timeout
//     (lock_timeout, SQLSTATE 55P03) maps to ErrLocked, a failed
//     connection to a wrapped error.
//   - Coordination across hosts: pg_advisory_xact_lock(hash of account_id)
//     taken at the start of every write transaction of an account gives
//     the same one-writer-per-account order that SQLite's file lock gives
//     here, and a session-level pg_try_advisory_lock per account makes
//     sure only one host at a time holds the XMPP session (and sends from
//     the outbox) for that account, with fail-over when that host's
//     connection drops.
//   - Secrets: sealing is unchanged (XChaCha20-Poly1305, associated data
//     naming table and row, now including account_id). The per-account
//     data key is wrapped either by the account's passphrase as here or,
//     for unattended servers, by a key from the deployment's key
//     management service, never stored beside the data in the clear.
//
// Tests for such a backend run the same behavioural tests as this package
// against both implementations.
package store
