package hub

import (
	"context"
	"log/slog"

	"github.com/bosunhq/bosun/cloud/internal/fleet"
	"github.com/bosunhq/bosun/pkg/envelope"
	"github.com/bosunhq/bosun/pkg/jsonrpc"
	"github.com/bosunhq/bosun/pkg/rpcproto"
	"github.com/bosunhq/bosun/pkg/session"
	"github.com/coder/websocket"
)

// serve runs one websocket from handshake to teardown.
func (h *Hub) serve(c *websocket.Conn, remote string) {
	sid := session.NewID()
	log := h.log.With("remote_addr", remote, "session", sid)
	hs := h.beginHandshake()
	defer hs.end(HandshakeError)
	refused := func(herr *session.HandshakeError) {
		hs.end(HandshakeInvalid)
		args := []any{"remote_addr", remote, "session", sid}
		if herr.Err != nil {
			args = append(args, "err", herr.Err)
		}
		h.reject(herr.Reason, args...)
		if herr.Code != 0 {
			c.Close(herr.Code, herr.Text)
		}
		c.CloseNow()
	}
	err := session.WriteChallenge(h.baseCtx, c, h.sealer, sid,
		rpcproto.AuthChallengeParams{CloudID: h.svc.CloudID(), Replica: h.svc.Replica()}, h.opts.WriteTimeout)
	if err != nil {
		refused(&session.HandshakeError{Reason: "handshake_write", Err: err})
		return
	}
	frame, herr := session.ReadFirst(c, h.opts.HandshakeTimeout)
	if herr != nil {
		refused(herr)
		return
	}
	// Verifying changes nothing anywhere: the database is only touched
	// once the registration's signature holds.
	reg, herr := session.OpenRegistration(frame, session.RegistrationCheck{
		Self: h.svc.CloudID(), Session: sid, Skew: h.opts.Skew, MaxSize: h.opts.MaxMessageSize,
	})
	if herr != nil {
		refused(herr)
		return
	}
	ds := &deviceSession{hub: h, remote: remote, deviceID: reg.Params.DeviceID, fingerprint: reg.Fingerprint}
	ds.served = fleet.NewServed(ds.kickDrain)
	ds.ctx, ds.cancel = context.WithCancel(h.baseCtx)
	defer ds.cancel()
	ds.peer, err = session.New(session.Options{
		Conn: c, Sealer: h.sealer, Self: h.svc.CloudID(), Peer: ds.deviceID, PeerKey: reg.PublicKey,
		Session: sid, Direction: envelope.CloudToDevice, Window: reg.Window, NextSeq: 2,
		Handler: ds.handle, MaxConcurrent: h.opts.MaxConcurrent, SendQueue: h.opts.SendQueue,
		WriteTimeout: h.opts.WriteTimeout, PingInterval: h.opts.PingInterval, PingTimeout: h.opts.PingTimeout,
		Skew: h.opts.Skew, MaxMessageSize: h.opts.MaxMessageSize, Logger: log.With("device_id", ds.deviceID),
		OnReject: func(reason string, err error) { h.count(reason) },
	})
	if err != nil {
		log.Error("starting session", "err", err)
		c.Close(websocket.StatusInternalError, "internal error")
		return
	}
	adm, err := h.svc.Admit(ds.ctx, fleet.Registration{Params: reg.Params, PublicKeyDER: reg.PublicKeyDER,
		Fingerprint: reg.Fingerprint, Alg: reg.Alg}, remote)
	if err != nil {
		log.Error("registering device", "device_id", ds.deviceID, "err", err)
		c.Close(websocket.StatusInternalError, "internal error")
		return
	}
	ds.orgID, ds.keySetID = adm.OrgID, adm.KeySetID
	log = log.With("device_id", ds.deviceID, "fingerprint", reg.Fingerprint)
	if adm.Refused || adm.Status == rpcproto.StatusRejected {
		log.Info("registration refused", "reason", adm.Reason, "status", adm.Status)
		h.count("registration_" + adm.Reason)
		hs.end(admissionOutcome(adm))
		ds.refuse(reg.RequestID, adm)
		return
	}
	ds.accepted.Store(adm.Status == rpcproto.StatusAccepted)
	if !ds.start(reg.RequestID, adm, log) {
		hs.end(HandshakeAborted)
		return
	}
	hs.end(admissionOutcome(adm))
	ds.run()
}

// refuse answers the registration and closes the connection with the
// admission's code once the answer is written (or could not be).
func (ds *deviceSession) refuse(reqID []byte, adm fleet.Admission) {
	code := websocket.StatusCode(adm.CloseCode)
	if code == 0 {
		code = rpcproto.CloseRejected
	}
	var payload []byte
	switch {
	case adm.RPCError != nil:
		payload = response(reqID, nil, adm.RPCError)
	case adm.Status == "":
		e := fleet.RPCError(rpcproto.CodeTryLater)
		e.Data = mustMarshal(map[string]string{"reason": adm.Reason})
		payload = response(reqID, nil, e)
	default:
		payload = response(reqID, rpcproto.RegisterResult{Status: adm.Status, Fingerprint: ds.fingerprint}, nil)
	}
	ds.peer.SendWritten(ds.ctx, payload, func(error) { ds.peer.Close(code, adm.Reason) })
	ds.peer.Run(ds.ctx)
}

func response(id []byte, result any, rpcErr *jsonrpc.Error) []byte {
	r := jsonrpc.Response{JSONRPC: jsonrpc.Version, ID: id, Error: rpcErr}
	if rpcErr == nil {
		r.Result = mustMarshal(result)
	}
	return mustMarshal(r)
}

// start makes this the device's live session: it is recorded (evicting
// any older one on any replica), subscribed to its call and drain subjects
// and answered (the answer is queued first, so it is the cloud's seq 2).
// It returns false when the connection ended here.
func (ds *deviceSession) start(reqID []byte, adm fleet.Admission, log *slog.Logger) bool {
	h := ds.hub
	var err error
	ds.version, err = h.svc.SessionStarted(ds.ctx, ds.orgID, ds.deviceID)
	if err != nil {
		log.Error("starting session", "err", err)
		ds.peer.Close(websocket.StatusInternalError, "internal error")
		ds.peer.Run(ds.ctx)
		return false
	}
	if !h.register(ds) {
		ds.peer.Close(rpcproto.CloseEvicted, "a newer session took over")
		ds.peer.Run(ds.ctx)
		h.svc.SessionEnded(ds.ctx, ds.orgID, ds.deviceID, ds.version)
		return false
	}
	result := rpcproto.RegisterResult{Status: adm.Status, Fingerprint: ds.fingerprint, KeyChanged: adm.KeyChanged}
	if err := ds.peer.Send(ds.ctx, response(reqID, result, nil)); err != nil {
		log.Info("answering registration", "err", err)
	}
	// The subscriptions feed the hub's shared inbox (see dispatch): no
	// goroutine per subscription.
	for _, subj := range []string{fleet.SubjectCall(ds.orgID, ds.deviceID), fleet.SubjectDrain(ds.orgID, ds.deviceID)} {
		sub, err := h.nc.ChanQueueSubscribe(subj, fleet.QueueHolder, h.inbox)
		if err != nil {
			log.Error("subscribing", "subject", subj, "err", err)
			ds.peer.Close(websocket.StatusInternalError, "internal error")
			break
		}
		ds.subs = append(ds.subs, sub)
	}
	log.Info("device session started", "status", adm.Status, "key_changed", adm.KeyChanged, "session_version", ds.version)
	return true
}
