package client

import (
	"sync"

	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/xmltree"
)

// maxLanes bounds how many senders' stanzas are processed at once. Most of
// the time a lane waits on the network (a key fetched over PEP, a round
// trip of a session mechanism) rather than a core, so the bound is above
// the number of CPUs.
const maxLanes = 16

// lanes processes received stanzas in order per sender (bare JID) and
// concurrently across senders: one contact whose message needs slow work
// (fetching and checking keys, a slow server) never holds up the others,
// while a mechanism still sees each peer's stanzas in the order they
// arrived. Up to maxLanes workers take lanes that have stanzas; they stay
// until close, so that a steady stream of messages does not pay for a new
// goroutine (and its stack growth) per message.
type lanes struct {
	process func(*xmltree.Element)
	parse   func(string) (jid.JID, error)

	mu      sync.Mutex
	idle    *sync.Cond // signalled when no lane is busy
	work    *sync.Cond // signalled when a lane is ready or on close
	queues  map[string][]*xmltree.Element
	ready   []string // lanes with stanzas and no worker, oldest first
	busy    int      // lanes in queues
	workers int      // workers started
	waiting int      // workers waiting for a lane
	closed  bool
}

func newLanes(process func(*xmltree.Element), parse func(string) (jid.JID, error)) *lanes {
	l := &lanes{process: process, parse: parse, queues: map[string][]*xmltree.Element{}}
	l.idle = sync.NewCond(&l.mu)
	l.work = sync.NewCond(&l.mu)
	return l
}

// laneKey is the sender a stanza belongs to: its bare 'from', or the
// account for a stanza without one.
func (l *lanes) laneKey(st *xmltree.Element) string {
	from := st.AttrValue("from")
	if from == "" {
		return ""
	}
	if j, err := l.parse(from); err == nil {
		return j.Bare().String()
	}
	// An invalid address still gets a lane of its own (and a notice).
	return "invalid:" + from
}

// add queues st on its sender's lane; a lane that was empty is handed to
// a waiting worker, or to a new one while there are fewer than maxLanes.
func (l *lanes) add(st *xmltree.Element) {
	key := l.laneKey(st)
	l.mu.Lock()
	defer l.mu.Unlock()
	q, running := l.queues[key]
	l.queues[key] = append(q, st)
	if running {
		return
	}
	l.busy++
	l.ready = append(l.ready, key)
	switch {
	case l.waiting > 0:
		l.work.Signal()
	case l.workers < maxLanes:
		l.workers++
		go l.worker()
	}
}

// worker processes ready lanes, one at a time and each until it is
// empty, until close.
func (l *lanes) worker() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for {
		for len(l.ready) == 0 && !l.closed {
			l.waiting++
			l.work.Wait()
			l.waiting--
		}
		if len(l.ready) == 0 {
			l.workers--
			return
		}
		key := l.ready[0]
		l.ready[0] = ""
		l.ready = l.ready[1:]
		for {
			q := l.queues[key]
			if len(q) == 0 {
				delete(l.queues, key)
				l.busy--
				if l.busy == 0 {
					l.idle.Broadcast()
				}
				break
			}
			st := q[0]
			q[0] = nil
			l.queues[key] = q[1:]
			l.mu.Unlock()
			l.process(st)
			l.mu.Lock()
		}
	}
}

// wait blocks until every stanza added so far was processed.
func (l *lanes) wait() {
	l.mu.Lock()
	for l.busy > 0 {
		l.idle.Wait()
	}
	l.mu.Unlock()
}

// close stops the workers once the lanes are empty.
func (l *lanes) close() {
	l.mu.Lock()
	l.closed = true
	l.work.Broadcast()
	l.mu.Unlock()
}
