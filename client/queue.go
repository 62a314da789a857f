package client

import "sync"

// queue is an unbounded FIFO handed from one producer side to a consumer
// goroutine. The XMPP read loop must never block on a slow consumer (that
// would deadlock IQ round trips made by the consumer), so incoming stanzas
// and events are queued without a bound; memory is bounded in practice by
// the server's rate limits and by the consumer catching up.
type queue[T any] struct {
	mu     sync.Mutex
	cond   *sync.Cond
	items  []T
	closed bool
	// inflight is set while the consumer holds an item it popped with
	// popInFlight and has not yet delivered (landed): offer must not pass
	// it.
	inflight bool
}

func newQueue[T any]() *queue[T] {
	q := &queue[T]{}
	q.cond = sync.NewCond(&q.mu)
	return q
}

func (q *queue[T]) push(v T) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return false
	}
	q.items = append(q.items, v)
	q.cond.Signal()
	return true
}

// pop blocks until an item is available or the queue is closed and drained.
func (q *queue[T]) pop() (T, bool) { return q.take(false) }

// popInFlight is pop for a consumer that then delivers the item and calls
// landed; until then offer queues behind it.
func (q *queue[T]) popInFlight() (T, bool) { return q.take(true) }

func (q *queue[T]) take(flight bool) (T, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.items) == 0 && !q.closed {
		q.cond.Wait()
	}
	var zero T
	if len(q.items) == 0 {
		return zero, false
	}
	v := q.items[0]
	q.items[0] = zero
	q.items = q.items[1:]
	q.inflight = flight
	return v, true
}

func (q *queue[T]) close() {
	q.mu.Lock()
	q.closed = true
	q.cond.Broadcast()
	q.mu.Unlock()
}

// offer delivers v straight to a receiver waiting on ch when nothing is
// queued or on its way, saving the consumer goroutine a round; otherwise
// it queues v like push. Order is kept: v never passes an item queued or
// in flight.
func (q *queue[T]) offer(v T, ch chan<- T) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return false
	}
	if len(q.items) == 0 && !q.inflight {
		select {
		case ch <- v:
			return true
		default:
		}
	}
	q.items = append(q.items, v)
	q.cond.Signal()
	return true
}

// landed says the item popped with popInFlight was delivered.
func (q *queue[T]) landed() {
	q.mu.Lock()
	q.inflight = false
	q.mu.Unlock()
}
