package pgstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// lockHost is the class of the lock a serving host holds for as long as
// it is alive ("BLNH"); its second key is the backend process id of the
// host's connection, so that counting these locks counts the live hosts.
const lockHost = 0x424c4e48

// ErrHostLost means the connection of a Host broke: PostgreSQL has
// released, or will release, every lock it held.
var ErrHostLost = errors.New("pgstore: the host's lock connection was lost")

// Host is one serving process's hold on the accounts it serves: one
// connection of its own (outside the pool) holding a session-level
// advisory lock per served account, the same lock as LockAccount, so a
// Host and Locks exclude each other. One connection per host rather than
// per account keeps the number of connections to the database at one per
// host whatever the number of accounts (a connection is a server process
// in PostgreSQL; max_connections is 100 by default), and needs one
// watchdog per host; when it breaks, the host loses all its accounts at
// once, which is right, since a host that cannot reach the database
// cannot record anything for any of them.
//
// The connection is checked every check interval, a check failing when
// it is not answered within an interval. The host learns of a
// broken connection through Lost at most FenceDelay after the break, and
// must then stop serving every account at once. A host that takes an
// account waits FenceDelay before it serves it, so that a holder whose
// connection PostgreSQL dropped first (an administrator terminating the
// backend, a database restart) has normally stopped by then. That is an
// optimisation, resting on timing (a paused process notices nothing):
// the exclusion itself needs Holds before every connection to the
// account's XMPP server, and the server replacing the session of the
// same full JID (see balcony serve). The connection also
// asks the server to probe it with TCP keepalives (tcp_keepalives_idle,
// _interval, _count and tcp_user_timeout), so that PostgreSQL releases
// the locks of a host cut off by the network within a few seconds rather
// than the system's default of hours.
//
// A Host is safe for concurrent use; its operations take turns on the
// connection.
type Host struct {
	s     *Store
	every time.Duration

	mu   sync.Mutex // the connection and held
	conn *pgx.Conn
	held map[string]int64

	lost     chan struct{}
	lostOnce sync.Once
	stop     chan struct{}
	done     chan struct{}
	once     sync.Once
}

// NewHost opens the connection of a serving host and registers the host
// as alive. checkEvery is how often the connection is checked (zero means
// Config.LockCheckInterval); every host sharing the accounts must use the
// same value, since FenceDelay depends on it.
func (s *Store) NewHost(ctx context.Context, checkEvery time.Duration) (*Host, error) {
	if checkEvery <= 0 {
		checkEvery = s.cfg.LockCheckInterval
	}
	cc := s.pool.Config().ConnConfig.Copy()
	secs := strconv.Itoa(max(1, int((checkEvery+time.Second-1)/time.Second)))
	cc.RuntimeParams["tcp_keepalives_idle"] = secs
	cc.RuntimeParams["tcp_keepalives_interval"] = secs
	cc.RuntimeParams["tcp_keepalives_count"] = "2"
	cc.RuntimeParams["tcp_user_timeout"] = strconv.Itoa(int(4 * checkEvery / time.Millisecond))
	conn, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		return nil, fmt.Errorf("pgstore: host: %w", classify(err))
	}
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1, pg_backend_pid())`, lockHost); err != nil {
		conn.Close(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("pgstore: host: %w", classify(err))
	}
	h := &Host{s: s, every: checkEvery, conn: conn, held: map[string]int64{},
		lost: make(chan struct{}), stop: make(chan struct{}), done: make(chan struct{})}
	go h.watch()
	return h, nil
}

// FenceDelay bounds how long after the connection of a host breaks that
// host may still believe it serves its accounts: the next check is due
// within one interval, may wait up to an interval for an operation in
// progress (each gives up after one), and fails after an interval
// unanswered, so the host knows within three intervals; FenceDelay adds
// one more for scheduling.
func (h *Host) FenceDelay() time.Duration { return 4 * h.every }

// Lost returns a channel closed when the host's connection is found
// broken, by a check or by any operation. It is not closed by Close.
func (h *Host) Lost() <-chan struct{} { return h.lost }

// TryLock takes the serving lock of the account if no other connection
// holds it, and reports whether this host holds it now (true as well if
// it held it already). An error of the connection itself also closes
// Lost and matches ErrHostLost.
func (h *Host) TryLock(ctx context.Context, account string) (bool, error) {
	j, id, err := h.s.lookup(ctx, account)
	if err != nil {
		return false, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	select {
	case <-h.lost:
		// Whatever it held may be another's now.
		return false, fmt.Errorf("pgstore: lock %s: %w", j, ErrHostLost)
	default:
	}
	if _, ok := h.held[j]; ok {
		return true, nil
	}
	var got bool
	if err := h.do(ctx, func(ctx context.Context) error {
		return h.conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1, $2)`, lockServe, lockKey(id)).Scan(&got)
	}); err != nil {
		return false, fmt.Errorf("pgstore: lock %s: %w", j, err)
	}
	if got {
		h.held[j] = id
	}
	return got, nil
}

// ErrNotHeld means the host does not hold the account's serving lock.
var ErrNotHeld = errors.New("pgstore: the host does not hold the account's lock")

// Holds confirms, on the host's own lock connection, that the connection
// still holds the account's serving lock: it asks PostgreSQL (pg_locks,
// for this backend) rather than trusting what the host remembers, so
// that the answer is the server's at the moment of the call. It returns
// nil when the lock is held, an error matching ErrNotHeld when it is
// not, and one matching ErrHostLost (closing Lost) when the connection
// does not answer within one check interval. A serving host calls it
// before every connection to the account's XMPP server, so that a host
// that lost its lock never connects.
func (h *Host) Holds(ctx context.Context, account string) error {
	j, err := bareJID(account)
	if err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	id, ok := h.held[j]
	if !ok {
		return fmt.Errorf("pgstore: %s: %w", j, ErrNotHeld)
	}
	var held bool
	if err := h.do(ctx, func(ctx context.Context) error {
		return h.conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_locks
			WHERE locktype = 'advisory' AND granted AND pid = pg_backend_pid() AND objsubid = 2
			  AND classid::bigint = $1 AND objid::bigint = $2
			  AND database = (SELECT oid FROM pg_database WHERE datname = current_database()))`,
			lockServe, int64(uint32(lockKey(id)))).Scan(&held)
	}); err != nil {
		return fmt.Errorf("pgstore: lock %s: %w", j, err)
	}
	if !held {
		return fmt.Errorf("pgstore: %s: %w", j, ErrNotHeld)
	}
	return nil
}

// Unlock releases the serving lock of an account this host holds. The
// host must have stopped serving it first.
func (h *Host) Unlock(ctx context.Context, account string) error {
	j, err := bareJID(account)
	if err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	id, ok := h.held[j]
	if !ok {
		return nil
	}
	delete(h.held, j)
	if err := h.do(ctx, func(ctx context.Context) error {
		_, err := h.conn.Exec(ctx, `SELECT pg_advisory_unlock($1, $2)`, lockServe, lockKey(id))
		return err
	}); err != nil {
		return fmt.Errorf("pgstore: unlock %s: %w", j, err)
	}
	return nil
}

// Served returns the bare JIDs of the accounts whose serving lock any
// connection holds (this host's or another's).
func (h *Host) Served(ctx context.Context) (map[string]bool, error) { return h.s.Served(ctx) }

// Served returns the bare JIDs of the accounts whose serving lock
// (LockAccount, TryLockAccount or a Host) some connection holds.
func (s *Store) Served(ctx context.Context) (map[string]bool, error) {
	rows, err := s.pool.Query(ctx, `SELECT a.jid FROM pg_locks l JOIN accounts a ON a.account_id = l.objid::bigint
		WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2 AND l.classid::bigint = $1
		  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())`, lockServe)
	if err != nil {
		return nil, fmt.Errorf("pgstore: served accounts: %w", classify(err))
	}
	jids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("pgstore: served accounts: %w", classify(err))
	}
	m := make(map[string]bool, len(jids))
	for _, j := range jids {
		m[j] = true
	}
	return m, nil
}

// Hosts returns the number of live hosts (Hosts whose connection
// PostgreSQL still holds), this one included.
func (h *Host) Hosts(ctx context.Context) (int, error) {
	var n int
	err := h.s.pool.QueryRow(ctx, `SELECT count(*) FROM pg_locks
		WHERE locktype = 'advisory' AND granted AND objsubid = 2 AND classid::bigint = $1
		  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`, lockHost).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("pgstore: hosts: %w", classify(err))
	}
	return max(n, 1), nil
}

// Close releases every lock by closing the connection. The caller must
// have stopped serving the accounts first. It is safe to call more than
// once and after the connection was lost.
func (h *Host) Close() {
	h.once.Do(func() {
		close(h.stop)
		<-h.done
		h.mu.Lock()
		h.conn.Close(context.Background())
		h.held = map[string]int64{}
		h.mu.Unlock()
	})
}

// do runs op on the connection (h.mu held) with a deadline of one check
// interval; a failure means the connection is gone.
func (h *Host) do(ctx context.Context, op func(ctx context.Context) error) error {
	select {
	case <-h.lost:
		return ErrHostLost
	default:
	}
	ctx, cancel := context.WithTimeout(ctx, h.every)
	defer cancel()
	if err := op(ctx); err != nil {
		// pgx closes a connection whose operation was cancelled, so any
		// error here leaves the locks in doubt: treat them as lost.
		h.markLost()
		return fmt.Errorf("%w: %w", ErrHostLost, err)
	}
	return nil
}

func (h *Host) markLost() { h.lostOnce.Do(func() { close(h.lost) }) }

// watch checks the connection every interval until Close.
func (h *Host) watch() {
	defer close(h.done)
	t := time.NewTicker(h.every)
	defer t.Stop()
	for {
		select {
		case <-h.stop:
			return
		case <-h.lost:
			return
		case <-t.C:
			h.mu.Lock()
			err := h.do(context.Background(), func(ctx context.Context) error { return h.conn.Ping(ctx) })
			h.mu.Unlock()
			if err != nil {
				return
			}
		}
	}
}
