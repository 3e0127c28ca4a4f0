package datadir

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bosunhq/bosun/pkg/rpcproto"
)

func TestStateRoundTrip(t *testing.T) {
	dir := t.TempDir()
	if _, err := ReadState(dir); !os.IsNotExist(err) {
		t.Fatalf("missing state.json: err = %v", err)
	}
	want := State{DeviceID: "dev-1", ReportedAt: time.Unix(5, 0).UTC(), Report: rpcproto.StateReportParams{Hostname: "h"}}
	if err := WriteState(dir, want); err != nil {
		t.Fatal(err)
	}
	got, err := ReadState(dir)
	if err != nil || got.DeviceID != want.DeviceID || got.Report.Hostname != "h" || !got.ReportedAt.Equal(want.ReportedAt) {
		t.Fatalf("got %+v, %v", got, err)
	}
}

func TestNewLoggerWritesFileAndStderr(t *testing.T) {
	dir := t.TempDir()
	var stderr bytes.Buffer
	log, closeLog, err := NewLogger(dir, "bridge", slog.LevelInfo, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	log.With("device_id", "d").Info("hello", "k", 1)
	log.Debug("hidden")
	closeLog()
	file, err := os.ReadFile(filepath.Join(dir, LogsDir, "bridge.log"))
	if err != nil {
		t.Fatal(err)
	}
	for name, out := range map[string]string{"file": string(file), "stderr": stderr.String()} {
		if !strings.Contains(out, "msg=hello") || !strings.Contains(out, "device_id=d") || strings.Contains(out, "hidden") {
			t.Errorf("%s: %q", name, out)
		}
	}
}
