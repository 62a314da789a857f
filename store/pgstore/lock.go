package pgstore

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/balcony-im/balcony/store"
)

// Lock is a held session-level advisory lock on an account: while a host
// holds it, no other connection gets it, so exactly one host serves the
// account. PostgreSQL releases it when the holding connection ends, by
// Release or because the connection was lost (the host died, the network
// failed, the backend was terminated); Lost then tells the holder, which
// must stop serving the account.
type Lock struct {
	account string
	conn    *pgx.Conn
	lost    chan struct{}
	stop    chan struct{}
	done    chan struct{}
	once    sync.Once
}

// LockAccount takes the account's serving lock, waiting while another
// connection holds it (until ctx ends). The lock is held on a connection
// of its own, outside the pool. It fails with store.ErrNoStore for an
// account the database does not hold.
func (s *Store) LockAccount(ctx context.Context, account string) (*Lock, error) {
	return s.lockAccount(ctx, account, true)
}

// TryLockAccount takes the account's serving lock if it is free, and fails
// with store.ErrLocked if another connection holds it.
func (s *Store) TryLockAccount(ctx context.Context, account string) (*Lock, error) {
	return s.lockAccount(ctx, account, false)
}

func (s *Store) lockAccount(ctx context.Context, account string, wait bool) (*Lock, error) {
	j, id, err := s.lookup(ctx, account)
	if err != nil {
		return nil, err
	}
	conn, err := pgx.ConnectConfig(ctx, s.pool.Config().ConnConfig.Copy())
	if err != nil {
		return nil, fmt.Errorf("pgstore: lock %s: %w", j, classify(err))
	}
	got := true
	if wait {
		_, err = conn.Exec(ctx, `SELECT pg_advisory_lock($1, $2)`, lockServe, lockKey(id))
	} else {
		err = conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1, $2)`, lockServe, lockKey(id)).Scan(&got)
	}
	if err != nil || !got {
		conn.Close(context.WithoutCancel(ctx))
		if err == nil {
			err = &dbError{kind: store.ErrLocked, err: fmt.Errorf("another connection serves %s", j)}
		}
		return nil, fmt.Errorf("pgstore: lock %s: %w", j, classify(err))
	}
	l := &Lock{account: j, conn: conn, lost: make(chan struct{}), stop: make(chan struct{}), done: make(chan struct{})}
	go l.watch(s.cfg.LockCheckInterval)
	return l, nil
}

// Account returns the bare JID of the locked account.
func (l *Lock) Account() string { return l.account }

// Lost returns a channel that is closed when the lock's connection is
// found broken (checked every Config.LockCheckInterval): PostgreSQL has
// released the lock or will once it notices, and another host may take
// the account over. It is not closed by Release.
func (l *Lock) Lost() <-chan struct{} { return l.lost }

// Release releases the lock by closing its connection. It is safe to call
// more than once and after the lock was lost.
func (l *Lock) Release() {
	l.once.Do(func() {
		close(l.stop)
		<-l.done
		l.conn.Close(context.Background())
	})
}

// watch pings the lock's connection until Release, and reports a failed
// ping through Lost.
func (l *Lock) watch(every time.Duration) {
	defer close(l.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), every)
			err := l.conn.Ping(ctx)
			cancel()
			if err != nil {
				close(l.lost)
				return
			}
		}
	}
}
