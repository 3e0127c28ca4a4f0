package e2e

import (
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"
)

// Proxy is a loopback TCP proxy a test controls, to put a faulty network
// between two real processes: Cut refuses the link (every connection is
// closed at once, and new ones are accepted and closed), Restore lets it
// through again, SetLatency delays every chunk each way, SetDrop resets a
// connection at random while it carries data (a lossy link the peers see
// break). It records when each connection was accepted, so that a test
// can check a client's reconnect schedule.
type Proxy struct {
	Addr   string // host:port clients dial
	target string

	ln   net.Listener
	done chan struct{}
	wg   sync.WaitGroup

	mu      sync.Mutex // guards the following
	cut     bool
	latency time.Duration
	drop    float64 // per forwarded chunk
	conns   map[net.Conn]struct{}
	accepts []Accept
	drops   int
}

// Accept is one connection the proxy accepted.
type Accept struct {
	At  time.Time
	Cut bool // the link was cut: it was closed at once
}

// StartProxy listens on 127.0.0.1 and forwards every connection to target.
// Cleanup closes it and every connection.
func StartProxy(tb testing.TB, target string) *Proxy {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	p := &Proxy{Addr: ln.Addr().String(), target: target, ln: ln, done: make(chan struct{}), conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.acceptLoop()
	tb.Cleanup(p.Close)
	return p
}

// Close stops the proxy and waits for its goroutines. Safe to call twice.
func (p *Proxy) Close() {
	select {
	case <-p.done:
		return
	default:
	}
	close(p.done)
	p.ln.Close()
	p.closeAll()
	p.wg.Wait()
}

// Cut closes every connection and refuses new ones until Restore.
func (p *Proxy) Cut() {
	p.mu.Lock()
	p.cut = true
	p.mu.Unlock()
	p.closeAll()
}

// Restore lets connections through again.
func (p *Proxy) Restore() {
	p.mu.Lock()
	p.cut = false
	p.mu.Unlock()
}

// SetLatency delays every chunk forwarded, each way, by d.
func (p *Proxy) SetLatency(d time.Duration) {
	p.mu.Lock()
	p.latency = d
	p.mu.Unlock()
}

// SetDrop makes every forwarded chunk reset its connection with
// probability rate (0 turns it off).
func (p *Proxy) SetDrop(rate float64) {
	p.mu.Lock()
	p.drop = rate
	p.mu.Unlock()
}

// Accepts returns the connections accepted so far.
func (p *Proxy) Accepts() []Accept {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Accept(nil), p.accepts...)
}

// Drops returns how many connections SetDrop's loss has reset.
func (p *Proxy) Drops() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.drops
}

func (p *Proxy) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
	}
}

func (p *Proxy) acceptLoop() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return // closed
		}
		p.mu.Lock()
		cut := p.cut
		p.accepts = append(p.accepts, Accept{At: time.Now(), Cut: cut})
		p.mu.Unlock()
		if cut {
			c.Close()
			continue
		}
		p.wg.Add(1)
		go p.serve(c)
	}
}

// serve forwards one connection both ways until either side closes, the
// link is cut or a drop resets it.
func (p *Proxy) serve(c net.Conn) {
	defer p.wg.Done()
	up, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		c.Close()
		return
	}
	if !p.track(c, up) {
		c.Close()
		up.Close()
		return
	}
	defer p.untrack(c, up)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); p.pipe(up, c) }()
	go func() { defer wg.Done(); p.pipe(c, up) }()
	wg.Wait()
}

// track registers both ends, unless the link was cut (or the proxy
// closed) in the meantime.
func (p *Proxy) track(a, b net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.done:
		return false
	default:
	}
	if p.cut {
		return false
	}
	p.conns[a], p.conns[b] = struct{}{}, struct{}{}
	return true
}

func (p *Proxy) untrack(a, b net.Conn) {
	p.mu.Lock()
	delete(p.conns, a)
	delete(p.conns, b)
	p.mu.Unlock()
	a.Close()
	b.Close()
}

// pipe copies src to dst chunk by chunk, applying latency and drops; it
// closes both when either fails.
func (p *Proxy) pipe(dst, src net.Conn) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			lat, drop := p.latency, p.drop
			dropped := drop > 0 && rand.Float64() < drop
			if dropped {
				p.drops++
			}
			p.mu.Unlock()
			if dropped {
				if tc, ok := dst.(*net.TCPConn); ok {
					tc.SetLinger(0) // a reset, as a broken link gives
				}
				return
			}
			if lat > 0 {
				select {
				case <-time.After(lat):
				case <-p.done:
					return
				}
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return // EOF or a closed end: the other direction closes too
		}
	}
}
