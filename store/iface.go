package store

import (
	"context"
	"time"
)

// AccountStore is everything Balcony keeps for one XMPP account: its
// record, settings, own keys, contacts' keys with trust and history, the
// OTR instance tag, ESession retained secrets, the outbox and the message
// log. *Store (SQLite, one account per directory) implements it, and so
// does an account of a PostgreSQL store (store/pgstore). Every
// implementation applies the same rules, returns the same types and the
// same sentinel errors, and seals secrets the same way.
//
// Implementations are safe for concurrent use by multiple goroutines.
// Callers that need only part of it take one of the smaller interfaces it
// is made of, or a smaller one of their own.
type AccountStore interface {
	AccountRecord
	SettingStore
	OwnKeyStore
	TrustStore
	OTRTagStore
	RetainedSecretStore
	OfflineSecretStore
	OutboxStore
	MessageLog
	MechanismStateStore

	// Encrypted reports whether the secrets are protected by a
	// passphrase or a key (false for Options.Unencrypted).
	Encrypted() bool
	// ChangePassphrase re-wraps the data key of a passphrase-protected
	// store under a new passphrase.
	ChangePassphrase(ctx context.Context, passphrase []byte) error
	// ChangeKey re-wraps the data key of a key-protected store (see
	// Options.Key) under a new key.
	ChangeKey(ctx context.Context, key []byte) error
	// Check opens every sealed value, and checks the database's own
	// integrity where the backend can; problems are ErrCorrupt.
	Check(ctx context.Context) error
	// Close clears the data key from memory; further use returns
	// ErrClosed.
	Close() error
}

// AccountRecord is the account's own record and saved password.
type AccountRecord interface {
	Account(ctx context.Context) (Account, error)
	SetAccount(ctx context.Context, a Account) error
	SetPassword(ctx context.Context, password []byte) error
	Password(ctx context.Context) ([]byte, error)
	ForgetPassword(ctx context.Context) error
}

// SettingStore is the account's preferences.
type SettingStore interface {
	Setting(ctx context.Context, key string) (string, error)
	SetSetting(ctx context.Context, key, value string) error
	DeleteSetting(ctx context.Context, key string) error
	Settings(ctx context.Context) (map[string]string, error)
}

// OwnKeyStore is the account's own key pairs.
type OwnKeyStore interface {
	AddOwnKey(ctx context.Context, k OwnKey, secret []byte) error
	OwnKeys(ctx context.Context, m Mechanism) ([]OwnKey, error)
	ActiveOwnKey(ctx context.Context, m Mechanism) (OwnKey, error)
	OwnKeySecret(ctx context.Context, m Mechanism, fingerprint string) ([]byte, error)
	SetActiveOwnKey(ctx context.Context, m Mechanism, fingerprint string) error
	DeleteOwnKey(ctx context.Context, m Mechanism, fingerprint string) error
}

// TrustStore is contacts' keys (OX keys, OTR fingerprints, ESession public
// keys), the trust decisions about them and their history.
type TrustStore interface {
	DefaultTrust(m Mechanism, first bool) TrustState
	RecordSeenKey(ctx context.Context, contact string, m Mechanism, fingerprint string, data []byte) (Seen, error)
	SetTrust(ctx context.Context, contact string, m Mechanism, fingerprint string, t TrustState) error
	Trust(ctx context.Context, contact string, m Mechanism, fingerprint string) (TrustState, error)
	ListKeys(ctx context.Context, contact string, m Mechanism) ([]ContactKey, error)
	SetAnnouncedKeys(ctx context.Context, contact string, m Mechanism, fingerprints []string) error
	SetKeyPublished(ctx context.Context, contact string, m Mechanism, fingerprint string, published time.Time) error
	DeleteContactKey(ctx context.Context, contact string, m Mechanism, fingerprint string) error
	KeyEvents(ctx context.Context, contact string, m Mechanism) ([]KeyEvent, error)
	PendingKeyChanges(ctx context.Context) ([]KeyChange, error)
	AcknowledgeKeyChange(ctx context.Context, id int64) error
	ContactsWithKey(ctx context.Context, m Mechanism, fingerprint string) ([]string, error)
}

// OTRTagStore keeps the account's OTR instance tag. (OTR fingerprints
// and their trust are in TrustStore, mechanism OTR.)
type OTRTagStore interface {
	OTRInstanceTag(ctx context.Context) (uint32, error)
}

// RetainedSecretStore keeps ESession (XEP-0217) retained secrets.
type RetainedSecretStore interface {
	RetainedSecrets(ctx context.Context, peer string) ([]RetainedSecret, error)
	ReplaceRetainedSecret(ctx context.Context, peer string, old []byte, next RetainedSecret) error
	VerifyRetainedSecret(ctx context.Context, peer string, value []byte) (bool, error)
	ExpireRetainedSecrets(ctx context.Context, peer string, createdBefore time.Time) (int, error)
	ForgetRetainedSecrets(ctx context.Context, peer string) error
}

// OfflineSecretStore keeps the secrets of the XEP-0187 offline Encrypted
// Session options the account published, and the key exchanges received
// for them.
type OfflineSecretStore interface {
	SaveOfflineSecrets(ctx context.Context, nonce, secrets []byte, expires time.Time) error
	OfflineSecrets(ctx context.Context, nonce []byte) ([]byte, error)
	MarkOfflineExchange(ctx context.Context, nonce, exchange []byte) (replayed bool, err error)
	DeleteOfflineSecrets(ctx context.Context, nonce []byte) error
	ExpireOfflineSecrets(ctx context.Context, before time.Time) (int, error)
}

// OutboxStore is the queue of messages accepted but not sent yet.
type OutboxStore interface {
	Enqueue(ctx context.Context, to, body string, m Mechanism) (int64, error)
	EnqueueMessage(ctx context.Context, m OutboxMessage) (int64, error)
	Outbox(ctx context.Context) ([]OutboxMessage, error)
	Dequeue(ctx context.Context, id int64) error
}

// MechanismStateStore keeps what a mechanism needs for itself between
// runs, sealed, under names of its choosing (OMEMO: its identity,
// pre-keys and sessions), and changes several names in one transaction.
type MechanismStateStore interface {
	MechanismState(ctx context.Context, m Mechanism, name string) ([]byte, error)
	MechanismStates(ctx context.Context, m Mechanism, prefix string) (map[string][]byte, error)
	UpdateMechanismState(ctx context.Context, m Mechanism, set map[string][]byte, remove []string) error
}

// MessageLog is the history.
type MessageLog interface {
	LogMessage(ctx context.Context, e LogEntry) (int64, error)
	LogMessages(ctx context.Context, entries []LogEntry) ([]int64, error)
	Messages(ctx context.Context, peer string, before int64, limit int) ([]LogEntry, error)
	DeleteMessages(ctx context.Context, peer string) (int64, error)
}
