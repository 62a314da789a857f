package faultproxy

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"
)

// echoServer accepts connections and echoes what it reads; closeAfter > 0
// makes it close each connection after that many bytes.
func echoServer(t *testing.T, closeAfter int) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				if closeAfter > 0 {
					io.CopyN(c, c, int64(closeAfter))
					return
				}
				io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr().String()
}

func start(t *testing.T, target string) *Proxy {
	t.Helper()
	p, err := New(target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func dial(t *testing.T, p *Proxy) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return c
}

func TestForwards(t *testing.T) {
	p := start(t, echoServer(t, 0))
	c := dial(t, p)
	msg := bytes.Repeat([]byte("stanza "), 10000)
	go c.Write(msg)
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("echo through the proxy: %v", err)
	}
	if len(p.Conns()) != 1 || len(p.Live()) != 1 {
		t.Fatalf("%d connections, %d live", len(p.Conns()), len(p.Live()))
	}
}

// CutAfter lets exactly n bytes through, then closes both sides.
func TestCutAfterMidStream(t *testing.T) {
	p := start(t, echoServer(t, 0))
	c := dial(t, p)
	// 100 bytes reach the server; its echo counts against the budget too.
	done := p.CutAfter(150)
	if _, err := c.Write(bytes.Repeat([]byte("x"), 100)); err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(c)
	<-done
	if len(got) != 50 {
		t.Fatalf("read %d bytes back, want the 50 left of the budget", len(got))
	}
	if len(p.Live()) != 0 {
		t.Fatal("connection still live after the cut")
	}
	// The next connection works.
	c2 := dial(t, p)
	c2.Write([]byte("again"))
	b := make([]byte, 5)
	if _, err := io.ReadFull(c2, b); err != nil || string(b) != "again" {
		t.Fatalf("after the cut: %q %v", b, err)
	}
}

// A stalled connection delivers nothing either way, still notices the
// client closing, and delivers what it held once released.
func TestStall(t *testing.T) {
	p := start(t, echoServer(t, 0))
	c := dial(t, p)
	c.Write([]byte("before"))
	b := make([]byte, 6)
	if _, err := io.ReadFull(c, b); err != nil {
		t.Fatal(err)
	}
	stalled := p.Stall()
	if len(stalled) != 1 {
		t.Fatalf("stalled %d connections", len(stalled))
	}
	c.Write([]byte("held"))
	c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if n, err := c.Read(b); n != 0 || err == nil {
		t.Fatalf("read %d bytes through a stalled connection", n)
	}
	stalled[0].Release()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(c, b[:4]); err != nil || string(b[:4]) != "held" {
		t.Fatalf("after release: %q %v", b[:4], err)
	}
	// Stalled again, the client's close is seen.
	p.Stall()
	c.Close()
	if err := stalled[0].WaitClientClosed(5 * time.Second); err != nil {
		t.Fatal(err)
	}
}

// When the server closes, the client's side is half-closed, and the proxy
// tells when the client closes its own.
func TestClientClosedAfterServerClose(t *testing.T) {
	p := start(t, echoServer(t, 3))
	c := dial(t, p)
	c.Write([]byte("abc"))
	got, err := io.ReadAll(c) // EOF: the server closed
	if err != nil || string(got) != "abc" {
		t.Fatalf("%q %v", got, err)
	}
	pc := p.Conns()[0]
	select {
	case <-pc.ClientClosed:
		t.Fatal("client reported closed before it closed")
	case <-time.After(100 * time.Millisecond):
	}
	c.Close()
	if err := pc.WaitClientClosed(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if pc.ClientClosedAt().IsZero() {
		t.Fatal("no time recorded")
	}
}

func TestRefuse(t *testing.T) {
	p := start(t, echoServer(t, 0))
	p.Refuse(true)
	c := dial(t, p)
	if n, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatalf("read %d bytes from a refused connection", n)
	}
	p.Refuse(false)
	c2 := dial(t, p)
	c2.Write([]byte("ok"))
	b := make([]byte, 2)
	if _, err := io.ReadFull(c2, b); err != nil || string(b) != "ok" {
		t.Fatalf("after refusing: %q %v", b, err)
	}
}
