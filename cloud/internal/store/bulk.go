package store

import (
	"context"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"
)

// This file holds the dashboard's actions on many devices at once. Each is
// one transaction: it changes every device named or none.

// EditTags computes and stores new tags for each of ids in one
// transaction: edit gets each device's current tags and returns its new
// ones; an error from edit, or an id that does not exist, rolls everything
// back (ErrNotFound for a missing id). It returns the new tags by id.
func (s *Store) EditTags(ctx context.Context, ids []string, edit func(id string, tags []string) ([]string, error)) (map[string][]string, error) {
	out := map[string][]string{}
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		clear(out)
		rows, err := tx.Query(ctx, `SELECT id, tags FROM devices WHERE id = ANY($1) ORDER BY id FOR UPDATE`, ids)
		if err != nil {
			return err
		}
		type row struct {
			id   string
			tags []string
		}
		found, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
			var x row
			err := r.Scan(&x.id, &x.tags)
			return x, err
		})
		if err != nil {
			return err
		}
		for _, id := range ids {
			if !slices.ContainsFunc(found, func(x row) bool { return x.id == id }) {
				return fmt.Errorf("device %s: %w", id, ErrNotFound)
			}
		}
		for _, x := range found {
			if x.tags == nil {
				x.tags = []string{}
			}
			next, err := edit(x.id, x.tags)
			if err != nil {
				return err
			}
			if next == nil {
				next = []string{}
			}
			if _, err := tx.Exec(ctx, `UPDATE devices SET tags = $2 WHERE id = $1`, x.id, next); err != nil {
				return err
			}
			out[x.id] = next
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("editing tags: %w", err)
	}
	return out, nil
}

// DecommissionMany decommissions every device of ids (see Decommission) in
// one transaction: all of them, or, when one does not exist, none
// (ErrNotFound). The devices are locked in the order of their ids, as
// EditTags does, so two bulk actions never deadlock; the key changes come
// back in that order.
func (s *Store) DecommissionMany(ctx context.Context, ids []string) ([]KeyChange, error) {
	ids = slices.Sorted(slices.Values(ids))
	var kcs []KeyChange
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		kcs = kcs[:0]
		for _, id := range ids {
			kc, err := decommissionTx(ctx, tx, id)
			if err != nil {
				return fmt.Errorf("device %s: %w", id, err)
			}
			kcs = append(kcs, kc)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("decommissioning devices: %w", err)
	}
	return kcs, nil
}

// ListTags returns every tag the devices of org (0: all) carry, sorted, at
// most limit of them.
func (s *Store) ListTags(ctx context.Context, orgID int64, limit int) ([]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT DISTINCT t FROM devices, unnest(tags) AS t
		WHERE $1::bigint = 0 OR org_id = $1 ORDER BY t LIMIT $2`, orgID, limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}
