package hub_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that sessions, the hub and the harness leave no
// goroutine behind.
// goleak rather than a hand count of runtime.NumGoroutine: it ignores the
// runtime's own goroutines and prints the stack of each leaked one.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
