package fleet

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/bosunhq/bosun/cloud/internal/store"
	"github.com/bosunhq/bosun/pkg/jsonrpc"
	"github.com/bosunhq/bosun/pkg/rpcproto"
)

// This file is the one registration decision: Admit answers a verified
// registration.register with accept, pending or refuse, and the reason.
// The decision and what it writes happen in one transaction (store.Admit),
// with the limits checked before anything is inserted, so that a refused
// registration leaves no row and concurrent registrations cannot overshoot
// a limit.

// Reasons of an Admission. They are stable: the hub counts refusals by
// them and logs them, and a refusal's close frame carries its reason.
//
//	reason                         status    refused  close  when
//	accepted                       accepted  no       -      the key is accepted
//	preauthorized                  accepted  no       -      the key was preauthorised; it is accepted now and any
//	                                                         other accepted key of the device is revoked
//	pending                        pending   no       -      the key is pending: known, or new and stored now
//	                                                         (key_changed when the device had other keys)
//	key_rejected                   rejected  yes      4003   an operator rejected or revoked the key
//	unknown_enrollment             ""        yes      4003   no organisation has the enrollment token; answered
//	                                                         with the JSON-RPC error -32008 (unauthorized)
//	key_change_while_online        ""        yes      1013   a new key while the device is online (with any key), or
//	                                                         a pending key while it is online with its accepted
//	                                                         one: it must not take the session over; not stored
//	pending_keys_limit             ""        yes      1013   a new key, and the device has MaxPendingKeys pending
//	                                                         key sets already; not stored
//	pending_limit_address          ""        yes      1013   MaxPendingPerAddr live pending sessions come from the
//	                                                         registration's address already
//	pending_limit_org              ""        yes      1013   the organisation holds MaxPendingPerOrg live pending
//	                                                         sessions already
//	pending_devices_limit_address  ""        yes      1013   a new device, and the address created
//	                                                         MaxNewPendingPerAddr unreviewed devices in the last hour
//	pending_devices_limit_org      ""        yes      1013   a new device, and the organisation has
//	                                                         MaxPendingDevices unreviewed devices
//
// A refusal writes nothing (not even last_seen); its Status is "" when the
// registration is not answered with a result: nothing about the device
// changed, so the connection just ends, with the close code and the reason
// as its text, and the device tries again later. The checks run in the
// order of the table, from key_rejected down.
const (
	ReasonAccepted                   = "accepted"
	ReasonPreauthorized              = "preauthorized"
	ReasonPending                    = "pending"
	ReasonKeyRejected                = "key_rejected"
	ReasonUnknownEnrollment          = "unknown_enrollment"
	ReasonKeyChangeWhileOnline       = "key_change_while_online"
	ReasonPendingKeysLimit           = "pending_keys_limit"
	ReasonPendingLimitAddress        = "pending_limit_address"
	ReasonPendingLimitOrg            = "pending_limit_org"
	ReasonPendingDevicesLimitAddress = "pending_devices_limit_address"
	ReasonPendingDevicesLimitOrg     = "pending_devices_limit_org"
)

// CloseTryAgainLater is websocket close code 1013 (RFC 6455's registry:
// try again later), for a registration refused by a limit.
const CloseTryAgainLater = rpcproto.CloseTryAgainLater

// newPendingPeriod is the period MaxNewPendingPerAddr counts over.
const newPendingPeriod = time.Hour

// pruneBatch bounds how many devices one Sweep looks at for pruning.
const pruneBatch = 1000

// Admission is the decision on one registration.
type Admission struct {
	// Status is what registration.register answers: rpcproto.StatusAccepted,
	// StatusPending or StatusRejected; "" when the registration is refused
	// without a result (see the reasons table).
	Status string
	// Refused means no session: the connection ends after the answer, if
	// any, with CloseCode.
	Refused bool
	// CloseCode is the websocket close code when Refused:
	// rpcproto.CloseRejected (4003) for a rejected key or an unknown
	// enrollment token, CloseTryAgainLater (1013) for a limit.
	CloseCode int
	// Reason is one of the Reason* constants.
	Reason string
	// RPCError, when set, answers the registration instead of a result
	// (unknown_enrollment: rpcproto.CodeUnauthorized).
	RPCError *jsonrpc.Error
	// OrgID is the device's organisation; 0 when the enrollment token is
	// unknown.
	OrgID int64
	// KeySetID is the presented key set; 0 when it is new and was not
	// stored.
	KeySetID int64
	// Fingerprint is the presented key's.
	Fingerprint string
	// KeyChanged: the key is a new key of a device that had another.
	KeyChanged bool
}

// Admit decides on a registration whose signature the hub has verified
// with the key it presents, and records it: the device and key set when
// they are new, the address (the IP of remoteAddr, port stripped, an IPv6
// address counted as its /64) and the key the session uses. It is the whole
// decision: after an admission that is not Refused the hub calls
// SessionStarted, and the session counts as a live pending session while
// its key is pending. An error means the registration could not be decided
// (the database failed): close the connection as an internal error.
// Publishes device.pending, device.key_changed or device.accepted.
func (s *Service) Admit(ctx context.Context, r Registration, remoteAddr string) (Admission, error) {
	id := r.Params.DeviceID
	adm := Admission{Fingerprint: r.Fingerprint}
	if !ValidDeviceID(id) {
		return adm, fmt.Errorf("%w: device id: want %s", ErrInvalid, rpcproto.DeviceIDRule)
	}
	org := s.defOrg
	if tok := r.Params.EnrollmentToken; tok != "" {
		o, err := s.st.OrgByEnrollmentToken(ctx, tok)
		if errors.Is(err, store.ErrNotFound) {
			adm.Refused, adm.CloseCode, adm.Reason = true, rpcproto.CloseRejected, ReasonUnknownEnrollment
			adm.RPCError = rpcErr(rpcproto.CodeUnauthorized)
			return adm, nil
		}
		if err != nil {
			return adm, fmt.Errorf("loading the organisation of an enrollment token: %w", err)
		}
		org = o.ID
	}
	// Almost every registration is a reconnect of an accepted device with
	// its accepted key: one statement records it (the rule below would
	// say ReasonAccepted, AdmitKnown, and publish nothing).
	if res, ok, err := s.st.AdmitAccepted(ctx, id, r.Fingerprint, sourceAddr(remoteAddr)); err != nil {
		return adm, err
	} else if ok {
		adm.Status, adm.Reason, adm.OrgID, adm.KeySetID, adm.KeyChanged = rpcproto.StatusAccepted, ReasonAccepted, res.OrgID, res.KeySetID, res.KeyChanged
		return adm, nil
	}
	var reason string
	res, err := s.st.Admit(ctx, store.AdmitInput{DeviceID: id, OrgID: org, PublicKeyDER: r.PublicKeyDER,
		Fingerprint: r.Fingerprint, Alg: r.Alg, Attributes: r.Params.Attributes, Addr: sourceAddr(remoteAddr)},
		func(ctx context.Context, st *store.AdmitState) (store.AdmitVerdict, error) {
			v, why, err := s.decide(ctx, st)
			reason = why
			return v, err
		})
	if err != nil {
		return adm, err
	}
	adm.Reason, adm.OrgID, adm.KeySetID, adm.KeyChanged = reason, res.OrgID, res.KeySetID, res.KeyChanged
	switch reason {
	case ReasonAccepted, ReasonPreauthorized:
		adm.Status = rpcproto.StatusAccepted
	case ReasonPending:
		adm.Status = rpcproto.StatusPending
	case ReasonKeyRejected:
		adm.Status, adm.Refused, adm.CloseCode, adm.KeyChanged = rpcproto.StatusRejected, true, rpcproto.CloseRejected, false
	default:
		adm.Refused, adm.CloseCode = true, CloseTryAgainLater
	}
	data := mustJSON(map[string]string{"fingerprint": r.Fingerprint})
	switch {
	case res.NewKey && res.KeyChanged:
		s.log.Warn("device presented a new key", "device_id", id, "fingerprint", r.Fingerprint)
		s.publish(Event{Type: EventDeviceKeyChanged, OrgID: res.OrgID, DeviceID: id, Data: data})
	case res.NewKey:
		s.publish(Event{Type: EventDevicePending, OrgID: res.OrgID, DeviceID: id, Data: data})
	case res.Verdict == store.AdmitPromote:
		s.publish(Event{Type: EventDeviceAccepted, OrgID: res.OrgID, DeviceID: id, Data: data})
	}
	return adm, nil
}

// decide is the registration rule; see the reasons table.
func (s *Service) decide(ctx context.Context, st *store.AdmitState) (store.AdmitVerdict, string, error) {
	refuse := func(reason string) (store.AdmitVerdict, string, error) { return store.AdmitRefuse, reason, nil }
	if k := st.Key; k != nil {
		switch k.Status {
		case store.KeyAccepted:
			return store.AdmitKnown, ReasonAccepted, nil
		case store.KeyPreauthorized:
			return store.AdmitPromote, ReasonPreauthorized, nil
		case store.KeyPending:
			if st.Online && st.HasAccepted {
				return refuse(ReasonKeyChangeWhileOnline)
			}
			if why, err := s.pendingSessionSlot(ctx, st); err != nil || why != "" {
				return store.AdmitRefuse, why, err
			}
			return store.AdmitKnown, ReasonPending, nil
		default: // rejected, revoked
			return refuse(ReasonKeyRejected)
		}
	}
	// A new key. A decommissioned device starts over; any other known
	// device gets a pending key set flagged key_changed, never a silent
	// replacement.
	if st.Exists && !st.Decommissioned {
		// Online with any key, accepted or pending: a new key must not
		// take the session over, or knowing a device id would be enough
		// to knock it offline.
		if st.Online {
			return refuse(ReasonKeyChangeWhileOnline)
		}
		if st.PendingKeys >= s.opts.MaxPendingKeys {
			return refuse(ReasonPendingKeysLimit)
		}
	}
	if why, err := s.pendingSessionSlot(ctx, st); err != nil || why != "" {
		return store.AdmitRefuse, why, err
	}
	if !st.Exists {
		n, err := st.NewUnreviewedFromAddr(ctx, newPendingPeriod)
		if err != nil {
			return store.AdmitRefuse, "", err
		}
		if n >= s.opts.MaxNewPendingPerAddr {
			return refuse(ReasonPendingDevicesLimitAddress)
		}
		if n, err = st.UnreviewedInOrg(ctx); err != nil {
			return store.AdmitRefuse, "", err
		}
		if n >= s.opts.MaxPendingDevices {
			return refuse(ReasonPendingDevicesLimitOrg)
		}
	}
	return store.AdmitNew, ReasonPending, nil
}

// pendingSessionSlot returns the reason a registration may not hold one
// more live pending session, or "" when it may. The address is checked
// first, so that a flood from one address is refused for what it is and
// leaves the organisation's slots to everyone else.
func (s *Service) pendingSessionSlot(ctx context.Context, st *store.AdmitState) (string, error) {
	n, err := st.LivePendingFromAddr(ctx)
	if err != nil {
		return "", err
	}
	if n >= s.opts.MaxPendingPerAddr {
		return ReasonPendingLimitAddress, nil
	}
	if n, err = st.LivePendingInOrg(ctx); err != nil {
		return "", err
	}
	if n >= s.opts.MaxPendingPerOrg {
		return ReasonPendingLimitOrg, nil
	}
	return "", nil
}

// sourceAddr is what the per-address limits count by: the IP of remote
// (host:port, or a bare IP), without port and zone, an IPv4-mapped IPv6
// address as IPv4, and an IPv6 address as its /64, the block one host
// usually has to itself. Anything unparseable is used as it is.
func sourceAddr(remote string) string {
	host := remote
	if h, _, err := net.SplitHostPort(remote); err == nil {
		host = h
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	a = a.WithZone("").Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}

// prunePending deletes registrations no operator ever decided on once they
// were not seen for PendingTTL (see store.PrunePending). Sweep calls it.
func (s *Service) prunePending(ctx context.Context) error {
	p, err := s.st.PrunePending(ctx, s.opts.PendingTTL, pruneBatch)
	if err != nil {
		return err
	}
	if len(p.KeySets) > 0 || len(p.Devices) > 0 {
		s.log.Info("pruned stale pending registrations", "key_sets", len(p.KeySets), "devices", len(p.Devices),
			"pending_ttl", s.opts.PendingTTL.String())
	}
	return nil
}
