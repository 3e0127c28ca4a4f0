//go:build race

package jsonrpc

// raceEnabled is true when the race detector runs; it allocates on its own,
// so allocation counts mean nothing then.
const raceEnabled = true
