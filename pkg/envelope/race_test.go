//go:build race

package envelope

// raceEnabled lets the slowest tests sample instead of exhausting their
// space when the race detector makes every signature check ten times slower.
const raceEnabled = true
