package bus

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package when a test leaves a goroutine behind: Close
// drains the connection and waits for the embedded server, routes and all.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
