// Package calls is the page of one call (its params and its result or
// whole error) and the fan-out page: call one method on every device with
// a tag, with each device's result shown as it arrives and a summary at
// the end.
//
// The fan-out answers a plain form post with a page that streams: the
// page's top and one line per device are flushed as they are ready, so
// the browser shows results as they come without any script, like the
// API's NDJSON stream of POST /api/v1/calls.
package calls

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/a-h/templ"
	"github.com/bosunhq/bosun/cloud/internal/fleet"
	"github.com/bosunhq/bosun/cloud/internal/web/app"
	"github.com/bosunhq/bosun/cloud/internal/web/ui"
	"github.com/bosunhq/bosun/pkg/rpcproto"
)

// Routes are the call page and the fan-out.
func Routes(svc *fleet.Service) []app.Route {
	h := &handler{svc: svc, writeTimeout: 10 * time.Second}
	return []app.Route{
		{Pattern: "GET /calls/{id}", Role: fleet.RoleViewer, Handler: h.show},
		{Pattern: "GET /fanout", Role: fleet.RoleOperator, Handler: h.form},
		{Pattern: "POST /fanout", Role: fleet.RoleOperator, Handler: h.fanOut},
	}
}

type handler struct {
	svc *fleet.Service
	// writeTimeout bounds each flush of a streamed page: a browser that
	// stops reading is cut off.
	writeTimeout time.Duration
}

// Limits of the fan-out form.
const (
	// inlineLimit is how much of each result the fan-out page shows; the
	// call's page has all of it.
	inlineLimit = 2 << 10
)

func (h *handler) show(w http.ResponseWriter, r *http.Request) error {
	c, err := h.svc.GetCall(r.Context(), app.Actor(r), r.PathValue("id"))
	if err != nil {
		return err
	}
	return app.Render(w, r, Call(CallModel{Page: app.NewPage(r, "Call "+c.Method+" on "+c.DeviceID, "devices"), Call: c}))
}

func (h *handler) model(r *http.Request, f Form) Model {
	m := Model{Page: app.NewPage(r, "Call devices by tag", "devices"), Form: f}
	m.Tags, _ = h.svc.TagsIn(r.Context(), app.Actor(r), app.ViewOrg(r)) // only suggestions
	return m
}

func (h *handler) form(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	f := Form{Tag: strings.TrimSpace(q.Get("tag")), Method: strings.TrimSpace(q.Get("method")), Params: "{}", Timeout: "30"}
	return app.Render(w, r, View(h.model(r, f), nil))
}

// formOf reads the posted form's fields (ParseForm has run).
func formOf(r *http.Request) Form {
	return Form{Tag: strings.TrimSpace(r.PostForm.Get("tag")), Method: strings.TrimSpace(r.PostForm.Get("method")),
		Params: r.PostForm.Get("params"), Timeout: strings.TrimSpace(r.PostForm.Get("timeout"))}
}

// parse checks the form; the message says what is wrong.
func parse(f Form) (fleet.FanOutRequest, string) {
	req := fleet.FanOutRequest{Tag: f.Tag, Method: f.Method, Timeout: fleet.DefaultCallTimeout}
	switch {
	case f.Tag == "":
		return req, "Name a tag."
	case f.Method == "":
		return req, "Name a method."
	case !rpcproto.ValidMethod(f.Method) || len(f.Method) > 128:
		return req, "A method is dot-separated words of ASCII letters, digits, '_' and '-' (e.g. system.info)."
	}
	var msg string
	if req.Params, msg = app.CallParams(f.Params); msg != "" {
		return req, msg
	}
	if req.Timeout, msg = app.CallTimeout(f.Timeout, fleet.DefaultCallTimeout); msg != "" {
		return req, msg
	}
	return req, ""
}

// fanOut calls every device with the tag and streams the page: its top at
// once, then one line per device as its answer arrives, then the summary.
// A form that is wrong, or a tag no device has, is answered with the form
// and the reason (422) and calls nothing.
func (h *handler) fanOut(w http.ResponseWriter, r *http.Request) error {
	if err := r.ParseForm(); err != nil {
		return app.FromFleet(err)
	}
	f := formOf(r)
	m := h.model(r, f)
	req, problem := parse(f)
	if problem == "" {
		ids, err := h.svc.DevicesWithTagIn(r.Context(), app.Actor(r), app.ViewOrg(r), f.Tag)
		if msg, ok := fleet.PublicMessage(err); ok && errors.Is(err, fleet.ErrInvalid) {
			problem = msg
		} else if err != nil {
			return err
		}
		if problem == "" && len(ids) == 0 {
			problem = fmt.Sprintf("No device has the tag %q: nothing was called.", f.Tag)
		}
		req.Tag, req.DeviceIDs, m.Devices = "", ids, len(ids)
	}
	if problem != "" {
		m.Error = problem
		return app.RenderStatus(w, r, http.StatusUnprocessableEntity, View(m, nil))
	}
	return app.Render(w, r, View(m, h.stream(w, r, req)))
}

// stream is the part of the page that runs the fan-out: it writes each
// call as it finishes and flushes it, then the summary. The fan-out runs
// in a goroutine this component waits for; a browser that leaves ends the
// request's context, which ends the calls' waiting (their outcomes are
// still recorded).
func (h *handler) stream(w http.ResponseWriter, r *http.Request, req fleet.FanOutRequest) templ.Component {
	rc := http.NewResponseController(w)
	return templ.ComponentFunc(func(ctx context.Context, out io.Writer) error {
		flush := func() error {
			_ = rc.SetWriteDeadline(time.Now().Add(h.writeTimeout)) // not every writer has deadlines
			if fl, ok := out.(interface{ Flush() error }); ok {
				return fl.Flush()
			}
			return nil
		}
		if err := flush(); err != nil { // the page's top
			return err
		}
		results := make(chan fleet.Call, len(req.DeviceIDs))
		done := make(chan struct{})
		var (
			sum    fleet.FanOutSummary
			runErr error
		)
		go func() {
			defer close(done)
			sum, runErr = h.svc.FanOut(r.Context(), app.Actor(r), req, func(c fleet.Call) { results <- c })
			close(results)
		}()
		defer func() {
			<-done
			_ = rc.SetWriteDeadline(time.Time{}) // the rest of the page, and the connection's next request
		}()
		if _, err := io.WriteString(out, `<ul class="calls" id="fanout-results">`); err != nil {
			return err
		}
		n := 0
		for c := range results {
			n++
			if err := ui.CallItem(c, true, inlineLimit).Render(ctx, out); err != nil {
				return err
			}
			if err := flush(); err != nil {
				return err
			}
		}
		<-done
		if _, err := io.WriteString(out, `</ul>`); err != nil {
			return err
		}
		failure := ""
		switch {
		case runErr == nil:
		case errors.Is(runErr, fleet.ErrInvalid):
			failure = "The fan-out was refused: " + runErr.Error()
		case errors.Is(runErr, fleet.ErrNotFound), errors.Is(runErr, fleet.ErrForbidden):
			failure = "The fan-out was refused: a device with this tag is not one you may call."
		default:
			failure = "The fan-out broke off: the calls listed were made, the others were not."
			if r.Context().Err() == nil {
				h.svc.Logger().Error("dashboard: fan-out broke off", "err", runErr)
			}
		}
		return summary(sum, n, failure).Render(ctx, out)
	})
}
