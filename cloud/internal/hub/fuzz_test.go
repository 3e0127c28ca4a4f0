package hub_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/bosunhq/bosun/cloud/internal/cloudtest"
	"github.com/bosunhq/bosun/cloud/internal/fleet"
	"github.com/bosunhq/bosun/pkg/envelope"
	"github.com/bosunhq/bosun/pkg/jsonrpc"
	"github.com/bosunhq/bosun/pkg/rpcproto"
	"github.com/jackc/pgx/v5"
)

// deviceMethods are the device → cloud methods the hub serves an
// accepted device (docs/protocol.md §8), in the order FuzzDeviceMethodParams
// picks them by its first argument.
var deviceMethods = []string{rpcproto.MethodRegister, rpcproto.MethodStateReport, rpcproto.MethodOTAStatus,
	fleet.MethodOTALatest, fleet.MethodOTAAvailable, rpcproto.MethodOTAMetadata}

// maxRefusal bounds what a refusal may carry (message plus data): what
// the strict decoder quotes of the input is cut at 40 bytes, and the
// methods' own details name the rule, not the input.
const maxRefusal = 400

// deviceState is what a device → cloud request may change: the stored
// inventory (state.report) and the device's ota.status reports.
type deviceState struct {
	inventory string
	reports   int64
	maxSeq    int64
}

func readDeviceState(ctx context.Context, tb testing.TB, db *pgx.Conn, id string) deviceState {
	tb.Helper()
	var st deviceState
	err := db.QueryRow(ctx, `SELECT coalesce(d.inventory::text, ''),
		(SELECT count(*) FROM ota_reports r WHERE r.device_id = d.id),
		(SELECT coalesce(max(seq), 0) FROM ota_reports r WHERE r.device_id = d.id)
		FROM devices d WHERE d.id = $1`, id).Scan(&st.inventory, &st.reports, &st.maxSeq)
	if err != nil {
		tb.Fatalf("reading the device's state: %v", err)
	}
	return st
}

// FuzzDeviceMethodParams sends arbitrary params to each device → cloud
// method over a real session of an accepted device (a full replica on a
// real PostgreSQL, the hub's websocket, signed envelopes), so the params
// meet the very decoding and checks a device's requests meet. Whatever
// the params:
//   - a refusal is -32602 (or -32006 for an ota.metadata file the
//     organisation does not have) with a bounded message, never -32603;
//   - a refusal changes nothing: the stored inventory and the ota.status
//     reports are as before;
//   - accepted params re-encode to JSON that decodes to the same value,
//     and what was stored is that value (state.report's inventory; the
//     ota.status report of its seq).
func FuzzDeviceMethodParams(f *testing.F) {
	for _, s := range []struct {
		m byte
		p string
	}{
		{0, ``}, {0, `{}`}, {0, `{"device_id":"x","alg":"ed25519"}`},
		{1, `{"hostname":"rpi-kitchen","os":"Debian GNU/Linux 12 (bookworm)","arch":"arm64","versions":{"bridge":"0.1.0","app":"2.3"},"workers":["system","camera"],` +
			`"methods":[{"name":"camera.snapshot","description":"Take a JPEG","worker":"camera"},{"name":"rpc.list","description":"List the methods this device serves","worker":"bridge"}],"attributes":{"site":"kitchen"}}`},
		{1, `{}`}, {1, `null`}, {1, `{"methods":[]}`}, {1, `{"Hostname":"x"}`}, {1, `{"hostname":"a","hostname":"b"}`}, {1, `[1]`},
		{1, `{"hostname":"\ud800"}`}, {1, `{"workers":["a",1]}`}, {1, `{"methods":[{"name":"x","extra":1}]}`},
		{2, `{"id":"u1","seq":1,"target":"hello/1.0.0","status":"downloading","percent":40,"slot":"b","at":"2026-12-01T23:59:00Z"}`},
		{2, `{"id":"u1","seq":2,"target":"hello/1.0.0","status":"succeeded","reason":"ok","at":"2026-12-01T23:59:01.5+02:00"}`},
		{2, `{"id":"u1","seq":0,"target":"t","status":"failed","at":"2026-12-01T23:59:00Z"}`},
		{2, `{"id":"u1","seq":9007199254740992,"target":"t","status":"failed","at":"2026-12-01T23:59:00Z"}`},
		{2, `{"id":"u1","seq":3,"target":"t","status":"exploded","at":"2026-12-01T23:59:00Z"}`},
		{2, `{"id":"u1","seq":3,"target":"t","status":"failed","percent":101,"at":"2026-12-01T23:59:00Z"}`},
		{2, `{"id":"u1","seq":3,"target":"t","status":"failed","at":"yesterday"}`},
		{2, `{"id":"u1","seq":3,"target":"t","status":"failed","at":"0000-01-01T00:00:00Z"}`},
		{2, `{"id":"u1","seq":3,"target":"t","status":"failed","reason":"a\u0000b","at":"2026-12-01T23:59:00Z"}`},
		{3, `{"name":"hello"}`}, {3, `{"name":"nothing"}`}, {3, `{"name":"Hello"}`}, {3, `{}`}, {3, `{"name":1}`},
		{4, `{"name":"hello"}`}, {4, `{"name":""}`}, {4, `{"name":"hello","x":1}`},
		{5, `{"file":"root.json"}`}, {5, `{"file":"1.root.json"}`}, {5, `{"file":"timestamp.json"}`}, {5, `{"file":"../root.json"}`},
		{5, `{"file":"999999999999999999.root.json"}`}, {5, `{"file":"0.root.json"}`}, {5, `{"file":"targets.json","file":"x"}`},
	} {
		f.Add(s.m, []byte(s.p))
	}

	srv := cloudtest.NewServer(f)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d := cloudtest.MustConnect(f, srv, "dev-fuzz", cloudtest.DeviceOptions{})
	if err := srv.Service().Accept(ctx, srv.Super, "dev-fuzz"); err != nil {
		f.Fatal(err)
	}
	select {
	case <-d.Accepted():
	case <-ctx.Done():
		f.Fatal("no auth.accepted")
	}
	// An artifact, so that ota.latest and ota.available have something
	// to answer for "hello".
	if _, err := srv.Service().UploadArtifact(ctx, srv.Super, "hello", "1.0.0", 5, bytes.NewReader([]byte("hello"))); err != nil {
		f.Fatal(err)
	}
	db, err := pgx.Connect(ctx, srv.DatabaseURL)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { db.Close(context.Background()) })

	f.Fuzz(func(t *testing.T, which byte, params []byte) {
		if p := bytes.Trim(params, " \t\r\n"); len(params) > 0 && (!json.Valid(p) || !utf8.Valid(p) || (p[0] != '{' && p[0] != '[' && string(p) != "null")) {
			return // not params the client sends (nor the envelope carries): FuzzHandle's ground
		}
		method := deviceMethods[int(which)%len(deviceMethods)]
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		before := readDeviceState(ctx, t, db, "dev-fuzz")
		res, err := d.Peer.CallRaw(ctx, method, params)
		after := readDeviceState(ctx, t, db, "dev-fuzz")
		if errors.Is(err, envelope.ErrPayload) {
			return // the device's own envelope refuses to carry it (and the hub's would)
		}
		if err != nil {
			var e *jsonrpc.Error
			if !errors.As(err, &e) {
				t.Fatalf("%s(%q): %v (%T), not a *jsonrpc.Error", method, params, err, err)
			}
			if !(e.Code == jsonrpc.CodeInvalidParams || (method == rpcproto.MethodOTAMetadata && e.Code == rpcproto.CodeNotFound)) {
				t.Fatalf("%s(%q): %v, want -32602", method, params, e)
			}
			if n := len(e.Message) + len(e.Data); n > maxRefusal || e.Message == "" {
				t.Fatalf("%s(%q): refusal of %d bytes: %v", method, params, n, e)
			}
			if after != before {
				t.Fatalf("%s(%q) refused (%v) but changed the device's state: %+v -> %+v", method, params, e, before, after)
			}
			return
		}
		switch method {
		case rpcproto.MethodStateReport:
			p := roundTrip[rpcproto.StateReportParams](t, params)
			var stored rpcproto.StateReportParams
			if err := jsonrpc.DecodeStrict([]byte(after.inventory), &stored); err != nil || !sameJSON(stored, p) {
				t.Fatalf("state.report(%q) stored %s (%v), want %+v", params, after.inventory, err, p)
			}
		case rpcproto.MethodOTAStatus:
			p := roundTrip[rpcproto.OTAStatusParams](t, params)
			var r fleet.OTAStatusResult
			if err := json.Unmarshal(res, &r); err != nil || !r.Stored {
				t.Fatalf("ota.status(%q): result %s, %v", params, res, err)
			}
			if r.Duplicate != (after.reports == before.reports) || after.reports-before.reports > 1 {
				t.Fatalf("ota.status(%q): %s, but reports %d -> %d", params, res, before.reports, after.reports)
			}
			checkStoredReport(ctx, t, db, p, !r.Duplicate)
		default:
			if after != before {
				t.Fatalf("%s(%q) changed the device's state: %+v -> %+v", method, params, before, after)
			}
		}
	})
}

// roundTrip decodes params as the method does, checks that the value
// re-encodes to JSON that decodes to the same value, and returns it.
func roundTrip[P any](tb testing.TB, params []byte) P {
	tb.Helper()
	var p, again P
	if err := jsonrpc.DecodeParams(params, &p); err != nil {
		tb.Fatalf("params %q were accepted, but DecodeParams refuses them: %v", params, err)
	}
	b, err := json.Marshal(p)
	if err != nil {
		tb.Fatalf("params %q: %+v does not re-encode: %v", params, p, err)
	}
	if err := jsonrpc.DecodeParams(b, &again); err != nil || !equalParams(p, again) || !sameJSON(p, again) {
		tb.Fatalf("params %q: %+v re-encodes to %s, which decodes to %+v (%v)", params, p, b, again, err)
	}
	return p
}

// sameJSON reports whether a and b encode to the same JSON (omitempty
// makes an empty list and none the same).
func sameJSON(a, b any) bool {
	x, err1 := json.Marshal(a)
	y, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(x, y)
}

// equalParams is reflect.DeepEqual but compares times as instants (a
// time keeps its zone offset through JSON, not its *Location).
func equalParams[P any](a, b P) bool {
	if x, ok := any(a).(rpcproto.OTAStatusParams); ok {
		y := any(b).(rpcproto.OTAStatusParams)
		if !x.At.Equal(y.At) {
			return false
		}
		x.At, y.At = time.Time{}, time.Time{}
		return reflect.DeepEqual(x, y)
	}
	return sameJSON(a, b)
}

// checkStoredReport checks that the device's report p.Seq is stored,
// as p when it was fresh. A report of a seq stored before is a
// duplicate: the first one stays.
func checkStoredReport(ctx context.Context, tb testing.TB, db *pgx.Conn, p rpcproto.OTAStatusParams, fresh bool) {
	tb.Helper()
	var got rpcproto.OTAStatusParams
	var percent *int32
	err := db.QueryRow(ctx, `SELECT update_id, target, status, percent, reason, slot, reported_at FROM ota_reports
		WHERE device_id = 'dev-fuzz' AND seq = $1`, int64(p.Seq)).Scan(&got.ID, &got.Target, &got.Status, &percent, &got.Reason, &got.Slot, &got.At)
	if err != nil {
		tb.Fatalf("ota.status seq %d: not stored: %v", p.Seq, err)
	}
	if !fresh {
		return
	}
	got.Seq = p.Seq
	if percent != nil {
		v := int(*percent)
		got.Percent = &v
	}
	// PostgreSQL keeps microseconds (rounded).
	if d := got.At.Sub(p.At); d > -time.Microsecond && d < time.Microsecond {
		got.At = p.At
	}
	if !equalParams(got, p) {
		tb.Fatalf("ota.status stored %+v, want %+v", got, p)
	}
}
