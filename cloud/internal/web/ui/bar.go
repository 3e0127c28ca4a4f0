package ui

import (
	"strconv"
)

// Segment is one part of a Bar: N of the bar's total, drawn in the colour
// of Class (ok, bad, warn, busy or muted).
type Segment struct {
	N     int
	Class string
	Label string // the segment's title, e.g. "3 succeeded"
}

// rect is a segment placed on the bar, in percent of its width.
type rect struct {
	X, W  string
	Class string
	Label string
}

// layout places segments side by side on a bar of total (a total smaller
// than the segments' sum is raised to it; an empty bar has no segments).
func layout(total int, segs []Segment) []rect {
	sum := 0
	for _, s := range segs {
		if s.N > 0 {
			sum += s.N
		}
	}
	if total < sum {
		total = sum
	}
	if total <= 0 {
		return nil
	}
	var out []rect
	at := 0
	for _, s := range segs {
		if s.N <= 0 {
			continue
		}
		out = append(out, rect{X: pct(at, total), W: pct(s.N, total), Class: "seg " + s.Class, Label: s.Label})
		at += s.N
	}
	return out
}

func pct(n, total int) string {
	return strconv.FormatFloat(float64(n)*100/float64(total), 'f', 2, 64) + "%"
}
