package envelope

import (
	"errors"
	"sync"
	"testing"
	"time"
)

func TestReplayGuard(t *testing.T) {
	const sec = int64(1000)
	tests := []struct {
		name string
		run  func(t *testing.T, g *ReplayGuard)
	}{
		{name: "remembered until ts+window, then forgotten", run: func(t *testing.T, g *ReplayGuard) {
			a := nonceN(1)
			if err := g.record(&a, 0, sec, 0); err != nil {
				t.Fatal(err)
			}
			if !g.has(&a, sec) {
				t.Error("forgotten at ts+window")
			}
			if err := g.record(&a, 0, sec, sec); !errors.Is(err, ErrReplay) {
				t.Errorf("record at ts+window = %v, want ErrReplay", err)
			}
			if g.has(&a, sec+1) {
				t.Error("still remembered after ts+window")
			}
			b := nonceN(2)
			if err := g.record(&b, sec, sec, sec+1); err != nil {
				t.Fatal(err)
			}
			if g.Len() != 1 {
				t.Errorf("Len = %d after purge, want 1", g.Len())
			}
		}},
		{name: "full refuses rather than forget", run: func(t *testing.T, g *ReplayGuard) {
			g.max = 2
			for i := 0; i < 2; i++ {
				n := nonceN(i)
				if err := g.record(&n, int64(i), sec, 0); err != nil {
					t.Fatal(err)
				}
			}
			c := nonceN(9)
			if err := g.record(&c, 0, sec, 500); !errors.Is(err, ErrGuardFull) {
				t.Fatalf("record when full = %v, want ErrGuardFull", err)
			}
			if g.Len() != 2 {
				t.Errorf("Len = %d", g.Len())
			}
			// The first nonce expires at 1000: at 1001 there is room.
			if err := g.record(&c, 1001, sec, 1001); err != nil {
				t.Fatalf("record after expiry = %v", err)
			}
			if g.Len() != 2 {
				t.Errorf("Len = %d, want 2", g.Len())
			}
		}},
		{name: "replay reported before full", run: func(t *testing.T, g *ReplayGuard) {
			g.max = 1
			a := nonceN(1)
			_ = g.record(&a, 0, sec, 0)
			if err := g.record(&a, 0, sec, 0); !errors.Is(err, ErrReplay) {
				t.Errorf("= %v, want ErrReplay", err)
			}
		}},
		{name: "skew longer than the window wins", run: func(t *testing.T, g *ReplayGuard) {
			g.window = time.Second
			a := nonceN(1)
			_ = g.record(&a, 0, 5*sec, 0)
			if !g.has(&a, 5*sec) {
				t.Error("forgotten before ts+skew: a replay window")
			}
		}},
		{name: "purges in expiry order whatever the insertion order", run: func(t *testing.T, g *ReplayGuard) {
			ts := []int64{50, 10, 40, 20, 30, 0, 60}
			for i, x := range ts {
				n := nonceN(i)
				_ = g.record(&n, x, sec, 0)
			}
			for now := int64(0); now <= 70; now += 10 {
				g.mu.Lock()
				g.purge(sec + now + 1)
				n := len(g.seen)
				g.mu.Unlock()
				want := 0
				for _, x := range ts {
					if x+sec >= sec+now+1 {
						want++
					}
				}
				if n != want {
					t.Fatalf("at %d: %d left, want %d", now, n, want)
				}
			}
		}},
		{name: "memory returns after a burst", run: func(t *testing.T, g *ReplayGuard) {
			for i := 0; i < 5000; i++ {
				n := nonceN(i)
				_ = g.record(&n, 0, sec, 0)
			}
			last := nonceN(99999)
			_ = g.record(&last, 10*sec, sec, 10*sec)
			if g.Len() != 1 || cap(g.byExp) > 64 {
				t.Errorf("Len %d, heap cap %d after the burst expired", g.Len(), cap(g.byExp))
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.run(t, NewReplayGuard(time.Second, 100000))
		})
	}
}

func TestReplayGuardZeroValueAndDefaults(t *testing.T) {
	var g ReplayGuard
	a := nonceN(1)
	if err := g.record(&a, 0, 0, 0); err != nil {
		t.Fatal(err)
	}
	if !g.has(&a, DefaultSkew.Milliseconds()) {
		t.Error("zero value does not remember for DefaultSkew")
	}
	w, m := NewReplayGuard(-1, -1).limits()
	if w != DefaultSkew || m != DefaultGuardMax {
		t.Errorf("defaults = %v, %d", w, m)
	}
}

func TestReplayGuardConcurrent(t *testing.T) {
	g := NewReplayGuard(0, 0)
	const workers, each = 8, 500
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				n := nonceN(i) // every worker races for the same nonces
				if err := g.record(&n, 0, 0, 0); err == nil {
					mu.Lock()
					wins++
					mu.Unlock()
				} else if !errors.Is(err, ErrReplay) {
					t.Error(err)
				}
				_ = g.Len()
			}
		}()
	}
	wg.Wait()
	if wins != each || g.Len() != each {
		t.Errorf("wins %d, Len %d, want %d", wins, g.Len(), each)
	}
}
