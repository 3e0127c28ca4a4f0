package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/bosunhq/bosun/cloud/internal/store"
	"github.com/bosunhq/bosun/pkg/jsonrpc"
	"github.com/bosunhq/bosun/pkg/rpcproto"
	"github.com/nats-io/nats.go"
)

// CallRequest asks for one call to one device.
type CallRequest struct {
	DeviceID string
	Method   string
	Params   json.RawMessage // a JSON object or array, or empty
	// Timeout is how long to wait for the device's answer once the call is
	// sent. 0 means 30s; at most 5m.
	Timeout time.Duration
	// TTL > 0 makes the call persistent: it is stored queued and
	// delivered, in order, once the device is online and lists the method
	// (also after a cloud restart; see Served), unless TTL passes first
	// (expired). 0 means synchronous: an offline device fails the call
	// with -32000.
	TTL time.Duration
}

// FanOutRequest calls one method on several devices, named by DeviceIDs or
// by Tag (not both).
type FanOutRequest struct {
	DeviceIDs []string
	Tag       string
	Method    string
	Params    json.RawMessage
	Timeout   time.Duration // per device; 0 means 30s
}

// FanOutSummary counts the outcomes of a fan-out.
type FanOutSummary struct {
	Total, Succeeded, Failed, Offline, TimedOut int
}

// replyGrace is how much longer than the call timeout a caller waits for
// the holder's reply on NATS, so that the holder's own timeout decides.
const replyGrace = 2 * time.Second

// fanOutParallel bounds the calls a fan-out has in flight.
const fanOutParallel = 64

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func validateCall(req *CallRequest) error {
	if req.Method == "" || len(req.Method) > 128 {
		return invalidf("method must have 1 to 128 characters")
	}
	if !rpcproto.ValidMethod(req.Method) {
		// Refused here, before anything is stored or sent: the device
		// could never serve it (a method is also a NATS subject there).
		return invalidf("method %.64q: a method is dot-separated words of ASCII letters, digits, '_' and '-' (e.g. system.info)", req.Method)
	}
	if strings.HasPrefix(req.Method, "auth.") || req.Method == rpcproto.MethodRegister {
		return invalidf("method %s is reserved", req.Method)
	}
	if len(req.Params) > 0 {
		p := strings.TrimSpace(string(req.Params))
		if !json.Valid(req.Params) || (p[0] != '{' && p[0] != '[') {
			return invalidf("params must be a JSON object or array")
		}
		if !jsonStorable(req.Params) {
			return invalidf("params must be UTF-8 and no string in them may hold U+0000")
		}
	}
	switch {
	case req.Timeout < 0 || req.Timeout > MaxCallTimeout:
		return invalidf("timeout must be between 0 and %s", MaxCallTimeout)
	case req.Timeout == 0:
		req.Timeout = DefaultCallTimeout
	}
	if req.TTL < 0 || req.TTL > MaxCallTTL {
		return invalidf("ttl must be between 0 and %s", MaxCallTTL)
	}
	return nil
}

// Call makes one call and waits for its result, unless it was queued for an
// offline device (TTL > 0). The returned Call carries the outcome: a device
// that is offline, not accepted, slow or failing is a Call with status
// failed or timeout and a JSON-RPC error, not an error. err is only for bad
// input (ErrInvalid), authorisation (ErrNotFound, ErrForbidden) and
// infrastructure failures.
func (s *Service) Call(ctx context.Context, a Actor, req CallRequest) (Call, error) {
	if err := validateCall(&req); err != nil {
		return Call{}, err
	}
	var (
		d   Device
		c   Call
		err error
	)
	if ls := s.localSession(req.DeviceID); ls != nil && req.TTL == 0 && a.operates(ls.OrgID()) && ls.Accepted() {
		d = Device{ID: req.DeviceID, OrgID: ls.OrgID()}
		var audited bool
		if c, audited, err = s.callLocal(ctx, a, ls, req); audited {
			return c, nil
		}
	} else {
		if d, err = s.operable(ctx, a, req.DeviceID, false); err != nil {
			return Call{}, err
		}
		c, err = s.call(ctx, a, d, req)
	}
	if err != nil && ctx.Err() != nil && c.ID != "" {
		// The caller left after the call was stored: it goes on, and its
		// outcome lands in its row; the audit says so, not "error".
		s.audit(ctx, d.OrgID, a, "call", d.ID, c.Status,
			map[string]string{"method": req.Method, "call_id": c.ID, "caller": "left before the outcome"})
		return c, err
	}
	if err != nil {
		s.audit(ctx, d.OrgID, a, "call", d.ID, "error", map[string]string{"method": req.Method, "error": s.auditError("call", d.ID, err)})
		return c, err
	}
	s.audit(ctx, d.OrgID, a, "call", d.ID, c.Status, map[string]string{"method": req.Method, "call_id": c.ID})
	return c, nil
}

func (s *Service) call(ctx context.Context, a Actor, d Device, req CallRequest) (Call, error) {
	n := store.NewCall{ID: newUUID(), OrgID: d.OrgID, DeviceID: d.ID, Method: req.Method, Params: req.Params,
		Actor: a.Name(), Timeout: req.Timeout}
	if !d.HasAcceptedKey {
		n.Status, n.Error = store.CallFailed, rpcErr(rpcproto.CodeNotAccepted)
		c, err := s.st.InsertCall(ctx, n)
		if err == nil {
			s.callFinished(c)
		}
		return c, err
	}
	if req.TTL > 0 {
		exp := time.Now().Add(req.TTL)
		n.Status, n.ExpiresAt = store.CallQueued, &exp
		return s.callQueued(ctx, d, n)
	}
	n.Status = store.CallSent
	c, err := s.st.InsertCall(ctx, n)
	if err != nil {
		return c, err
	}
	data := mustJSON(RouteRequest{CallID: c.ID, Method: c.Method, Params: c.Params, TimeoutMS: req.Timeout.Milliseconds()})
	rctx, cancel := context.WithTimeout(ctx, req.Timeout+replyGrace)
	defer cancel()
	msg, err := s.nc.RequestWithContext(rctx, SubjectCall(d.OrgID, d.ID), data)
	switch {
	case err == nil:
		var out Call
		if err := json.Unmarshal(msg.Data, &out); err != nil {
			return c, fmt.Errorf("reply of call %s: %w", c.ID, err)
		}
		return out, nil
	case errors.Is(err, nats.ErrNoResponders):
		return s.finish(ctx, c.ID, store.CallFailed, nil, rpcErr(rpcproto.CodeDeviceOffline))
	case ctx.Err() != nil:
		// The caller left; the holder still records the outcome.
		return c, ctx.Err()
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
		return s.finish(ctx, c.ID, store.CallTimeout, nil, rpcErr(rpcproto.CodeTimeout))
	default:
		s.opts.Observer.RoutingFailed("call")
		return c, fmt.Errorf("routing call %s: %w", c.ID, err)
	}
}

// callQueued stores a persistent call and asks the holder of the device's
// session, if any, to send it; it waits for the outcome while the device is
// online and may be sent the call, and returns the queued call at once when
// it is offline or does not list the method yet.
func (s *Service) callQueued(ctx context.Context, d Device, n store.NewCall) (Call, error) {
	sub, err := s.nc.SubscribeSync(SubjectCallDone(n.ID))
	if err != nil {
		return Call{}, err
	}
	defer sub.Unsubscribe()
	c, err := s.st.InsertCall(ctx, n)
	if err != nil {
		return c, err
	}
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	reply, err := s.nc.RequestWithContext(dctx, SubjectDrain(d.OrgID, d.ID), mustJSON(DrainRequest{CallID: c.ID, Method: c.Method}))
	cancel()
	if err != nil {
		// Offline (no responders) or the holder is not answering: the
		// call waits in the queue either way.
		return c, nil
	}
	var dr DrainReply
	if len(reply.Data) > 0 && json.Unmarshal(reply.Data, &dr) == nil && dr.Unlisted {
		// Waiting for the device to serve the method: the holder
		// recorded why.
		return s.st.GetCall(context.WithoutCancel(ctx), c.ID)
	}
	wctx, cancel := context.WithTimeout(ctx, n.Timeout+replyGrace)
	defer cancel()
	msg, err := sub.NextMsgWithContext(wctx)
	if err == nil {
		var out Call
		if json.Unmarshal(msg.Data, &out) == nil {
			return out, nil
		}
	}
	if ctx.Err() != nil {
		return c, ctx.Err()
	}
	return s.st.GetCall(context.WithoutCancel(ctx), c.ID)
}

// finish records the outcome of a call unless it already has one, and
// returns the call as stored.
func (s *Service) finish(ctx context.Context, id, status string, result json.RawMessage, e *jsonrpc.Error) (Call, error) {
	return s.finishDelivered(ctx, id, status, result, e, time.Time{})
}

// finishDelivered is finish for a call whose request was written to the
// device at delivered (zero: not written, or already marked delivered).
func (s *Service) finishDelivered(ctx context.Context, id, status string, result json.RawMessage, e *jsonrpc.Error,
	delivered time.Time) (Call, error) {
	ctx = context.WithoutCancel(ctx)
	var at *time.Time
	if !delivered.IsZero() {
		at = &delivered
	}
	c, ok, err := s.st.FinishCallDelivered(ctx, id, status, result, e, at)
	if err != nil {
		return c, err
	}
	if !ok {
		return s.st.GetCall(ctx, id)
	}
	s.callFinished(c)
	return c, nil
}

// callFinished tells whoever waits on the call and the event subscribers.
func (s *Service) callFinished(c Call) {
	s.opts.Observer.CallFinished(c)
	if c.ExpiresAt != nil {
		// Only a persistent call's outcome has someone waiting on it
		// (callQueued); a synchronous call's caller has it already.
		s.nc.Publish(SubjectCallDone(c.ID), mustJSON(c))
	}
	s.publish(Event{Type: EventCallFinished, OrgID: c.OrgID, DeviceID: c.DeviceID, CallID: c.ID,
		Data: mustJSON(map[string]any{"method": c.Method, "status": c.Status})})
}

// FanOut calls one method on several devices at once (at most 64 in flight)
// and calls each, serialised, with every call as it finishes. The summary
// counts the outcomes: Offline are failures with -32000, TimedOut calls with
// status timeout, Failed every other failure.
func (s *Service) FanOut(ctx context.Context, a Actor, req FanOutRequest, each func(Call)) (FanOutSummary, error) {
	var sum FanOutSummary
	if (len(req.DeviceIDs) == 0) == (req.Tag == "") {
		return sum, invalidf("name either device ids or a tag")
	}
	probe := CallRequest{Method: req.Method, Params: req.Params, Timeout: req.Timeout}
	if err := validateCall(&probe); err != nil {
		return sum, err
	}
	ids := req.DeviceIDs
	if req.Tag != "" {
		if !a.Role.Valid() {
			return sum, ErrForbidden
		}
		var err error
		if ids, err = s.st.DeviceIDsByTag(ctx, a.scope(), req.Tag); err != nil {
			return sum, err
		}
	}
	// Every device is checked before any is called, as operable checks
	// one, but in one query: a fan-out to 10,000 devices must not first
	// wait for 10,000 reads.
	seen := map[string]bool{}
	uniq := make([]string, 0, len(ids))
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			uniq = append(uniq, id)
		}
	}
	found, err := s.st.GetDevices(ctx, uniq)
	if err != nil {
		return sum, err
	}
	devs := make([]Device, 0, len(uniq))
	for _, id := range uniq {
		d, ok := found[id]
		if !ok || !a.sees(d.OrgID) {
			return sum, fmt.Errorf("%w: device %q", ErrNotFound, id)
		}
		if err := mayChange(a, d, false); err != nil {
			return sum, err
		}
		devs = append(devs, d)
	}
	var (
		mu   sync.Mutex // guards sum and serialises each
		wg   sync.WaitGroup
		sem  = make(chan struct{}, fanOutParallel)
		ierr error
	)
	sum.Total = len(devs)
	for _, d := range devs {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			r := probe
			r.DeviceID = d.ID
			c, err := s.call(ctx, a, d, r)
			s.audit(ctx, d.OrgID, a, "call", d.ID, c.Status, map[string]string{"method": r.Method, "call_id": c.ID, "fan_out": "true"})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if ierr == nil {
					ierr = err
				}
				return
			}
			switch {
			case c.Status == store.CallSucceeded:
				sum.Succeeded++
			case c.Status == store.CallTimeout:
				sum.TimedOut++
			case c.Error != nil && c.Error.Code == rpcproto.CodeDeviceOffline:
				sum.Offline++
			default:
				sum.Failed++
			}
			if each != nil {
				each(c)
			}
		}()
	}
	wg.Wait()
	return sum, ierr
}

// GetCall returns one call.
func (s *Service) GetCall(ctx context.Context, a Actor, id string) (Call, error) {
	c, err := s.st.GetCall(ctx, id)
	if err != nil {
		return c, mapStoreErr(err)
	}
	if !a.sees(c.OrgID) {
		return Call{}, fmt.Errorf("%w: call %s", ErrNotFound, id)
	}
	return c, nil
}

// ListCalls lists the calls the actor may see, newest first.
func (s *Service) ListCalls(ctx context.Context, a Actor, f CallFilter) ([]Call, error) {
	if !a.Role.Valid() {
		return nil, ErrForbidden
	}
	cs, err := s.st.ListCalls(ctx, store.CallFilter{OrgID: a.scope(), DeviceID: f.DeviceID, Status: f.Status, Limit: clampLimit(f.Limit)})
	if cs == nil {
		cs = []Call{}
	}
	return cs, err
}
