// Package store is Balcony's persistent state for an XMPP account: own
// keys, contacts' keys and the user's trust decisions, OTR instance tag and
// fingerprints, ESession (XEP-0217) retained secrets, XEP-0187 offline
// session secrets, the state a mechanism keeps for itself (OMEMO's
// identity, pre-keys and sessions), an outbox and a message log, with
// secrets encrypted at rest. Callers use the
// AccountStore interface; this package implements it with an embedded
// SQLite database per account through modernc.org/sqlite (pure Go, no
// cgo), and store/pgstore with PostgreSQL for many accounts. Both apply
// the rules written once here, so they behave the same.
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
// version is recorded in the meta table; Create applies them all, Open
// applies the missing migrations in order, each in its own transaction with the version
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
// as OX secret keys and the OTR DSA key, ESession retained secrets and
// the Diffie-Hellman exponents of XEP-0187 offline options, a saved
// account password, mechanism state) and message text (outbox and log
// bodies) are sealed with XChaCha20-Poly1305 under the data key, with
// associated data naming the table and the row, so a sealed value copied
// into another row does not open. The data key is wrapped with a key derived from the
// user's passphrase by Argon2id (DefaultKDFParams: 3 passes, 64 MiB, 4
// lanes, recorded per store) and a random 16-byte salt. Open derives that
// key once, unwraps the data key (a wrong passphrase fails authentication:
// ErrWrongPassphrase, and nothing is written) and keeps it, in a
// fixed-size array, until Close clears it. ChangePassphrase re-wraps the
// data key in one transaction.
//
// Services that run unattended can protect the data key with a key
// instead of a passphrase: Options.Key, 256 bits, typically from a key
// file made by GenerateKeyFile and read by ReadKeyFile (which refuses a
// file others may read), or from a key management service. The data key
// is wrapped under it with no key derivation; ChangeKey re-wraps it under
// a new one. Keep the key apart from the database and its backups.
//
// Bots that run unattended may instead opt out with Options.Unencrypted:
// the data key is then stored in the clear and secrets are protected only
// by file permissions. The mode is recorded when the store is created and a later
// Open with another mode fails with ErrEncryptionMode, so an encrypted
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
// change and decision (KeyEvents). The account is implicit: one
// AccountStore per account. RecordSeenKey applies each mechanism's rule to a newly seen key
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
//   - OMEMO: blind trust before verification: a contact's device keys are
//     Blind until the user verified one of them, and Undecided after.
//
// A new key for a contact who already had one for the same mechanism is
// always reported: RecordSeenKey returns a KeyChange and the change stays
// in PendingKeyChanges until AcknowledgeKeyChange, so it is shown even if
// the process ends first.
//
// # Mechanism state
//
// A mechanism keeps what it needs between runs under names of its choosing
// (MechanismStateStore): OMEMO stores its device id and identity key, its
// pre-keys and each session as one sealed value. UpdateMechanismState
// writes and deletes several names in one transaction, so the state after
// a message is either all written or not at all.
//
// # Message log
//
// The log is minimal: one row per message with its stanza id, peer,
// direction, mechanism, security state, body or notice and time, paged
// with Messages. OTR and ESession messages are not logged unless the user
// opts in with the setting SettingLogPrivateSessions: both mechanisms
// promise the peer that the conversation is not kept.
//
// # Order
//
// Lists come in the order things happened, never in an order that depends
// on a tie: keys in the order they were first seen, own keys by creation
// time and then in the order they were added, retained secrets newest
// first and, at the same time, the one written last first, key events,
// pending changes and the outbox in the order they were written, the log
// by message time and then in the order it was written. Times are
// milliseconds, so ties are common; the tables keep a number that grows
// with every write (an integer key, or a seq column) to break them.
//
// # Concurrency
//
// An AccountStore is safe for concurrent use by multiple goroutines.
// With SQLite, write transactions of one process are serialised in the
// process; between processes SQLite's lock serialises them, each waiting
// up to Options.BusyTimeout before failing with ErrLocked. Readers never
// block and never see a partial transaction.
//
// # Backends
//
// AccountStore is made of smaller interfaces (TrustStore, OwnKeyStore,
// RetainedSecretStore, MessageLog, ...); the packages that use the store
// (the client and the balcony command) depend on the few methods they
// call, for example client.OTRStore, with a compile-time check such as
// var _ OTRStore = (*store.Store)(nil). The value types (Mechanism,
// TrustState, ContactKey, Seen, KeyChange, RetainedSecret, LogEntry, ...)
// and the sentinel errors belong to this package and are the same for
// every backend.
//
// The rules run on a Backend: a database that runs a read, or a write
// transaction, for one account, through a Querier whose statements both
// SQLite and PostgreSQL accept (comments such as /*account*/ mark where a
// database of many accounts scopes a statement to one), and that records
// the account's KeyMaterial. NewAccountStore puts the rules on a Backend;
// NewKeyMaterial makes the data key of a new account. The suite in
// store/storetest runs the same behavioural tests against every backend.
//
// # PostgreSQL
//
// store/pgstore keeps the stores of many accounts, served from several
// hosts, in one PostgreSQL database through github.com/jackc/pgx/v5
// (pgxpool). Its schema is this one with an account_id column leading
// every primary key and index, referencing an accounts table (bare JID
// and key material) with ON DELETE CASCADE, in a schema of its own; its
// migrations are its own numbered files applied by the same rule, under
// an advisory lock. Each write method is one SERIALIZABLE transaction that
// first takes the account's transaction-level advisory lock, so writers
// of an account take turns on every host, and is run again after a
// serialisation failure or deadlock (SQLSTATE 40001, 40P01); waiting for
// the lock longer than Options.BusyTimeout is ErrLocked. A session-level
// advisory lock per account (pgstore.Store.LockAccount, TryLockAccount),
// held on a connection of its own (one per account, or one per host for
// all the accounts it serves: pgstore.Host) and released by PostgreSQL
// when that connection ends, lets exactly one host serve an account (hold
// its XMPP session and send from its outbox), with fail-over when the
// holder's connection drops. The lock alone does not exclude a former
// holder that has not yet noticed its connection dropped; a serving host
// therefore confirms on its lock connection that it still holds the lock
// before every connection to the XMPP server (pgstore.Host.Holds, called
// from client.Config.BeforeConnect), and every host binds the account's
// same full JID, so that the XMPP server replaces the former holder's
// session when the next binds: at no moment are two sessions of an
// account bound. Each account's data key is wrapped by its passphrase
// or by a key (Options.Key), never stored in the clear, and secrets are
// sealed as here, with the same associated data; the account is bound by
// its own data key.
package store
