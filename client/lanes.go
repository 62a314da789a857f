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
// arrived. A worker runs only while its lane has stanzas.
type lanes struct {
	process func(*xmltree.Element)

	mu     sync.Mutex
	idle   *sync.Cond // signalled when no lane is busy
	queues map[string][]*xmltree.Element
	busy   int
	sem    chan struct{}
}

func newLanes(process func(*xmltree.Element)) *lanes {
	l := &lanes{process: process, queues: map[string][]*xmltree.Element{}, sem: make(chan struct{}, maxLanes)}
	l.idle = sync.NewCond(&l.mu)
	return l
}

// laneKey is the sender a stanza belongs to: its bare 'from', or the
// account for a stanza without one.
func laneKey(st *xmltree.Element) string {
	from := st.AttrValue("from")
	if from == "" {
		return ""
	}
	if j, err := jid.Parse(from); err == nil {
		return j.Bare().String()
	}
	// An invalid address still gets a lane of its own (and a notice).
	return "invalid:" + from
}

// add queues st on its sender's lane and starts the lane's worker if it
// has none.
func (l *lanes) add(st *xmltree.Element) {
	key := laneKey(st)
	l.mu.Lock()
	q, running := l.queues[key]
	l.queues[key] = append(q, st)
	if !running {
		l.busy++
	}
	l.mu.Unlock()
	if !running {
		go l.run(key)
	}
}

// run processes one lane until it is empty.
func (l *lanes) run(key string) {
	l.sem <- struct{}{}
	defer func() { <-l.sem }()
	for {
		l.mu.Lock()
		q := l.queues[key]
		if len(q) == 0 {
			delete(l.queues, key)
			l.busy--
			if l.busy == 0 {
				l.idle.Broadcast()
			}
			l.mu.Unlock()
			return
		}
		st := q[0]
		q[0] = nil
		l.queues[key] = q[1:]
		l.mu.Unlock()
		l.process(st)
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
