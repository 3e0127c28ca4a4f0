package metrics_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that the replicas these tests start (and their metrics
// listeners) leave no goroutine behind.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
