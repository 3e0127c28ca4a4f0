//go:build !race

package envelope

import "testing"

// Built without -race only (the race detector allocates on its own); the
// allocs step of scripts/test.sh runs it.

// TestReplayWindowDoesNotAllocate: recording costs no allocation, in order,
// out of order, or across a jump that clears the bitmap.
func TestReplayWindowDoesNotAllocate(t *testing.T) {
	tests := []struct {
		name string
		next func(top uint64) uint64
	}{
		{name: "in order", next: func(top uint64) uint64 { return top + 1 }},
		{name: "two ahead, then the one skipped", next: func(top uint64) uint64 {
			return top + 2 // the skipped seq is recorded in the same run below
		}},
		{name: "jump past the window", next: func(top uint64) uint64 { return top + 3*DefaultWindow }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := NewReplayWindow(0)
			_ = w.record(1)
			allocs := testing.AllocsPerRun(1000, func() {
				top := w.Top()
				next := tt.next(top)
				if err := w.record(next); err != nil {
					t.Fatal(err)
				}
				if next > top+1 && next-top < DefaultWindow {
					if err := w.record(next - 1); err != nil {
						t.Fatal(err)
					}
				}
			})
			if allocs != 0 {
				t.Errorf("%v allocations per record, want 0", allocs)
			}
		})
	}
}
