package fleet

import (
	"context"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Observer is told of what the service does that an operator wants to count
// (package metrics implements it). The service calls it synchronously on
// the call path, so an implementation must be quick and must not block.
type Observer interface {
	// CallFinished is called once for every call whose outcome this
	// replica recorded (succeeded, failed, timeout or expired).
	CallFinished(c Call)
	// RoutingFailed is called when NATS fails to carry a call to the
	// replica holding the device's session for a reason other than
	// "nobody holds it" (the device is offline) or a timeout.
	RoutingFailed(what string)
}

// noObserver is the Observer of a Service that was given none.
type noObserver struct{}

func (noObserver) CallFinished(Call)    {}
func (noObserver) RoutingFailed(string) {}

// CountQueuedCalls returns how many persistent calls wait in the queue, in
// every organisation, for metrics (it is not scoped to an actor: the
// metrics endpoint guards who sees it).
func (s *Service) CountQueuedCalls(ctx context.Context) (int64, error) {
	return s.st.CountQueuedCalls(ctx)
}

// PoolStat returns the database pool's statistics, for metrics.
func (s *Service) PoolStat() *pgxpool.Stat { return s.st.Pool().Stat() }
