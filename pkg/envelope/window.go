package envelope

import (
	"fmt"
	"sync"
)

// ReplayWindow remembers which seqs of one session have been accepted, so
// that each message opens at most once. Create one per session (per
// websocket, for the one direction its Opener reads): the session check
// already makes messages of other sessions worthless, and a new session
// starts again at seq 1.
//
// It is the sliding window of IPsec ESP (RFC 4303 §3.4.3) and DTLS (RFC 6347
// §4.1.2.6). Top is the highest seq accepted so far, and a bitmap records
// which of the Size seqs [Top−Size+1, Top] have been accepted. A seq above
// Top is accepted and slides the window up (by any distance: the seqs it
// skips were never accepted, so their bits start clear). A seq inside the
// window is accepted if its bit is clear. A seq below the window is refused:
// it may have been accepted before and forgotten, and the receiver cannot
// tell a replay from a message delayed that long.
//
// Memory is fixed, Size/8 bytes plus one word, however many messages the
// session carries and however fast: there is no rate limit. The window does
// not require messages in order, only that none arrives Size or more seqs
// behind the highest one already accepted.
//
// A ReplayWindow is safe for concurrent use. Its zero value is an empty
// window of DefaultWindow seqs; it must not be copied after first use.
type ReplayWindow struct {
	size int // in bits, a multiple of 64; 0 (the zero value) means DefaultWindow

	mu  sync.Mutex // guards the following
	top uint64     // the highest seq accepted; 0 before the first
	// bits is a ring of size/64+1 words: the bit of seq s is bit s%64 of
	// word (s/64)%len(bits). The word beyond size/64 lets the window hold
	// Size whole seqs below Top wherever Top falls within its word (RFC 6479
	// does the same). Invariant: every bit of a seq above top is clear.
	// nil until the first record in the zero value.
	bits []uint64
}

// NewReplayWindow returns an empty window of size seqs, rounded up to a
// multiple of 64; zero or less means DefaultWindow. A window costs size/8
// bytes.
func NewReplayWindow(size int) *ReplayWindow {
	if size <= 0 {
		size = DefaultWindow
	}
	words := (size-1)/64 + 1
	return &ReplayWindow{size: words * 64, bits: make([]uint64, words+1)}
}

// Top returns the highest seq accepted so far, 0 if none.
func (w *ReplayWindow) Top() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.top
}

// Size returns the number of seqs the window covers below and including Top.
func (w *ReplayWindow) Size() int {
	if w.size == 0 {
		return DefaultWindow
	}
	return w.size
}

// check reports, with the error record would return, whether seq would be
// refused now. Open asks before the signature check, to spare the work for a
// replay; the answer is only advisory, record decides.
func (w *ReplayWindow) check(seq uint64) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.verdict(seq)
}

// record accepts seq: it checks seq again and marks it accepted under one
// lock, so of two concurrent opens of one message exactly one succeeds and
// the other gets ErrReplay. It costs at most len(w.bits) word stores and
// allocates nothing (but the bitmap, once, in the zero value).
func (w *ReplayWindow) record(seq uint64) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.verdict(seq); err != nil {
		return err
	}
	if w.bits == nil {
		w.bits = make([]uint64, w.Size()/64+1)
	}
	n := uint64(len(w.bits))
	if seq > w.top {
		// Clear the words that Top enters on its way up to seq: the seqs
		// they held are below the new window. The bits above top in its
		// own word are clear already (the invariant).
		from, to := w.top/64, seq/64
		if to-from >= n {
			clear(w.bits)
		} else {
			for i := from + 1; i <= to; i++ {
				w.bits[i%n] = 0
			}
		}
		w.top = seq
	}
	w.bits[(seq/64)%n] |= 1 << (seq % 64)
	return nil
}

// verdict is check with w.mu held.
func (w *ReplayWindow) verdict(seq uint64) error {
	if seq == 0 || seq > MaxSeq {
		return fmt.Errorf("%w: seq %d is outside 1 to %d", ErrMalformed, seq, MaxSeq)
	}
	if seq > w.top {
		return nil
	}
	size := uint64(w.Size())
	if seq+size <= w.top {
		return fmt.Errorf("%w: seq %d is below the window [%d, %d]", ErrReplay, seq, w.top-size+1, w.top)
	}
	// w.top > 0 here, so the bitmap exists.
	if w.bits[(seq/64)%uint64(len(w.bits))]&(1<<(seq%64)) != 0 {
		return fmt.Errorf("%w: seq %d already accepted", ErrReplay, seq)
	}
	return nil
}
