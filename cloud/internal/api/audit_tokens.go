package api

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/bosunhq/bosun/cloud/internal/api/wire"
	"github.com/bosunhq/bosun/cloud/internal/fleet"
)

// GET /audit?actor=&action=&target=&limit=
func (h *handler) audit(w http.ResponseWriter, r *http.Request, a fleet.Actor) error {
	q, err := parseQuery(r, "actor", "action", "target", "limit")
	if err != nil {
		return err
	}
	f := fleet.AuditFilter{Actor: q.str("actor"), Action: q.str("action"), Target: q.str("target")}
	if f.Limit, err = q.intIn("limit", 50, 1, maxLimit); err != nil {
		return err
	}
	entries, err := h.svc.AuditLog(r.Context(), a, f)
	if err != nil {
		return err
	}
	out := wire.AuditList{Items: make([]wire.AuditEntry, 0, len(entries))}
	for _, e := range entries {
		out.Items = append(out.Items, toAuditEntry(e))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// GET /tokens lists the caller's API tokens (never their secrets).
func (h *handler) listTokens(w http.ResponseWriter, r *http.Request, a fleet.Actor) error {
	if _, err := parseQuery(r); err != nil {
		return err
	}
	toks, err := h.svc.ListTokens(r.Context(), a)
	if err != nil {
		return err
	}
	out := wire.TokenList{Items: make([]wire.Token, 0, len(toks))}
	for _, t := range toks {
		out.Items = append(out.Items, toToken(t))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// POST /tokens {"name":"ci"} creates a token; its secret is in this answer
// and nowhere else.
func (h *handler) createToken(w http.ResponseWriter, r *http.Request, a fleet.Actor) error {
	if _, err := parseQuery(r); err != nil {
		return err
	}
	var req wire.CreateTokenRequest
	if err := decodeJSON(w, r, h.opts.MaxBody, &req, false); err != nil {
		return err
	}
	if strings.TrimSpace(req.Name) == "" || len(req.Name) > maxTokenName {
		return invalid(`field "name" is required, at most %d bytes`, maxTokenName)
	}
	secret, tok, err := h.svc.CreateToken(r.Context(), a, req.Name)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, wire.CreateTokenResponse{Secret: secret, Token: toToken(tok)})
	return nil
}

// DELETE /tokens/{id} revokes a token.
func (h *handler) revokeToken(w http.ResponseWriter, r *http.Request, a fleet.Actor) error {
	if _, err := parseQuery(r); err != nil {
		return err
	}
	raw := r.PathValue("id")
	id, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || id <= 0 {
		return invalid("token id must be a positive integer")
	}
	if err := h.svc.RevokeToken(r.Context(), a, id); err != nil {
		return notFoundAs(err, "token %d not found", id)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
