package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// Event is something that happened to a device or a call, published on
// NATS (bosun.events.<org>) so that every replica's subscribers see it.
// Types are the Event* constants.
type Event struct {
	Type     string          `json:"type"`
	OrgID    int64           `json:"org_id"`
	DeviceID string          `json:"device_id,omitempty"`
	CallID   string          `json:"call_id,omitempty"`
	At       time.Time       `json:"at"`
	Data     json.RawMessage `json:"data,omitempty"`
}

// subscriberBuffer is how many events a subscriber may fall behind before
// it is dropped.
const subscriberBuffer = 256

// publish sends an event to every replica. A NATS failure is logged: events
// are a live view, not a record (the audit log and the tables are).
func (s *Service) publish(e Event) {
	if e.At.IsZero() {
		e.At = time.Now().UTC()
	}
	b, err := json.Marshal(e)
	if err != nil {
		return
	}
	if err := s.nc.Publish(SubjectEvents(e.OrgID), b); err != nil {
		s.log.Warn("publishing event", "type", e.Type, "err", err)
	}
}

// Subscribe returns the events of the actor's organisation (every
// organisation for super) from every replica. The channel closes when ctx
// ends or the service closes; a subscriber that falls more than 256 events
// behind is dropped (its channel closed) rather than allowed to slow anyone.
func (s *Service) Subscribe(ctx context.Context, a Actor) (<-chan Event, error) {
	if !a.Role.Valid() {
		return nil, ErrForbidden
	}
	if s.subCtx.Err() != nil {
		return nil, errors.New("fleet: service shutting down")
	}
	subject := SubjectEventsAll
	if a.Role != RoleSuper {
		subject = SubjectEvents(a.OrgID)
	}
	ch := make(chan Event, subscriberBuffer)
	var (
		mu     sync.Mutex // guards closed and sends on ch
		closed bool
	)
	closeCh := func() {
		mu.Lock()
		defer mu.Unlock()
		if !closed {
			closed = true
			close(ch)
		}
	}
	dropped := make(chan struct{})
	var dropOnce sync.Once
	sub, err := s.nc.Subscribe(subject, func(m *nats.Msg) {
		var e Event
		if json.Unmarshal(m.Data, &e) != nil {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if closed {
			return
		}
		select {
		case ch <- e:
		default:
			closed = true
			close(ch)
			dropOnce.Do(func() { close(dropped) })
		}
	})
	if err != nil {
		return nil, err
	}
	// Make sure the server knows the subscription before we return, so
	// that events published right after Subscribe returns are seen.
	// FlushWithContext needs a deadline; ctx (an HTTP request's) has none.
	fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := s.nc.FlushWithContext(fctx); err != nil {
		sub.Unsubscribe()
		return nil, err
	}
	s.goOwned(func(stop context.Context) {
		select {
		case <-ctx.Done():
		case <-stop.Done():
		case <-s.subCtx.Done():
		case <-dropped:
			s.log.Warn("event subscriber dropped: too slow", "actor", a.Name())
		}
		sub.Unsubscribe()
		closeCh()
	})
	return ch, nil
}
