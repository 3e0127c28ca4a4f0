package fleet_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/bosunhq/bosun/cloud/internal/cloudtest"
	"github.com/bosunhq/bosun/cloud/internal/fleet"
	"github.com/bosunhq/bosun/pkg/keys"
	"go.uber.org/goleak"
)

// TestMain checks that no test leaves goroutines behind: the service, the
// hub and the harness all start goroutines that must end at shutdown.
// goleak rather than a hand count of runtime.NumGoroutine: it ignores the
// runtime's own goroutines and prints the stack of each leaked one.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestRoles(t *testing.T) {
	s := cloudtest.NewServer(t)
	ctx := ctxT(t)
	svc := s.Service()
	viewer := s.Actor(t, "viewer@x.test", fleet.RoleViewer, "")
	operator := s.Actor(t, "op@x.test", fleet.RoleOperator, "")
	admin := s.Actor(t, "admin@x.test", fleet.RoleAdmin, "")
	stranger := s.Actor(t, "admin@other.test", fleet.RoleAdmin, "other")
	cloudtest.MustConnect(t, s, "dev-role", cloudtest.DeviceOptions{})

	for _, tt := range []struct {
		name string
		do   func() error
		want error
	}{
		{"viewer reads", func() error { _, err := svc.GetDevice(ctx, viewer, "dev-role"); return err }, nil},
		{"viewer may not accept", func() error { return svc.Accept(ctx, viewer, "dev-role") }, fleet.ErrForbidden},
		{"viewer may not call", func() error {
			_, err := svc.Call(ctx, viewer, fleet.CallRequest{DeviceID: "dev-role", Method: "m"})
			return err
		}, fleet.ErrForbidden},
		{"other org sees nothing", func() error { _, err := svc.GetDevice(ctx, stranger, "dev-role"); return err }, fleet.ErrNotFound},
		{"other org may not accept", func() error { return svc.Accept(ctx, stranger, "dev-role") }, fleet.ErrNotFound},
		{"operator may not decommission", func() error { return svc.Decommission(ctx, operator, "dev-role") }, fleet.ErrForbidden},
		{"operator accepts", func() error { return svc.Accept(ctx, operator, "dev-role") }, nil},
		{"nothing left to accept", func() error { return svc.Accept(ctx, operator, "dev-role") }, fleet.ErrConflict},
		{"admin decommissions", func() error { return svc.Decommission(ctx, admin, "dev-role") }, nil},
		{"admin may not add a super user", func() error {
			_, _, err := svc.AddUser(ctx, admin, "s2@x.test", fleet.RoleSuper, admin.OrgID)
			return err
		}, fleet.ErrForbidden},
		{"admin adds an operator", func() error {
			_, _, err := svc.AddUser(ctx, admin, "op2@x.test", fleet.RoleOperator, admin.OrgID)
			return err
		}, nil},
		{"duplicate email", func() error { _, err := svc.CreateUser(ctx, "op2@x.test", fleet.RoleViewer, ""); return err }, fleet.ErrConflict},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.do(); !errors.Is(err, tt.want) && !(tt.want == nil && err == nil) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
	devs, total, err := svc.ListDevices(ctx, stranger, fleet.DeviceFilter{})
	if err != nil || total != 0 || len(devs) != 0 {
		t.Fatalf("stranger lists %d devices (%v)", total, err)
	}
	devs, total, _ = svc.ListDevices(ctx, viewer, fleet.DeviceFilter{Status: "decommissioned"})
	if total != 1 || devs[0].ID != "dev-role" {
		t.Fatalf("viewer lists %+v", devs)
	}
}

func TestTokensAndPasswords(t *testing.T) {
	s := cloudtest.NewServer(t)
	ctx := ctxT(t)
	svc := s.Service()
	pw, err := svc.CreateUser(ctx, "Ann@X.test", fleet.RoleOperator, "")
	if err != nil {
		t.Fatal(err)
	}
	a, err := svc.AuthenticatePassword(ctx, "ann@x.test", pw)
	if err != nil || a.Role != fleet.RoleOperator {
		t.Fatalf("password login: %+v, %v", a, err)
	}
	if _, err := svc.AuthenticatePassword(ctx, "ann@x.test", pw+"x"); !errors.Is(err, fleet.ErrUnauthenticated) {
		t.Fatalf("wrong password: %v", err)
	}
	secret, tok, err := svc.CreateToken(ctx, a, "laptop")
	if err != nil || !strings.HasPrefix(secret, fleet.TokenPrefix) || len(secret) != 47 {
		t.Fatalf("token %q, %v", secret, err)
	}
	b, err := svc.AuthenticateToken(ctx, secret)
	if err != nil || b.UserID != a.UserID || b.TokenID != tok.ID {
		t.Fatalf("token auth: %+v, %v", b, err)
	}
	var stored []byte
	svc.Store().Pool().QueryRow(ctx, `SELECT hash FROM api_tokens WHERE id = $1`, tok.ID).Scan(&stored)
	if len(stored) != 32 || strings.Contains(string(stored), secret[4:]) {
		t.Fatalf("token stored as %x, want its sha256", stored)
	}
	for _, bad := range []string{"", "bsn_", secret + "x", "xyz_" + secret[4:]} {
		if _, err := svc.AuthenticateToken(ctx, bad); !errors.Is(err, fleet.ErrUnauthenticated) {
			t.Fatalf("token %q: %v", bad, err)
		}
	}
	if err := svc.RevokeToken(ctx, a, tok.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.AuthenticateToken(ctx, secret); !errors.Is(err, fleet.ErrUnauthenticated) {
		t.Fatalf("revoked token: %v", err)
	}
	ts, _ := svc.ListTokens(ctx, a)
	if len(ts) != 1 || !ts[0].Revoked || ts[0].LastUsed == nil {
		t.Fatalf("tokens = %+v", ts)
	}
	// The bootstrap token of the harness works against the API's service too.
	if _, err := svc.AuthenticateToken(ctx, s.Token(t)); err != nil {
		t.Fatal(err)
	}
}

func TestAuditAndEvents(t *testing.T) {
	s := cloudtest.NewServer(t)
	ctx := ctxT(t)
	svc := s.Service()
	events, err := svc.Subscribe(ctx, s.Super)
	if err != nil {
		t.Fatal(err)
	}
	d := cloudtest.MustConnect(t, s, "dev-au", cloudtest.DeviceOptions{})
	svc.Accept(ctx, s.Super, "dev-au")
	<-d.Accepted()
	svc.Call(ctx, s.Super, fleet.CallRequest{DeviceID: "dev-au", Method: "nope"})
	key := cloudtest.NewKey()
	der, _ := keys.PublicDER(key.Public())
	svc.Preauthorize(ctx, s.Super, "dev-pre", der)
	svc.Reject(ctx, s.Super, "dev-au")
	svc.Decommission(ctx, s.Super, "dev-pre")

	rows, err := svc.AuditLog(ctx, s.Super, fleet.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, r := range rows {
		if r.Actor == "" || r.At.IsZero() || r.Outcome == "" {
			t.Fatalf("incomplete audit row %+v", r)
		}
		actions = append(actions, r.Action+":"+r.Target)
	}
	got := strings.Join(actions, " ")
	for _, want := range []string{"user.create:" + cloudtest.SuperEmail, "device.accept:dev-au", "call:dev-au",
		"device.preauthorize:dev-pre", "device.reject:dev-au", "device.decommission:dev-pre"} {
		if !strings.Contains(got, want) {
			t.Errorf("audit log lacks %s: %s", want, got)
		}
	}
	want := []string{fleet.EventDevicePending, fleet.EventDeviceConnected, fleet.EventDeviceAccepted,
		fleet.EventCallFinished, fleet.EventDeviceRejected, fleet.EventDeviceDecommissioned}
	seen := map[string]bool{}
	deadline := time.After(5 * time.Second)
	for len(seen) < len(want) {
		select {
		case e := <-events:
			for _, w := range want {
				if e.Type == w {
					seen[w] = true
				}
			}
		case <-deadline:
			t.Fatalf("events seen %v, want %v", seen, want)
		}
	}
}
