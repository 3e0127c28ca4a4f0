package fleet

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/bosunhq/bosun/cloud/internal/store"
	"github.com/bosunhq/bosun/pkg/keys"
	"github.com/bosunhq/bosun/pkg/rpcproto"
)

// MaxPreauthorizeBatch bounds one PreauthorizeMany: a request of up to
// this many devices is served, a larger one refused whole.
const MaxPreauthorizeBatch = 1000

// preauthorizeParallel is how many devices PreauthorizeMany writes at once.
const preauthorizeParallel = 12

// PreauthorizeEntry is one device of PreauthorizeMany.
type PreauthorizeEntry struct {
	DeviceID     string
	PublicKeyDER []byte
}

// PreauthorizeMany preauthorises many devices' keys at once (bosun-sim's
// fleets, a factory's batch). Every entry is checked first — the batch
// size (1 to MaxPreauthorizeBatch), each id and key, duplicated ids, and
// that the actor may preauthorise each device — and one bad entry refuses
// the whole batch, naming it, before anything is written. Then each
// device is preauthorised as Preauthorize does (its own transaction and
// audit row); it returns the fingerprints in the order of entries. Only a
// database failure during that second pass can leave the batch half done:
// the error then says how many were written, and sending the same batch
// again is harmless (preauthorising a key twice changes nothing).
func (s *Service) PreauthorizeMany(ctx context.Context, a Actor, entries []PreauthorizeEntry) ([]string, error) {
	if len(entries) == 0 {
		return nil, invalidf("devices: want 1 to %d entries, got none", MaxPreauthorizeBatch)
	}
	if len(entries) > MaxPreauthorizeBatch {
		return nil, invalidf("devices: want 1 to %d entries, got %d", MaxPreauthorizeBatch, len(entries))
	}
	seen := make(map[string]int, len(entries))
	fps := make([]string, len(entries))
	for i, e := range entries {
		if !ValidDeviceID(e.DeviceID) {
			return nil, invalidf("devices[%d]: device id %q: want %s", i, e.DeviceID, rpcproto.DeviceIDRule)
		}
		if j, dup := seen[e.DeviceID]; dup {
			return nil, invalidf("devices[%d]: device id %s is also devices[%d]", i, e.DeviceID, j)
		}
		seen[e.DeviceID] = i
		if _, err := keys.ParsePublicDER(e.PublicKeyDER); err != nil {
			return nil, invalidf("devices[%d] (%s): public key: not a usable DER SPKI key (Ed25519, or RSA of at least %d bits)",
				i, e.DeviceID, keys.MinRSABits)
		}
		fps[i] = keys.FingerprintDER(e.PublicKeyDER)
	}
	for i, e := range entries {
		org := a.OrgID
		d, err := s.st.GetDevice(ctx, e.DeviceID)
		switch {
		case err == nil:
			if !a.sees(d.OrgID) {
				return nil, conflictf("devices[%d]: device id %s is taken", i, e.DeviceID)
			}
			org = d.OrgID
		case !errors.Is(err, store.ErrNotFound):
			return nil, err
		}
		if !a.operates(org) {
			return nil, fmt.Errorf("%w: role %s may not preauthorise devices", ErrForbidden, a.Role)
		}
	}
	// Distinct devices are independent: preauthorise them a few at a
	// time, so that their commits share WAL flushes.
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex // guards errs and done
		errs []error
		done int
		next = make(chan int)
	)
	for range preauthorizeParallel {
		wg.Go(func() {
			for i := range next {
				err := s.Preauthorize(ctx, a, entries[i].DeviceID, entries[i].PublicKeyDER)
				mu.Lock()
				if err != nil {
					errs = append(errs, fmt.Errorf("devices[%d] (%s): %w", i, entries[i].DeviceID, err))
				} else {
					done++
				}
				mu.Unlock()
			}
		})
	}
	for i := range entries {
		next <- i
	}
	close(next)
	wg.Wait()
	if len(errs) > 0 {
		return nil, fmt.Errorf("%d of %d preauthorised: %w", done, len(entries), errs[0])
	}
	return fps, nil
}
