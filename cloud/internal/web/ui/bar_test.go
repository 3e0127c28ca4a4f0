package ui

import (
	"fmt"
	"testing"
)

// TestBarLayout: segments sit side by side in percent of the total; empty
// segments are left out; a total below the segments' sum is raised to it.
func TestBarLayout(t *testing.T) {
	for _, c := range []struct {
		name  string
		total int
		segs  []Segment
		want  string
	}{
		{"parts", 4, []Segment{{N: 1, Class: "ok"}, {N: 0, Class: "bad"}, {N: 2, Class: "busy"}},
			"[{0.00% 25.00% seg ok } {25.00% 50.00% seg busy }]"},
		{"empty", 0, []Segment{{N: 0, Class: "ok"}}, "[]"},
		{"total too small", 1, []Segment{{N: 1, Class: "ok"}, {N: 1, Class: "bad"}}, "[{0.00% 50.00% seg ok } {50.00% 50.00% seg bad }]"},
		{"negative ignored", 2, []Segment{{N: -3, Class: "ok"}, {N: 2, Class: "bad"}}, "[{0.00% 100.00% seg bad }]"},
	} {
		if got := fmt.Sprint(layout(c.total, c.segs)); got != c.want {
			t.Errorf("%s: %s, want %s", c.name, got, c.want)
		}
	}
}
