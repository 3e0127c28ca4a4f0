package envelope

import (
	"errors"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
)

// Verdicts of the window, as kindOf names them.
const (
	accepted = "accepted"
	already  = "already accepted"
	below    = "below the window"
	badSeq   = "malformed"
)

// kindOf names the verdict err stands for; anything unexpected fails tb.
func kindOf(tb testing.TB, err error) string {
	tb.Helper()
	switch {
	case err == nil:
		return accepted
	case errors.Is(err, ErrMalformed):
		return badSeq
	case errors.Is(err, ErrReplay) && strings.Contains(err.Error(), "already accepted"):
		return already
	case errors.Is(err, ErrReplay) && strings.Contains(err.Error(), "is below the window"):
		return below
	}
	tb.Fatalf("unexpected error %v", err)
	return ""
}

// windowModel is the specification of ReplayWindow, as plainly as it can be
// written: remember every seq ever accepted (a map, unbounded) and refuse a
// seq seen before or one that is size or more below the highest seen.
type windowModel struct {
	size uint64
	seen map[uint64]bool
	max  uint64
}

func newWindowModel(size int) *windowModel {
	return &windowModel{size: uint64(size), seen: map[uint64]bool{}}
}

func (m *windowModel) record(seq uint64) string {
	switch {
	case seq == 0 || seq > MaxSeq:
		return badSeq
	case seq+m.size <= m.max:
		return below
	case m.seen[seq]:
		return already
	}
	m.seen[seq] = true
	m.max = max(m.max, seq)
	return accepted
}

func TestReplayWindow(t *testing.T) {
	type op struct {
		seq  uint64
		want string // a verdict
		text string // if set, the error's text must contain it
	}
	// seqs returns an op accepting each of seqs.
	seqs := func(from, to uint64) []op {
		var ops []op
		for s := from; s <= to; s++ {
			ops = append(ops, op{seq: s, want: accepted})
		}
		return ops
	}
	cat := func(parts ...[]op) []op {
		var ops []op
		for _, p := range parts {
			ops = append(ops, p...)
		}
		return ops
	}
	tests := []struct {
		name string
		size int // 0: DefaultWindow
		ops  []op
	}{
		{name: "first seq accepted", ops: []op{{1, accepted, ""}}},
		{name: "a session may start above 1", ops: []op{{42, accepted, ""}, {1, accepted, ""}}},
		{name: "replay inside the window refused", ops: []op{
			{1, accepted, ""}, {2, accepted, ""}, {3, accepted, ""},
			{2, already, "seq 2 already accepted"}, {3, already, ""}, {1, already, ""},
		}},
		{name: "replay of Top refused", ops: []op{{5, accepted, ""}, {5, already, "seq 5 already accepted"}}},
		{name: "below the window refused", ops: []op{
			{2053, accepted, ""},
			{3, below, "seq 3 is below the window [1030, 2053]"},
			{1029, below, "seq 1029 is below the window [1030, 2053]"},
			{1030, accepted, ""}, // the lowest seq of the window
			{1030, already, ""},
		}},
		{name: "below the window refused, small window", size: 64, ops: []op{
			{100, accepted, ""}, {36, below, "[37, 100]"}, {37, accepted, ""}, {99, accepted, ""}, {99, already, ""},
		}},
		{name: "after a large gap accepted, then old ones refused", ops: cat(seqs(1, 10), []op{
			{1_000_000, accepted, ""},
			{10, below, ""}, {11, below, ""}, {998_976, below, "[998977, 1000000]"},
			{998_977, accepted, ""}, {999_999, accepted, ""}, {1_000_000, already, ""},
			{1_000_001, accepted, ""},
		})},
		{name: "a jump of Size−1 keeps Top's bit, a jump of Size forgets it", size: 64, ops: cat(seqs(1, 10), []op{
			{73, accepted, ""}, // window [10, 73]: 10 still inside
			{10, already, ""}, {9, below, ""}, {11, accepted, ""}, {72, accepted, ""},
			{137, accepted, ""}, // window [74, 137]: everything before is below
			{73, below, ""}, {74, accepted, ""}, {136, accepted, ""}, {137, already, ""},
		})},
		{name: "a jump of many windows clears the bitmap", size: 64, ops: cat(seqs(1, 200), []op{
			{200 + 64*100 + 5, accepted, ""},
			{200 + 64*99 + 6, accepted, ""}, // lowest of the window, its word last used 100 windows ago
			{200 + 64*100 + 4, accepted, ""},
			{200 + 64*100 + 5, already, ""},
		})},
		{name: "reordering inside the window accepted exactly once each", ops: cat(
			[]op{{3, accepted, ""}, {1, accepted, ""}, {2, accepted, ""}, {6, accepted, ""}, {4, accepted, ""}, {5, accepted, ""}},
			[]op{{1, already, ""}, {2, already, ""}, {3, already, ""}, {4, already, ""}, {5, already, ""}, {6, already, ""}},
			[]op{{1030, accepted, ""}, {7, accepted, ""}, {7, already, ""}, {6, below, ""}},
		)},
		{name: "seq 0 and above MaxSeq are malformed", ops: []op{
			{0, badSeq, ""}, {MaxSeq + 1, badSeq, ""}, {1<<64 - 1, badSeq, ""}, {1, accepted, ""},
		}},
		{name: "up to MaxSeq", ops: []op{
			{MaxSeq - 1, accepted, ""}, {MaxSeq, accepted, ""}, {MaxSeq, already, ""},
			{MaxSeq - 1, already, ""}, {MaxSeq - 2, accepted, ""},
			{MaxSeq - 1024, below, ""}, {MaxSeq - 1023, accepted, ""},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := NewReplayWindow(tt.size)
			model := newWindowModel(w.Size())
			for i, o := range tt.ops {
				before := w.Top()
				checked := kindOf(t, w.check(o.seq))
				err := w.record(o.seq)
				got := kindOf(t, err)
				if got != o.want {
					t.Fatalf("op %d: record(%d) = %v, want %s", i, o.seq, err, o.want)
				}
				if checked != got {
					t.Fatalf("op %d: check(%d) said %s, record %s", i, o.seq, checked, got)
				}
				if o.text != "" && !strings.Contains(err.Error(), o.text) {
					t.Errorf("op %d: error %q does not say %q", i, err, o.text)
				}
				if m := model.record(o.seq); m != got {
					t.Fatalf("op %d: the model says %s, the window %s (the table is wrong)", i, m, got)
				}
				if want := max(before, o.seq); got == accepted && w.Top() != want || got != accepted && w.Top() != before {
					t.Fatalf("op %d: Top = %d after %s %d, was %d", i, w.Top(), got, o.seq, before)
				}
			}
		})
	}
}

func TestReplayWindowSize(t *testing.T) {
	tests := []struct {
		name string
		size int
		want int
	}{
		{name: "zero means DefaultWindow", size: 0, want: DefaultWindow},
		{name: "negative means DefaultWindow", size: -5, want: DefaultWindow},
		{name: "one rounds up to a word", size: 1, want: 64},
		{name: "a word", size: 64, want: 64},
		{name: "a word and a bit", size: 65, want: 128},
		{name: "default", size: 1024, want: 1024},
		{name: "large", size: 1 << 16, want: 1 << 16},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := NewReplayWindow(tt.size)
			if got := w.Size(); got != tt.want {
				t.Errorf("Size = %d, want %d", got, tt.want)
			}
			if w.Top() != 0 {
				t.Errorf("Top = %d, want 0", w.Top())
			}
		})
	}
	var zero ReplayWindow
	if zero.Size() != DefaultWindow || zero.Top() != 0 {
		t.Errorf("zero value: Size %d, Top %d", zero.Size(), zero.Top())
	}
}

// TestReplayWindowEdges checks that the window is exactly Size seqs wide
// wherever Top falls within its 64-bit word, on a fresh window and on one
// whose ring of words has wrapped around many times.
func TestReplayWindowEdges(t *testing.T) {
	for _, size := range []int{64, 128, 1024} {
		for top := uint64(size) + 1; top < uint64(size)+130; top++ {
			// Fresh: only Top accepted; the window's lowest seq opens.
			w := NewReplayWindow(size)
			_ = w.record(top)
			lo := top - uint64(size) + 1
			if err := w.record(lo - 1); kindOf(t, err) != below {
				t.Fatalf("size %d, Top %d: seq %d = %v, want below", size, top, lo-1, err)
			}
			if err := w.record(lo); err != nil {
				t.Fatalf("size %d, Top %d: lowest seq %d = %v", size, top, lo, err)
			}

			// Wrapped: every seq from 1 to 10 windows above top accepted in
			// order; then each of the window's seqs is already accepted.
			w = NewReplayWindow(size)
			end := top + 10*uint64(size)
			for s := uint64(1); s <= end; s++ {
				if err := w.record(s); err != nil {
					t.Fatalf("size %d: seq %d: %v", size, s, err)
				}
			}
			lo = end - uint64(size) + 1
			for s := lo; s <= end; s++ {
				if err := w.check(s); kindOf(t, err) != already {
					t.Fatalf("size %d, Top %d: seq %d = %v, want already accepted", size, end, s, err)
				}
			}
			if err := w.check(lo - 1); kindOf(t, err) != below {
				t.Fatalf("size %d, Top %d: seq %d = %v, want below", size, end, lo-1, err)
			}
		}
	}
}

// TestReplayWindowNoRateLimit: 100,000 seqs in a row, with nothing to
// expire them (a window knows no time), are all accepted, and the window
// neither grows nor allocates. v1's guard refused everything after 16,384.
func TestReplayWindowNoRateLimit(t *testing.T) {
	tests := []struct {
		name string
		w    *ReplayWindow
	}{
		{name: "NewReplayWindow", w: NewReplayWindow(0)},
		{name: "zero value", w: new(ReplayWindow)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := tt.w
			_ = w.record(1) // the zero value allocates its bitmap here, once
			words, bitmap := len(w.bits), &w.bits[0]
			const n = 100_000
			failures := 0
			for seq := uint64(2); seq <= n; seq++ {
				if err := w.record(seq); err != nil {
					failures++
				}
			}
			if failures != 0 {
				t.Errorf("%d of %d seqs refused", failures, n)
			}
			if w.Top() != n {
				t.Errorf("Top = %d, want %d", w.Top(), n)
			}
			if len(w.bits) != words || cap(w.bits) != words || &w.bits[0] != bitmap || words != DefaultWindow/64+1 {
				t.Errorf("the bitmap changed: %d words (cap %d), want the same %d", len(w.bits), cap(w.bits), words)
			}
			// And replay protection held throughout: the last Size are seen.
			for seq := uint64(n - DefaultWindow + 1); seq <= n; seq++ {
				if err := w.check(seq); kindOf(t, err) != already {
					t.Fatalf("seq %d = %v after the run", seq, err)
				}
			}
		})
	}
}

// TestReplayWindowModel runs random streams of seqs (in order, duplicated,
// reordered inside and across the window's edge, jumping small and large)
// through windows of several sizes and compares every verdict, and Top,
// with windowModel.
func TestReplayWindowModel(t *testing.T) {
	const opsPerSeed = 5000
	for _, size := range []int{64, 128, 1024} {
		for seed := uint64(1); seed <= 8; seed++ {
			r := rand.New(rand.NewPCG(seed, uint64(size)))
			w := NewReplayWindow(size)
			m := newWindowModel(size)
			if seed == 8 {
				// Start near the end, to run into MaxSeq: past it, every
				// seq ahead is malformed, and the window still works below.
				_, _ = w.record(MaxSeq-4000), m.record(MaxSeq-4000)
			}
			var offered []uint64
			counts := map[string]int{}
			for i := 0; i < opsPerSeed; i++ {
				top := m.max
				var seq uint64
				switch k := r.IntN(100); {
				case k < 35: // the next one
					seq = top + 1
				case k < 45: // a little ahead, leaving gaps
					seq = top + 1 + r.Uint64N(16)
				case k < 50: // a jump, up to a few windows
					seq = top + 1 + r.Uint64N(4*uint64(size))
				case k < 52: // a huge jump
					seq = top + 1 + r.Uint64N(1<<40)
				case k < 80: // anywhere in or just below the window
					back := r.Uint64N(uint64(size) + uint64(size)/4)
					seq = top - min(back, top)
				case k < 98: // something offered before, lately or long ago
					if n := len(offered); n > 0 {
						if r.IntN(2) == 0 {
							seq = offered[n-1-r.IntN(min(n, 32))]
						} else {
							seq = offered[r.IntN(n)]
						}
					}
				default: // out of range
					seq = []uint64{0, MaxSeq + 1 + r.Uint64N(1000)}[r.IntN(2)]
				}
				want := m.record(seq)
				got := kindOf(t, w.record(seq))
				if got != want {
					t.Fatalf("size %d, seed %d, op %d: seq %d (Top %d): window says %s, model %s", size, seed, i, seq, top, got, want)
				}
				if w.Top() != m.max {
					t.Fatalf("size %d, seed %d, op %d: Top %d, model %d", size, seed, i, w.Top(), m.max)
				}
				counts[got]++
				offered = append(offered, seq)
			}
			// A stream that never exercised a verdict would prove little.
			for _, k := range []string{accepted, already, below, badSeq} {
				if counts[k] < 20 {
					t.Errorf("size %d, seed %d: only %d %q verdicts: %v", size, seed, counts[k], k, counts)
				}
			}
		}
	}
}

// FuzzWindow drives a window with seqs derived from the input, relative to
// its current Top so that the fuzzer reaches the interesting region, and
// compares each verdict with windowModel.
//
//	go test -fuzz=FuzzWindow ./pkg/envelope
func FuzzWindow(f *testing.F) {
	f.Add([]byte{0})
	f.Add([]byte{0, 0, 0, 0, 0, 0, 1, 0, 1, 3})                  // in order, then replays
	f.Add([]byte{1, 0, 5, 1, 2, 1, 1, 1, 3, 0, 0})               // gaps filled out of order
	f.Add([]byte{0, 2, 255, 1, 64, 1, 63, 1, 65, 2, 1, 1, 200})  // jumps and the edge of a 64 window
	f.Add([]byte{3, 3, 255, 3, 255, 1, 0, 1, 255, 2, 128, 1, 9}) // huge jumps up to MaxSeq
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		size := []int{64, 128, 192, 1024}[data[0]%4]
		w, m := NewReplayWindow(size), newWindowModel(size)
		for i := 1; i+1 < len(data); i += 2 {
			kind, v := data[i]%4, uint64(data[i+1])
			top := m.max
			var seq uint64
			switch kind {
			case 0: // ahead by a little
				seq = top + 1 + v%8
			case 1: // behind: inside, at the edge of, or below the window
				seq = top - min(top, v*uint64(size)/128)
			case 2: // a jump
				seq = top + 1 + v*uint64(size)/16
			case 3: // a huge jump, up to and past MaxSeq
				seq = top + v<<(v%54)
			}
			if seq > MaxSeq && v%2 == 0 {
				seq = MaxSeq
			}
			want := m.record(seq)
			if got := kindOf(t, w.record(seq)); got != want {
				t.Fatalf("op %d: seq %d (Top %d, size %d): window says %s, model %s", i/2, seq, top, size, got, want)
			}
			if w.Top() != m.max {
				t.Fatalf("op %d: Top %d, model %d", i/2, w.Top(), m.max)
			}
		}
	})
}

// TestReplayWindowConcurrent races goroutines recording the same seqs, in
// different orders: each seq is accepted exactly once (run with -race).
func TestReplayWindowConcurrent(t *testing.T) {
	const workers, each = 8, 2000
	w := new(ReplayWindow) // the zero value, whose bitmap is made lazily under the race
	wins := make([]int, each+1)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		start = make(chan struct{})
	)
	for g := 0; g < workers; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for i := 0; i < each; i++ {
				// Each worker walks 1..each with its own small shuffle,
				// well inside the window.
				seq := uint64(i^(g%4)) + 1
				err := w.record(seq)
				if err == nil {
					mu.Lock()
					wins[seq]++
					mu.Unlock()
				} else if !errors.Is(err, ErrReplay) {
					t.Error(err)
				}
				_ = w.Top()
			}
		}()
	}
	close(start)
	wg.Wait()
	for seq := 1; seq <= each; seq++ {
		if wins[seq] != 1 {
			t.Errorf("seq %d accepted %d times, want 1", seq, wins[seq])
		}
	}
}
