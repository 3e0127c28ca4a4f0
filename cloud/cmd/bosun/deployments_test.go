package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bosunhq/bosun/cloud/internal/cloudtest"
	"github.com/bosunhq/bosun/cloud/internal/fleet"
	"github.com/bosunhq/bosun/cloud/internal/server"
	"github.com/bosunhq/bosun/pkg/rpcproto"
)

// updatingDevice connects and accepts id, serving ota.update like
// bosun-ota: it reports every status through to succeeded.
func updatingDevice(t *testing.T, srv *cloudtest.Server, id string) {
	t.Helper()
	d := cloudtest.MustConnect(t, srv, id, cloudtest.DeviceOptions{})
	if err := srv.Service().Accept(context.Background(), srv.Super, id); err != nil {
		t.Fatal(err)
	}
	<-d.Accepted()
	var mu sync.Mutex
	var seq uint64
	d.Handle(rpcproto.MethodOTAUpdate, func(ctx context.Context, raw json.RawMessage) (any, error) {
		var p rpcproto.OTAUpdateParams
		json.Unmarshal(raw, &p)
		go func() {
			for _, st := range []string{rpcproto.OTADownloading, rpcproto.OTAInstalling, rpcproto.OTAAwaitingCommit, rpcproto.OTASucceeded} {
				mu.Lock()
				seq++
				r := rpcproto.OTAStatusParams{ID: p.ID, Seq: seq, Target: p.Target, Status: st, At: time.Now()}
				mu.Unlock()
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				var res fleet.OTAStatusResult
				d.Peer.Call(ctx, rpcproto.MethodOTAStatus, r, &res)
				cancel()
			}
		}()
		return rpcproto.OTAUpdateResult{ID: p.ID, Slot: "b", Status: "downloading"}, nil
	})
	if err := d.ReportMethods(context.Background(), rpcproto.MethodOTAUpdate); err != nil {
		t.Fatal(err)
	}
}

// TestDeploymentsCLI creates, watches, lists, pauses, resumes and aborts
// deployments through the CLI against a real replica, and sees each
// refusal as a clear message and exit code.
func TestDeploymentsCLI(t *testing.T) {
	srv := cloudtest.NewServer(t, cloudtest.WithConfig(func(c *server.Config) {
		c.Deployments = fleet.DeploymentOptions{Tick: 50 * time.Millisecond, RetryBackoff: time.Millisecond}
	}))
	s := newCLISession(t, srv)
	bundle := filepath.Join(t.TempDir(), "hello.tar.gz")
	os.WriteFile(bundle, []byte("bundle"), 0o600)
	rel := filepath.Join(t.TempDir(), "release")
	s.expect(s.run("release", "init", rel), 0, `made a release repository`, `^$`)
	s.expect(s.run("release", "publish", rel), 0, `published`, `^$`)
	s.expect(s.run("artifacts", "upload", "hello", "2.0.0", bundle, "--release", rel), 0, `uploaded(?s).*and published`, `^$`)
	updatingDevice(t, srv, "cli-1")
	updatingDevice(t, srv, "cli-2")
	if err := srv.Service().SetTags(context.Background(), srv.Super, "cli-2", []string{"lab"}); err != nil {
		t.Fatal(err)
	}

	s.expect(s.run("deployments"), 0, `^no deployments\n$`, `^$`)
	s.expect(s.run("deployments", "create", "hello", "2.0.0", "--devices", "cli-1", "--tag", "lab", "--phases", "50,100",
		"--commit-timeout", "2m", "--failure-threshold", "0"), 0, `^created deployment 1: hello 2.0.0 to 2 devices, running\n$`, `^$`)
	r := s.run("deployments", "show", "1", "--watch", "--every", "50ms", "--timeout", "20s")
	s.expect(r, 0, `(?s)State +completed\n.*Phase +2 of 2 \(up to 100% of the devices; phases 50%, 100%\)\n.*Devices +2: 2 succeeded\n.*Target +cli-1 \+ tag lab\n`+
		`.*failure threshold 0%, max attempts 3, commit timeout 120s\n.*DEVICE +PHASE +STATUS +PERCENT +ATTEMPTS +REASON\ncli-1 +1 +succeeded +- +1 +-\ncli-2 +2 +succeeded +- +1 +-\n$`, `^$`)
	if strings.Count(r.stdout, "Deployment ") < 1 {
		t.Fatalf("watch printed nothing: %s", r.stdout)
	}
	s.expect(s.run("deployments", "list", "--state", "completed"), 0, `(?m)^ID +ARTIFACT +STATE +PHASE +DEVICES +SUCCEEDED +FAILED +CREATED\n1 +hello 2\.0\.0 +completed +2/2 \(100%\) +2 +2 +0 +`, `^$`)
	s.expect(s.run("versions", "hello"), 0, `^VERSION +DEVICES\n2\.0\.0 +2\n$`, `^$`)
	s.expect(s.run("deployments", "versions", "hello", "--json"), 0, `"version": "2.0.0"`, `^$`)

	// A scheduled one: pause, resume, abort.
	s.expect(s.run("deployments", "create", "hello", "2.0.0", "--devices", "cli-1", "--not-before", time.Now().Add(time.Hour).UTC().Format(time.RFC3339)),
		0, `^created deployment 2: .*scheduled\n$`, `^$`)
	s.expect(s.run("deployments", "pause", "2"), 0, `^deployment 2 is paused\n$`, `^$`)
	s.expect(s.run("deployments", "show", "2"), 0, `(?m)^State +paused: paused by super@bosun.test$`, `^$`)
	s.expect(s.run("deployments", "resume", "2"), 0, `^deployment 2 is scheduled\n$`, `^$`)
	s.expect(s.run("deployments", "abort", "2"), 0, `^deployment 2 is aborted\n$`, `^$`)
	s.expect(s.run("deployments", "abort", "2"), 1, `^$`, `deployment 2 is aborted already`)
	s.expect(s.run("deployments", "show", "2", "--json"), 0, `"state": "aborted"`, `^$`)

	// Refusals.
	s.expect(s.run("deployments", "create", "hello", "2.0.0"), 2, `^$`, `name the devices`)
	s.expect(s.run("deployments", "create", "hello", "9.0.0", "--devices", "cli-1"), 1, `^$`, `artifact hello version 9.0.0 does not exist`)
	s.expect(s.run("deployments", "create", "hello", "2.0.0", "--devices", "cli-1", "--phases", "50,40,100"), 1, `^$`, `strictly increasing`)
	s.expect(s.run("deployments", "create", "hello", "2.0.0", "--devices", "cli-1", "--phases", "half"), 2, `^$`, `--phases`)
	s.expect(s.run("deployments", "create", "hello", "2.0.0", "--devices", "cli-1", "--commit-timeout", "1.5s"), 2, `^$`, `whole seconds`)
	s.expect(s.run("deployments", "create", "hello", "2.0.0", "--devices", "cli-1", "--not-before", "tomorrow"), 2, `^$`, `RFC 3339`)
	s.expect(s.run("deployments", "show", "x"), 2, `^$`, `want a number`)
	s.expect(s.run("deployments", "show", "99"), 1, `^$`, `deployment 99 not found`)
	s.expect(s.run("deployments", "list", "--watch"), 2, `^$`, `--watch goes with show`)
	s.expect(s.run("deployments", "frobnicate", "1"), 2, `^$`, `want list`)
	if ds, _ := srv.Service().ListDeployments(context.Background(), srv.Super, fleet.DeploymentFilter{}); len(ds) != 2 {
		t.Fatalf("refusals created deployments: %d", len(ds))
	}
}
