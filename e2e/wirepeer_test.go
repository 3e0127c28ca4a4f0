package e2e_test

// A hostile device for TestHostileWire: a websocket client written by hand
// on a raw TCP connection (so it can send what no library would: a frame
// header claiming terabytes, half a frame, nothing at all, a frame it
// never finishes), and envelopes sealed from any meta with any key (so it
// can lie about every field and sign the lie).

import (
	"bufio"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bosunhq/bosun/pkg/envelope"
	"github.com/bosunhq/bosun/pkg/jsonrpc"
	"github.com/bosunhq/bosun/pkg/keys"
	"github.com/bosunhq/bosun/pkg/rpcproto"
	"github.com/bosunhq/bosun/pkg/session"
)

// Websocket opcodes (RFC 6455 §5.2).
const (
	opText   = 0x1
	opBinary = 0x2
	opClose  = 0x8
	opPing   = 0x9
	opPong   = 0xA
)

// closeError is the close frame the cloud sent: its code and reason.
type closeError struct {
	Code   int
	Reason string
}

func (e *closeError) Error() string { return fmt.Sprintf("closed %d %q", e.Code, e.Reason) }

// errCut is a connection that ended without a close frame.
var errCut = errors.New("connection cut without a close frame")

// rawWS is the client end of one websocket on a plain TCP connection.
type rawWS struct {
	c  net.Conn
	br *bufio.Reader
}

// dialOptions tune dialWS.
type dialOptions struct {
	// Local is the source address (an address of 127.0.0.0/8). Empty means
	// the kernel's choice.
	Local string
	// NoSubprotocol leaves out Sec-WebSocket-Protocol.
	NoSubprotocol bool
	// RecvBuf, when positive, sets SO_RCVBUF before connecting (a small
	// one makes a peer that never reads fill up fast).
	RecvBuf int
}

// dialWS opens a websocket to wsURL (ws://host:port/path) by hand.
func dialWS(ctx context.Context, wsURL string, o dialOptions) (*rawWS, error) {
	u, err := url.Parse(wsURL)
	if err != nil {
		return nil, err
	}
	d := net.Dialer{Timeout: 5 * time.Second}
	if o.Local != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(o.Local)}
	}
	if o.RecvBuf > 0 {
		d.Control = func(_, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, o.RecvBuf)
			})
			if err != nil {
				return err
			}
			return serr
		}
	}
	c, err := d.DialContext(ctx, "tcp", u.Host)
	if err != nil {
		return nil, err
	}
	var nonce [16]byte
	rand.Read(nonce[:])
	key := base64.StdEncoding.EncodeToString(nonce[:])
	req := "GET " + u.RequestURI() + " HTTP/1.1\r\nHost: " + u.Host + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: " + key + "\r\nSec-WebSocket-Version: 13\r\n"
	if !o.NoSubprotocol {
		req += "Sec-WebSocket-Protocol: " + rpcproto.WebsocketSubprotocol + "\r\n"
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, req+"\r\n"); err != nil {
		c.Close()
		return nil, err
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		c.Close()
		return nil, err
	}
	resp.Body.Close()
	sum := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Sec-WebSocket-Accept") != base64.StdEncoding.EncodeToString(sum[:]) {
		c.Close()
		return nil, fmt.Errorf("upgrade: %s", resp.Status)
	}
	c.SetDeadline(time.Time{})
	return &rawWS{c: c, br: br}, nil
}

// writeHeader writes a client frame header (FIN set, masked) announcing n
// bytes, and returns the mask to apply to them.
func (w *rawWS) writeHeader(op byte, fin bool, n uint64) ([4]byte, error) {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	hdr := []byte{b0}
	switch {
	case n < 126:
		hdr = append(hdr, 0x80|byte(n))
	case n <= 0xffff:
		hdr = append(hdr, 0x80|126)
		hdr = binary.BigEndian.AppendUint16(hdr, uint16(n))
	default:
		hdr = append(hdr, 0x80|127)
		hdr = binary.BigEndian.AppendUint64(hdr, n)
	}
	var mask [4]byte
	rand.Read(mask[:])
	hdr = append(hdr, mask[:]...)
	w.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err := w.c.Write(hdr)
	return mask, err
}

// writeMasked writes payload bytes masked from offset off of the frame.
func (w *rawWS) writeMasked(mask [4]byte, off int, p []byte) error {
	m := make([]byte, len(p))
	for i, b := range p {
		m[i] = b ^ mask[(off+i)%4]
	}
	w.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, err := w.c.Write(m)
	return err
}

// writeFrame writes one whole frame.
func (w *rawWS) writeFrame(op byte, p []byte) error {
	mask, err := w.writeHeader(op, true, uint64(len(p)))
	if err != nil {
		return err
	}
	return w.writeMasked(mask, 0, p)
}

// send writes one text message.
func (w *rawWS) send(p []byte) error { return w.writeFrame(opText, p) }

// read returns the next text or binary message, answering pings; a close
// frame comes back as a *closeError (and is answered), an ended connection
// as errCut. timeout bounds the whole read.
func (w *rawWS) read(timeout time.Duration) (byte, []byte, error) {
	w.c.SetReadDeadline(time.Now().Add(timeout))
	var msg []byte
	var msgOp byte
	for {
		var h [2]byte
		if _, err := io.ReadFull(w.br, h[:]); err != nil {
			return 0, nil, cutOr(err)
		}
		fin, op, n := h[0]&0x80 != 0, h[0]&0x0f, uint64(h[1]&0x7f)
		switch n {
		case 126:
			var e [2]byte
			if _, err := io.ReadFull(w.br, e[:]); err != nil {
				return 0, nil, cutOr(err)
			}
			n = uint64(binary.BigEndian.Uint16(e[:]))
		case 127:
			var e [8]byte
			if _, err := io.ReadFull(w.br, e[:]); err != nil {
				return 0, nil, cutOr(err)
			}
			n = binary.BigEndian.Uint64(e[:])
		}
		if n > 2<<20 {
			return 0, nil, fmt.Errorf("a frame of %d bytes from the cloud", n)
		}
		p := make([]byte, n)
		if _, err := io.ReadFull(w.br, p); err != nil {
			return 0, nil, cutOr(err)
		}
		switch op {
		case opPing:
			w.writeFrame(opPong, p)
			continue
		case opPong:
			continue
		case opClose:
			ce := &closeError{Code: 1005}
			if len(p) >= 2 {
				ce.Code, ce.Reason = int(binary.BigEndian.Uint16(p)), string(p[2:])
			}
			w.writeFrame(opClose, p[:min(len(p), 2)])
			return 0, nil, ce
		case 0: // continuation
		default:
			msgOp = op
		}
		msg = append(msg, p...)
		if fin {
			return msgOp, msg, nil
		}
	}
}

func cutOr(err error) error {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return err
	}
	return errCut
}

// waitClose reads until the connection ends and returns how: the cloud's
// close frame, or errCut. Messages before it are returned too.
func (w *rawWS) waitClose(timeout time.Duration) (*closeError, [][]byte, error) {
	deadline := time.Now().Add(timeout)
	var got [][]byte
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return nil, got, fmt.Errorf("still open after %v", timeout)
		}
		_, p, err := w.read(left)
		var ce *closeError
		switch {
		case errors.As(err, &ce):
			return ce, got, nil
		case errors.Is(err, errCut):
			return nil, got, errCut
		case err != nil:
			return nil, got, err
		}
		got = append(got, p)
	}
}

func (w *rawWS) Close() { w.c.Close() }

// identity is a device id and its key pair.
type identity struct {
	ID  string
	Key crypto.Signer
	Alg string // what the key signs: keys.AlgEd25519 or keys.AlgRSAPSS
	DER []byte // SPKI
}

// newIdentity makes a key: "ed25519", or "rsa" of bits (1024 is weak).
func newIdentity(tb testing.TB, id, kind string, bits int) *identity {
	tb.Helper()
	var (
		key crypto.Signer
		err error
		alg = keys.AlgEd25519
	)
	switch kind {
	case "ed25519":
		_, key, err = ed25519.GenerateKey(rand.Reader)
	case "rsa":
		alg = keys.AlgRSAPSS
		key, err = rsa.GenerateKey(rand.Reader, bits)
	default:
		tb.Fatalf("key kind %q", kind)
	}
	if err != nil {
		tb.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		tb.Fatal(err)
	}
	return &identity{ID: id, Key: key, Alg: alg, DER: der}
}

func (id *identity) PublicB64() string { return base64.StdEncoding.EncodeToString(id.DER) }

func (id *identity) Fingerprint() string { return keys.FingerprintDER(id.DER) }

// sign signs msg as alg says, whatever the key (so a weak RSA key signs).
func (id *identity) sign(msg []byte) []byte {
	var (
		sig []byte
		err error
	)
	switch k := id.Key.(type) {
	case ed25519.PrivateKey:
		sig = ed25519.Sign(k, msg)
	case *rsa.PrivateKey:
		h := sha256.Sum256(msg)
		sig, err = rsa.SignPSS(rand.Reader, k, crypto.SHA256, h[:], &rsa.PSSOptions{SaltLength: 32, Hash: crypto.SHA256})
	}
	if err != nil {
		panic(err)
	}
	return sig
}

// seal signs m and payload with the identity's key (m.Sig, when set, is
// kept as is) and writes the canonical wire (§1.1 of docs/protocol.md).
func (id *identity) seal(m envelope.Meta, payload []byte) []byte {
	if m.Sig == "" {
		m.Sig = base64.RawURLEncoding.EncodeToString(id.sign(envelope.SignedBytes(m, payload)))
	}
	return wireOf(m, payload)
}

// wireOf writes an envelope in the canonical member order; strings are
// escaped by encoding/json (any JSON spelling is accepted).
func wireOf(m envelope.Meta, payload []byte) []byte {
	q := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	return []byte(`{"meta":{"v":` + strconv.Itoa(m.V) + `,"signer":` + q(m.Signer) + `,"audience":` + q(m.Audience) +
		`,"direction":` + q(string(m.Direction)) + `,"session":` + q(m.Session) + `,"seq":` + strconv.FormatUint(m.Seq, 10) +
		`,"ts":` + strconv.FormatInt(m.TS, 10) + `,"alg":` + q(m.Alg) + `,"sig":` + q(m.Sig) + `},"payload":` + string(payload) + `}`)
}

// peer is one hostile connection after the cloud's auth.challenge: it
// knows the session and the cloud's id, and numbers its messages.
type peer struct {
	*rawWS
	who       *identity
	CloudID   string
	Session   string
	Replica   string
	Challenge []byte // the challenge frame as it came
	seq       uint64 // the last seq sealed
	opener    *envelope.Opener
}

// dialPeer connects as who to wsURL and verifies the cloud's challenge
// with cloudKey.
func dialPeer(ctx context.Context, wsURL string, who *identity, cloudKey crypto.PublicKey, o dialOptions) (*peer, error) {
	w, err := dialWS(ctx, wsURL, o)
	if err != nil {
		return nil, err
	}
	_, frame, err := w.read(5 * time.Second)
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("reading the challenge: %w", err)
	}
	ch, herr := session.OpenChallenge(frame, session.ChallengeCheck{Self: who.ID, CloudKey: cloudKey})
	if herr != nil {
		w.Close()
		return nil, fmt.Errorf("the cloud's challenge: %w", herr)
	}
	p := &peer{rawWS: w, who: who, CloudID: ch.CloudID, Session: ch.Session, Replica: ch.Replica, Challenge: frame}
	p.opener = &envelope.Opener{Self: who.ID, Direction: envelope.CloudToDevice, Session: ch.Session, Window: ch.Window,
		Key: func(signer string) (crypto.PublicKey, error) {
			if signer != ch.CloudID {
				return nil, envelope.ErrUnknownSigner
			}
			return ch.Key, nil
		}}
	return p, nil
}

// meta is the valid meta of the peer's next message (its seq is spent).
func (p *peer) meta() envelope.Meta {
	p.seq++
	return envelope.Meta{V: envelope.Version, Signer: p.who.ID, Audience: p.CloudID, Direction: envelope.DeviceToCloud,
		Session: p.Session, Seq: p.seq, TS: time.Now().UnixMilli(), Alg: p.who.Alg}
}

// sealNext seals payload as the peer's next, valid, message.
func (p *peer) sealNext(payload []byte) []byte { return p.who.seal(p.meta(), payload) }

// registration is the payload of a registration.register for who.
func registration(who *identity, id int) []byte {
	b, _ := json.Marshal(jsonrpc.Request{JSONRPC: jsonrpc.Version, ID: json.RawMessage(strconv.Itoa(id)), Method: rpcproto.MethodRegister,
		Params: mustJSON(rpcproto.RegisterParams{DeviceID: who.ID, PublicKey: who.PublicB64()})})
	return b
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// answer reads the cloud's next message, opens it and returns its payload.
func (p *peer) answer(timeout time.Duration) ([]byte, error) {
	op, frame, err := p.read(timeout)
	if err != nil {
		return nil, err
	}
	if op != opText {
		return nil, fmt.Errorf("a frame of opcode %d", op)
	}
	o, err := p.opener.Open(frame)
	if err != nil {
		return nil, fmt.Errorf("the cloud's message: %w", err)
	}
	return o.Payload, nil
}

// register sends the registration (seq 1) and returns its frame and the
// cloud's answer.
func (p *peer) register(timeout time.Duration) ([]byte, rpcproto.RegisterResult, error) {
	frame := p.sealNext(registration(p.who, 1))
	var res rpcproto.RegisterResult
	if err := p.send(frame); err != nil {
		return frame, res, err
	}
	payload, err := p.answer(timeout)
	if err != nil {
		return frame, res, err
	}
	var resp struct {
		Result *rpcproto.RegisterResult `json:"result"`
		Error  *jsonrpc.Error           `json:"error"`
	}
	if err := json.Unmarshal(payload, &resp); err != nil {
		return frame, res, err
	}
	if resp.Error != nil {
		return frame, res, resp.Error
	}
	if resp.Result == nil {
		return frame, res, fmt.Errorf("answer %s", payload)
	}
	return frame, *resp.Result, nil
}

// call sends a request as the next message and returns the answer's
// payload.
func (p *peer) call(method string, params any, id int, timeout time.Duration) ([]byte, error) {
	req := jsonrpc.Request{JSONRPC: jsonrpc.Version, ID: json.RawMessage(strconv.Itoa(id)), Method: method}
	if params != nil {
		req.Params = mustJSON(params)
	}
	if err := p.send(p.sealNext(mustJSON(req))); err != nil {
		return nil, err
	}
	return p.answer(timeout)
}

// isClose reports whether ce is the close code with a reason that starts
// with prefix.
func isClose(ce *closeError, code int, prefix string) bool {
	return ce != nil && ce.Code == code && strings.HasPrefix(ce.Reason, prefix)
}
