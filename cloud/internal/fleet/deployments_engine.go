package fleet

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/bosunhq/bosun/cloud/internal/store"
	"github.com/bosunhq/bosun/pkg/jsonrpc"
	"github.com/bosunhq/bosun/pkg/rpcproto"
)

// The deployments engine. Every replica runs it: a goroutine (owned by the
// Service) that every DeploymentOptions.Tick, and whenever a report or an
// operator action wakes it, works on each live deployment in turn, holding
// that deployment's advisory lock (store.WithDeployment) so that no two
// replicas work on one deployment at once; a replica that finds the lock
// taken skips it. All it knows is in PostgreSQL (the deployment and member
// rows, the calls table, ota_reports), so a restarted cloud continues
// where the last one was, and a crash between two steps is repaired by
// the next tick:
//
//   - a member claimed (sent, its call id chosen) whose call was never
//     inserted counts as a failed attempt ("never recorded");
//   - a report stored but not applied is applied by the next tick, which
//     looks for reports of each member's current update id newer than the
//     last applied (report_seq), so none is applied twice.
//
// One tick on one deployment:
//
//  1. apply new reports (dep-<id>-<attempt> of the current attempt only);
//  2. fail the attempts whose ota.update call ended without success;
//  3. aborted: cancel queued calls not delivered, send ota.abort to the
//     members in flight, and end those whose abort was answered;
//  4. re-resolve the tag (new devices join the current phase; before the
//     start, phases are split again);
//  5. scheduled → running at not_before;
//  6. running: pause over the failure threshold, advance a done phase,
//     complete after the last, dispatch pending members up to max in flight.

// wakeEngine makes the engine tick now (without waiting).
func (s *Service) wakeEngine() {
	select {
	case s.depWake <- struct{}{}:
	default:
	}
}

// deploymentLoop is the engine goroutine.
func (s *Service) deploymentLoop(ctx context.Context) {
	t := time.NewTicker(s.opts.Deployments.Tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.depWake:
		}
		if err := s.DeploymentTick(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("deployments", "err", err)
		}
	}
}

// DeploymentTick runs one round of the engine over every live deployment.
func (s *Service) DeploymentTick(ctx context.Context) error {
	ids, err := s.st.LiveDeployments(ctx)
	if err != nil {
		return fmt.Errorf("listing live deployments: %w", err)
	}
	var errs []error
	for _, id := range ids {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		_, err := s.st.WithDeployment(ctx, id, false, func() error { return s.tickDeployment(ctx, id) })
		if err != nil {
			errs = append(errs, fmt.Errorf("deployment %d: %w", id, err))
		}
	}
	return errors.Join(errs...)
}

// inFlight are the member statuses between sent and awaiting_commit.
var inFlight = map[string]bool{DevSent: true, DevDownloading: true, DevInstalling: true, DevAwaitingCommit: true}

// finalStatus are the member statuses that never change again (but for a
// succeeded report after an abort, see applyReport).
var finalStatus = map[string]bool{DevSucceeded: true, DevFailed: true, DevRolledBack: true, DevAborted: true}

// progress orders the in-flight statuses: a report never moves a member
// back.
var progress = map[string]int{DevPending: 0, DevSent: 1, DevDownloading: 2, DevInstalling: 3, DevAwaitingCommit: 4}

// UpdateID is the ota.update id of a deployment's member's attempt.
func UpdateID(deployment int64, attempt int) string {
	return "dep-" + strconv.FormatInt(deployment, 10) + "-" + strconv.Itoa(attempt)
}

// parseUpdateID is UpdateID's inverse.
func parseUpdateID(id string) (int64, int, bool) {
	rest, ok := strings.CutPrefix(id, "dep-")
	if !ok {
		return 0, 0, false
	}
	a, b, ok := strings.Cut(rest, "-")
	if !ok {
		return 0, 0, false
	}
	dep, err1 := strconv.ParseInt(a, 10, 64)
	n, err2 := strconv.Atoi(b)
	return dep, n, err1 == nil && err2 == nil && dep > 0 && n > 0
}

// deploymentReport is the ota.status hook: a stored report of a
// deployment's update is applied at once (the engine would at its next
// tick) and the engine woken, so a freed slot is refilled.
func (s *Service) deploymentReport(ctx context.Context, r OTAReport) {
	dep, _, ok := parseUpdateID(r.UpdateID)
	if !ok {
		return
	}
	d, err := s.st.GetDeployment(ctx, dep)
	if err != nil || d.OrgID != r.OrgID {
		return
	}
	if err := s.applyReports(ctx, d, r.DeviceID); err != nil {
		s.log.Warn("applying a deployment report", "deployment", dep, "device_id", r.DeviceID, "err", err)
	}
	s.wakeEngine()
}

func (s *Service) tickDeployment(ctx context.Context, id int64) error {
	d, err := s.st.GetDeployment(ctx, id)
	if err != nil {
		return err
	}
	if err := s.applyReports(ctx, d, ""); err != nil {
		return fmt.Errorf("applying reports: %w", err)
	}
	if err := s.failUpdateCalls(ctx, d); err != nil {
		return fmt.Errorf("reading call outcomes: %w", err)
	}
	if err := s.failSilent(ctx, d); err != nil {
		return fmt.Errorf("failing silent devices: %w", err)
	}
	switch d.State {
	case DeploymentAborted:
		return s.tickAborted(ctx, d)
	case DeploymentCompleted:
		return nil
	}
	if d.Tag != "" {
		added, err := s.st.AddTagMembers(ctx, id, d.OrgID, d.Tag, d.Phase, s.opts.Deployments.MaxMembers)
		if err != nil {
			return fmt.Errorf("adding tagged devices: %w", err)
		}
		if len(added) > 0 {
			s.log.Info("devices joined a deployment by its tag", "deployment", id, "devices", len(added))
		}
		if len(added) > 0 && d.State == DeploymentScheduled {
			if err := s.st.SplitPhases(ctx, id, d.Phases); err != nil {
				return err
			}
		}
		for _, dev := range added {
			m, err := s.st.GetMember(ctx, id, dev)
			if err == nil {
				s.memberEvent(d, m)
			}
		}
	}
	if d.State == DeploymentScheduled && !time.Now().Before(d.NotBefore) {
		nd, ok, err := s.st.SetDeploymentState(ctx, id, []string{DeploymentScheduled}, DeploymentRunning, "")
		if err != nil {
			return err
		}
		if ok {
			d = nd
			s.stateEvent(ctx, d)
		}
	}
	if d.State != DeploymentRunning {
		return nil
	}
	return s.tickRunning(ctx, d)
}

// stateEvent publishes the deployment's new state.
func (s *Service) stateEvent(ctx context.Context, r store.Deployment) {
	d, err := s.loadDeployment(ctx, r)
	if err != nil {
		d = toDeployment(r, nil)
	}
	s.deploymentEvent(d, nil)
}

// pause pauses a running deployment by itself, saying why.
func (s *Service) pause(ctx context.Context, d store.Deployment, reason string) error {
	nd, ok, err := s.st.SetDeploymentState(ctx, d.ID, []string{DeploymentRunning}, DeploymentPaused, reason)
	if err != nil || !ok {
		return err
	}
	s.log.Warn("deployment paused itself", "deployment", d.ID, "reason", reason)
	s.audit(ctx, d.OrgID, Actor{Email: "bosun-cloud", Role: RoleSuper}, "deployment.pause", deploymentRef(d.ID), "ok",
		map[string]any{"state": DeploymentPaused, "was": d.State, "reason": reason})
	s.stateEvent(ctx, nd)
	return nil
}

func (s *Service) tickRunning(ctx context.Context, d store.Deployment) error {
	if d.ArtifactID == nil {
		return s.pause(ctx, d, fmt.Sprintf("the artifact %s version %s was deleted", d.Name, d.Version))
	}
	counts, err := s.st.MemberCounts(ctx, d.ID)
	if err != nil {
		return err
	}
	var members, phaseMembers, phaseFailed, open, waiting, flying int
	for _, c := range counts {
		members += c.N
		if inFlight[c.Status] {
			flying += c.N
		}
		if c.Phase <= d.Phase && !finalStatus[c.Status] {
			open += c.N
		}
		if c.Phase <= d.Phase && c.Status == DevPending {
			waiting += c.N // not sent yet, or waiting for a retry
		}
		if c.Phase == d.Phase {
			phaseMembers += c.N
			if c.Status == DevFailed || c.Status == DevRolledBack {
				phaseFailed += c.N
			}
		}
	}
	last := d.Phase == len(d.Phases)-1
	over := phaseFailed > d.AckedFailures && phaseFailed*100 > d.FailureThreshold*phaseMembers
	summary := fmt.Sprintf("phase %d: %d of %d devices failed (threshold %d%%)", d.Phase+1, phaseFailed, phaseMembers, d.FailureThreshold)
	// Over the threshold, the deployment pauses to protect what is left
	// to send (devices of this phase not sent yet or waiting for a retry,
	// later phases); when nothing is, the devices in flight finish and the
	// deployment completes, saying that the phase failed.
	if over && (waiting > 0 || !last) {
		return s.pause(ctx, d, summary)
	}
	if open == 0 && members > 0 {
		if last {
			reason := ""
			if over {
				reason = summary
			}
			nd, ok, err := s.st.SetDeploymentState(ctx, d.ID, []string{DeploymentRunning}, DeploymentCompleted, reason)
			if err == nil && ok {
				s.stateEvent(ctx, nd)
			}
			return err
		}
		if err := s.st.AdvancePhase(ctx, d.ID, d.Phase); err != nil {
			return err
		}
		nd, err := s.st.GetDeployment(ctx, d.ID)
		if err != nil {
			return err
		}
		s.stateEvent(ctx, nd)
		return s.tickRunning(ctx, nd)
	}
	if time.Now().Before(d.NotBefore) {
		return nil
	}
	claimed, err := s.st.ClaimPending(ctx, d.ID, d.Phase, d.MaxInFlight-flying)
	if err != nil {
		return fmt.Errorf("claiming members: %w", err)
	}
	if len(claimed) == 0 {
		return nil
	}
	art, err := s.st.ArtifactByID(ctx, *d.ArtifactID)
	if err != nil {
		// Deleted since: the claimed members' calls are missing and
		// count as failed attempts; the next tick pauses.
		return fmt.Errorf("loading artifact %d: %w", *d.ArtifactID, err)
	}
	for _, m := range claimed {
		if err := s.sendUpdate(ctx, d, art, m); err != nil {
			s.log.Warn("sending ota.update", "deployment", d.ID, "device_id", m.DeviceID, "err", err)
		}
		s.memberEvent(d, m)
	}
	return nil
}

// sendUpdate queues the ota.update call of a claimed member's attempt.
// Its download token lives as long as the call may wait in the queue
// (plus the usual token ttl for the download itself), so a device that
// comes back hours later still downloads; it is bound to the device and
// the artifact and stops working when either goes, like every token.
func (s *Service) sendUpdate(ctx context.Context, d store.Deployment, art Artifact, m store.DeploymentMember) error {
	ttl := s.opts.Deployments.CallTTL
	exp := time.Now().Add(ttl)
	tok, _, err := s.downloadTokenUntil(ctx, m.DeviceID, art, exp.Add(s.opts.DownloadTokenTTL))
	if err != nil {
		return err
	}
	params := rpcproto.OTAUpdateParams{ID: UpdateID(d.ID, m.Attempts), Target: art.Name + "/" + art.Version,
		URL: s.DownloadURL(tok), CommitTimeout: d.CommitTimeout}
	return s.queueCall(ctx, d, m.DeviceID, *m.CallID, rpcproto.MethodOTAUpdate, mustJSON(params), exp)
}

// queueCall stores a persistent call of the engine and nudges the holder
// of the device's session, without waiting for the outcome (the engine
// reads it from the calls table).
func (s *Service) queueCall(ctx context.Context, d store.Deployment, deviceID, callID, method string, params []byte, exp time.Time) error {
	c, err := s.st.InsertCall(ctx, store.NewCall{ID: callID, OrgID: d.OrgID, DeviceID: deviceID, Method: method,
		Params: params, Actor: deploymentRef(d.ID), Timeout: DefaultCallTimeout, Status: store.CallQueued, ExpiresAt: &exp})
	if err != nil {
		return err
	}
	s.nc.Publish(SubjectDrain(d.OrgID, deviceID), mustJSON(DrainRequest{CallID: c.ID, Method: c.Method}))
	return nil
}

// backoff is the wait after a member's attempt n failed.
func (s *Service) backoff(n int) time.Duration {
	b := s.opts.Deployments.RetryBackoff
	for i := 1; i < n && b < s.opts.Deployments.MaxRetryBackoff; i++ {
		b *= 2
	}
	return min(b, s.opts.Deployments.MaxRetryBackoff)
}

// failure is the update of a member whose attempt failed (status is the
// device's failed or rolled_back, or failed for a call that did not
// succeed) with why: a retry later; after the last attempt, set aside
// with that status for good; aborted when the deployment was.
func (s *Service) failure(d store.Deployment, m store.DeploymentMember, status, why string) store.MemberUpdate {
	u := store.MemberUpdate{DeploymentID: d.ID, DeviceID: m.DeviceID, Attempts: m.Attempts, ReportSeq: m.ReportSeq,
		Status: m.Status, NewReportSeq: m.ReportSeq}
	switch {
	case d.State == DeploymentAborted:
		u.NewStatus, u.Reason = DevAborted, "aborted: "+status+": "+why
	case m.Attempts >= d.MaxAttempts:
		u.NewStatus, u.Reason = status, fmt.Sprintf("set aside after %s: %s", plural(m.Attempts, "attempt"), why)
	default:
		at := time.Now().Add(s.backoff(m.Attempts)).UTC()
		u.NewStatus, u.RetryAt = DevPending, &at
		u.Reason = fmt.Sprintf("attempt %d %s: %s (retry at %s)", m.Attempts, status, why, at.Format(time.RFC3339))
	}
	return u
}

// plural is "1 attempt", "3 attempts".
func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return strconv.Itoa(n) + " " + what + "s"
}

// applyReports applies the newest unapplied report of each member's
// current attempt (deviceID "": every member).
func (s *Service) applyReports(ctx context.Context, d store.Deployment, deviceID string) error {
	mrs, err := s.st.NewReports(ctx, d.ID, deviceID)
	if err != nil {
		return err
	}
	for _, mr := range mrs {
		m, r := mr.Member, mr.Report
		u := store.MemberUpdate{DeploymentID: d.ID, DeviceID: m.DeviceID, Attempts: m.Attempts, ReportSeq: m.ReportSeq,
			Status: m.Status, NewStatus: m.Status, Percent: m.Percent, Reason: m.Reason, RetryAt: m.RetryAt}
		switch {
		case m.Status == DevAborted:
			// An abort that came too late: the truth wins.
			if r.Status == rpcproto.OTASucceeded {
				u.NewStatus, u.Percent, u.Reason = DevSucceeded, nil, "succeeded before the abort reached the device"
			}
		case r.Status == rpcproto.OTASucceeded:
			u.NewStatus, u.Percent, u.Reason, u.RetryAt = DevSucceeded, nil, "", nil
		case r.Status == rpcproto.OTAFailed || r.Status == rpcproto.OTARolledBack:
			reason := r.Reason
			if reason == "" {
				reason = "(no reason given)"
			}
			u = s.failure(d, m, r.Status, reason)
		case progress[r.Status] >= progress[m.Status]:
			u.NewStatus, u.Percent, u.Reason, u.RetryAt = r.Status, r.Percent, "", nil
		}
		u.NewReportSeq = r.Seq
		nm, ok, err := s.st.UpdateMember(ctx, u)
		if err != nil {
			return err
		}
		if ok && (nm.Status != m.Status || !equalPercent(nm.Percent, m.Percent)) {
			s.memberEvent(d, nm)
		}
	}
	return nil
}

func equalPercent(a, b *int) bool {
	return (a == nil) == (b == nil) && (a == nil || *a == *b)
}

// failUpdateCalls fails the attempts whose ota.update call ended without
// success before the device reported anything.
func (s *Service) failUpdateCalls(ctx context.Context, d store.Deployment) error {
	mcs, err := s.st.FailedUpdateCalls(ctx, d.ID)
	if err != nil {
		return err
	}
	for _, mc := range mcs {
		if d.State != DeploymentAborted && s.lostAnswer(mc) && mc.Resends < maxResends {
			if err := s.resendUpdate(ctx, d, mc.Member); err != nil {
				return err
			}
			continue
		}
		why := "the ota.update call was never recorded"
		if mc.CallFound {
			why = "ota.update " + mc.CallStatus
			if e := mc.CallError; e != nil {
				why += fmt.Sprintf(": %s (%d)", e.Message, e.Code)
			}
		}
		nm, ok, err := s.st.UpdateMember(ctx, s.failure(d, mc.Member, DevFailed, why))
		if err != nil {
			return err
		}
		if ok {
			s.memberEvent(d, nm)
		}
	}
	return nil
}

// maxResends bounds the calls sent again for one attempt.
const maxResends = 3

// lostAnswer reports whether an ota.update call reached the device but its
// answer was lost (it timed out, or the session ended first, e.g. the
// cloud restarted): the device may well be updating, so the same attempt
// is sent again, with the same id, which the device answers with the
// state of that update rather than starting another.
//
// A call that timed out without having been delivered (claimed by a
// replica that stopped before writing it) never reached the device: it is
// sent again too.
func (s *Service) lostAnswer(mc store.MemberCall) bool {
	if !mc.CallFound {
		return false
	}
	if mc.CallStatus == store.CallTimeout {
		return true
	}
	return mc.CallDelivered && mc.CallError != nil && mc.CallError.Code == rpcproto.CodeSessionEvicted
}

// resendUpdate sends a member's current attempt again.
func (s *Service) resendUpdate(ctx context.Context, d store.Deployment, m store.DeploymentMember) error {
	if d.ArtifactID == nil {
		return nil // the next tick pauses
	}
	art, err := s.st.ArtifactByID(ctx, *d.ArtifactID)
	if err != nil {
		return err
	}
	callID := newUUID()
	ok, err := s.st.ResendUpdate(ctx, d.ID, m.DeviceID, m.Attempts, *m.CallID, callID)
	if err != nil || !ok {
		return err
	}
	m.CallID = &callID
	s.log.Info("ota.update answer lost: sending the attempt again", "deployment", d.ID, "device_id", m.DeviceID, "attempt", m.Attempts)
	return s.sendUpdate(ctx, d, art, m)
}

// failSilent fails the attempts of members in flight whose device has
// said nothing for CallTTL plus the commit timeout (it answered ota.update
// and went quiet: gone, or its worker lost the update): without it such a
// member would hold its phase open for ever.
func (s *Service) failSilent(ctx context.Context, d store.Deployment) error {
	if d.State == DeploymentCompleted {
		return nil
	}
	ms, err := s.st.SilentMembers(ctx, d.ID, s.opts.Deployments.CallTTL)
	if err != nil {
		return err
	}
	for _, m := range ms {
		why := fmt.Sprintf("no report for %s after %s", s.opts.Deployments.CallTTL+time.Duration(d.CommitTimeout)*time.Second, m.Status)
		nm, ok, err := s.st.UpdateMember(ctx, s.failure(d, m, DevFailed, why))
		if err != nil {
			return err
		}
		if ok {
			s.memberEvent(d, nm)
		}
	}
	return nil
}

// errCancelled is the error of a queued ota.update call cancelled by an
// abort before it reached the device.
func errCancelled(id int64) *jsonrpc.Error {
	return &jsonrpc.Error{Code: rpcproto.CodeExpired, Message: fmt.Sprintf("cancelled before delivery: deployment %d was aborted", id)}
}

// tickAborted tells the members in flight of an aborted deployment to
// stop, and ends those whose abort was answered.
func (s *Service) tickAborted(ctx context.Context, d store.Deployment) error {
	ms, err := s.st.InFlightWithoutAbort(ctx, d.ID)
	if err != nil {
		return err
	}
	for _, m := range ms {
		if m.CallID != nil {
			c, cancelled, err := s.st.CancelQueued(ctx, *m.CallID, errCancelled(d.ID))
			if err != nil {
				return err
			}
			if cancelled {
				s.callFinished(c)
				nm, ok, err := s.st.UpdateMember(ctx, store.MemberUpdate{DeploymentID: d.ID, DeviceID: m.DeviceID,
					Attempts: m.Attempts, ReportSeq: m.ReportSeq, Status: m.Status, NewStatus: DevAborted,
					Reason: "aborted before the update reached the device", NewReportSeq: m.ReportSeq})
				if err != nil {
					return err
				}
				if ok {
					s.memberEvent(d, nm)
				}
				continue
			}
		}
		callID := newUUID()
		// Recorded first: should the insert fail, the abort is not sent
		// and the member ends aborted at the next tick ("never recorded").
		if err := s.st.SetAbortCall(ctx, d.ID, m.DeviceID, callID); err != nil {
			return err
		}
		params := mustJSON(rpcproto.OTAAbortParams{ID: UpdateID(d.ID, m.Attempts)})
		if err := s.queueCall(ctx, d, m.DeviceID, callID, rpcproto.MethodOTAAbort, params, time.Now().Add(s.opts.Deployments.CallTTL)); err != nil {
			s.log.Warn("sending ota.abort", "deployment", d.ID, "device_id", m.DeviceID, "err", err)
		}
	}
	mcs, err := s.st.FinishedAbortCalls(ctx, d.ID)
	if err != nil {
		return err
	}
	for _, mc := range mcs {
		why := "the ota.abort call was never recorded"
		if mc.CallFound {
			why = "ota.abort " + mc.CallStatus
			if e := mc.CallError; e != nil {
				why += fmt.Sprintf(": %s (%d)", e.Message, e.Code)
			}
		}
		m := mc.Member
		nm, ok, err := s.st.UpdateMember(ctx, store.MemberUpdate{DeploymentID: d.ID, DeviceID: m.DeviceID,
			Attempts: m.Attempts, ReportSeq: m.ReportSeq, Status: m.Status, NewStatus: DevAborted,
			Reason: "aborted: " + why, NewReportSeq: m.ReportSeq})
		if err != nil {
			return err
		}
		if ok {
			s.memberEvent(d, nm)
		}
	}
	return nil
}
