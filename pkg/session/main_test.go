package session_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that every session, its writer, pinger and handlers, and
// the test servers leave no goroutine behind.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
