// Package tokens is the API tokens page: create a token for the CLI (the
// secret is shown once and stored hashed), list and revoke. Admins see and
// revoke their organisation's tokens, everyone else their own.
package tokens

import (
	"net/http"
	"strconv"

	"github.com/bosunhq/bosun/cloud/internal/fleet"
	"github.com/bosunhq/bosun/cloud/internal/web/app"
)

// Routes are the tokens page and its forms.
func Routes(svc *fleet.Service) []app.Route {
	h := &handler{svc: svc}
	return []app.Route{
		{Pattern: "GET /tokens", Role: fleet.RoleViewer, Handler: h.list},
		{Pattern: "POST /tokens", Role: fleet.RoleViewer, Handler: h.create},
		{Pattern: "POST /tokens/{id}/revoke", Role: fleet.RoleViewer, Handler: h.revoke},
	}
}

type handler struct{ svc *fleet.Service }

func (h *handler) model(r *http.Request) (Model, error) {
	m := Model{Page: app.NewPage(r, "API tokens", "tokens")}
	var err error
	m.Tokens, err = h.svc.ListTokens(r.Context(), app.Actor(r))
	return m, err
}

func (h *handler) list(w http.ResponseWriter, r *http.Request) error {
	m, err := h.model(r)
	if err != nil {
		return err
	}
	return app.Render(w, r, View(m))
}

func (h *handler) create(w http.ResponseWriter, r *http.Request) error {
	name := r.PostFormValue("name")
	secret, tok, err := h.svc.CreateToken(r.Context(), app.Actor(r), name)
	if err != nil {
		return err
	}
	m, err := h.model(r)
	if err != nil {
		return err
	}
	m.Secret, m.Created = secret, &tok
	return app.Render(w, r, View(m))
}

func (h *handler) revoke(w http.ResponseWriter, r *http.Request) error {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		return app.Errorf(http.StatusNotFound, "Not found.")
	}
	if err := h.svc.RevokeToken(r.Context(), app.Actor(r), id); err != nil {
		return err
	}
	return app.Redirect(w, r, "/tokens", "Token revoked.")
}
