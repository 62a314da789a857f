package client

import (
	"context"
	"errors"
	"sync"

	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/xmltree"
)

// ErrStreamLost is returned (wrapped) to a request whose answer can no
// longer come: the stream it was sent on ended and could not be resumed.
// It matches ErrNotConnected too.
var ErrStreamLost = &streamLostError{}

type streamLostError struct{}

func (*streamLostError) Error() string {
	return "client: the stream ended before the answer came and could not be resumed"
}

func (*streamLostError) Is(target error) bool { return target == ErrNotConnected }

// iqState matches IQ answers to the requests waiting for them. The client
// tracks its own requests, rather than leaving it to mellium, so that
// every stanza the server sends passes the read loop (where stream
// management counts it) and so that a request survives a resumed stream.
type iqState struct {
	mu      sync.Mutex
	pending map[string]*iqWait
}

type iqWait struct {
	to string // the request's 'to', "" for our own account
	ch chan *xmltree.Element
}

func (s *iqState) init() { s.pending = map[string]*iqWait{} }

// answer hands an IQ result or error to its request. It reports whether
// one was waiting for it.
func (s *iqState) answer(c *Client, st *xmltree.Element) bool {
	id := st.AttrValue("id")
	s.mu.Lock()
	w, ok := s.pending[id]
	if ok && answeredBy(c, w.to, st.AttrValue("from")) {
		delete(s.pending, id)
	} else {
		ok = false
	}
	s.mu.Unlock()
	if ok {
		w.ch <- st
	}
	return ok
}

// answeredBy reports whether an answer from 'from' can answer a request
// sent to 'to' (RFC 6120 §8.1.2.1): the entity asked, or, for a request
// to our own account, the server on its behalf (no 'from', or our bare or
// full JID). Anyone else who learnt or guessed the id cannot answer.
func answeredBy(c *Client, to, from string) bool {
	self := c.JID()
	if to == "" {
		if from == "" {
			return true
		}
		f, err := jid.Parse(from)
		return err == nil && (f.Equal(self.Bare()) || f.Equal(self))
	}
	t, err := jid.Parse(to)
	if err != nil {
		return false
	}
	if from == "" {
		// mellium blanks a 'from' equal to our bare JID.
		return t.Equal(self.Bare()) || t.Equal(self)
	}
	f, err := jid.Parse(from)
	return err == nil && f.Equal(t)
}

// failAll wakes every waiting request with err.
func (s *iqState) failAll() {
	s.mu.Lock()
	ws := s.pending
	s.pending = map[string]*iqWait{}
	s.mu.Unlock()
	for _, w := range ws {
		close(w.ch)
	}
}

// IQ sends an IQ (type get or set) and returns the response's tree. An
// error response is returned as a *StanzaError. Under stream management
// a request survives a resumed stream; when the stream ends for good,
// waiting requests fail with ErrStreamLost.
func (c *Client) IQ(ctx context.Context, iq *xmltree.Element) (*xmltree.Element, error) {
	if _, err := c.currentLink(); err != nil {
		return nil, err
	}
	if iq.Name.Space == "" {
		iq.Name.Space = NSClient
	}
	id := iq.AttrValue("id")
	if id == "" {
		id = NewID()
		iq.SetAttr("id", id)
	}
	w := &iqWait{to: iq.AttrValue("to"), ch: make(chan *xmltree.Element, 1)}
	c.iqs.mu.Lock()
	if _, dup := c.iqs.pending[id]; dup {
		c.iqs.mu.Unlock()
		return nil, errors.New("client: an IQ with this id is already waiting for its answer")
	}
	c.iqs.pending[id] = w
	c.iqs.mu.Unlock()
	defer func() {
		c.iqs.mu.Lock()
		if c.iqs.pending[id] == w {
			delete(c.iqs.pending, id)
		}
		c.iqs.mu.Unlock()
	}()
	if err := c.writeStanza(ctx, iq, nil); err != nil {
		return nil, err
	}
	select {
	case resp, ok := <-w.ch:
		if !ok {
			return nil, ErrStreamLost
		}
		if resp.AttrValue("type") == "error" {
			return resp, parseStanzaError(resp)
		}
		return resp, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-c.closed:
		return nil, ErrClosed
	}
}
