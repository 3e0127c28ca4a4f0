package main

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/bosunhq/bosun/cloud/internal/cloudtest"
	"github.com/bosunhq/bosun/pkg/keys"
)

// TestCLIAcceptsARejectedDevice is the report's story: reject dev-2, then
// `bosun accept dev-2` brings it back (it used to answer "conflict:
// accepting device dev-2: store: no pending key set"). A wrong fingerprint
// is refused with a public message and changes nothing.
func TestCLIAcceptsARejectedDevice(t *testing.T) {
	srv := cloudtest.NewServer(t)
	s := newCLISession(t, srv)
	ctx := context.Background()
	dev := cloudtest.MustConnect(t, srv, "dev-2", cloudtest.DeviceOptions{})
	der, _ := keys.PublicDER(dev.Key.Public())
	fp := keys.FingerprintDER(der)
	qfp := regexp.QuoteMeta(fp)
	s.expect(s.run("accept", "dev-2"), 0, `^accepted dev-2 \(`+qfp+`\)\n$`, `^$`)
	<-dev.Accepted()

	s.expect(s.run("reject", "dev-2"), 0, `^rejected dev-2 \(`+qfp+`\)\n$`, `^$`)
	if code := dev.WaitClosed(t, 5*time.Second); code != 4003 {
		t.Fatalf("closed with %d, want 4003", code)
	}
	cloudtest.Eventually(t, 10*time.Second, func() bool {
		d, err := srv.Service().GetDevice(ctx, srv.Super, "dev-2")
		return err == nil && !d.Online && d.Status == "rejected"
	}, "dev-2 offline and rejected")

	other := "SHA256:" + strings.Repeat("A", 43)
	r := s.run("accept", "dev-2", "--fingerprint", other)
	s.expect(r, 1, `^$`, `^bosun accept: dev-2: device dev-2 has no key `+regexp.QuoteMeta(other)+`\n$`)
	if d, _ := srv.Service().GetDevice(ctx, srv.Super, "dev-2"); d.Status != "rejected" {
		t.Fatalf("a refused accept changed the device: %s", d.Status)
	}

	s.expect(s.run("accept", "dev-2"), 0, `^accepted dev-2 \(`+qfp+`\)\n$`, `^$`)
	back := cloudtest.MustConnect(t, srv, "dev-2", cloudtest.DeviceOptions{Key: dev.Key})
	if back.Registration.Status != "accepted" {
		t.Fatalf("came back as %+v", back.Registration)
	}
	s.expect(s.run("devices"), 0, `(?m)^dev-2 +accepted +yes `, `^$`)

	// Accepting again: nothing to accept, said plainly.
	r = s.run("accept", "dev-2")
	s.expect(r, 1, `^$`, `^bosun accept: dev-2: device dev-2 has no pending key to accept: its key `+qfp+` is accepted\n$`)
	for _, internal := range []string{"store:", "conflict:", "accepting device"} {
		if strings.Contains(r.stderr, internal) {
			t.Fatalf("internal text %q reached the CLI: %s", internal, r.stderr)
		}
	}
}
