package rpcproto

import "time"

// Params and results of the device's OTA methods (served by bosun-ota,
// device/internal/ota) and of the ota.status report it sends. The method
// names are in rpcproto.go.

// OTAUpdateParams are the params of ota.update. Target is NAME/VERSION
// (the TUF target NAME/VERSION/bundle.tar.gz); URL is where to download
// the bundle; CommitTimeout is how many seconds the new version has to
// call ota.commit (0: committed as soon as it is switched to).
type OTAUpdateParams struct {
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
