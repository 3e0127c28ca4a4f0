package fleet

import (
	"context"
	"fmt"
	"strings"

	"github.com/bosunhq/bosun/cloud/internal/store"
	"github.com/bosunhq/bosun/pkg/jsonrpc"
	"github.com/bosunhq/bosun/pkg/rpcproto"
)

// OTAReport is one ota.status report of a device, as stored.
type OTAReport = store.OTAReport

// OTAStatusResult answers ota.status: the report is stored; Duplicate when
// it was stored already (the same seq came again, e.g. after a lost
// answer): it is not counted twice.
type OTAStatusResult struct {
	Stored    bool `json:"stored"`
	Duplicate bool `json:"duplicate,omitempty"`
}

// Bounds of an ota.status report; beyond them it is refused with -32602
// (the bridge moves a refused report out of its outbox, so a report that
// can never be stored does not block the ones after it).
const (
	maxOTAID     = 128
	maxOTATarget = 200
	maxOTAReason = 2048
	maxOTASeq    = 1<<53 - 1
)

var otaStatuses = map[string]bool{
	rpcproto.OTADownloading: true, rpcproto.OTAInstalling: true, rpcproto.OTAAwaitingCommit: true,
	rpcproto.OTASucceeded: true, rpcproto.OTAFailed: true, rpcproto.OTARolledBack: true,
}

func otaInvalid(format string, args ...any) error {
	return jsonrpc.NewError(jsonrpc.CodeInvalidParams, "Invalid params", map[string]string{"detail": fmt.Sprintf(format, args...)})
}

// checkOTAStatus refuses a report the cloud cannot store as it is.
func checkOTAStatus(p rpcproto.OTAStatusParams) error {
	switch {
	case p.Seq == 0 || p.Seq > maxOTASeq:
		return otaInvalid("seq must be 1 to 2^53-1")
	case p.ID == "" || len(p.ID) > maxOTAID:
		return otaInvalid("id must have 1 to %d bytes", maxOTAID)
	case p.Target == "" || len(p.Target) > maxOTATarget:
		return otaInvalid("target must have 1 to %d bytes", maxOTATarget)
	case !otaStatuses[p.Status]:
		return otaInvalid("status %.40q is not one of downloading, installing, awaiting_commit, succeeded, failed, rolled_back", p.Status)
	case p.Percent != nil && (*p.Percent < 0 || *p.Percent > 100):
		return otaInvalid("percent must be 0 to 100")
	case len(p.Reason) > maxOTAReason:
		return otaInvalid("reason must have at most %d bytes", maxOTAReason)
	case len(p.Slot) > 16:
		return otaInvalid("slot must have at most 16 bytes")
	case p.At.IsZero():
		return otaInvalid("at must be the time of the report (RFC 3339)")
	}
	for _, f := range []struct{ name, v string }{{"id", p.ID}, {"target", p.Target}, {"reason", p.Reason}, {"slot", p.Slot}} {
		// (Invalid UTF-8 cannot arrive: the JSON decoder makes it U+FFFD.)
		if strings.ContainsRune(f.v, 0) {
			return otaInvalid("%s must be text without NUL", f.name)
		}
	}
	return nil
}

// otaStatus serves ota.status for the calling device: it stores the
// report once per (device, seq) and publishes EventOTAStatus for a new one.
func (s *Service) otaStatus(ctx context.Context, p rpcproto.OTAStatusParams) (OTAStatusResult, error) {
	dev, ok := DeviceFromContext(ctx)
	if !ok {
		return OTAStatusResult{}, notAccepted
	}
	if err := checkOTAStatus(p); err != nil {
		return OTAStatusResult{}, err
	}
	r := OTAReport{DeviceID: dev.ID, Seq: int64(p.Seq), OrgID: dev.OrgID, UpdateID: p.ID, Target: p.Target,
		Status: p.Status, Percent: p.Percent, Reason: p.Reason, Slot: p.Slot, ReportedAt: p.At.UTC()}
	fresh, err := s.st.InsertOTAReport(ctx, r)
	if err != nil {
		return OTAStatusResult{}, err
	}
	if fresh {
		s.publish(Event{Type: EventOTAStatus, OrgID: dev.OrgID, DeviceID: dev.ID, Data: mustJSON(p)})
		s.deploymentReport(ctx, r) // deployments_engine.go
	}
	return OTAStatusResult{Stored: true, Duplicate: !fresh}, nil
}

// OTAReports returns a device's newest ota.status reports first (at most
// limit; 0 means 100).
func (s *Service) OTAReports(ctx context.Context, a Actor, deviceID string, limit int) ([]OTAReport, error) {
	if _, err := s.device(ctx, a, deviceID); err != nil {
		return nil, err
	}
	rs, err := s.st.ListOTAReports(ctx, deviceID, clampLimit(limit))
	if rs == nil {
		rs = []OTAReport{}
	}
	return rs, err
}
