// Package account is the user's own page (change password) and the
// organisation switch of super users.
package account

import (
	"net/http"
	"strconv"

	"github.com/bosunhq/bosun/cloud/internal/fleet"
	"github.com/bosunhq/bosun/cloud/internal/web/app"
	"github.com/bosunhq/bosun/cloud/internal/web/routes/login"
	"net"
)

// Routes are the account page, the password form and the organisation
// switch.
func Routes(svc *fleet.Service, c login.Cookies) []app.Route {
	h := &handler{svc: svc, c: c}
	return []app.Route{
		{Pattern: "GET /account", Role: fleet.RoleViewer, Handler: h.show},
		{Pattern: "POST /account/password", Role: fleet.RoleViewer, Handler: h.password},
		{Pattern: "POST /org", Role: fleet.RoleSuper, Handler: h.switchOrg},
	}
}

type handler struct {
	svc *fleet.Service
	c   login.Cookies
}

// Model is the account page.
type Model struct {
	Page app.Page
	Min  int
}

func (h *handler) show(w http.ResponseWriter, r *http.Request) error {
	return app.Render(w, r, View(Model{Page: app.NewPage(r, "Your account", ""), Min: fleet.MinPasswordLength}))
}

// password changes the password: every session of the user ends, and this
// browser gets a new one.
func (h *handler) password(w http.ResponseWriter, r *http.Request) error {
	if r.PostFormValue("new") != r.PostFormValue("again") {
		return h.fail(w, r, "The two new passwords differ.")
	}
	host, _, _ := net.SplitHostPort(r.RemoteAddr)
	secret, _, err := h.svc.ChangePassword(r.Context(), app.Actor(r), r.PostFormValue("current"), r.PostFormValue("new"), host, r.UserAgent())
	if err != nil {
		if he, ok := app.FromFleet(err).(*app.HTTPError); ok && he.Status == http.StatusUnprocessableEntity {
			return h.fail(w, r, he.Msg)
		}
		return err
	}
	h.c.SetSession(w, r, secret)
	return app.Redirect(w, r, "/account", "Password changed; your other sessions have ended.")
}

func (h *handler) fail(w http.ResponseWriter, r *http.Request, msg string) error {
	m := Model{Page: app.NewPage(r, "Your account", ""), Min: fleet.MinPasswordLength}
	m.Page.Error = msg
	return app.RenderStatus(w, r, http.StatusUnprocessableEntity, View(m))
}

func (h *handler) switchOrg(w http.ResponseWriter, r *http.Request) error {
	org, err := strconv.ParseInt(r.PostFormValue("org"), 10, 64)
	if err != nil || org < 0 {
		return app.Errorf(http.StatusBadRequest, "Choose an organisation.")
	}
	if err := h.svc.SwitchOrg(r.Context(), *app.SessionFrom(r.Context()), org); err != nil {
		return err
	}
	return app.Redirect(w, r, login.SafeNext(r.PostFormValue("next")), "")
}
