package omemo

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/client"
	"github.com/balcony-im/balcony/eme"
	engine "github.com/balcony-im/balcony/omemo"
	"github.com/balcony-im/balcony/trust"
)

// Store is the part of the account's store that OMEMO uses: the trust
// decisions about contacts' device keys (mechanism trust.OMEMO; the
// contact of one's own other devices is one's own bare JID), and the
// engine's state as sealed values changed in one transaction per
// message. *store.Store implements it.
type Store interface {
	RecordSeenKey(ctx context.Context, contact string, m trust.Mechanism, fingerprint string, data []byte) (trust.Seen, error)
	SetTrust(ctx context.Context, contact string, m trust.Mechanism, fingerprint string, t trust.State) error
	ListKeys(ctx context.Context, contact string, m trust.Mechanism) ([]trust.ContactKey, error)
	SetAnnouncedKeys(ctx context.Context, contact string, m trust.Mechanism, fingerprints []string) error
	MechanismState(ctx context.Context, m trust.Mechanism, name string) ([]byte, error)
	MechanismStates(ctx context.Context, m trust.Mechanism, prefix string) (map[string][]byte, error)
	UpdateMechanismState(ctx context.Context, m trust.Mechanism, set map[string][]byte, remove []string) error
}

// Config configures the OMEMO device of an account.
type Config struct {
	// Store keeps the engine's state and the trust decisions. Required.
	Store Store
	// Generations are the generations to speak (default both, OMEMO 2
	// first). Each becomes one Mechanism for the pipeline.
	Generations []engine.Generation
	// Label names this device in its OMEMO 2 device list entry (signed,
	// XEP-0384 §5.3.1); empty for none.
	Label string
	// Rand is the source of randomness; nil means crypto/rand.
	Rand io.Reader
	// Now is the clock; nil means the client's clock.
	Now func() time.Time
	// Refresh is how long a contact's device list read over PEP is used
	// before sending reads it again (notifications keep it current while
	// connected). Zero means 10 minutes.
	Refresh time.Duration
	// FetchTimeout bounds the PEP round trips made while opening a message
	// or handling a notification. Zero means 20 seconds.
	FetchTimeout time.Duration
	// MaxClockSkew is how far the time inside an OMEMO 2 message may be
	// from when it arrived before a warning is shown. Zero means 10
	// minutes.
	MaxClockSkew time.Duration
}

// Errors callers branch on.
var (
	// ErrNoDevices means the contact announces no OMEMO device of the
	// generation (or its device list cannot be read).
	ErrNoDevices = errors.New("client: no OMEMO device announced")
	// ErrGroupChat is returned for a group chat message: OMEMO in group
	// chats is not supported yet.
	ErrGroupChat = errors.New("client: OMEMO in group chats is not supported yet")
	// ErrOwnDevice is returned by RemoveDevice for this device's own id.
	ErrOwnDevice = errors.New("client: this is the id of this OMEMO device")
	// ErrUnknownDevice is returned by RemoveDevice for an id that is not on
	// the account's device lists.
	ErrUnknownDevice = errors.New("client: no such OMEMO device on the account's device lists")
)

// UntrustedError is returned by Seal when the contact has OMEMO devices
// but none that may be encrypted to: every one is undecided (after the
// user verified another key, blind trust ends) or untrusted.
type UntrustedError struct {
	Contact string
	// Devices are the devices left out, with their fingerprints and trust.
	Devices []DeviceInfo
}

func (e *UntrustedError) Error() string {
	return fmt.Sprintf("client: none of the %d OMEMO devices of %s is trusted", len(e.Devices), e.Contact)
}

// Kinds of the OMEMO mechanism's security events.
const (
	// KindNewDevice: a device key not seen before, of a contact or of
	// the account (Fingerprint; Hint: verify when the contact had others).
	KindNewDevice client.SecurityKind = "omemo-new-device"
	// KindKeyChanged: a known device id came with another identity key.
	KindKeyChanged client.SecurityKind = "omemo-key-changed"
	// KindNotEncryptedTo: a device of the recipient (or of the account)
	// was left out of a message because the user has not decided to
	// trust it.
	KindNotEncryptedTo client.SecurityKind = "omemo-not-encrypted-to"
)

// Device is the account's OMEMO device: one device id and identity key,
// and for each generation a Mechanism for the pipeline, with its
// pre-keys and sessions. It publishes the device's bundles and device
// list entries, follows the contacts' device lists and keeps the trust
// decisions in the Store. See the package documentation.
//
// A Device is safe for concurrent use; engine operations are serialised.
type Device struct {
	cfg  Config
	st   Store
	gens []engine.Generation
	mech map[engine.Generation]*Mechanism

	// mu serialises the engine: the managers and the stage.
	mu    sync.Mutex
	stage *stage
	mgrs  map[engine.Generation]*engine.Manager
	id    uint32
	fpr   string

	hmu   sync.Mutex
	hosts map[engine.Generation]client.Host

	lmu       sync.Mutex
	lists     map[string]*deviceSet
	fetchLock [64]sync.Mutex // serialise device list reads, by hash of the bare JID

	pmu        sync.Mutex
	republish  map[engine.Generation]bool // a bundle republication is queued
	background tasks

	// recorded is when seen last recorded a key (bare JID, space,
	// fingerprint) in the store.
	smu      sync.Mutex
	recorded map[string]time.Time

	off atomic.Bool // TurnOff: kept in the store as nameOff
	// amu serialises what puts this device on the server (bundles, list
	// entries) with TurnOff taking it off; tmu serialises TurnOff and
	// TurnOn. Order: tmu, amu, mu.
	amu sync.Mutex
	tmu sync.Mutex
}

// Mechanism is OMEMO of one generation in the message pipeline:
// register each of Device.Mechanisms with the client.
type Mechanism struct {
	d *Device
	g engine.Generation
}

var (
	_ client.Mechanism    = (*Mechanism)(nil)
	_ client.Attacher     = (*Mechanism)(nil)
	_ client.Availability = (*Mechanism)(nil)
	_ client.Shutdowner   = (*Mechanism)(nil)
)

// New loads the account's OMEMO device from cfg.Store, creating its
// device id, identity key and pre-keys on first use, and deletes the
// private parts of pre-keys consumed by archived key exchanges during the
// previous run (XEP-0384 §7).
func New(cfg Config) (*Device, error) {
	if cfg.Store == nil {
		return nil, errors.New("client: OMEMO needs a store")
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	if cfg.Refresh <= 0 {
		cfg.Refresh = 10 * time.Minute
	}
	if cfg.FetchTimeout <= 0 {
		cfg.FetchTimeout = 20 * time.Second
	}
	if cfg.MaxClockSkew <= 0 {
		cfg.MaxClockSkew = 10 * time.Minute
	}
	gens := cfg.Generations
	if len(gens) == 0 {
		gens = []engine.Generation{engine.V2, engine.V03}
	}
	d := &Device{cfg: cfg, st: cfg.Store, stage: newStage(cfg.Store), mech: map[engine.Generation]*Mechanism{},
		hosts: map[engine.Generation]client.Host{}, lists: map[string]*deviceSet{}, republish: map[engine.Generation]bool{},
		recorded: map[string]time.Time{}}
	for _, g := range gens {
		if g != engine.V2 && g != engine.V03 {
			return nil, fmt.Errorf("client: unknown OMEMO generation %d", g)
		}
		if d.mech[g] == nil {
			d.gens = append(d.gens, g)
			d.mech[g] = &Mechanism{d: d, g: g}
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.load(); err != nil {
		return nil, err
	}
	for _, g := range d.gens {
		if _, err := d.mgrs[g].FinishCatchUp(); err != nil {
			d.stage.discard()
			return nil, err
		}
	}
	if err := d.stage.commit(); err != nil {
		return nil, err
	}
	off, err := d.st.MechanismState(context.Background(), trust.OMEMO, nameOff)
	if err != nil {
		return nil, err
	}
	d.off.Store(off != nil)
	return d, nil
}

// load (re)creates the engine managers from the store. The caller holds
// d.mu; what the managers write on creation is committed.
func (d *Device) load() error {
	d.stage.discard()
	for _, m := range d.mgrs {
		m.Close()
	}
	d.mgrs = map[engine.Generation]*engine.Manager{}
	for _, g := range d.gens {
		m, err := engine.New(engine.Config{Generation: g, Store: d.stage, Rand: d.cfg.Rand, Now: d.now})
		if err != nil {
			d.stage.discard()
			return fmt.Errorf("client: OMEMO: %w", err)
		}
		d.mgrs[g] = m
		d.id, d.fpr = m.DeviceID(), fingerprintOf(g, m.IdentityKey())
	}
	return d.stage.commit()
}

// op runs an engine operation under the lock and commits what it changed
// in one transaction. When the operation fails and changed something, or
// the commit fails, the managers are loaded again from the store, so that
// their caches never run ahead of it. Operations whose failure still
// changes state (encrypting for some devices but not all) pass
// keep = true with their error.
func (d *Device) op(ctx context.Context, fn func() (keep bool, err error)) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.stage.ctx = ctx
	defer func() { d.stage.ctx = context.Background() }()
	keep, err := fn()
	if err != nil && !keep {
		if d.stage.pending() {
			if lerr := d.load(); lerr != nil {
				return errors.Join(err, lerr)
			}
		}
		return err
	}
	if cerr := d.stage.commit(); cerr != nil {
		if lerr := d.load(); lerr != nil {
			return errors.Join(cerr, lerr)
		}
		return cerr
	}
	return err
}

// Mechanisms returns the mechanisms to register with the client, one per
// generation, OMEMO 2 first.
func (d *Device) Mechanisms() []*Mechanism {
	out := make([]*Mechanism, len(d.gens))
	for i, g := range d.gens {
		out[i] = d.mech[g]
	}
	return out
}

// Mechanism returns the mechanism of generation g, or nil.
func (d *Device) Mechanism(g engine.Generation) *Mechanism { return d.mech[g] }

// DeviceID returns this device's id.
func (d *Device) DeviceID() uint32 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.id
}

// Fingerprint returns this device's fingerprint: the identity key's
// Curve25519 form in eight groups of eight lower-case hex digits, the same
// in both generations (XEP-0384 §8).
func (d *Device) Fingerprint() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.fpr
}

// URI returns the xmpp: URI that carries this device's fingerprint for
// verification out of band (a QR code), as Conversations reads it:
// xmpp:JID?omemo-sid-ID=FINGERPRINT.
func (d *Device) URI(self jid.JID) string {
	return FormatURI(self.Bare().String(), d.DeviceID(), d.Fingerprint())
}

// Generations returns the generations this device speaks.
func (d *Device) Generations() []engine.Generation {
	return append([]engine.Generation(nil), d.gens...)
}

// host returns a host for device-wide network work (any generation's).
func (d *Device) host() (client.Host, error) {
	d.hmu.Lock()
	defer d.hmu.Unlock()
	for _, g := range d.gens {
		if h := d.hosts[g]; h != nil {
			return h, nil
		}
	}
	return nil, errors.New("client: OMEMO is not registered with a client")
}

func (d *Device) hostOf(g engine.Generation) client.Host {
	d.hmu.Lock()
	defer d.hmu.Unlock()
	return d.hosts[g]
}

func (d *Device) now() time.Time {
	if d.cfg.Now != nil {
		return d.cfg.Now()
	}
	if h, err := d.host(); err == nil {
		return h.Now()
	}
	return time.Now()
}

func (d *Device) log() *slog.Logger {
	if h, err := d.host(); err == nil {
		return h.Logger()
	}
	return slog.New(slog.DiscardHandler)
}

func (d *Device) self() jid.JID {
	h, err := d.host()
	if err != nil {
		return jid.JID{}
	}
	return h.Self().Bare()
}

// emit hands events to the user.
func (d *Device) emit(evs []*client.SecurityEvent) {
	h, err := d.host()
	if err != nil {
		return
	}
	for _, e := range evs {
		h.Emit(e)
	}
}

// lockFor serialises device list reads of one account.
func (d *Device) lockFor(bare string) *sync.Mutex {
	h := fnv.New32a()
	h.Write([]byte(bare))
	return &d.fetchLock[h.Sum32()%uint32(len(d.fetchLock))]
}

// Attach implements client.Attacher: the mechanism follows its
// generation's device lists (own and contacts') through PEP
// notifications, which also advertises the +notify feature.
func (x *Mechanism) Attach(h client.Host) error {
	d := x.d
	d.hmu.Lock()
	d.hosts[x.g] = h
	d.hmu.Unlock()
	h.HandlePEP(DevicesNode(x.g), func(ev *client.PEPEvent) { d.onDeviceList(x.g, ev) })
	h.SetEnabled(true)
	return nil
}

// Shutdown implements client.Shutdowner: it waits for background
// republications to end.
func (x *Mechanism) Shutdown() { x.d.background.Wait() }

// Namespace implements client.Mechanism.
func (x *Mechanism) Namespace() string { return x.g.Namespace() }

// Generation returns the mechanism's generation.
func (x *Mechanism) Generation() engine.Generation { return x.g }

// Needs implements client.Mechanism: a fallback body for clients without
// OMEMO (XEP-0380) and a store hint, so that the server archives the
// message for the account's other devices (XEP-0384's multi-device
// model relies on carbons and the archive); no <private/>. Messages are
// deferrable: the ratchet states live in the store, not in the stream, so
// a message may wait in the outbox and be sealed when it leaves, and a
// sealed one may be sent again on a new stream. It is replayable too: a
// message the server acknowledged just before it lost the session (a
// restart) is sent again as it was; a recipient that never got the first
// copy reads this one, one that did drops it as a duplicate (XEP-0359
// ids, and XEP-0384 §7: the message key is gone).
func (x *Mechanism) Needs() client.Needs {
	return client.Needs{FallbackBody: true, Hints: []string{"store"}, Deferrable: true, Replayable: true}
}

// Usable implements client.Availability: the contact announces a device
// of this generation that may be encrypted to (trusted, or not seen yet
// and so trusted blindly as long as the contact has no verified device).
// A contact whose device list was never read has it read first.
func (x *Mechanism) Usable(ctx context.Context, to jid.JID) bool {
	d := x.d
	bare := to.Bare()
	if d.Off() || bare.Equal(d.self()) {
		return false
	}
	// A list that names no device is read again at most once a minute.
	set, err := d.activeList(ctx, bare, x.g, time.Minute)
	if err != nil {
		return false
	}
	trusts, err := d.trusts(ctx, bare.String())
	if err != nil {
		return false
	}
	verified := hasVerified(trusts)
	for _, r := range set.active(x.g) {
		if r.Fingerprint == "" {
			if !verified {
				return true
			}
			continue
		}
		if st, ok := trusts[r.Fingerprint]; ok && st.Usable() {
			return true
		}
	}
	return false
}

func hasVerified(trusts map[string]trust.State) bool {
	for _, st := range trusts {
		if st == trust.Verified {
			return true
		}
	}
	return false
}

// trusts returns the trust decisions about the account's device keys.
func (d *Device) trusts(ctx context.Context, bare string) (map[string]trust.State, error) {
	keys, err := d.st.ListKeys(ctx, bare, trust.OMEMO)
	if err != nil {
		return nil, err
	}
	out := make(map[string]trust.State, len(keys))
	for _, k := range keys {
		out[k.Fingerprint] = k.Trust
	}
	return out, nil
}

// fingerprintOf returns the stored form of an identity key's fingerprint
// (64 lower-case hex digits), or "" for a key that has none.
func fingerprintOf(g engine.Generation, identityKey []byte) string {
	f, err := engine.Fingerprint(g, identityKey)
	if err != nil {
		return ""
	}
	s, _ := trust.NormalizeFingerprint(trust.OMEMO, f)
	return s
}

// DisplayFingerprint groups a fingerprint in eight groups of eight hex
// digits, as XEP-0384 §8 recommends.
func DisplayFingerprint(fpr string) string {
	f, err := trust.NormalizeFingerprint(trust.OMEMO, fpr)
	if err != nil {
		return fpr
	}
	out := make([]byte, 0, 71)
	for i := 0; i < len(f); i += 8 {
		if i > 0 {
			out = append(out, ' ')
		}
		out = append(out, f[i:i+8]...)
	}
	return string(out)
}

// hint is the verification hint for a contact's devices.
func hint(g engine.Generation, peer string) eme.Hint {
	return eme.Hint{Action: eme.ActionVerify, Mechanism: g.Namespace(), Peer: peer}
}
