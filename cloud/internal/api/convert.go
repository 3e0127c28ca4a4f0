package api

import (
	"encoding/base64"

	"github.com/bosunhq/bosun/cloud/internal/api/wire"
	"github.com/bosunhq/bosun/cloud/internal/fleet"
)

// The API answers with its own types (package wire) so that a change inside
// fleet never changes the API by accident.

func toDevice(d fleet.Device) wire.Device {
	tags := d.Tags
	if tags == nil {
		tags = []string{}
	}
	return wire.Device{
		ID: d.ID, OrgID: d.OrgID, Status: d.Status, Fingerprint: d.Fingerprint, Alg: d.Alg,
		KeyChanged: d.KeyChanged, Online: d.Online, Replica: d.Replica,
		FirstSeen: d.FirstSeen, LastSeen: d.LastSeen, Tags: tags,
		Attributes: d.Attributes, Inventory: d.Inventory,
	}
}

func toKeySet(k fleet.KeySet) wire.KeySet {
	return wire.KeySet{
		ID: k.ID, DeviceID: k.DeviceID, Fingerprint: k.Fingerprint, Alg: k.Alg, Status: k.Status,
		KeyChanged: k.KeyChanged, PublicKey: base64.StdEncoding.EncodeToString(k.PublicKeyDER),
		Attributes: k.Attributes, FirstSeen: k.FirstSeen, LastSeen: k.LastSeen,
	}
}

func toCall(c fleet.Call) wire.Call {
	out := wire.Call{
		ID: c.ID, DeviceID: c.DeviceID, Method: c.Method, Params: c.Params, Status: c.Status,
		Result: c.Result, Actor: c.Actor, CreatedAt: c.CreatedAt,
		SentAt: c.SentAt, FinishedAt: c.FinishedAt, ExpiresAt: c.ExpiresAt, DurationMS: c.DurationMS,
	}
	if string(c.Params) == "null" { // the same as none
		out.Params = nil
	}
	if c.Error != nil {
		if string(c.Result) == "null" { // a failed call has no result
			out.Result = nil
		}
		out.Error = &wire.RPCError{Code: c.Error.Code, Message: c.Error.Message, Data: c.Error.Data}
	}
	return out
}

func toAuditEntry(e fleet.AuditEntry) wire.AuditEntry {
	return wire.AuditEntry{ID: e.ID, Actor: e.Actor, Action: e.Action, Target: e.Target, Outcome: e.Outcome, Detail: e.Detail, At: e.At}
}

func toEvent(e fleet.Event) wire.Event {
	return wire.Event{Type: e.Type, DeviceID: e.DeviceID, CallID: e.CallID, At: e.At, Data: e.Data}
}

func toToken(t fleet.Token) wire.Token {
	return wire.Token{ID: t.ID, Name: t.Name, UserID: t.UserID, CreatedAt: t.CreatedAt, LastUsed: t.LastUsed, Revoked: t.Revoked}
}
