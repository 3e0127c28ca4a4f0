// Package users is the users page of admins: add a user (its generated
// password is shown once), change a role, disable or enable. A role change
// or a disable ends the user's sessions everywhere.
package users

import (
	"net/http"
	"strconv"

	"github.com/bosunhq/bosun/cloud/internal/fleet"
	"github.com/bosunhq/bosun/cloud/internal/web/app"
)

// Routes are the users page and its forms.
func Routes(svc *fleet.Service) []app.Route {
	h := &handler{svc: svc}
	return []app.Route{
		{Pattern: "GET /users", Role: fleet.RoleAdmin, Handler: h.list},
		{Pattern: "POST /users", Role: fleet.RoleAdmin, Handler: h.add},
		{Pattern: "POST /users/{id}/role", Role: fleet.RoleAdmin, Handler: h.role},
		{Pattern: "POST /users/{id}/disable", Role: fleet.RoleAdmin, Handler: h.disable(true)},
		{Pattern: "POST /users/{id}/enable", Role: fleet.RoleAdmin, Handler: h.disable(false)},
	}
}

type handler struct{ svc *fleet.Service }

// org is the organisation the page manages: the admin's own, or the one a
// super user looks at (none chosen: the super user's own).
func org(r *http.Request) int64 {
	a := app.Actor(r)
	if a.Role == fleet.RoleSuper && app.ViewOrg(r) > 0 {
		return app.ViewOrg(r)
	}
	return a.OrgID
}

func (h *handler) model(r *http.Request) (Model, error) {
	m := Model{Page: app.NewPage(r, "Users", "users"), Org: org(r), Role: string(fleet.RoleViewer)}
	scope := m.Org
	if app.Actor(r).Role == fleet.RoleSuper && app.ViewOrg(r) == 0 {
		scope, m.ShowOrg = 0, true
	}
	var err error
	m.Users, err = h.svc.ListUsers(r.Context(), app.Actor(r), scope)
	return m, err
}

func (h *handler) list(w http.ResponseWriter, r *http.Request) error {
	m, err := h.model(r)
	if err != nil {
		return err
	}
	return app.Render(w, r, View(m))
}

func (h *handler) add(w http.ResponseWriter, r *http.Request) error {
	email, role := r.PostFormValue("email"), fleet.Role(r.PostFormValue("role"))
	pw, u, err := h.svc.AddUser(r.Context(), app.Actor(r), email, role, org(r))
	if err != nil {
		he, ok := app.FromFleet(err).(*app.HTTPError)
		if !ok || he.Status != http.StatusUnprocessableEntity {
			return err
		}
		m, lerr := h.model(r)
		if lerr != nil {
			return lerr
		}
		m.Page.Error, m.Email, m.Role = he.Msg, email, string(role)
		return app.RenderStatus(w, r, he.Status, View(m))
	}
	m, err := h.model(r)
	if err != nil {
		return err
	}
	m.Created, m.Password = &u, pw
	return app.Render(w, r, View(m))
}

func userID(r *http.Request) (int64, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		return 0, app.Errorf(http.StatusNotFound, "Not found.")
	}
	return id, nil
}

func (h *handler) role(w http.ResponseWriter, r *http.Request) error {
	id, err := userID(r)
	if err != nil {
		return err
	}
	if err := h.svc.SetUserRole(r.Context(), app.Actor(r), id, fleet.Role(r.PostFormValue("role"))); err != nil {
		return err
	}
	return app.Redirect(w, r, "/users", "Role changed; the user's sessions have ended.")
}

func (h *handler) disable(disabled bool) app.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		id, err := userID(r)
		if err != nil {
			return err
		}
		if err := h.svc.SetUserDisabled(r.Context(), app.Actor(r), id, disabled); err != nil {
			return err
		}
		msg := "User enabled."
		if disabled {
			msg = "User disabled; their sessions have ended and their API tokens no longer work."
		}
		return app.Redirect(w, r, "/users", msg)
	}
}
