package client

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"mellium.im/sasl"
	"mellium.im/xmpp/jid"
)

// Config describes one account connection. The zero value is not usable:
// JID and Password (or PasswordFunc) are required.
type Config struct {
	// JID is the account's address. A resourcepart, if present, is
	// requested at bind time; otherwise the server assigns one.
	JID jid.JID

	// Password is the account password. PasswordFunc, if set, is called
	// instead each time a password is needed (for example on reconnect).
	Password     string
	PasswordFunc func() (string, error)

	// Addr is the host:port to connect to. Empty means: look up the
	// domain's SRV records (xmpp-client, or xmpps-client with DirectTLS)
	// and fall back to the domain on port 5222 (5223 with DirectTLS).
	Addr string

	// DirectTLS connects with TLS from the first byte (XEP-0368) instead of
	// negotiating STARTTLS.
	DirectTLS bool

	// CAFile, if set, is a PEM file of certificate authorities to trust for
	// this server in addition to (not instead of) verifying the
	// certificate. It exists for local and private servers; there is no way
	// to skip certificate verification.
	CAFile string

	// TLSMinVersion and TLSMaxVersion bound the TLS versions (defaults:
	// TLS 1.2 to TLS 1.3; a minimum below TLS 1.2 is raised to it). The
	// client itself moves to TLS 1.2 when the server can bind the login to
	// the connection only with tls-unique (see Client.Auth).
	TLSMinVersion, TLSMaxVersion uint16

	// Mechanisms lists SASL mechanisms in order of preference. The default
	// is SCRAM-SHA-256-PLUS, SCRAM-SHA-256, SCRAM-SHA-1-PLUS, SCRAM-SHA-1.
	// PLAIN is never offered.
	Mechanisms []string

	// Reconnect enables automatic reconnection with exponential backoff
	// after the stream ends unexpectedly; not after the server replaced
	// the session by another of the same full JID (ErrReplaced).
	Reconnect bool
	// Backoff bounds the reconnection delay (defaults 500ms to 1m).
	MinBackoff, MaxBackoff time.Duration
	// BeforeConnect, if set, is called before every connection attempt:
	// Connect, each automatic reconnection and each stream resumption.
	// An error stops the attempt before anything is dialled: Connect
	// returns it, and the reconnection ends, reported by a
	// ConnectionEvent (Disconnected) whose Err matches ErrConnectRefused
	// and the hook's error. It is for a process that may act for the
	// account only while it holds a right to (balcony serve: the
	// account's lock in the database). The context bounds the attempt.
	BeforeConnect func(ctx context.Context) error

	// DisableStreamManagement turns XEP-0198 Stream Management off. It is
	// on by default when the server offers it: the server acknowledges
	// the stanzas it handled, and a stream cut by the network is resumed
	// with nothing lost or repeated.
	DisableStreamManagement bool
	// AckEvery requests an acknowledgement after this many stanzas
	// (default DefaultAckEvery); AckAfter requests one when a stanza
	// waited this long unacknowledged (default DefaultAckAfter).
	AckEvery int
	AckAfter time.Duration
	// MaxUnacked and MaxUnackedBytes bound the stanzas kept until the
	// server acknowledges them (defaults DefaultMaxUnacked and
	// DefaultMaxUnackedBytes). A message sent (Send) that would go beyond
	// waits, having asked the server for an acknowledgement, until there
	// is room or its context ends (ErrUnackedFull). The client's own
	// stanzas (requests, presence, receipts, replies, the protocol
	// messages of mechanisms) never wait: they are few, and the
	// acknowledgements may depend on them.
	MaxUnacked, MaxUnackedBytes int

	// KeepAlive is how long the connection may stay silent before the
	// client probes it: a XEP-0198 <r/> under stream management, a
	// XEP-0199 ping otherwise (default DefaultKeepAlive). A probe
	// unanswered for ProbeTimeout (default DefaultProbeTimeout) drops the
	// connection (ErrStalled), which with Reconnect is then resumed or
	// re-established: a silent stall is detected within KeepAlive +
	// ProbeTimeout.
	KeepAlive, ProbeTimeout time.Duration

	// Outbox, if set, keeps messages sent while offline until the stream
	// is back (see Outbox). Without one, Send fails with ErrNotConnected
	// while offline.
	Outbox Outbox
	// LastArchiveID is the archive id (Client.ArchiveCursor) saved by a
	// previous run: the first connection catches up from the archive
	// after it.
	LastArchiveID string
	// DedupeWindow is how many message ids are remembered to deliver
	// each message once (default DefaultDedupeWindow).
	DedupeWindow int

	// Carbons enables XEP-0280 Message Carbons after connecting (default
	// on; set DisableCarbons to turn it off).
	DisableCarbons bool

	// InitialPresence is sent after connecting unless DisablePresence.
	DisablePresence bool
	Priority        int8
	Status          string

	// CapsNode is the XEP-0115 node URI identifying the software.
	CapsNode string

	// ClientName and ClientVersion answer XEP-0092 version queries.
	ClientName, ClientVersion string

	// Logger receives diagnostics (never message content or secrets). nil
	// discards.
	Logger *slog.Logger

	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// defaults fills the stream management, liveness and duplicate settings
// left zero.
func (c *Config) defaults() {
	if c.AckEvery <= 0 {
		c.AckEvery = DefaultAckEvery
	}
	if c.AckAfter <= 0 {
		c.AckAfter = DefaultAckAfter
	}
	if c.MaxUnacked <= 0 {
		c.MaxUnacked = DefaultMaxUnacked
	}
	if c.MaxUnackedBytes <= 0 {
		c.MaxUnackedBytes = DefaultMaxUnackedBytes
	}
	if c.KeepAlive <= 0 {
		c.KeepAlive = DefaultKeepAlive
	}
	if c.ProbeTimeout <= 0 {
		c.ProbeTimeout = DefaultProbeTimeout
	}
	if c.DedupeWindow <= 0 {
		c.DedupeWindow = DefaultDedupeWindow
	}
}

// DefaultMechanisms is the SASL preference order used when
// Config.Mechanisms is empty.
var DefaultMechanisms = []string{"SCRAM-SHA-256-PLUS", "SCRAM-SHA-256", "SCRAM-SHA-1-PLUS", "SCRAM-SHA-1"}

var knownMechanisms = map[string]sasl.Mechanism{
	"SCRAM-SHA-256-PLUS": sasl.ScramSha256Plus,
	"SCRAM-SHA-256":      sasl.ScramSha256,
	"SCRAM-SHA-1-PLUS":   sasl.ScramSha1Plus,
	"SCRAM-SHA-1":        sasl.ScramSha1,
}

func (c *Config) mechanisms() ([]sasl.Mechanism, error) {
	names := c.Mechanisms
	if len(names) == 0 {
		names = DefaultMechanisms
	}
	out := make([]sasl.Mechanism, 0, len(names))
	for _, n := range names {
		m, ok := knownMechanisms[n]
		if !ok {
			return nil, fmt.Errorf("client: unsupported SASL mechanism %q (supported: SCRAM-SHA-256(-PLUS), SCRAM-SHA-1(-PLUS))", n)
		}
		out = append(out, m)
	}
	return out, nil
}

func (c *Config) password() (string, error) {
	if c.PasswordFunc != nil {
		return c.PasswordFunc()
	}
	if c.Password == "" {
		return "", errors.New("client: no password configured")
	}
	return c.Password, nil
}

func (c *Config) tlsConfig() (*tls.Config, error) {
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("client: reading CA file: %w", err)
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("client: no certificates found in CA file %s", c.CAFile)
		}
	}
	minV, maxV := c.TLSMinVersion, c.TLSMaxVersion
	if minV < tls.VersionTLS12 {
		// TLS 1.2 is the floor (SECURITY.md); older versions are refused
		// even when asked for.
		minV = tls.VersionTLS12
	}
	return &tls.Config{
		ServerName: c.JID.Domainpart(),
		RootCAs:    pool,
		MinVersion: minV,
		MaxVersion: maxV,
		NextProtos: []string{"xmpp-client"},
	}, nil
}

func (c *Config) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func (c *Config) logger() *slog.Logger {
	if c.Logger != nil {
		return c.Logger
	}
	return slog.New(slog.DiscardHandler)
}
