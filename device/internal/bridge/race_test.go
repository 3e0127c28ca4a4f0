//go:build race

package bridge_test

// raceEnabled reports whether the race detector is on: it sizes the
// load test and is printed with its throughput.
const raceEnabled = true
