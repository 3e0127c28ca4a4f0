package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// offlineBound is how soon after a replica dies its devices must read
// offline: the replica timeout (4 s, store.ReplicaTimeout) and a second of
// polling.
const offlineBound = 5 * time.Second

// replicaNames lists the rows of the replicas table.
func (s *Stack) replicaNames(t *testing.T) []string {
	return queryStrings(t, s.Database, `SELECT name FROM replicas ORDER BY name`)
}

// cloudEnv is the environment of a further bosun-cloud on the stack's
// database, listening on listen.
func (s *Stack) cloudEnv(listen, dataDir string) []string {
	return []string{"BOSUN_LISTEN=" + listen, "BOSUN_DATA_DIR=" + dataDir,
		"BOSUN_CLOUD_KEY=" + filepath.Join(s.Keys, "cloud_private.pem")}
}

// TestReplicaKilled is item 4 of issue 9 with the real processes: kill -9
// of the cloud replica holding dev-1. Another replica on the same database
// reads dev-1 offline within 5 s (it used to show it online, on the dead
// replica, for about 20 s); the dead replica restarted under its (stable,
// default) name adds no replicas row; dev-1's bridge reconnects to it and
// calls work; a second live process with that name is refused.
func TestReplicaKilled(t *testing.T) {
	s := StartStack(t, Options{})
	ctx := context.Background()
	s.acceptDevice(t)
	host, _ := os.Hostname()
	nameA := host + ":" + s.Listen[strings.LastIndexByte(s.Listen, ':')+1:]
	if got := s.replicaNames(t); len(got) != 1 || got[0] != nameA {
		t.Fatalf("replicas %v, want the default name [%s]", got, nameA)
	}

	// Replica B: the same database (its own NATS: it only reads here).
	listenB := "127.0.0.1:" + strconv.Itoa(FreePort(t))
	s.startProc(t, "cloud-b", s.cloudEnv(listenB, filepath.Join(s.Dir, "cloud-b")), s.Bin("bosun-cloud"), "serve")
	Eventually(t, 30*time.Second, "replica B up", func() error {
		resp, err := http.Get("http://" + listenB + "/healthz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	})
	_, _, token := s.Credentials(t)
	cfgB := filepath.Join(s.Dir, "bosun-b.json")
	if err := os.WriteFile(cfgB, []byte(fmt.Sprintf(`{"url":"http://%s","token":"%s"}`, listenB, token)), 0o600); err != nil {
		t.Fatal(err)
	}
	viaB := []string{"BOSUN_CONFIG=" + cfgB}
	if d, err := s.device(ctx, viaB...); err != nil || !d.Online || d.Replica != nameA {
		t.Fatalf("through B before the kill: %+v, %v; want online on %s", d, err, nameA)
	}
	s.transcript(t, viaB, "devices")
	s.transcript(t, viaB, "device", s.Device)

	pidA := s.Pid("cloud")
	if err := syscall.Kill(pidA, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	Eventually(t, 10*time.Second, "replica A gone", func() error {
		if Alive(pidA) {
			return fmt.Errorf("pid %d alive", pidA)
		}
		return nil
	})
	Eventually(t, 2*offlineBound, s.Device+" offline through B", func() error {
		d, err := s.device(ctx, viaB...)
		if err != nil || d.Online {
			return fmt.Errorf("online %v, %v", d.Online, err)
		}
		return nil
	})
	if el := time.Since(killed); el > offlineBound {
		t.Fatalf("%s read offline %v after its replica was killed, want within %v", s.Device, el.Round(time.Millisecond), offlineBound)
	} else {
		t.Logf("%s read offline %v after kill -9 of its replica", s.Device, el.Round(time.Millisecond))
	}
	s.transcript(t, viaB, "devices")
	if out, err := s.cliEnv(ctx, viaB, "call", s.Device, "system.info"); err == nil || !strings.Contains(err.Error(), "-32000") {
		t.Fatalf("a call while the device's replica is dead: %s %v; want -32000 device offline", out, err)
	}

	// A restarted under its name: no new row, and dev-1 back on it.
	out, err := s.RunDev(ctx)
	if err != nil {
		t.Fatalf("./run-dev.sh after the kill: %v\n%s", err, out)
	}
	if got := s.replicaNames(t); len(got) != 2 || !slices.Contains(got, nameA) {
		t.Fatalf("replicas after restarting A: %v, want A (%s) and B, no new row", got, nameA)
	}
	Eventually(t, 90*time.Second, s.Device+" online again on A", func() error {
		d, err := s.device(ctx, viaB...)
		if err != nil || !d.Online || d.Replica != nameA {
			return fmt.Errorf("%+v, %v", d, err)
		}
		return nil
	})
	s.transcript(t, nil, "devices")
	s.transcript(t, nil, "device", s.Device)
	Eventually(t, 30*time.Second, "system.info through A", func() error {
		_, err := s.CLI(ctx, "call", s.Device, "system.info")
		return err
	})

	// A second live process under A's name is refused and changes nothing.
	cmd := exec.Command(s.Bin("bosun-cloud"), "serve")
	cmd.Env = s.Env(append(s.cloudEnv("127.0.0.1:"+strconv.Itoa(FreePort(t)), filepath.Join(s.Dir, "cloud-c")), "BOSUN_REPLICA="+nameA)...)
	done := make(chan struct{})
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatal("a second replica under a live replica's name kept running")
	}
	if cmd.ProcessState.ExitCode() == 0 || !strings.Contains(stderr.String(), "held by another live bosun-cloud process") {
		t.Fatalf("second replica %q: exit %d, stderr:\n%s", nameA, cmd.ProcessState.ExitCode(), stderr.String())
	}
	t.Logf("$ BOSUN_REPLICA=%s bosun-cloud serve\n%s", nameA, stderr.String())
	if got := s.replicaNames(t); len(got) != 2 {
		t.Fatalf("replicas after the refused start: %v", got)
	}
	if d, err := s.device(ctx); err != nil || !d.Online || d.Replica != nameA {
		t.Fatalf("after the refused start: %+v, %v", d, err)
	}
}
