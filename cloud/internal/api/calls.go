package api

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/bosunhq/bosun/cloud/internal/api/wire"
	"github.com/bosunhq/bosun/cloud/internal/fleet"
)

// callStatuses are the values of Call.Status a filter may name.
var callStatuses = []string{"queued", "sent", "delivered", "succeeded", "failed", "timeout", "expired"}

// POST /devices/{id}/call {"method","params","timeout","ttl"} calls one
// device and waits for the answer (200). With a ttl and the device offline
// the call is queued instead and delivered when the device returns: 202,
// as for any call answered before it finished (status queued, sent or
// delivered; poll GET /calls/{id}). A call the device answered with an
// error is still a 200: the call record carries the JSON-RPC error.
func (h *handler) callDevice(w http.ResponseWriter, r *http.Request, a fleet.Actor) error {
	if _, err := parseQuery(r); err != nil {
		return err
	}
	var req wire.CallRequest
	if err := decodeJSON(w, r, h.opts.MaxBody, &req, false); err != nil {
		return err
	}
	if req.Method == "" {
		return invalid(`field "method" is required`)
	}
	params, err := checkParams(req.Params)
	if err != nil {
		return err
	}
	timeout, err := parseDuration("timeout", req.Timeout, maxCallTimeout)
	if err != nil {
		return err
	}
	ttl, err := parseDuration("ttl", req.TTL, maxCallTTL)
	if err != nil {
		return err
	}
	id := r.PathValue("id")
	c, err := h.svc.Call(r.Context(), a, fleet.CallRequest{DeviceID: id, Method: req.Method, Params: params, Timeout: timeout, TTL: ttl})
	if err != nil {
		return notFoundAs(err, "device %q not found", id)
	}
	status := http.StatusOK
	switch c.Status {
	case "queued", "sent", "delivered":
		status = http.StatusAccepted
	}
	writeJSON(w, status, toCall(c))
	return nil
}

// POST /calls {"devices":[...]|"tag":"x","method","params","timeout"} calls
// many devices at once and streams application/x-ndjson: one "result" line
// per device as its answer arrives, then one "summary" line. An error
// before the first line is an ordinary JSON error answer; after it, an
// "error" line ends the stream.
func (h *handler) fanOut(w http.ResponseWriter, r *http.Request, a fleet.Actor) error {
	if _, err := parseQuery(r); err != nil {
		return err
	}
	var req wire.FanOutRequest
	if err := decodeJSON(w, r, h.opts.MaxBody, &req, false); err != nil {
		return err
	}
	switch {
	case req.Method == "":
		return invalid(`field "method" is required`)
	case (len(req.Devices) == 0) == (req.Tag == ""):
		return invalid(`give exactly one of "devices" (a non-empty list) and "tag"`)
	case len(req.Devices) > maxFanOutIDs:
		return invalid("at most %d devices per fan-out", maxFanOutIDs)
	}
	seen := make(map[string]bool, len(req.Devices))
	for _, id := range req.Devices {
		if id == "" {
			return invalid("device ids must not be empty")
		}
		if seen[id] {
			return invalid("device %q listed twice", id)
		}
		seen[id] = true
	}
	params, err := checkParams(req.Params)
	if err != nil {
		return err
	}
	timeout, err := parseDuration("timeout", req.Timeout, maxCallTimeout)
	if err != nil {
		return err
	}

	s := &stream{w: w, rc: http.NewResponseController(w), contentType: "application/x-ndjson", writeTimeout: h.opts.WriteTimeout}
	sum, err := h.svc.FanOut(r.Context(), a, fleet.FanOutRequest{
		DeviceIDs: req.Devices, Tag: req.Tag, Method: req.Method, Params: params, Timeout: timeout,
	}, func(c fleet.Call) {
		wc := toCall(c)
		s.writeLine(wire.FanOutLine{Type: wire.LineResult, Call: &wc})
	})
	if err != nil {
		if !s.started {
			return err
		}
		he := toHTTPError(err)
		if he.Status() >= 500 && !clientGone(r, err) {
			h.log.ErrorContext(r.Context(), "api: fan-out broke off", "err", err)
		}
		s.writeLine(wire.FanOutLine{Type: wire.LineError, Error: &wire.ErrorDetail{Code: he.Code, Message: he.Msg}})
		return nil
	}
	s.writeLine(wire.FanOutLine{Type: wire.LineSummary, Summary: &wire.FanOutSummary{
		Total: sum.Total, Succeeded: sum.Succeeded, Failed: sum.Failed, Offline: sum.Offline, TimedOut: sum.TimedOut,
	}})
	return nil
}

// GET /calls?device=&status=&limit=
func (h *handler) listCalls(w http.ResponseWriter, r *http.Request, a fleet.Actor) error {
	q, err := parseQuery(r, "device", "status", "limit")
	if err != nil {
		return err
	}
	f := fleet.CallFilter{DeviceID: q.str("device")}
	if f.Status, err = q.oneOf("status", callStatuses...); err != nil {
		return err
	}
	if f.Limit, err = q.intIn("limit", 50, 1, maxLimit); err != nil {
		return err
	}
	calls, err := h.svc.ListCalls(r.Context(), a, f)
	if err != nil {
		return err
	}
	out := wire.CallList{Items: make([]wire.Call, 0, len(calls))}
	for _, c := range calls {
		out.Items = append(out.Items, toCall(c))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// GET /calls/{id}
func (h *handler) getCall(w http.ResponseWriter, r *http.Request, a fleet.Actor) error {
	if _, err := parseQuery(r); err != nil {
		return err
	}
	id := r.PathValue("id")
	c, err := h.svc.GetCall(r.Context(), a, id)
	if err != nil {
		return notFoundAs(err, "call %q not found", id)
	}
	writeJSON(w, http.StatusOK, toCall(c))
	return nil
}

// stream writes a streamed answer, one flushed piece at a time, each write
// bounded by writeTimeout so a client that stops reading is cut off. The
// status line goes out with the first piece, so that an error found before
// it can still be an ordinary error answer. After a failed write it drops
// everything: the request's context ends with the connection.
type stream struct {
	w            http.ResponseWriter
	rc           *http.ResponseController
	contentType  string
	writeTimeout time.Duration
	started      bool
	broken       bool
}

func (s *stream) start() {
	if s.started {
		return
	}
	s.started = true
	h := s.w.Header()
	h.Set("Content-Type", s.contentType)
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // tell nginx-like proxies not to buffer
	s.w.WriteHeader(http.StatusOK)
}

func (s *stream) writeLine(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		panic("api: encoding stream line: " + err.Error()) // our own types: a bug
	}
	s.write(append(b, '\n'))
}

func (s *stream) write(b []byte) {
	s.start()
	if s.broken {
		return
	}
	// Not every ResponseWriter supports deadlines (httptest's recorder does
	// not); then the server's own timeouts are all there is.
	_ = s.rc.SetWriteDeadline(time.Now().Add(s.writeTimeout))
	if _, err := s.w.Write(b); err != nil {
		s.broken = true
		return
	}
	if err := s.rc.Flush(); err != nil {
		s.broken = true
	}
}
