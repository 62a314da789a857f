// Package faultproxy is a TCP proxy on 127.0.0.1 that injects network
// faults between a client and a real server, for Balcony's fault tests:
// it cuts connections now or after a given number of bytes (so in the
// middle of a stanza), stalls them without closing anything (what a NAT
// that forgot the mapping does), and records when the client closed its
// side (so a test can check that a client releases its connection at
// once instead of leaving it to the garbage collector).
//
// The proxy forwards bytes and knows nothing of XMPP or TLS: a client
// talks TLS with the real server through it, and the server's
// certificate is checked as usual.
package faultproxy

import (
	"errors"
	"io"
	"net"
	"sync"
	"time"
)

// Proxy forwards every connection it accepts to its target. It is safe
// for concurrent use.
type Proxy struct {
	target string
	ln     net.Listener

	mu      sync.Mutex
	conns   map[*Conn]struct{}
	all     []*Conn // every connection accepted, in order
	cutLeft int64   // bytes to forward before cutting everything; -1: none armed
	cutDone chan struct{}
	closed  bool
	refuse  bool
	wg      sync.WaitGroup
}

// New starts a proxy on a free port of 127.0.0.1 that forwards to target
// (host:port).
func New(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{target: target, ln: ln, conns: map[*Conn]struct{}{}, cutLeft: -1}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the address clients connect to.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Close stops accepting, closes every connection and waits for the
// proxy's goroutines.
func (p *Proxy) Close() error {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	err := p.ln.Close()
	p.Cut()
	p.wg.Wait()
	return err
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		cc, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		refuse := p.refuse
		p.mu.Unlock()
		if refuse {
			cc.Close()
			continue
		}
		sc, err := net.DialTimeout("tcp", p.target, 10*time.Second)
		if err != nil {
			cc.Close()
			continue
		}
		c := newConn(p, cc, sc)
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			cc.Close()
			sc.Close()
			return
		}
		p.conns[c] = struct{}{}
		p.all = append(p.all, c)
		p.mu.Unlock()
		c.start()
	}
}

// Conns returns every connection accepted so far, oldest first, closed
// ones included.
func (p *Proxy) Conns() []*Conn {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]*Conn(nil), p.all...)
}

// Live returns the connections that are still open.
func (p *Proxy) Live() []*Conn {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []*Conn
	for _, c := range p.all {
		if _, ok := p.conns[c]; ok {
			out = append(out, c)
		}
	}
	return out
}

// Cut closes every open connection on both sides at once and returns how
// many there were. The client and the server each see the connection
// end; neither sees anything it was sent after the cut.
func (p *Proxy) Cut() int {
	p.mu.Lock()
	cs := make([]*Conn, 0, len(p.conns))
	for c := range p.conns {
		cs = append(cs, c)
	}
	p.mu.Unlock()
	for _, c := range cs {
		c.cut()
	}
	return len(cs)
}

// CutAfter arms a cut: the next n bytes forwarded (in either direction,
// on any connection) get through, and then every open connection is cut,
// typically in the middle of a stanza. The returned channel is closed
// when the cut happened. A new call replaces an armed cut.
func (p *Proxy) CutAfter(n int64) <-chan struct{} {
	done := make(chan struct{})
	p.mu.Lock()
	if p.cutDone != nil {
		close(p.cutDone)
	}
	p.cutLeft, p.cutDone = n, done
	p.mu.Unlock()
	if n <= 0 {
		p.fire()
	}
	return done
}

// take reserves up to n bytes of the armed cut's budget: it returns how
// many may be forwarded and whether the cut fires after them.
func (p *Proxy) take(n int) (int, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cutLeft < 0 {
		return n, false
	}
	if int64(n) < p.cutLeft {
		p.cutLeft -= int64(n)
		return n, false
	}
	k := int(p.cutLeft)
	p.cutLeft = 0
	return k, true
}

// fire cuts everything for an armed cut whose budget is spent.
func (p *Proxy) fire() {
	p.mu.Lock()
	done := p.cutDone
	p.cutLeft, p.cutDone = -1, nil
	p.mu.Unlock()
	p.Cut()
	if done != nil {
		close(done)
	}
}

// Refuse makes the proxy close new connections at once (on), as an
// unreachable server would, or forward them again (off).
func (p *Proxy) Refuse(on bool) {
	p.mu.Lock()
	p.refuse = on
	p.mu.Unlock()
}

// Stall stops forwarding on every open connection without closing
// anything: bytes are still read from both sides (so each side's writes
// succeed, as on a path that silently drops packets) but delivered to
// neither. Connections made afterwards are not stalled. It returns the
// stalled connections; Release undoes it.
func (p *Proxy) Stall() []*Conn {
	cs := p.Live()
	for _, c := range cs {
		c.setStalled(true)
	}
	return cs
}

func (p *Proxy) forget(c *Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}

// Conn is one proxied connection.
type Conn struct {
	p      *Proxy
	client net.Conn
	server net.Conn

	mu       sync.Mutex
	cond     *sync.Cond
	stalled  bool
	cutDone  bool
	toServer pipe
	toClient pipe

	// ClientClosed is closed when the client closed its side (EOF or an
	// error reading from it) before the proxy cut the connection.
	ClientClosed chan struct{}
	clientAt     time.Time
	done         chan struct{}
	once         sync.Once
}

// pipe is one direction's bytes read but not yet written.
type pipe struct {
	buf []byte
	eof bool // the source ended: close the destination's write side once drained
	n   int64
}

func newConn(p *Proxy, client, server net.Conn) *Conn {
	c := &Conn{p: p, client: client, server: server, ClientClosed: make(chan struct{}), done: make(chan struct{})}
	c.cond = sync.NewCond(&c.mu)
	return c
}

func (c *Conn) start() {
	c.p.wg.Add(4)
	go c.read(c.client, &c.toServer, true)
	go c.read(c.server, &c.toClient, false)
	go c.write(c.server, &c.toServer)
	go c.write(c.client, &c.toClient)
}

// read copies from src into the pipe until src ends.
func (c *Conn) read(src net.Conn, pp *pipe, fromClient bool) {
	defer c.p.wg.Done()
	b := make([]byte, 32<<10)
	for {
		n, err := src.Read(b)
		if n > 0 {
			c.mu.Lock()
			pp.buf = append(pp.buf, b[:n]...)
			c.cond.Broadcast()
			c.mu.Unlock()
		}
		if err != nil {
			c.mu.Lock()
			pp.eof = true
			cut := c.cutDone
			if fromClient && !cut && c.clientAt.IsZero() {
				c.clientAt = time.Now()
				close(c.ClientClosed)
			}
			c.cond.Broadcast()
			c.mu.Unlock()
			return
		}
	}
}

// write copies the pipe to dst while the connection is not stalled.
func (c *Conn) write(dst net.Conn, pp *pipe) {
	defer c.p.wg.Done()
	for {
		c.mu.Lock()
		for !c.cutDone && (c.stalled || len(pp.buf) == 0) && !(pp.eof && len(pp.buf) == 0 && !c.stalled) {
			c.cond.Wait()
		}
		if c.cutDone {
			c.mu.Unlock()
			return
		}
		if len(pp.buf) == 0 && pp.eof {
			c.mu.Unlock()
			// Pass the half-close on: the other side may still talk.
			if tc, ok := dst.(*net.TCPConn); ok {
				tc.CloseWrite()
			}
			c.finishIfDone()
			return
		}
		chunk := append([]byte(nil), pp.buf...)
		c.mu.Unlock()
		k, fire := c.p.take(len(chunk))
		if k > 0 {
			if _, err := dst.Write(chunk[:k]); err != nil {
				c.cut()
				return
			}
		}
		c.mu.Lock()
		pp.buf = pp.buf[k:]
		pp.n += int64(k)
		c.mu.Unlock()
		if fire {
			c.p.fire()
			return
		}
	}
}

// finishIfDone forgets the connection once both directions ended.
func (c *Conn) finishIfDone() {
	c.mu.Lock()
	both := c.toServer.eof && c.toClient.eof && len(c.toServer.buf) == 0 && len(c.toClient.buf) == 0
	c.mu.Unlock()
	if both {
		c.cut()
	}
}

func (c *Conn) setStalled(on bool) {
	c.mu.Lock()
	c.stalled = on
	c.cond.Broadcast()
	c.mu.Unlock()
}

// Release resumes forwarding on a stalled connection (what was held is
// delivered, as after a long delay).
func (c *Conn) Release() { c.setStalled(false) }

// cut closes both sides.
func (c *Conn) cut() {
	c.once.Do(func() {
		c.mu.Lock()
		c.cutDone = true
		c.cond.Broadcast()
		c.mu.Unlock()
		c.client.Close()
		c.server.Close()
		c.p.forget(c)
		close(c.done)
	})
}

// Done is closed when the proxy closed the connection (a cut, or both
// sides ended).
func (c *Conn) Done() <-chan struct{} { return c.done }

// ClientClosedAt is when the client closed its side, zero if it has not
// (or the proxy cut the connection first).
func (c *Conn) ClientClosedAt() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.clientAt
}

// Forwarded returns the bytes forwarded so far to the server and to the
// client.
func (c *Conn) Forwarded() (toServer, toClient int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.toServer.n, c.toClient.n
}

// WaitClientClosed waits up to d for the client to close its side.
func (c *Conn) WaitClientClosed(d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-c.ClientClosed:
		return nil
	case <-t.C:
		return errors.New("faultproxy: the client did not close its connection")
	}
}

var _ io.Closer = (*Proxy)(nil)
