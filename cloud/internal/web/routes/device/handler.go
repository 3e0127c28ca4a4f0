// Package device is the device page: identity, key, status and live
// online state, editable tags, attributes and inventory; an RPC console
// with the methods the device announced and the call history, each call
// opening to show its params and result or whole error; the containers
// table with a logs viewer per container; the OTA boot state.
//
// Looking at the page calls nothing on the device: the method list comes
// from the device's last state.report, and containers and the boot state
// load when the operator asks. Everything that calls the device is a POST
// (it records a call and an audit row), so no link on another site can
// make the browser call a device. Each works as a plain form post that
// renders the whole page, and as an htmx request that renders only the
// part that changed.
package device

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/bosunhq/bosun/cloud/internal/fleet"
	"github.com/bosunhq/bosun/cloud/internal/tags"
	"github.com/bosunhq/bosun/cloud/internal/web/app"
	"github.com/bosunhq/bosun/cloud/internal/web/routes/pending"
	"github.com/bosunhq/bosun/cloud/internal/web/ui"
	"github.com/bosunhq/bosun/pkg/jsonrpc"
	"github.com/bosunhq/bosun/pkg/rpcproto"
)

// Routes are the device page and its actions.
func Routes(svc *fleet.Service) []app.Route {
	h := &handler{svc: svc}
	return []app.Route{
		{Pattern: "GET /devices/{id}", Role: fleet.RoleViewer, Handler: h.show},
		{Pattern: "POST /devices/{id}/accept", Role: fleet.RoleOperator, Handler: h.decide("accept")},
		{Pattern: "POST /devices/{id}/reject", Role: fleet.RoleOperator, Handler: h.decide("reject")},
		{Pattern: "POST /devices/{id}/tags", Role: fleet.RoleOperator, Handler: h.tags},
		{Pattern: "POST /devices/{id}/call", Role: fleet.RoleOperator, Handler: h.call},
		{Pattern: "POST /devices/{id}/containers", Role: fleet.RoleOperator, Handler: h.containers},
		{Pattern: "POST /devices/{id}/boot-state", Role: fleet.RoleOperator, Handler: h.bootState},
		{Pattern: "GET /devices/{id}/logs", Role: fleet.RoleOperator, Handler: h.logsForm},
		{Pattern: "POST /devices/{id}/logs", Role: fleet.RoleOperator, Handler: h.logs},
	}
}

type handler struct{ svc *fleet.Service }

// Limits of the console.
const (
	consoleTimeout = 30 * time.Second
	fetchTimeout   = 15 * time.Second
	historySize    = 20
	maxTail        = 5000
)

// load fills the always-shown parts of the page.
func (h *handler) load(r *http.Request) (Model, error) {
	ctx, a, id := r.Context(), app.Actor(r), r.PathValue("id")
	d, err := h.svc.GetDevice(ctx, a, id)
	if err != nil {
		return Model{}, err
	}
	m := Model{Page: app.NewPage(r, d.ID, "devices"), Device: d, Console: Console{Params: "{}", Timeout: "30"},
		Methods: announcedMethods(d.Inventory)}
	if m.Keys, err = h.svc.ListKeySets(ctx, a, id); err != nil {
		return m, err
	}
	if m.Calls, err = h.svc.ListCalls(ctx, a, fleet.CallFilter{DeviceID: id, Limit: historySize}); err != nil {
		return m, err
	}
	return m, nil
}

func (h *handler) show(w http.ResponseWriter, r *http.Request) error {
	m, err := h.load(r)
	if err != nil {
		return err
	}
	if app.IsHTMX(r) {
		switch r.URL.Query().Get("part") {
		case "head":
			return app.Render(w, r, View(m), "head")
		case "calls":
			return app.Render(w, r, View(m), "calls")
		}
	}
	return app.Render(w, r, View(m))
}

func (h *handler) decide(act string) app.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		id := r.PathValue("id")
		msg, err := pending.Decide(r, h.svc, act, []pending.Target{{ID: id, Fingerprint: r.PostFormValue("fingerprint")}})
		if err != nil {
			return err
		}
		return app.Redirect(w, r, "/devices/"+id, msg)
	}
}

func (h *handler) tags(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if err := h.svc.SetTags(r.Context(), app.Actor(r), id, tags.Parse(r.PostFormValue("tags"))); err != nil {
		return err
	}
	return app.Redirect(w, r, "/devices/"+id, "Tags saved.")
}

// fetch calls method on the device for one part of the page. The call's
// own failure (offline, timeout, method unknown) is the part's message,
// not an error of the page.
func (h *handler) fetch(ctx context.Context, r *http.Request, method string, params any) (fleet.Call, string, error) {
	var raw json.RawMessage
	if params != nil {
		raw, _ = json.Marshal(params)
	}
	c, err := h.svc.Call(ctx, app.Actor(r), fleet.CallRequest{DeviceID: r.PathValue("id"), Method: method, Params: raw, Timeout: fetchTimeout})
	if err != nil {
		return c, "", err
	}
	if c.Status != "succeeded" {
		return c, callFailure(c), nil
	}
	return c, "", nil
}

// callFailure says why a call the page made did not succeed, with the
// device's whole error (its JSON-RPC data too) where it sent one.
func callFailure(c fleet.Call) string {
	if c.Error == nil {
		return "The call ended with status " + c.Status + "."
	}
	var msg string
	switch c.Error.Code {
	case rpcproto.CodeDeviceOffline:
		msg = "The device is offline."
	case rpcproto.CodeNotAccepted:
		msg = "The device is not accepted."
	case rpcproto.CodeTimeout, rpcproto.CodeWorkerTimeout:
		msg = "The device did not answer in time."
	case jsonrpc.CodeMethodNotFound:
		msg = "The device does not serve " + c.Method + "."
	default:
		msg = "The device answered with " + ui.RPCErrText(c.Error)
		return msg
	}
	if ui.HasData(c.Error) {
		msg += "\n" + ui.RPCErrText(c.Error)
	}
	return msg
}

// part renders one fetched part: only it for htmx, else the whole page.
func (h *handler) part(w http.ResponseWriter, r *http.Request, fill func(*Model), fragment string) error {
	m, err := h.load(r)
	if err != nil {
		return err
	}
	fill(&m)
	if app.IsHTMX(r) {
		return app.Render(w, r, View(m), fragment)
	}
	return app.Render(w, r, View(m))
}

func (h *handler) containers(w http.ResponseWriter, r *http.Request) error {
	c, msg, err := h.fetch(r.Context(), r, rpcproto.MethodContainersList, rpcproto.ContainersListParams{All: true})
	if err != nil {
		return err
	}
	f := &Fetched[[]rpcproto.Container]{Err: msg, Call: c}
	if msg == "" {
		var res rpcproto.ContainersListResult
		if err := json.Unmarshal(c.Result, &res); err != nil {
			f.Err = "The device's container list is not what was expected."
		}
		f.Value = res.Containers
	}
	return h.part(w, r, func(m *Model) { m.Containers = f }, "containers")
}

func (h *handler) bootState(w http.ResponseWriter, r *http.Request) error {
	c, msg, err := h.fetch(r.Context(), r, rpcproto.MethodOTAGetBootState, nil)
	if err != nil {
		return err
	}
	if c.Error != nil && c.Error.Code == jsonrpc.CodeMethodNotFound {
		msg = "Not available: this device runs no OTA worker."
	}
	f := &Fetched[json.RawMessage]{Err: msg, Call: c, Value: c.Result}
	return h.part(w, r, func(m *Model) { m.Boot = f }, "boot")
}

// call is the RPC console.
func (h *handler) call(w http.ResponseWriter, r *http.Request) error {
	if err := r.ParseForm(); err != nil {
		return app.FromFleet(err)
	}
	f := r.PostForm
	con := Console{Method: strings.TrimSpace(f.Get("method")), Other: strings.TrimSpace(f.Get("method_other")),
		Params: f.Get("params"), Timeout: strings.TrimSpace(f.Get("timeout")), TTL: strings.TrimSpace(f.Get("ttl"))}
	req, problem := parseConsole(con)
	status := http.StatusOK
	if problem != "" {
		con.Error, status = problem, http.StatusUnprocessableEntity
	} else {
		req.DeviceID = r.PathValue("id")
		c, err := h.svc.Call(r.Context(), app.Actor(r), req)
		switch {
		case errors.Is(err, fleet.ErrInvalid):
			con.Error, status = app.PublicText(err), http.StatusUnprocessableEntity
		case err != nil && r.Context().Err() != nil:
			// The browser left (the operator abandoned the call): the
			// call goes on and its outcome lands in the history.
			return nil
		case err != nil:
			return err
		default:
			con.Result = &c
		}
	}
	m, err := h.load(r)
	if err != nil {
		return err
	}
	m.Console = con
	if app.IsHTMX(r) {
		return app.RenderStatus(w, r, status, View(m), "result")
	}
	return app.RenderStatus(w, r, status, View(m))
}

// parseConsole checks the console form; the message says what is wrong.
func parseConsole(c Console) (fleet.CallRequest, string) {
	method := c.Method
	if c.Other != "" {
		method = c.Other
	}
	req := fleet.CallRequest{Method: method, Timeout: consoleTimeout}
	if method == "" {
		return req, "Choose a method."
	}
	var msg string
	if req.Params, msg = app.CallParams(c.Params); msg != "" {
		return req, msg
	}
	if req.Timeout, msg = app.CallTimeout(c.Timeout, consoleTimeout); msg != "" {
		return req, msg
	}
	if c.TTL != "" {
		d, err := time.ParseDuration(c.TTL)
		if err != nil || d <= 0 || d > fleet.MaxCallTTL {
			return req, fmt.Sprintf("Queue for is a duration such as 30m, 1h or 24h, at most %s.", ttlText(fleet.MaxCallTTL))
		}
		req.TTL = d
	}
	return req, ""
}

// ttlText writes a whole number of hours as "720h", not "720h0m0s".
func ttlText(d time.Duration) string {
	return strings.TrimSuffix(strings.TrimSuffix(d.String(), "0s"), "0m")
}

func (h *handler) logsForm(w http.ResponseWriter, r *http.Request) error {
	d, err := h.svc.GetDevice(r.Context(), app.Actor(r), r.PathValue("id"))
	if err != nil {
		return err
	}
	q := r.URL.Query()
	m := LogsModel{Page: app.NewPage(r, "Logs of "+d.ID, "devices"), Device: d, Container: q.Get("container"),
		Tail: "100", Since: q.Get("since")}
	return app.Render(w, r, Logs(m))
}

func (h *handler) logs(w http.ResponseWriter, r *http.Request) error {
	if err := r.ParseForm(); err != nil {
		return app.FromFleet(err)
	}
	d, err := h.svc.GetDevice(r.Context(), app.Actor(r), r.PathValue("id"))
	if err != nil {
		return err
	}
	m := LogsModel{Page: app.NewPage(r, "Logs of "+d.ID, "devices"), Device: d,
		Container: strings.TrimSpace(r.PostForm.Get("container")), Tail: strings.TrimSpace(r.PostForm.Get("tail")),
		Since: strings.TrimSpace(r.PostForm.Get("since"))}
	params := rpcproto.ContainersLogsParams{Container: m.Container, Since: m.Since}
	status := http.StatusOK
	switch n, err := strconv.Atoi(m.Tail); {
	case m.Container == "" || len(m.Container) > 256:
		m.Error = "Name a container."
	case m.Tail != "" && (err != nil || n < 1 || n > maxTail):
		m.Error = fmt.Sprintf("Tail is a number of lines from 1 to %d.", maxTail)
	case len(m.Since) > 64:
		m.Error = "Since is a time (RFC 3339) or a duration such as 10m."
	default:
		params.Tail = n
	}
	if m.Error == "" {
		c, msg, err := h.fetch(r.Context(), r, rpcproto.MethodContainersLogs, params)
		if err != nil {
			return err
		}
		m.Call, m.Error = &c, msg
		if msg == "" {
			var res rpcproto.ContainersLogsResult
			if err := json.Unmarshal(c.Result, &res); err != nil {
				m.Error = "The device's log lines are not what was expected."
			}
			m.Lines = res.Lines
		}
	} else {
		status = http.StatusUnprocessableEntity
	}
	if app.IsHTMX(r) {
		return app.RenderStatus(w, r, status, Logs(m), "lines")
	}
	return app.RenderStatus(w, r, status, Logs(m))
}
