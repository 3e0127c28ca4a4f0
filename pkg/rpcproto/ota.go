package rpcproto

import "time"

// Params and results of the device's OTA methods (served by bosun-ota,
// device/internal/ota) and of the ota.status report it sends. The method
// names are in rpcproto.go.

// MethodOTAAbort stops the update of an id (cloud → device): the job in
// progress fails ("aborted: ..."), a slot awaiting its commit reverts.
const MethodOTAAbort = "ota.abort"

// OTAUpdateParams are the params of ota.update. Target is NAME/VERSION
// (the TUF target NAME/VERSION/bundle.tar.gz); URL is where to download
// the bundle; CommitTimeout is how many seconds the new version has to
// call ota.commit (0: committed as soon as it is switched to). ID, when
// set (1 to 64 of A-Z, a-z, 0-9, '.', '_', '-'), is the update's id
// instead of a random one: the cloud's deployments send
// dep-<deployment>-<attempt>, and an ota.update naming the id of the
// update in progress (or awaiting its commit) answers its state instead
// of starting another.
type OTAUpdateParams struct {
	ID            string `json:"id,omitempty"`
	Target        string `json:"target"`
	URL           string `json:"url"`
	CommitTimeout int    `json:"commit_timeout"`
}

// OTAUpdateResult answers ota.update: the update started in the background;
// its progress comes as ota.status reports carrying ID.
type OTAUpdateResult struct {
	ID     string `json:"id"`
	Slot   string `json:"slot"`
	Status string `json:"status"`
}

// OTAAbortParams are the params of ota.abort: the id of the update to stop.
type OTAAbortParams struct {
	ID string `json:"id"`
}

// OTAAbortResult answers ota.abort: what the device did (failed: the job
// in progress was stopped; rolled_back: the slot awaiting its commit was
// reverted).
type OTAAbortResult struct {
	ID     string `json:"id"`
	Status string `json:"status"`
}

// OTACreateSnapshotParams are the params of ota.create_snapshot.
type OTACreateSnapshotParams struct {
	SetAsRevert   bool `json:"set_as_revert"`
	CommitTimeout int  `json:"commit_timeout"`
}

// OTACreateSnapshotResult answers ota.create_snapshot: the slot now holding
// the copy.
type OTACreateSnapshotResult struct {
	Slot string `json:"slot"`
}

// OTABootState is the result of ota.get_boot_state and the params of
// ota.set_boot_state. CommitTimeout is the seconds left before an
// uncommitted slot is reverted (0 when committed).
type OTABootState struct {
	ActiveSlot    string `json:"active_slot"`
	IsCommitted   bool   `json:"is_committed"`
	RevertSlot    string `json:"revert_slot"`
	CommitTimeout int    `json:"commit_timeout"`
}

// OTA statuses a device reports with ota.status.
const (
	OTADownloading    = "downloading"
	OTAInstalling     = "installing"
	OTAAwaitingCommit = "awaiting_commit"
	OTASucceeded      = "succeeded"
	OTAFailed         = "failed"
	OTARolledBack     = "rolled_back"
)

// OTAStatusParams are the params of ota.status (device → cloud, through
// the bridge's outbox). ID names the update (ota.update's result); Seq
// grows by one with every report of the device (it survives restarts), so
// the cloud can drop a report it has seen already; Percent is set while
// downloading; Reason says why for failed and rolled_back.
type OTAStatusParams struct {
	ID      string    `json:"id"`
	Seq     uint64    `json:"seq"`
	Target  string    `json:"target"`
	Status  string    `json:"status"`
	Percent *int      `json:"percent,omitempty"`
	Reason  string    `json:"reason,omitempty"`
	Slot    string    `json:"slot,omitempty"`
	At      time.Time `json:"at"`
}
