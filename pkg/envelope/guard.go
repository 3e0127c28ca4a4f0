package envelope

import (
	"fmt"
	"sync"
	"time"
)

// ReplayGuard remembers the nonces accepted in one session, so that each
// message opens at most once. Create one per session (per websocket): the
// session check already makes messages of other sessions worthless, so the
// guard never has to remember anything beyond its session's lifetime.
//
// Memory is bounded twice: a nonce is forgotten once its message's timestamp
// plus the window has passed (the skew check rejects the message from then
// on anyway), and the guard never holds more than its capacity. Expired
// nonces are purged lazily on each insertion, cheapest first (a min-heap by
// expiry), so there is no goroutine to own. A full guard of unexpired nonces
// refuses new messages with ErrGuardFull rather than forget a nonce that
// could still be replayed.
//
// A ReplayGuard is safe for concurrent use; its zero value uses DefaultSkew
// and DefaultGuardMax.
type ReplayGuard struct {
	window time.Duration
	max    int

	mu    sync.Mutex // guards the following
	seen  map[[NonceSize]byte]int64
	byExp []guardEntry // min-heap on exp; the same entries as seen
}

// guardEntry is one remembered nonce and the Unix ms after which it is
// forgotten.
type guardEntry struct {
	exp   int64
	nonce [NonceSize]byte
}

// NewReplayGuard returns a guard that remembers each nonce until its
// message's timestamp plus window, and at most max nonces. A window of zero
// or less means DefaultSkew, a max of zero or less DefaultGuardMax. The
// window should be at least the Opener's Skew; Open remembers nonces for the
// longer of the two, so a shorter window is never a hole.
func NewReplayGuard(window time.Duration, max int) *ReplayGuard {
	return &ReplayGuard{window: window, max: max}
}

// Len returns the number of nonces remembered, including expired ones that
// have not been purged yet.
func (g *ReplayGuard) Len() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.seen)
}

func (g *ReplayGuard) limits() (window time.Duration, max int) {
	window, max = g.window, g.max
	if window <= 0 {
		window = DefaultSkew
	}
	if max <= 0 {
		max = DefaultGuardMax
	}
	return window, max
}

// has reports whether nonce is remembered and not expired at now (Unix ms).
// Open asks before the signature check, to spare the work for a replay; the
// answer is only advisory, record decides.
func (g *ReplayGuard) has(nonce *[NonceSize]byte, now int64) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	exp, ok := g.seen[*nonce]
	return ok && exp >= now
}

// record remembers nonce, from a message stamped ts, until ts plus the longer
// of the window and skew; all times in Unix ms. Check and insertion happen
// under one lock, so of two concurrent opens of one message exactly one
// succeeds and the other gets ErrReplay.
func (g *ReplayGuard) record(nonce *[NonceSize]byte, ts, skew, now int64) error {
	window, max := g.limits()
	life := window.Milliseconds()
	if skew > life {
		life = skew
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.purge(now)
	if _, ok := g.seen[*nonce]; ok {
		return fmt.Errorf("%w: nonce %s", ErrReplay, b64.EncodeToString(nonce[:]))
	}
	if len(g.seen) >= max {
		return fmt.Errorf("%w: %d unexpired nonces", ErrGuardFull, len(g.seen))
	}
	if g.seen == nil {
		g.seen = make(map[[NonceSize]byte]int64)
	}
	e := guardEntry{exp: ts + life, nonce: *nonce}
	g.seen[e.nonce] = e.exp
	g.push(e)
	return nil
}

// purge forgets every nonce that expired before now. g.mu must be held.
func (g *ReplayGuard) purge(now int64) {
	for len(g.byExp) > 0 && g.byExp[0].exp < now {
		delete(g.seen, g.byExp[0].nonce)
		g.pop()
	}
}

// push and pop keep byExp a binary min-heap on exp. (container/heap would
// box every entry in an interface.)
func (g *ReplayGuard) push(e guardEntry) {
	h := append(g.byExp, e)
	for i := len(h) - 1; i > 0; {
		parent := (i - 1) / 2
		if h[parent].exp <= h[i].exp {
			break
		}
		h[parent], h[i] = h[i], h[parent]
		i = parent
	}
	g.byExp = h
}

func (g *ReplayGuard) pop() {
	h := g.byExp
	n := len(h) - 1
	h[0] = h[n]
	h = h[:n]
	for i := 0; ; {
		l, small := 2*i+1, i
		if l < n && h[l].exp < h[small].exp {
			small = l
		}
		if r := l + 1; r < n && h[r].exp < h[small].exp {
			small = r
		}
		if small == i {
			break
		}
		h[i], h[small] = h[small], h[i]
		i = small
	}
	g.byExp = h
	if cap(h) > 64 && len(h) < cap(h)/4 {
		// Give memory back after a burst: a slice's array and a map's
		// buckets never shrink by themselves.
		g.byExp = append([]guardEntry(nil), h...)
		g.seen = make(map[[NonceSize]byte]int64, len(h))
		for _, e := range h {
			g.seen[e.nonce] = e.exp
		}
	}
}
