package fleet_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/bosunhq/bosun/cloud/internal/cloudtest"
	"github.com/bosunhq/bosun/cloud/internal/fleet"
	"github.com/bosunhq/bosun/pkg/jsonrpc"
	"github.com/bosunhq/bosun/pkg/rpcproto"
)

func otaReport(seq uint64, status string) rpcproto.OTAStatusParams {
	return rpcproto.OTAStatusParams{ID: "u1", Seq: seq, Target: "hello/2.0.0", Status: status, Slot: "b",
		At: time.Date(2026, 12, 1, 23, 59, 0, int(seq), time.UTC)}
}

func sendOTAStatus(ctx context.Context, d *cloudtest.Device, p rpcproto.OTAStatusParams) (fleet.OTAStatusResult, error) {
	var r fleet.OTAStatusResult
	err := d.Peer.Call(ctx, rpcproto.MethodOTAStatus, p, &r)
	return r, err
}

// TestOTAStatusStoredOnce: ota.status reports of an accepted device are
// stored, newest first, and one event each; a report sent again (same
// seq, as the bridge's outbox does after a lost answer) is answered
// stored, duplicate, and not stored or published twice.
func TestOTAStatusStoredOnce(t *testing.T) {
	s := cloudtest.NewServer(t)
	ctx := ctxT(t)
	events, err := s.Service().Subscribe(ctx, s.Super)
	if err != nil {
		t.Fatal(err)
	}
	d := cloudtest.MustConnect(t, s, "dev-ota", cloudtest.DeviceOptions{})
	if err := s.Service().Accept(ctx, s.Super, "dev-ota"); err != nil {
		t.Fatal(err)
	}
	<-d.Accepted()
	pct := 40
	first := otaReport(1, rpcproto.OTADownloading)
	first.Percent = &pct
	for i, p := range []rpcproto.OTAStatusParams{first, otaReport(2, rpcproto.OTAAwaitingCommit), otaReport(2, rpcproto.OTAAwaitingCommit), otaReport(3, rpcproto.OTASucceeded)} {
		r, err := sendOTAStatus(ctx, d, p)
		if err != nil || !r.Stored || r.Duplicate != (i == 2) {
			t.Fatalf("report %d (seq %d): %+v, %v; want stored, duplicate %v", i, p.Seq, r, err, i == 2)
		}
	}
	rs, err := s.Service().OTAReports(ctx, s.Super, "dev-ota", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 3 || rs[0].Seq != 3 || rs[0].Status != "succeeded" || rs[2].Percent == nil || *rs[2].Percent != 40 || rs[1].Slot != "b" {
		t.Fatalf("reports = %+v, want seq 3, 2, 1 with their fields", rs)
	}
	n := 0
	deadline := time.After(5 * time.Second)
	for n < 3 {
		select {
		case ev := <-events:
			if ev.Type == fleet.EventOTAStatus && ev.DeviceID == "dev-ota" {
				n++
			}
		case <-deadline:
			t.Fatalf("%d ota.status events, want 3", n)
		}
	}
	select {
	case ev := <-events:
		if ev.Type == fleet.EventOTAStatus {
			t.Fatalf("a fourth ota.status event (the duplicate): %+v", ev)
		}
	case <-time.After(300 * time.Millisecond):
	}
}

// TestOTAStatusRefused: a report the cloud cannot store is refused with
// -32602 and a detail saying why (the bridge then moves it out of its
// outbox), and a pending device's report with -32002; nothing is stored.
func TestOTAStatusRefused(t *testing.T) {
	s := cloudtest.NewServer(t)
	ctx := ctxT(t)
	pending := cloudtest.MustConnect(t, s, "dev-pend", cloudtest.DeviceOptions{})
	var re *jsonrpc.Error
	if _, err := sendOTAStatus(ctx, pending, otaReport(1, rpcproto.OTASucceeded)); !errors.As(err, &re) || re.Code != rpcproto.CodeNotAccepted {
		t.Fatalf("pending device's report: %v, want -32002", err)
	}
	d := cloudtest.MustConnect(t, s, "dev-ota", cloudtest.DeviceOptions{})
	if err := s.Service().Accept(ctx, s.Super, "dev-ota"); err != nil {
		t.Fatal(err)
	}
	<-d.Accepted()
	bad := func(f func(*rpcproto.OTAStatusParams)) rpcproto.OTAStatusParams {
		p := otaReport(7, rpcproto.OTAFailed)
		f(&p)
		return p
	}
	over := 101
	for name, p := range map[string]rpcproto.OTAStatusParams{
		"seq 0":          bad(func(p *rpcproto.OTAStatusParams) { p.Seq = 0 }),
		"seq beyond":     bad(func(p *rpcproto.OTAStatusParams) { p.Seq = 1 << 53 }),
		"no id":          bad(func(p *rpcproto.OTAStatusParams) { p.ID = "" }),
		"unknown status": bad(func(p *rpcproto.OTAStatusParams) { p.Status = "exploded" }),
		"percent 101":    bad(func(p *rpcproto.OTAStatusParams) { p.Percent = &over }),
		"no time":        bad(func(p *rpcproto.OTAStatusParams) { p.At = time.Time{} }),
		"long reason":    bad(func(p *rpcproto.OTAStatusParams) { p.Reason = strings.Repeat("x", 2049) }),
		"NUL in reason":  bad(func(p *rpcproto.OTAStatusParams) { p.Reason = "disk\x00full" }),
		"NUL in target":  bad(func(p *rpcproto.OTAStatusParams) { p.Target = "hello/\x00" }),
	} {
		if _, err := sendOTAStatus(ctx, d, p); !errors.As(err, &re) || re.Code != jsonrpc.CodeInvalidParams || len(re.Data) == 0 {
			t.Errorf("%s: %v, want -32602 with a detail", name, err)
		}
	}
	for _, id := range []string{"dev-ota", "dev-pend"} {
		if rs, err := s.Service().OTAReports(ctx, s.Super, id, 0); err != nil || len(rs) != 0 {
			t.Fatalf("%s: reports %+v, %v after refusals; want none", id, rs, err)
		}
	}
	// At the bounds: accepted.
	edge := otaReport(1<<53-1, rpcproto.OTAFailed)
	edge.Reason = strings.Repeat("é", 1024) // 2048 bytes
	if r, err := sendOTAStatus(ctx, d, edge); err != nil || !r.Stored {
		t.Fatalf("report at the bounds: %+v, %v", r, err)
	}
}
