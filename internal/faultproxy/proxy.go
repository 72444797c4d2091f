// Package faultproxy is a TCP proxy for fault tests: it sits between warren
// and the broker and can drop every connection (FIN or RST), refuse new ones
// (a broker that is down) or stop forwarding bytes while keeping the
// connections open (a black hole). Tests break their own proxy, never the
// broker other packages share.
//
// All methods are safe for concurrent use. Close stops the listener, drops
// every connection and waits for the proxy's goroutines.
package faultproxy

import (
	"net"
	"sync"
	"sync/atomic"
)

// Proxy forwards TCP connections from Addr to a target.
type Proxy struct {
	lis    net.Listener
	target string

	refuse    atomic.Bool
	blackhole atomic.Bool

	mu    sync.Mutex
	conns map[net.Conn]struct{}

	wg     sync.WaitGroup
	closed atomic.Bool
}

// Start listens on a free loopback port and forwards to target.
func Start(target string) (*Proxy, error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{lis: lis, target: target, conns: map[net.Conn]struct{}{}}
	p.wg.Go(p.accept)
	return p, nil
}

// Addr is the proxy's listening address, host:port.
func (p *Proxy) Addr() string { return p.lis.Addr().String() }

// Refuse makes the proxy close new connections at once (on) or forward them
// again (off): the broker looks down.
func (p *Proxy) Refuse(on bool) { p.refuse.Store(on) }

// Blackhole makes the proxy swallow every byte in both directions (on)
// without closing anything, or forward again (off).
func (p *Proxy) Blackhole(on bool) { p.blackhole.Store(on) }

// Drop closes every open connection with a FIN, as a broker restart does.
// It returns how many client connections it dropped.
func (p *Proxy) Drop() int { return p.drop(false) }

// Reset closes every open connection with an RST.
func (p *Proxy) Reset() int { return p.drop(true) }

func (p *Proxy) drop(rst bool) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for c := range p.conns {
		if tc, ok := c.(*net.TCPConn); ok && rst {
			_ = tc.SetLinger(0)
		}
		_ = c.Close()
		n++
	}
	clear(p.conns)
	return n / 2 // each proxied connection is two sockets
}

// Close stops the proxy.
func (p *Proxy) Close() {
	if p.closed.Swap(true) {
		return
	}
	_ = p.lis.Close()
	p.drop(false)
	p.wg.Wait()
}

func (p *Proxy) accept() {
	for {
		c, err := p.lis.Accept()
		if err != nil {
			return
		}
		if p.refuse.Load() {
			_ = c.Close()
			continue
		}
		p.wg.Go(func() { p.serve(c) })
	}
}

func (p *Proxy) track(cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed.Load() {
		return false
	}
	for _, c := range cs {
		p.conns[c] = struct{}{}
	}
	return true
}

func (p *Proxy) serve(client net.Conn) {
	upstream, err := net.Dial("tcp", p.target)
	if err != nil {
		_ = client.Close()
		return
	}
	if !p.track(client, upstream) {
		_ = client.Close()
		_ = upstream.Close()
		return
	}
	var wg sync.WaitGroup
	wg.Go(func() { p.pipe(upstream, client) })
	wg.Go(func() { p.pipe(client, upstream) })
	wg.Wait()
	p.mu.Lock()
	delete(p.conns, client)
	delete(p.conns, upstream)
	p.mu.Unlock()
}

// pipe copies src to dst until either closes, dropping bytes while the
// proxy is a black hole; then it closes both.
func (p *Proxy) pipe(dst, src net.Conn) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !p.blackhole.Load() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return // EOF, a reset, or the proxy closed it
		}
	}
}
