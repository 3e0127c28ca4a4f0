package bridge

import (
	"math/rand/v2"
	"time"
)

// Backoff computes reconnect delays with "full jitter": the delay before
// attempt n is uniform in [Min, min(Cap, Base·2ⁿ)]. Spreading every delay
// over the whole window, rather than adding a little noise to a fixed
// schedule, is what keeps ten thousand devices that lost the cloud at the
// same moment from coming back in lockstep.
type Backoff struct {
	// Base is the window of the first retry. Defaults to 1s.
	Base time.Duration
	// Cap bounds the window. Defaults to 60s.
	Cap time.Duration
	// Min is the smallest delay. Defaults to 0.
	Min time.Duration
	// Rand returns a float in [0, 1). nil means math/rand/v2.
	Rand func() float64
}

func (b Backoff) withDefaults() Backoff {
	if b.Base <= 0 {
		b.Base = time.Second
	}
	if b.Cap <= 0 {
		b.Cap = 60 * time.Second
	}
	if b.Cap < b.Base {
		b.Cap = b.Base
	}
	if b.Min > b.Cap {
		b.Min = b.Cap
	}
	if b.Rand == nil {
		b.Rand = rand.Float64
	}
	return b
}

// Window returns the upper bound of the delay before attempt n (0-based).
func (b Backoff) Window(n int) time.Duration {
	b = b.withDefaults()
	w := b.Base
	for i := 0; i < n && w < b.Cap; i++ {
		w *= 2
	}
	return min(w, b.Cap)
}

// Delay returns a random delay for attempt n (0-based).
func (b Backoff) Delay(n int) time.Duration {
	b = b.withDefaults()
	w := b.Window(n)
	if w <= b.Min {
		return b.Min
	}
	return b.Min + time.Duration(b.Rand()*float64(w-b.Min))
}
