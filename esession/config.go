package esession

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"math/big"
	"slices"
	"time"

	"github.com/balcony-im/balcony/internal/modp"
)

// Config configures a Manager. A nil *Config, and every zero field, means
// the default.
type Config struct {
	// Rand is the source of every random value; nil means crypto/rand.
	Rand io.Reader
	// Now is the clock, used for the age of retained secrets; nil means
	// time.Now.
	Now func() time.Time
	// Secrets keeps retained secrets between sessions. Nil means none are
	// kept: every session then needs its SAS compared to be verified.
	Secrets RetainedSecrets
	// SecretLifetime is how long a retained secret stays usable
	// (XEP-0217 §5.3.3 leaves it to the implementation). Older secrets
	// are ignored and removed from Secrets (RetainedSecrets.Expire). Zero
	// means DefaultSecretLifetime (90 days); a negative value means no
	// expiry.
	SecretLifetime time.Duration
	// Groups are the RFC 3526 MODP groups offered, in order of preference,
	// and the only ones accepted from a peer. Only 14 to 18 are allowed;
	// the default is {14}. Each offered group costs one exponentiation
	// when starting a session.
	Groups []int
	// OTR is the user's XEP-0136 OTR preference: it decides which values
	// of the XEP-0155 "logging" field are offered and which one is
	// answered (XEP-0136 §9.1). The default, OTRForbid, offers
	// logging=may and refuses a peer that insists on mustnot. Offer or
	// accept mustnot only when the client stores no history of the
	// session and the server's automatic archiving is off (XEP-0155
	// §4.1, XEP-0136 §9.1).
	OTR OTRMode
	// MustNotLog is the older spelling of OTR: OTRPrefer when OTR is not
	// set.
	MustNotLog bool
	// Ciphers are the block ciphers offered and accepted, in order of
	// preference: CipherAES128CTR (the default, and the only one of
	// XEP-0217), CipherAES192CTR, CipherAES256CTR.
	Ciphers []string
	// Stanzas are the stanza kinds offered and accepted for encryption:
	// StanzaMessage (always, and the default), StanzaPresence, StanzaIQ
	// (XEP-0116 §4.1).
	Stanzas []string
	// RekeyFreq is the rekey_freq this client asks for: the fewest
	// stanzas exchanged between two key exchanges (XEP-0200 §9); a
	// responder answers the larger of the two values. Zero means
	// MaxRekeyFreq, never, as XEP-0217 fixes. A session re-keys by itself
	// as soon as the agreed number is reached.
	RekeyFreq uint32
	// RekeyGrace is how long the older receiving keys are kept after a
	// key exchange this client started; zero means DefaultRekeyGrace.
	RekeyGrace time.Duration
	// IdleTimeout is how long an encrypted session may go without a
	// stanza before Tick re-keys it, or terminates it when the agreed
	// rekey_freq does not allow a key exchange. Zero means
	// DefaultIdleTimeout; a negative value turns it off.
	IdleTimeout time.Duration
	// Key is this client's signing key, to identify with a public key
	// (XEP-0116 §5.4). Nil: this client identifies by the SAS and
	// retained secrets only.
	Key *PrivateKey
	// Keys is the trust store's view of the peers' public keys. Nil: the
	// peers' keys are neither asked for nor accepted, since nothing could
	// tell whether a key is the one a peer used before.
	Keys KeyAssociations
	// RequirePeerKey refuses to negotiate with a peer that does not
	// identify with a public key. It needs Keys.
	RequirePeerKey bool
	// Offline keeps the secrets of the offline session options this
	// client publishes (XEP-0187, Manager.PublishOffline) and lets it
	// read offline sessions when it comes back. Nil: no offline sessions
	// are published or read.
	Offline OfflineStore
	// OtherSecrets supplies the password shared with a peer, if any, that
	// the 4-message exchange mixes into the session key (XEP-0116 §3).
	OtherSecrets OtherSecrets
	// AutoAccept accepts session requests from peers with a presence
	// subscription without asking. Requests from other peers always wait
	// for Accept or Decline (XEP-0155 §10.1).
	AutoAccept bool
	// NoPadding turns off padding plaintext with spaces to whole AES
	// blocks (XEP-0200 §5 step 1 allows it; it costs no counter values).
	NoPadding bool
	// MaxSessions bounds the sessions a Manager keeps; ended sessions are
	// forgotten first and new requests are ignored past it. Default 1024.
	MaxSessions int
	// Profile selects the conventions where the specifications are
	// ambiguous or where the one implementation that existed deviated
	// from them. The default, ProfileSpec, is the plain reading of the
	// text; ProfileGajim interoperates with Gajim 0.12 to 0.16.
	Profile Profile
	// OnUnavailable says what Manager.PeerUnavailable does with the
	// sessions bound to a resource that sent unavailable presence. The
	// default, AssumeContinues, is what XEP-0155 §9.4 recommends.
	OnUnavailable UnavailablePolicy
	// SharePresence offers temporary presence sharing in requests (the
	// optional "presence" field of XEP-0155 §4.1, may before mustnot) and
	// accepts it when a requester offers it. Params.SharePresence reports
	// the outcome: only then should the two clients send each other
	// directed presence (XEP-0155 §9.3). Without it the field is neither
	// offered nor agreed.
	SharePresence bool
}

// Profile is a set of conventions for what the specifications leave open
// (see the package documentation, "Conventions").
type Profile int

// Profiles.
const (
	// ProfileSpec follows the plain reading of the specifications.
	ProfileSpec Profile = iota
	// ProfileGajim computes what Gajim 0.12 to 0.16 computed: the whole
	// 32-byte HMAC as the cipher key (so AES-256 runs where aes128-ctr
	// was negotiated), keystream from C+1, counters as MPIs in the
	// identity MACs (and accepted as MPIs in received stanza MACs, as
	// Gajim sends them), an unpadded SAS, and
	// terminate forms sent and accepted in the clear (Gajim ignores an
	// encrypted one). A plaintext terminate is unauthenticated: anyone
	// able to inject a stanza on the thread can end the session.
	ProfileGajim
)

// UnavailablePolicy is what to do with a session when the peer's resource
// it is bound to becomes unavailable (XEP-0155 §9.4).
type UnavailablePolicy int

// Policies for Config.OnUnavailable.
const (
	// AssumeContinues keeps the session: the peer may only have become
	// invisible, or keep the session's state until it reconnects
	// (XEP-0155 §9.4 SHOULD). The user is told (PeerWentOffline).
	AssumeContinues UnavailablePolicy = iota
	// TerminateOnUnavailable terminates the session explicitly, with the
	// terminate form (encrypted in an encrypted session), since the
	// assumption that the peer cannot continue may be wrong (§9.4 MUST),
	// and wipes its keys at once: no acknowledgement is awaited. A new
	// session with the peer needs a new ThreadID.
	TerminateOnUnavailable
)

type config struct {
	rand           io.Reader
	now            func() time.Time
	secrets        RetainedSecrets
	lifetime       time.Duration
	groups         []dhGroup
	otr            OTRMode
	ciphers        []string
	stanzas        []string
	rekeyFreq      uint32
	key            *PrivateKey
	keys           KeyAssociations
	requirePeerKey bool
	oss            OtherSecrets
	offline        OfflineStore
	rekeyGrace     time.Duration
	idle           time.Duration
	autoAccept     bool
	pad            bool
	maxSessions    int
	unavailable    UnavailablePolicy
	sharePresence  bool
	cv             conv
}

// dhGroup is what the engine needs of a Diffie-Hellman group: a
// *modp.Group, or in fuzz tests a small group whose exponentiations cost
// nothing.
type dhGroup interface {
	ID() int
	// Public returns g^x mod p.
	Public(x []byte) *big.Int
	// SharedSecret checks the peer's public value (1 < y < p-1) and
	// returns y^x mod p, refusing a result of 0 or 1.
	SharedSecret(peer *big.Int, x []byte) (*big.Int, error)
	// CheckElement reports whether 1 < y < p-1.
	CheckElement(y *big.Int) error
}

var _ dhGroup = (*modp.Group)(nil)

// MinGroup is the smallest MODP group this package offers or accepts.
// XEP-0217 lists groups 1 to 5; 1, 2 and 5 are too weak today and 3 and 4
// are not MODP groups at all.
const MinGroup = 14

func (c *Config) resolve() (*config, error) {
	if c == nil {
		c = &Config{}
	}
	r := &config{
		rand: c.Rand, now: c.Now, secrets: c.Secrets, lifetime: c.SecretLifetime,
		otr: c.OTR, autoAccept: c.AutoAccept, pad: !c.NoPadding, maxSessions: c.MaxSessions,
		unavailable: c.OnUnavailable, rekeyFreq: c.RekeyFreq, key: c.Key, keys: c.Keys,
		requirePeerKey: c.RequirePeerKey, oss: c.OtherSecrets, offline: c.Offline,
		sharePresence: c.SharePresence,
	}
	if c.MustNotLog && r.otr == OTRForbid {
		r.otr = OTRPrefer
	}
	if r.otr < OTRForbid || r.otr > OTRRequire {
		return nil, fmt.Errorf("esession: unknown OTR preference %d", r.otr)
	}
	r.rekeyGrace, r.idle = c.RekeyGrace, c.IdleTimeout
	if r.rekeyGrace <= 0 {
		r.rekeyGrace = DefaultRekeyGrace
	}
	if r.idle == 0 {
		r.idle = DefaultIdleTimeout
	}
	if r.rekeyFreq == 0 {
		r.rekeyFreq = MaxRekeyFreq
	}
	r.ciphers = []string{CipherAES128CTR}
	if len(c.Ciphers) > 0 {
		r.ciphers = slices.Clone(c.Ciphers)
	}
	for i, ci := range r.ciphers {
		if keyLenOf(ci) == 0 || slices.Index(r.ciphers, ci) != i {
			return nil, fmt.Errorf("esession: cipher %q not supported", ci)
		}
	}
	r.stanzas = []string{StanzaMessage}
	for _, k := range c.Stanzas {
		switch {
		case k != StanzaMessage && k != StanzaPresence && k != StanzaIQ:
			return nil, fmt.Errorf("esession: stanza kind %q not supported", k)
		case !slices.Contains(r.stanzas, k):
			r.stanzas = append(r.stanzas, k)
		}
	}
	if r.key != nil {
		if err := r.key.Public().check(); err != nil {
			return nil, fmt.Errorf("esession: signing key: %w", err)
		}
	}
	if r.requirePeerKey && r.keys == nil {
		return nil, errors.New("esession: RequirePeerKey needs Keys")
	}
	switch c.Profile {
	case ProfileSpec:
	case ProfileGajim:
		r.cv.gajim = true
	default:
		return nil, fmt.Errorf("esession: unknown profile %d", c.Profile)
	}
	if r.cv.gajim && (len(r.ciphers) > 1 || r.ciphers[0] != CipherAES128CTR || len(r.stanzas) > 1 ||
		r.rekeyFreq != MaxRekeyFreq || r.key != nil || r.keys != nil) {
		return nil, errors.New("esession: the gajim profile knows only the XEP-0217 parameters: no other cipher, stanza kind, re-keying or public key")
	}
	if r.unavailable != AssumeContinues && r.unavailable != TerminateOnUnavailable {
		return nil, fmt.Errorf("esession: unknown unavailable policy %d", r.unavailable)
	}
	if r.rand == nil {
		r.rand = rand.Reader
	}
	if r.now == nil {
		r.now = time.Now
	}
	switch {
	case r.lifetime == 0:
		r.lifetime = DefaultSecretLifetime
	case r.lifetime < 0:
		r.lifetime = 0 // no expiry
	}
	if r.maxSessions <= 0 {
		r.maxSessions = 1024
	}
	ids := c.Groups
	if len(ids) == 0 {
		ids = []int{14}
	}
	seen := map[int]bool{}
	for _, id := range ids {
		if id < MinGroup || seen[id] {
			return nil, fmt.Errorf("esession: MODP group %d not allowed", id)
		}
		g, err := modp.ByID(id)
		if err != nil {
			return nil, fmt.Errorf("esession: %w", err)
		}
		seen[id] = true
		r.groups = append(r.groups, g)
	}
	return r, nil
}

func (c *config) group(id int) dhGroup {
	for _, g := range c.groups {
		if g.ID() == id {
			return g
		}
	}
	return nil
}

// exponentBytes is the size of the secret DH exponent for a group: at
// least 2n = 256 bits (XEP-0217 §5.1: 2^(2n-1) < x), and more for the
// larger groups, following the strength estimates of RFC 3526 §8.
func exponentBytes(g dhGroup) int {
	switch g.ID() {
	case 14:
		return 32
	case 15:
		return 48
	case 16:
		return 64
	case 17:
		return 72
	default:
		return 80
	}
}

func (c *config) read(n int) ([]byte, error) {
	b := make([]byte, n)
	if _, err := io.ReadFull(c.rand, b); err != nil {
		return nil, fmt.Errorf("esession: reading randomness: %w", err)
	}
	return b, nil
}
