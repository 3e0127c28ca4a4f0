package store

import (
	"context"
	"fmt"
)

// CountQueuedCalls returns how many persistent calls wait in the queue, in
// every organisation (an index-only count over the calls_queued index).
func (s *Store) CountQueuedCalls(ctx context.Context) (int64, error) {
	var n int64
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM calls WHERE status = 'queued'`).Scan(&n); err != nil {
		return 0, fmt.Errorf("counting queued calls: %w", err)
	}
	return n, nil
}
