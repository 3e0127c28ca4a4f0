package session

import (
	"bytes"
	"context"
	"crypto"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/bosunhq/bosun/pkg/envelope"
	"github.com/bosunhq/bosun/pkg/jsonrpc"
	"github.com/bosunhq/bosun/pkg/keys"
	"github.com/bosunhq/bosun/pkg/rpcproto"
	"github.com/coder/websocket"
)

// The handshake, both sides (docs/protocol.md §6):
//
//	cloud  → device  auth.challenge       cloud_to_device seq 1, audience "*", a fresh session
//	device → cloud   registration.register device_to_cloud seq 1, signed by the key it presents
//	cloud  → device  its answer            cloud_to_device seq 2
//
// after which both sides run a Session: the cloud with NextSeq 2 and the
// window that holds the registration, the device with the window that holds
// the challenge.

// DefaultHandshakeTimeout bounds the time from the websocket opening to a
// registered session, on both sides.
const DefaultHandshakeTimeout = 10 * time.Second

// MaxAttributes and MaxAttributeKey/MaxAttributeValue bound the identity
// attributes of a registration.
const (
	MaxAttributes     = 64
	MaxAttributeKey   = 64
	MaxAttributeValue = 1024
)

// HandshakeError is a refused handshake: Reason is a stable snake_case name
// for logs and counters, Code and Text the websocket close to send.
type HandshakeError struct {
	Reason string
	Code   websocket.StatusCode
	Text   string
	Err    error
}

func (e *HandshakeError) Error() string {
	if e.Err != nil {
		return "handshake: " + e.Reason + ": " + e.Err.Error()
	}
	return "handshake: " + e.Reason
}

func (e *HandshakeError) Unwrap() error { return e.Err }

func refuse(reason string, err error) *HandshakeError {
	return &HandshakeError{Reason: reason, Code: rpcproto.CloseProtocolViolation, Text: "handshake failed: " + reason, Err: err}
}

// ReadFirst reads one frame of the handshake, at most until timeout. When
// the time runs out it closes the websocket with CloseProtocolViolation
// "handshake timeout" (a close frame, not just a cut TCP connection) and
// returns a HandshakeError with reason handshake_timeout. A frame over the
// read limit has been answered with 1009 by the websocket library.
func ReadFirst(conn *websocket.Conn, timeout time.Duration) ([]byte, *HandshakeError) {
	if timeout <= 0 {
		timeout = DefaultHandshakeTimeout
	}
	closed := make(chan struct{})
	t := time.AfterFunc(timeout, func() {
		defer close(closed)
		conn.Close(rpcproto.CloseProtocolViolation, "handshake timeout")
	})
	typ, frame, err := conn.Read(context.Background())
	if !t.Stop() {
		// The timer's close handshake has ended (it is bounded by the
		// library's close timeout): nothing is left running.
		<-closed
		return nil, &HandshakeError{Reason: "handshake_timeout", Err: err}
	}
	if err != nil {
		var ce websocket.CloseError
		switch {
		case IsReadLimit(err):
			return nil, &HandshakeError{Reason: "too_large", Code: websocket.StatusMessageTooBig, Text: "message too large", Err: err}
		case errors.As(err, &ce):
			return nil, &HandshakeError{Reason: "handshake_closed", Code: websocket.StatusNormalClosure, Err: err}
		}
		return nil, &HandshakeError{Reason: "handshake_read", Code: rpcproto.CloseProtocolViolation, Text: "read failed", Err: err}
	}
	if typ != websocket.MessageText {
		return nil, refuse("binary_frame", nil)
	}
	return frame, nil
}

// WriteChallenge sends the cloud's auth.challenge: sequence 1 of the
// cloud_to_device direction of session, audience "*".
func WriteChallenge(ctx context.Context, conn *websocket.Conn, sealer *envelope.Sealer, sessionID string, p rpcproto.AuthChallengeParams, timeout time.Duration) error {
	payload, err := json.Marshal(jsonrpc.Request{JSONRPC: jsonrpc.Version, Method: rpcproto.MethodAuthChallenge, Params: mustMarshal(p)})
	if err != nil {
		return err
	}
	wire, err := sealer.Seal(envelope.Header{Audience: envelope.AudienceAny, Direction: envelope.CloudToDevice, Session: sessionID, Seq: 1}, payload)
	if err != nil {
		return fmt.Errorf("sealing auth.challenge: %w", err)
	}
	if timeout <= 0 {
		timeout = DefaultWriteTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return conn.Write(ctx, websocket.MessageText, wire)
}

// Registration is a registration.register whose envelope verified with
// the key it presents (so the device holds that key).
type Registration struct {
	// Meta is the envelope's meta.
	Meta envelope.Meta
	// RequestID is the JSON-RPC id to answer.
	RequestID json.RawMessage
	// Params are the params, decoded strictly.
	Params rpcproto.RegisterParams
	// PublicKey is the presented key, PublicKeyDER its DER SPKI.
	PublicKey    crypto.PublicKey
	PublicKeyDER []byte
	// Fingerprint and Alg describe the key.
	Fingerprint string
	Alg         string
	// Window is the session's device_to_cloud replay window, holding this
	// message's sequence number.
	Window *envelope.ReplayWindow
}

// RegistrationCheck configures OpenRegistration.
type RegistrationCheck struct {
	// Self is the cloud's id: the audience.
	Self string
	// Session is the session the challenge named.
	Session string
	// Skew and MaxSize as in envelope.Opener; zero means the defaults.
	Skew    time.Duration
	MaxSize int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// OpenRegistration verifies the first frame a device sends: a
// registration.register request, in this session, whose signer is its
// device_id and whose signature verifies with the key in its params. It
// changes nothing anywhere; the caller decides what to do with it.
func OpenRegistration(frame []byte, c RegistrationCheck) (*Registration, *HandshakeError) {
	meta, payload, err := envelope.Peek(frame, c.MaxSize)
	if err != nil {
		return nil, refuse(envelope.Reason(err), err)
	}
	req, err := jsonrpc.ParseRequest(payload)
	if err != nil || req.Method != rpcproto.MethodRegister || req.IsNotification() {
		return nil, refuse("not_register", err)
	}
	var p rpcproto.RegisterParams
	if len(req.Params) == 0 {
		return nil, refuse("bad_params", errors.New("missing params"))
	}
	if err := jsonrpc.DecodeParams(req.Params, &p); err != nil {
		return nil, refuse("bad_params", err)
	}
	if !rpcproto.ValidDeviceID(p.DeviceID) {
		return nil, refuse("bad_device_id", nil)
	}
	if len(p.Attributes) > MaxAttributes {
		return nil, refuse("bad_params", fmt.Errorf("more than %d attributes", MaxAttributes))
	}
	for k, v := range p.Attributes {
		if len(k) > MaxAttributeKey || len(v) > MaxAttributeValue {
			return nil, refuse("bad_params", errors.New("attribute too long"))
		}
	}
	der, err := base64.StdEncoding.Strict().DecodeString(p.PublicKey)
	if err != nil {
		return nil, refuse("bad_public_key", err)
	}
	pub, err := keys.ParsePublicDER(der)
	if err != nil {
		return nil, refuse("bad_public_key", err)
	}
	alg, err := keys.Alg(pub)
	if err != nil {
		return nil, refuse("bad_public_key", err)
	}
	if meta.Signer != p.DeviceID {
		return nil, refuse("signer_mismatch", fmt.Errorf("signer %.64q is not device_id %q", meta.Signer, p.DeviceID))
	}
	w := envelope.NewReplayWindow(0)
	op := &envelope.Opener{
		Self: c.Self, Direction: envelope.DeviceToCloud, Session: c.Session,
		Key: func(signer string) (crypto.PublicKey, error) {
			if signer != p.DeviceID {
				return nil, envelope.ErrUnknownSigner
			}
			return pub, nil
		},
		Window: w, Skew: c.Skew, MaxSize: c.MaxSize, Now: c.Now,
	}
	opened, err := op.Open(frame)
	if err != nil {
		return nil, refuse(envelope.Reason(err), err)
	}
	if !bytes.Equal(opened.Payload, payload) {
		return nil, refuse("malformed", errors.New("payload differs from peek"))
	}
	return &Registration{Meta: opened.Meta, RequestID: req.ID, Params: p, PublicKey: pub, PublicKeyDER: der,
		Fingerprint: keys.FingerprintDER(der), Alg: alg, Window: w}, nil
}

// Challenge is a verified auth.challenge.
type Challenge struct {
	// Session is the session every later message carries.
	Session string
	// CloudID is the challenge's signer: the audience of the device's
	// messages and the only signer it accepts.
	CloudID string
	// Replica names the cloud replica (informational).
	Replica string
	// Window is the session's cloud_to_device replay window, holding the
	// challenge's sequence number.
	Window *envelope.ReplayWindow
	// Key is the trusted cloud key that signed the challenge: the only key
	// the session accepts from then on.
	Key crypto.PublicKey
}

// ChallengeCheck configures OpenChallenge.
type ChallengeCheck struct {
	// Self is the device id.
	Self string
	// CloudKey is the pinned cloud key.
	CloudKey crypto.PublicKey
	// CloudKeys are further trusted cloud keys, tried after CloudKey: during
	// a rotation of the cloud key the device trusts the old and the new.
	CloudKeys []crypto.PublicKey
	// CloudID, when not empty, is the only signer accepted.
	CloudID string
	// Skew and MaxSize as in envelope.Opener; zero means the defaults.
	Skew    time.Duration
	MaxSize int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// OpenChallenge verifies the first frame the cloud sends: an
// auth.challenge notification signed by the pinned cloud key. Nothing of it
// is trusted before the signature holds; Peek only says which session to
// verify against.
func OpenChallenge(frame []byte, c ChallengeCheck) (*Challenge, *HandshakeError) {
	meta, _, err := envelope.Peek(frame, c.MaxSize)
	if err != nil {
		return nil, refuse(envelope.Reason(err), err)
	}
	trusted := append([]crypto.PublicKey{c.CloudKey}, c.CloudKeys...)
	var (
		w      *envelope.ReplayWindow
		key    crypto.PublicKey
		opened envelope.Opened
		badSig error
	)
	// Each trusted key in turn: only a bad signature or another algorithm
	// sends Open on to the next key, and the window kept is the one of the
	// key that verified. A bad signature is the reason given when no key
	// verifies and one of them had the envelope's algorithm.
	for _, key = range trusted {
		w = envelope.NewReplayWindow(0)
		op := &envelope.Opener{
			Self: c.Self, AllowAnyAudience: true, Direction: envelope.CloudToDevice, Session: meta.Session,
			Key: func(signer string) (crypto.PublicKey, error) {
				if c.CloudID != "" && signer != c.CloudID {
					return nil, fmt.Errorf("%w: %q is not the pinned cloud %q", envelope.ErrUnknownSigner, signer, c.CloudID)
				}
				return key, nil
			},
			Window: w, Skew: c.Skew, MaxSize: c.MaxSize, Now: c.Now,
		}
		opened, err = op.Open(frame)
		if errors.Is(err, envelope.ErrBadSignature) && badSig == nil {
			badSig = err
		}
		if !errors.Is(err, envelope.ErrBadSignature) && !errors.Is(err, envelope.ErrAlgMismatch) {
			break
		}
	}
	if err != nil && badSig != nil && errors.Is(err, envelope.ErrAlgMismatch) {
		err = badSig
	}
	if err != nil {
		return nil, refuse(envelope.Reason(err), err)
	}
	if opened.Meta.Seq != 1 {
		return nil, refuse("bad_challenge", fmt.Errorf("auth.challenge has seq %d, want 1", opened.Meta.Seq))
	}
	req, err := jsonrpc.ParseRequest(opened.Payload)
	if err != nil || req.Method != rpcproto.MethodAuthChallenge || !req.IsNotification() {
		return nil, refuse("bad_challenge", errors.New("first message is not an auth.challenge notification"))
	}
	var p rpcproto.AuthChallengeParams
	if err := jsonrpc.DecodeParams(req.Params, &p); err != nil {
		return nil, refuse("bad_challenge", err)
	}
	if p.CloudID != opened.Meta.Signer {
		return nil, refuse("bad_challenge", fmt.Errorf("auth.challenge names cloud %.64q but is signed by %.64q", p.CloudID, opened.Meta.Signer))
	}
	return &Challenge{Session: opened.Meta.Session, CloudID: opened.Meta.Signer, Replica: p.Replica, Window: w, Key: key}, nil
}

func mustMarshal(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
