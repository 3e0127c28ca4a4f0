package api

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"

	"github.com/bosunhq/bosun/cloud/internal/api/wire"
	"github.com/bosunhq/bosun/cloud/internal/fleet"
	"github.com/bosunhq/bosun/pkg/keys"
)

// deviceStatuses are the values of Device.Status a filter may name.
var deviceStatuses = []string{"pending", "accepted", "rejected", "preauthorized", "decommissioned"}

// GET /devices?status=&online=&tag=&q=&limit=&offset=
func (h *handler) listDevices(w http.ResponseWriter, r *http.Request, a fleet.Actor) error {
	q, err := parseQuery(r, "status", "online", "tag", "q", "limit", "offset")
	if err != nil {
		return err
	}
	var f fleet.DeviceFilter
	if f.Status, err = q.oneOf("status", deviceStatuses...); err != nil {
		return err
	}
	if f.Online, err = q.boolPtr("online"); err != nil {
		return err
	}
	if f.Limit, err = q.intIn("limit", 50, 1, maxLimit); err != nil {
		return err
	}
	if f.Offset, err = q.intIn("offset", 0, 0, 1<<31-1); err != nil {
		return err
	}
	f.Tag, f.Text = q.str("tag"), q.str("q")
	devs, total, err := h.svc.ListDevices(r.Context(), a, f)
	if err != nil {
		return err
	}
	out := wire.DeviceList{Items: make([]wire.Device, 0, len(devs)), Total: total, Limit: f.Limit, Offset: f.Offset}
	for _, d := range devs {
		out.Items = append(out.Items, toDevice(d))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// GET /devices/{id}
func (h *handler) getDevice(w http.ResponseWriter, r *http.Request, a fleet.Actor) error {
	if _, err := parseQuery(r); err != nil {
		return err
	}
	return h.writeDevice(w, r, a, r.PathValue("id"))
}

func (h *handler) writeDevice(w http.ResponseWriter, r *http.Request, a fleet.Actor, id string) error {
	d, err := h.svc.GetDevice(r.Context(), a, id)
	if err != nil {
		return notFoundAs(err, "device %q not found", id)
	}
	writeJSON(w, http.StatusOK, toDevice(d))
	return nil
}

// GET /devices/{id}/keys
func (h *handler) listKeys(w http.ResponseWriter, r *http.Request, a fleet.Actor) error {
	if _, err := parseQuery(r); err != nil {
		return err
	}
	id := r.PathValue("id")
	ks, err := h.svc.ListKeySets(r.Context(), a, id)
	if err != nil {
		return notFoundAs(err, "device %q not found", id)
	}
	out := wire.KeySetList{Items: make([]wire.KeySet, 0, len(ks))}
	for _, k := range ks {
		out.Items = append(out.Items, toKeySet(k))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// POST /devices/{id}/accept {"fingerprint":"SHA256:..."} accepts the named
// pending key (no body or no fingerprint: the only pending key; with
// several, ambiguous_key) and answers the device as it is afterwards with
// the fingerprint accepted.
func (h *handler) accept(w http.ResponseWriter, r *http.Request, a fleet.Actor) error {
	if _, err := parseQuery(r); err != nil {
		return err
	}
	var req wire.AcceptRequest
	if err := decodeJSON(w, r, h.opts.MaxBody, &req, true); err != nil {
		return err
	}
	id := r.PathValue("id")
	k, err := h.svc.AcceptKey(r.Context(), a, id, req.Fingerprint)
	if err != nil {
		return notFoundAs(err, "device %q not found", id)
	}
	d, err := h.svc.GetDevice(r.Context(), a, id)
	if err != nil {
		return notFoundAs(err, "device %q not found", id)
	}
	writeJSON(w, http.StatusOK, wire.AcceptResponse{Device: toDevice(d), AcceptedFingerprint: k.Fingerprint})
	return nil
}

// POST /devices/{id}/reject and /decommission take no body (or {}) and
// answer the device as it is afterwards.

func (h *handler) reject(w http.ResponseWriter, r *http.Request, a fleet.Actor) error {
	return h.transition(w, r, a, h.svc.Reject)
}

func (h *handler) decommission(w http.ResponseWriter, r *http.Request, a fleet.Actor) error {
	return h.transition(w, r, a, h.svc.Decommission)
}

func (h *handler) transition(w http.ResponseWriter, r *http.Request, a fleet.Actor, op func(context.Context, fleet.Actor, string) error) error {
	if _, err := parseQuery(r); err != nil {
		return err
	}
	var empty struct{}
	if err := decodeJSON(w, r, h.opts.MaxBody, &empty, true); err != nil {
		return err
	}
	id := r.PathValue("id")
	if err := op(r.Context(), a, id); err != nil {
		return notFoundAs(err, "device %q not found", id)
	}
	return h.writeDevice(w, r, a, id)
}

// PUT /devices/{id}/tags {"tags":[...]} replaces the device's tags.
func (h *handler) setTags(w http.ResponseWriter, r *http.Request, a fleet.Actor) error {
	if _, err := parseQuery(r); err != nil {
		return err
	}
	var req wire.TagsRequest
	if err := decodeJSON(w, r, h.opts.MaxBody, &req, false); err != nil {
		return err
	}
	if req.Tags == nil {
		return invalid(`field "tags" is required (an empty list removes every tag)`)
	}
	for _, t := range *req.Tags {
		if strings.TrimSpace(t) == "" {
			return invalid("tags must not be empty strings")
		}
	}
	id := r.PathValue("id")
	if err := h.svc.SetTags(r.Context(), a, id, *req.Tags); err != nil {
		return notFoundAs(err, "device %q not found", id)
	}
	return h.writeDevice(w, r, a, id)
}

// POST /devices/{id}/preauthorize {"public_key": PEM or base64 DER}
func (h *handler) preauthorize(w http.ResponseWriter, r *http.Request, a fleet.Actor) error {
	if _, err := parseQuery(r); err != nil {
		return err
	}
	var req wire.PreauthorizeRequest
	if err := decodeJSON(w, r, h.opts.MaxBody, &req, false); err != nil {
		return err
	}
	der, err := parsePublicKey(req.PublicKey)
	if err != nil {
		return err
	}
	id := r.PathValue("id")
	if err := h.svc.Preauthorize(r.Context(), a, id, der); err != nil {
		return notFoundAs(err, "device %q not found", id)
	}
	return h.writeDevice(w, r, a, id)
}

// POST /devices/preauthorize {"devices":[{"id":..., "public_key":...}]}:
// 1 to fleet.MaxPreauthorizeBatch devices; one bad entry refuses them all
// and changes nothing.
func (h *handler) preauthorizeBulk(w http.ResponseWriter, r *http.Request, a fleet.Actor) error {
	if _, err := parseQuery(r); err != nil {
		return err
	}
	var req wire.PreauthorizeBulkRequest
	if err := decodeJSON(w, r, h.opts.MaxBody, &req, false); err != nil {
		return err
	}
	if len(req.Devices) == 0 || len(req.Devices) > fleet.MaxPreauthorizeBatch {
		return invalid(`field "devices": want 1 to %d entries, got %d`, fleet.MaxPreauthorizeBatch, len(req.Devices))
	}
	entries := make([]fleet.PreauthorizeEntry, len(req.Devices))
	for i, d := range req.Devices {
		der, err := parsePublicKey(d.PublicKey)
		if err != nil {
			var he *HTTPError
			if errors.As(err, &he) {
				return invalid("devices[%d] (%s): %s", i, d.ID, he.Msg)
			}
			return err
		}
		entries[i] = fleet.PreauthorizeEntry{DeviceID: d.ID, PublicKeyDER: der}
	}
	fps, err := h.svc.PreauthorizeMany(r.Context(), a, entries)
	if err != nil {
		return err
	}
	out := wire.PreauthorizeBulkResponse{Preauthorized: len(fps), Devices: make([]wire.PreauthorizedEntry, len(fps))}
	for i, fp := range fps {
		out.Devices[i] = wire.PreauthorizedEntry{ID: entries[i].DeviceID, Fingerprint: fp}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// parsePublicKey accepts a "PUBLIC KEY" PEM block or base64 (standard or
// URL alphabet, padded or not) DER SPKI, and returns the DER of a key Bosun
// can verify with (Ed25519, or RSA of at least 2048 bits).
func parsePublicKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, invalid(`field "public_key" is required`)
	}
	if strings.HasPrefix(s, "-----BEGIN") {
		pub, err := keys.ParsePublicPEM([]byte(s))
		if err != nil {
			return nil, invalid("public_key: not a usable PUBLIC KEY PEM block (Ed25519, or RSA of at least %d bits)", keys.MinRSABits)
		}
		der, err := keys.PublicDER(pub)
		if err != nil {
			return nil, invalid("public_key: unsupported key")
		}
		return der, nil
	}
	var der []byte
	var err error
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if der, err = enc.DecodeString(s); err == nil {
			break
		}
	}
	if err != nil {
		return nil, invalid("public_key: neither a PEM block nor base64 DER")
	}
	if _, err := keys.ParsePublicDER(der); err != nil {
		return nil, invalid("public_key: not a usable DER SPKI key (Ed25519, or RSA of at least %d bits)", keys.MinRSABits)
	}
	return der, nil
}

// GET /devices/{id}/ota/reports[?limit=N] lists the device's ota.status
// reports, newest first.
func (h *handler) listOTAReports(w http.ResponseWriter, r *http.Request, a fleet.Actor) error {
	q, err := parseQuery(r, "limit")
	if err != nil {
		return err
	}
	limit, err := q.intIn("limit", 50, 1, maxLimit)
	if err != nil {
		return err
	}
	id := r.PathValue("id")
	rs, err := h.svc.OTAReports(r.Context(), a, id, limit)
	if err != nil {
		return notFoundAs(err, "device %q not found", id)
	}
	out := wire.OTAReportList{Items: make([]wire.OTAReport, 0, len(rs))}
	for _, x := range rs {
		out.Items = append(out.Items, wire.OTAReport{DeviceID: x.DeviceID, Seq: x.Seq, UpdateID: x.UpdateID, Target: x.Target,
			Status: x.Status, Percent: x.Percent, Reason: x.Reason, Slot: x.Slot, ReportedAt: x.ReportedAt, ReceivedAt: x.ReceivedAt})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
