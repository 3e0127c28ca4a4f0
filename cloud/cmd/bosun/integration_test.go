package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/bosunhq/bosun/cloud/internal/cloudtest"
	"github.com/bosunhq/bosun/cloud/internal/fleet"
	"github.com/bosunhq/bosun/pkg/keys"
)

// cliSession runs the CLI against one cloud, configured the way run-dev.sh
// does it: BOSUN_CONFIG names a JSON file with the URL and token. With
// BOSUN_CLI_TRANSCRIPT set, every command and its output is appended to
// that file (docs/api.md's CLI examples come from it).
type cliSession struct {
	t   *testing.T
	env map[string]string
}

func newCLISession(t *testing.T, srv *cloudtest.Server) *cliSession {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "bosun.json")
	b, _ := json.Marshal(fileConfig{URL: srv.URL(), Token: srv.Token(t)})
	if err := os.WriteFile(cfg, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return &cliSession{t: t, env: map[string]string{"BOSUN_CONFIG": cfg, "HOME": dir}}
}

func (s *cliSession) run(args ...string) result {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out, errb syncBuffer
	a := &app{stdout: &out, stderr: &errb, getenv: func(k string) string { return s.env[k] }, now: time.Now}
	r := result{a.run(ctx, args), out.String(), errb.String()}
	s.transcript(args, r)
	return r
}

func (s *cliSession) transcript(args []string, r result) {
	p := os.Getenv("BOSUN_CLI_TRANSCRIPT")
	if p == "" {
		return
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		s.t.Fatal(err)
	}
	defer f.Close()
	quoted := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, ` {}"[]`) {
			a = "'" + a + "'"
		}
		quoted[i] = a
	}
	fmt.Fprintf(f, "```\n$ bosun %s\n%s%s", strings.Join(quoted, " "), r.stdout, r.stderr)
	if r.code != 0 {
		fmt.Fprintf(f, "$ echo $?\n%d\n", r.code)
	}
	fmt.Fprint(f, "```\n\n")
}

func (s *cliSession) expect(r result, code int, stdout, stderr string) {
	s.t.Helper()
	if r.code != code || !regexp.MustCompile(stdout).MatchString(r.stdout) || !regexp.MustCompile(stderr).MatchString(r.stderr) {
		s.t.Fatalf("exit %d (want %d)\nstdout:\n%s\n(want /%s/)\nstderr:\n%s\n(want /%s/)", r.code, code, r.stdout, stdout, r.stderr, stderr)
	}
}

func TestCLIAgainstCloud(t *testing.T) {
	srv := cloudtest.NewServer(t)
	s := newCLISession(t, srv)

	dev := cloudtest.MustConnect(t, srv, "dev-1", cloudtest.DeviceOptions{Attributes: map[string]string{"model": "rpi4"}})
	dev.Handle("system.info", func(ctx context.Context, _ json.RawMessage) (any, error) {
		return map[string]any{"hostname": "dev-1", "os": "linux", "arch": "arm64", "uptime_seconds": 42}, nil
	})
	der, _ := keys.PublicDER(dev.Key.Public())
	fp := regexp.QuoteMeta(keys.FingerprintDER(der))

	s.expect(s.run("devices", "--pending"), 0, `(?m)^ID +STATUS +ONLINE +TAGS +LAST SEEN +FINGERPRINT\ndev-1 +pending +yes +- +\d+s ago +`+fp+`\n$`, `^$`)
	s.expect(s.run("accept", "dev-1"), 0, `^accepted dev-1 \(`+fp+`\)\n$`, `^$`)
	s.expect(s.run("call", "dev-1", "system.info"), 0, `^\{\n  "arch": "arm64",\n  "hostname": "dev-1",\n  "os": "linux",\n  "uptime_seconds": 42\n\}\n$`, `^$`)
	s.expect(s.run("call", "dev-1", "containers.list", `{"all":true}`, "--timeout", "5s"), 1, `^$`, `^error -32601: `)
	s.expect(s.run("tag", "dev-1", "lab,eu"), 0, `^dev-1 tags: (lab, eu|eu, lab)\n$`, `^$`)
	s.expect(s.run("device", "dev-1"), 0, `(?s)ID +dev-1\nStatus +accepted\nOnline +yes \(replica r1\)\n.*Attributes +model=rpi4\n.*KEY +STATUS.*accepted +ed25519 +`+fp, `^$`)

	// A second lab device, then a fan-out by tag, then one that is offline.
	dev2 := cloudtest.MustConnect(t, srv, "dev-2", cloudtest.DeviceOptions{})
	dev2.Handle("system.info", func(ctx context.Context, _ json.RawMessage) (any, error) {
		return map[string]any{"hostname": "dev-2"}, nil
	})
	s.expect(s.run("accept", "dev-2", "dev-404"), 1, `^accepted dev-2 `, `^bosun accept: dev-404: device "dev-404" not found\n$`)
	s.expect(s.run("tag", "dev-2", "lab"), 0, `dev-2 tags: lab`, `^$`)
	s.expect(s.run("call", "--tag", "lab", "system.info"), 0,
		`(?s)dev-\d: \(\d+.*"hostname": "dev-\d".*dev-\d: \(.*\n2 devices: 2 succeeded, 0 failed, 0 offline, 0 timed out\n$`, `^$`)
	dev2.Close()
	cloudtest.Eventually(t, 10*time.Second, func() bool {
		d, err := srv.Service().GetDevice(context.Background(), srv.Super, "dev-2")
		return err == nil && !d.Online
	}, "dev-2 offline")
	s.expect(s.run("call", "dev-2", "system.info"), 1, `^$`, `^error -32000: device offline\n$`)
	s.expect(s.run("call", "--tag", "lab", "system.info", "--json"), 1,
		`(?s)"type":"result".*"type":"result".*{"type":"summary","summary":{"total":2,"succeeded":1,"failed":0,"offline":1,"timed_out":0}}\n$`, `^$`)
	r := s.run("call", "dev-2", "system.info", "--ttl", "1h")
	s.expect(r, 0, `^device offline: call [0-9a-f-]+ queued, expires \d{4}-\d\d-\d\d \d\d:\d\d:\d\d \(in 59m\)\n$`, `^$`)
	queuedID := regexp.MustCompile(`call ([0-9a-f-]+) queued`).FindStringSubmatch(r.stdout)[1]
	s.expect(s.run("calls", queuedID), 0, `(?m)^Status +queued\n(.*\n)*Expires +\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \(in 59m\)\n`, `^$`)
	// A tag no device has is a failure, not an empty success.
	s.expect(s.run("call", "--tag", "nosuchtag", "system.info"), 1, `^$`, `^bosun call: no device has tag "nosuchtag" `)

	s.expect(s.run("calls", "--device", "dev-1"), 0, `(?m)^ID +DEVICE +METHOD +STATUS +DURATION +CREATED +ACTOR\n(.*\n)*[0-9a-f-]+ +dev-1 +containers.list +failed \(-32601\) +`, `^$`)
	s.expect(s.run("audit", "--target", "dev-1"), 0, `(?m)^AT +ACTOR +ACTION +TARGET +OUTCOME\n(.*\n)*.*super@bosun.test +device.accept +dev-1 +ok`, `^$`)

	// Preauthorize a key from a PEM file.
	key := cloudtest.NewKey()
	keyFile := filepath.Join(t.TempDir(), "dev-3.pub")
	if err := keys.SavePublic(keyFile, key.Public()); err != nil {
		t.Fatal(err)
	}
	s.expect(s.run("preauth", "dev-3", keyFile), 0, `^preauthorized dev-3 \(SHA256:`, `^$`)
	s.expect(s.run("devices", "--status", "preauthorized", "--json"), 0, `"id": "dev-3"`, `^$`)

	s.expect(s.run("decommission", "dev-3"), 0, `^decommissioned dev-3 \(SHA256:`, `^$`)

	// One call in full, by its id.
	calls, err := srv.Service().ListCalls(context.Background(), srv.Super, fleet.CallFilter{DeviceID: "dev-1", Limit: 1})
	if err != nil || len(calls) != 1 {
		t.Fatalf("calls %v %v", calls, err)
	}
	s.expect(s.run("calls", calls[0].ID), 0, `(?s)^ID +`+calls[0].ID+`\nDevice +dev-1\nMethod +system.info\nStatus +succeeded\n.*Result\n\{\n  "arch"`, `^$`)

	// Tokens: create one, see it, revoke it, and it no longer works.
	r = s.run("tokens", "create", "ci")
	s.expect(r, 0, `^token \d+ "ci" created; its secret is shown only now:\nbsn_\S+\n$`, `^$`)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	secret := lines[len(lines)-1]
	id := regexp.MustCompile(`^token (\d+)`).FindStringSubmatch(r.stdout)[1]
	s.expect(s.run("tokens"), 0, `(?m)^ID +NAME +CREATED +LAST USED +REVOKED\n(.*\n)*`+id+` +ci +\d+s ago +never +no\n`, `^$`)
	s.expect(s.run("tokens", "list"), 0, `(?m)^ID +NAME +CREATED +LAST USED +REVOKED\n(.*\n)*`+id+` +ci +\d+s ago +never +no\n`, `^$`)
	s.expect(s.run("tokens", "revoke", id), 0, `^revoked token `+id+`\n$`, `^$`)
	s.expect(s.run("devices", "--token", secret), 1, `^$`, `invalid or revoked API token`)

	// Wrong credentials and a bad command line change nothing.
	s.env["BOSUN_TOKEN"] = "bsn_wrong"
	s.expect(s.run("reject", "dev-1"), 1, `^$`, `^bosun reject: dev-1: invalid or revoked API token \(check --token`)
	delete(s.env, "BOSUN_TOKEN")
	s.expect(s.run("call", "dev-1", "system.info", "--timeout", "soon"), 2, `^$`, `--timeout "soon": want a positive duration`)
	if d, _ := srv.Service().GetDevice(context.Background(), srv.Super, "dev-1"); d.Status != "accepted" {
		t.Fatalf("dev-1 is %s after rejected commands", d.Status)
	}
}

func TestCLIEvents(t *testing.T) {
	srv := cloudtest.NewServer(t)
	s := newCLISession(t, srv)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errb syncBuffer
	a := &app{stdout: &out, stderr: &errb, getenv: func(k string) string { return s.env[k] }, now: time.Now}
	done := make(chan int, 1)
	go func() { done <- a.run(ctx, []string{"events"}) }()
	cloudtest.Eventually(t, 10*time.Second, func() bool { return strings.Contains(errb.String(), "following events") }, "subscribed")

	d := cloudtest.MustConnect(t, srv, "dev-ev", cloudtest.DeviceOptions{})
	if err := srv.Service().Accept(ctx, srv.Super, "dev-ev"); err != nil {
		t.Fatal(err)
	}
	d.Close()
	cloudtest.Eventually(t, 10*time.Second, func() bool {
		o := out.String()
		return strings.Contains(o, "device.pending") && strings.Contains(o, "device.accepted") && strings.Contains(o, "device.disconnected")
	}, "pending, accepted and disconnected events; got %q", out.String())
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errb.String())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("bosun events did not stop on Ctrl-C")
	}
	if !regexp.MustCompile(`(?m)^\d\d:\d\d:\d\d  device.pending +dev-ev`).MatchString(out.String()) {
		t.Errorf("output %q", out.String())
	}
	s.transcript([]string{"events"}, result{0, out.String(), errb.String() + "^C\n"})
}

// TestCLIAcceptNamesTheKey: a device with two pending keys is not accepted
// by `bosun accept ID`, which lists both with the command for each; with
// --fingerprint the named key is accepted, and printed, and the other is
// rejected; the rejected one can be accepted by name later, a revoked one
// never.
func TestCLIAcceptNamesTheKey(t *testing.T) {
	srv := cloudtest.NewServer(t)
	s := newCLISession(t, srv)
	ctx := context.Background()
	offline := func(id string) {
		t.Helper()
		cloudtest.Eventually(t, 10*time.Second, func() bool {
			d, err := srv.Service().GetDevice(ctx, srv.Super, id)
			return err == nil && !d.Online
		}, "%s offline", id)
	}
	fingerprint := func(d *cloudtest.Device) string {
		der, _ := keys.PublicDER(d.Key.Public())
		return keys.FingerprintDER(der)
	}
	d1 := cloudtest.MustConnect(t, srv, "tq-1", cloudtest.DeviceOptions{})
	s.expect(s.run("accept", "tq-1"), 0, `^accepted tq-1 \(`+regexp.QuoteMeta(fingerprint(d1))+`\)\n$`, `^$`)
	d1.Close()
	offline("tq-1")
	// The device rotates to K2, and someone else presents K3.
	d2 := cloudtest.MustConnect(t, srv, "tq-1", cloudtest.DeviceOptions{})
	d2.Close()
	offline("tq-1")
	d3 := cloudtest.MustConnect(t, srv, "tq-1", cloudtest.DeviceOptions{})
	d3.Close()
	offline("tq-1")
	k2, k3 := regexp.QuoteMeta(fingerprint(d2)), regexp.QuoteMeta(fingerprint(d3))

	s.expect(s.run("accept", "tq-1"), 1, `^$`,
		`^bosun accept: tq-1: device tq-1 has 2 pending keys \(`+k3+`, `+k2+`\): name the fingerprint of the one to accept\n`+
			`compare them with the device's own \(bosun-bridge fingerprint on the device\), then accept one:\n`+
			`  bosun accept tq-1 --fingerprint `+k3+`\n`+
			`  bosun accept tq-1 --fingerprint `+k2+`\n$`)
	if d, _ := srv.Service().GetDevice(ctx, srv.Super, "tq-1"); d.Status != "pending" {
		t.Fatalf("tq-1 is %s after a refused accept", d.Status)
	}
	s.expect(s.run("accept", "tq-1", "--fingerprint", fingerprint(d2)), 0, `^accepted tq-1 \(`+k2+`\)\n$`, `^$`)
	s.expect(s.run("device", "tq-1"), 0, `(?s)Status +accepted.*KEY +STATUS.*\n\d+ +rejected.* +ed25519 +`+k3+`.*\n\d+ +accepted.* +ed25519 +`+k2+`.*\n\d+ +revoked +ed25519 +`, `^$`)
	// A rejection is reversible, by name: K3 is accepted and K2 revoked.
	// A revocation is not.
	s.expect(s.run("accept", "tq-1", "--fingerprint", fingerprint(d3)), 0, `^accepted tq-1 \(`+k3+`\)\n$`, `^$`)
	s.expect(s.run("accept", "tq-1", "--fingerprint", fingerprint(d2)), 1, `^$`,
		`^bosun accept: tq-1: key `+k2+` of device tq-1 is revoked, and a revoked key is never accepted again: the device must register with a new key\n$`)
}

// TestCLIHostNameDevice: a device whose id is a host name registers, is
// accepted and answers calls through the CLI and the API (the id in URL
// paths, in NATS subjects encoded).
func TestCLIHostNameDevice(t *testing.T) {
	srv := cloudtest.NewServer(t)
	s := newCLISession(t, srv)
	const id = "pi.kitchen.local"
	dev := cloudtest.MustConnect(t, srv, id, cloudtest.DeviceOptions{})
	dev.Handle("system.info", func(ctx context.Context, _ json.RawMessage) (any, error) {
		return map[string]any{"hostname": id}, nil
	})
	s.expect(s.run("devices", "--pending"), 0, `(?m)^pi\.kitchen\.local +pending +yes `, `^$`)
	s.expect(s.run("accept", id), 0, `^accepted pi\.kitchen\.local \(SHA256:`, `^$`)
	select {
	case <-dev.Accepted():
	case <-time.After(10 * time.Second):
		t.Fatal("no auth.accepted")
	}
	s.expect(s.run("call", id, "system.info"), 0, `^\{\n  "hostname": "pi\.kitchen\.local"\n\}\n$`, `^$`)
	s.expect(s.run("device", id), 0, `(?s)^ID +pi\.kitchen\.local\nStatus +accepted\nOnline +yes`, `^$`)
	// pi_kitchen_local is another device, unknown.
	s.expect(s.run("call", "pi_kitchen_local", "system.info"), 1, `^$`, `not found`)

	// Preauthorizing: a host name is an id, an empty label or 254 bytes are
	// not, and a refused id leaves no device behind.
	keyFile := filepath.Join(t.TempDir(), "k.pub")
	if err := keys.SavePublic(keyFile, cloudtest.NewKey().Public()); err != nil {
		t.Fatal(err)
	}
	s.expect(s.run("preauth", "pi.garage.local", keyFile), 0, `^preauthorized pi\.garage\.local \(SHA256:`, `^$`)
	long := strings.Repeat("a", 63) + "." + strings.Repeat("a", 63) + "." + strings.Repeat("a", 63) + "." + strings.Repeat("a", 62)
	for _, bad := range []string{"pi..local", "pi.local.", long} {
		s.expect(s.run("preauth", bad, keyFile), 1, `^$`, `device id`)
		if _, err := srv.Service().GetDevice(context.Background(), srv.Super, bad); !errors.Is(err, fleet.ErrNotFound) {
			t.Fatalf("%q after a refused preauth: %v, want not found", bad, err)
		}
	}
	s.expect(s.run("preauth", long[1:], keyFile), 0, `^preauthorized a+\.a+\.a+\.a+ \(SHA256:`, `^$`)
}
