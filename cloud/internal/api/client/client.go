// Package client talks to Bosun's HTTP API (/api/v1) for the bosun CLI and
// tests. It links only the wire types, not the server.
package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/bosunhq/bosun/cloud/internal/api/wire"
)

// Error is an error answer of the API.
type Error struct {
	Status  int    // HTTP status
	Code    string // wire.Code*, e.g. "not_found"
	Message string
	// Fingerprints, for wire.CodeAmbiguousKey, are the candidate keys.
	Fingerprints []string
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s (%s)", e.Message, e.Code)
}

// Client is an API client. Its zero value is not usable; see New.
type Client struct {
	base  string // scheme://host[:port][/prefix], without /api/v1
	token string
	http  *http.Client
}

// New returns a client of the cloud at baseURL ("http://localhost:8080";
// a trailing "/api/v1" is tolerated) with API token token. hc nil means a
// client without an overall timeout, so that streams can last; bound calls
// with their context.
func New(baseURL, token string, hc *http.Client) (*Client, error) {
	u, err := url.Parse(strings.TrimSpace(baseURL))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("cloud URL %q: want http(s)://host[:port]", baseURL)
	}
	u.Path = strings.TrimSuffix(strings.TrimSuffix(u.Path, "/"), "/api/v1")
	u.RawQuery, u.Fragment = "", ""
	if hc == nil {
		hc = &http.Client{}
	}
	return &Client{base: strings.TrimSuffix(u.String(), "/"), token: token, http: hc}, nil
}

// do sends a request and decodes a JSON answer into out (unless nil). It
// returns the HTTP status; an error answer becomes *Error.
func (c *Client) do(ctx context.Context, method, path string, q url.Values, body, out any) (int, error) {
	resp, err := c.send(ctx, method, path, q, body, "application/json")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if out == nil || resp.StatusCode == http.StatusNoContent {
		io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return resp.StatusCode, fmt.Errorf("%s %s: decoding answer: %w", method, path, err)
	}
	return resp.StatusCode, nil
}

// send sends a request and returns a 2xx response, or an error: *Error for
// an error answer of the API.
func (c *Client) send(ctx context.Context, method, path string, q url.Values, body any, accept string) (*http.Response, error) {
	var rd io.Reader
	contentType := ""
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd, contentType = bytes.NewReader(b), "application/json"
	}
	return c.sendReader(ctx, method, path, q, rd, -1, contentType, accept)
}

// sendReader is send with a body of contentType read from rd (nil: none)
// of length bytes (-1: unknown).
func (c *Client) sendReader(ctx context.Context, method, path string, q url.Values, rd io.Reader, length int64, contentType, accept string) (*http.Response, error) {
	u := c.base + "/api/v1" + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, err
	}
	if rd != nil {
		req.Header.Set("Content-Type", contentType)
		if length >= 0 {
			req.ContentLength = length
		}
	}
	req.Header.Set("Accept", accept)
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return resp, nil
	}
	defer resp.Body.Close()
	var eb wire.ErrorBody
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if json.Unmarshal(b, &eb) != nil || eb.Error.Code == "" {
		msg := strings.TrimSpace(string(b))
		if len(msg) > 200 {
			msg = msg[:200] + "..."
		}
		if msg == "" {
			msg = http.StatusText(resp.StatusCode)
		}
		return nil, &Error{Status: resp.StatusCode, Code: "http_" + strconv.Itoa(resp.StatusCode), Message: msg}
	}
	return nil, &Error{Status: resp.StatusCode, Code: eb.Error.Code, Message: eb.Error.Message, Fingerprints: eb.Error.Fingerprints}
}

// DeviceFilter selects devices; zero fields do not filter.
type DeviceFilter struct {
	Status string
	Online *bool
	Tag    string
	Text   string
	Limit  int
	Offset int
}

// ListDevices lists devices.
func (c *Client) ListDevices(ctx context.Context, f DeviceFilter) (wire.DeviceList, error) {
	q := url.Values{}
	setIf(q, "status", f.Status)
	setIf(q, "tag", f.Tag)
	setIf(q, "q", f.Text)
	if f.Online != nil {
		q.Set("online", strconv.FormatBool(*f.Online))
	}
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	if f.Offset > 0 {
		q.Set("offset", strconv.Itoa(f.Offset))
	}
	var out wire.DeviceList
	_, err := c.do(ctx, "GET", "/devices", q, nil, &out)
	return out, err
}

// Device returns one device.
func (c *Client) Device(ctx context.Context, id string) (wire.Device, error) {
	var out wire.Device
	_, err := c.do(ctx, "GET", "/devices/"+url.PathEscape(id), nil, nil, &out)
	return out, err
}

// Keys lists the key sets a device presented.
func (c *Client) Keys(ctx context.Context, id string) ([]wire.KeySet, error) {
	var out wire.KeySetList
	_, err := c.do(ctx, "GET", "/devices/"+url.PathEscape(id)+"/keys", nil, nil, &out)
	return out.Items, err
}

// Accept accepts the device's pending key of the given fingerprint, or,
// with fingerprint "", its only pending key. With several pending keys and
// no fingerprint the error is an *Error of code wire.CodeAmbiguousKey whose
// Fingerprints lists them.
func (c *Client) Accept(ctx context.Context, id, fingerprint string) (wire.AcceptResponse, error) {
	var out wire.AcceptResponse
	_, err := c.do(ctx, "POST", "/devices/"+url.PathEscape(id)+"/accept", nil, wire.AcceptRequest{Fingerprint: fingerprint}, &out)
	return out, err
}

// Reject rejects the device's key.
func (c *Client) Reject(ctx context.Context, id string) (wire.Device, error) {
	return c.deviceOp(ctx, "POST", id, "reject", nil)
}

// Decommission revokes the device's keys and closes its session.
func (c *Client) Decommission(ctx context.Context, id string) (wire.Device, error) {
	return c.deviceOp(ctx, "POST", id, "decommission", nil)
}

// SetTags replaces the device's tags.
func (c *Client) SetTags(ctx context.Context, id string, tags []string) (wire.Device, error) {
	if tags == nil {
		tags = []string{}
	}
	return c.deviceOp(ctx, "PUT", id, "tags", wire.TagsRequest{Tags: &tags})
}

// Preauthorize accepts a key (PEM, or base64 DER) before the device shows up.
func (c *Client) Preauthorize(ctx context.Context, id, publicKey string) (wire.Device, error) {
	return c.deviceOp(ctx, "POST", id, "preauthorize", wire.PreauthorizeRequest{PublicKey: publicKey})
}

// PreauthorizeMany preauthorises up to 1000 devices' keys in one request.
func (c *Client) PreauthorizeMany(ctx context.Context, devices []wire.PreauthorizeEntry) (wire.PreauthorizeBulkResponse, error) {
	var out wire.PreauthorizeBulkResponse
	_, err := c.do(ctx, "POST", "/devices/preauthorize", nil, wire.PreauthorizeBulkRequest{Devices: devices}, &out)
	return out, err
}

func (c *Client) deviceOp(ctx context.Context, method, id, op string, body any) (wire.Device, error) {
	var out wire.Device
	_, err := c.do(ctx, method, "/devices/"+url.PathEscape(id)+"/"+op, nil, body, &out)
	return out, err
}

// Call calls a method on one device. queued is true when the device was
// offline and the call waits for it (the request had a TTL). A JSON-RPC
// error of the device is in the call's Error, not in err.
func (c *Client) Call(ctx context.Context, id string, req wire.CallRequest) (call wire.Call, queued bool, err error) {
	status, err := c.do(ctx, "POST", "/devices/"+url.PathEscape(id)+"/call", nil, req, &call)
	return call, status == http.StatusAccepted, err
}

// FanOut calls a method on many devices and hands each line of the stream
// to each as it arrives. It returns the summary, or an error if the stream
// broke off (an "error" line becomes *Error).
func (c *Client) FanOut(ctx context.Context, req wire.FanOutRequest, each func(wire.FanOutLine)) (wire.FanOutSummary, error) {
	resp, err := c.send(ctx, "POST", "/calls", nil, req, "application/x-ndjson")
	if err != nil {
		return wire.FanOutSummary{}, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var line wire.FanOutLine
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			return wire.FanOutSummary{}, fmt.Errorf("fan-out stream: decoding line: %w", err)
		}
		if each != nil {
			each(line)
		}
		switch {
		case line.Type == wire.LineSummary && line.Summary != nil:
			return *line.Summary, nil
		case line.Type == wire.LineError && line.Error != nil:
			return wire.FanOutSummary{}, &Error{Status: wire.StatusOf(line.Error.Code), Code: line.Error.Code, Message: line.Error.Message}
		}
	}
	if err := sc.Err(); err != nil {
		return wire.FanOutSummary{}, fmt.Errorf("fan-out stream: %w", err)
	}
	return wire.FanOutSummary{}, errors.New("fan-out stream ended without a summary")
}

// CallFilter selects calls; zero fields do not filter.
type CallFilter struct {
	DeviceID string
	Status   string
	Limit    int
}

// ListCalls lists recent calls, newest first.
func (c *Client) ListCalls(ctx context.Context, f CallFilter) ([]wire.Call, error) {
	q := url.Values{}
	setIf(q, "device", f.DeviceID)
	setIf(q, "status", f.Status)
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	var out wire.CallList
	_, err := c.do(ctx, "GET", "/calls", q, nil, &out)
	return out.Items, err
}

// GetCall returns one call.
func (c *Client) GetCall(ctx context.Context, id string) (wire.Call, error) {
	var out wire.Call
	_, err := c.do(ctx, "GET", "/calls/"+url.PathEscape(id), nil, nil, &out)
	return out, err
}

// AuditFilter selects audit entries; zero fields do not filter.
type AuditFilter struct {
	Actor, Action, Target string
	Limit                 int
}

// Audit lists audit entries, newest first.
func (c *Client) Audit(ctx context.Context, f AuditFilter) ([]wire.AuditEntry, error) {
	q := url.Values{}
	setIf(q, "actor", f.Actor)
	setIf(q, "action", f.Action)
	setIf(q, "target", f.Target)
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	var out wire.AuditList
	_, err := c.do(ctx, "GET", "/audit", q, nil, &out)
	return out.Items, err
}

// Tokens lists the caller's API tokens.
func (c *Client) Tokens(ctx context.Context) ([]wire.Token, error) {
	var out wire.TokenList
	_, err := c.do(ctx, "GET", "/tokens", nil, nil, &out)
	return out.Items, err
}

// CreateToken creates an API token; the secret is only in this answer.
func (c *Client) CreateToken(ctx context.Context, name string) (wire.CreateTokenResponse, error) {
	var out wire.CreateTokenResponse
	_, err := c.do(ctx, "POST", "/tokens", nil, wire.CreateTokenRequest{Name: name}, &out)
	return out, err
}

// RevokeToken revokes an API token.
func (c *Client) RevokeToken(ctx context.Context, id int64) error {
	_, err := c.do(ctx, "DELETE", "/tokens/"+strconv.FormatInt(id, 10), nil, nil, nil)
	return err
}

// Events follows GET /events and hands each event to each until ctx ends
// (nil), the server ends the stream (io.EOF) or an error. ready, if not
// nil, is called once the subscription is live.
func (c *Client) Events(ctx context.Context, ready func(), each func(wire.Event)) error {
	resp, err := c.send(ctx, "GET", "/events", nil, nil, "text/event-stream")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if ready != nil {
		ready()
	}
	err = readSSE(resp.Body, func(_, data string) error {
		var ev wire.Event
		if err := json.Unmarshal([]byte(data), &ev); err != nil {
			return fmt.Errorf("events: decoding event: %w", err)
		}
		each(ev)
		return nil
	})
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// readSSE parses a text/event-stream: comments and retry lines are skipped,
// each event with data goes to fn. It returns io.EOF at the end.
func readSSE(r io.Reader, fn func(event, data string) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	var event string
	var data []string
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			if len(data) > 0 {
				if err := fn(event, strings.Join(data, "\n")); err != nil {
					return err
				}
			}
			event, data = "", nil
			continue
		}
		if strings.HasPrefix(line, ":") {
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "event":
			event = value
		case "data":
			data = append(data, value)
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return io.EOF
}

func setIf(q url.Values, k, v string) {
	if v != "" {
		q.Set(k, v)
	}
}
