package fleet_test

import (
	"errors"
	"testing"
	"time"

	"github.com/bosunhq/bosun/cloud/internal/cloudtest"
	"github.com/bosunhq/bosun/cloud/internal/fleet"
)

// TestTokenCacheAcrossReplicas: a token both replicas trust (cached) stops
// working on both as soon as one revokes it, or disables its user, or
// changes the user's role: the change reaches the other replica's cache
// over NATS, well before the cache's TTL; a token that never
// authenticated is never cached.
func TestTokenCacheAcrossReplicas(t *testing.T) {
	s1 := cloudtest.NewServer(t)
	s2 := cloudtest.NewServer(t, cloudtest.WithDatabase(s1.DatabaseURL), cloudtest.WithNATS(s1.NATSURL()),
		cloudtest.WithKey(s1.Key), cloudtest.WithReplica("second"))
	ctx := ctxT(t)
	a := s1.Actor(t, "cache@x.test", fleet.RoleOperator, "")
	secret, tok, err := s1.Service().CreateToken(ctx, a, "cached")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []*cloudtest.Server{s1, s2} {
		if _, err := s.Service().AuthenticateToken(ctx, secret); err != nil {
			t.Fatal(err)
		}
	}
	// Revoked behind the cloud's back (SQL): the cache trusts the token
	// until its TTL, no longer.
	if _, err := s1.Service().Store().Pool().Exec(ctx, `UPDATE api_tokens SET revoked = true WHERE id = $1`, tok.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s2.Service().AuthenticateToken(ctx, secret); err != nil {
		t.Fatalf("within the TTL a cached token still works: %v", err)
	}
	cloudtest.Eventually(t, fleet.TokenCacheTTL+2*time.Second, func() bool {
		_, err := s2.Service().AuthenticateToken(ctx, secret)
		return errors.Is(err, fleet.ErrUnauthenticated)
	}, "a token revoked by SQL refused once the TTL passed")
	if _, err := s1.Service().Store().Pool().Exec(ctx, `UPDATE api_tokens SET revoked = false WHERE id = $1`, tok.ID); err != nil {
		t.Fatal(err)
	}

	// Through the service: at once on the replica that revoked, and
	// within a moment (one NATS message) on the other.
	for _, change := range []struct {
		name    string
		do      func() error
		undo    func() error
		stillOK bool
	}{
		{name: "role changed to viewer", do: func() error { return s1.Service().SetUserRole(ctx, s1.Super, a.UserID, fleet.RoleViewer) },
			undo: func() error { return s1.Service().SetUserRole(ctx, s1.Super, a.UserID, fleet.RoleOperator) }, stillOK: true},
		{name: "user disabled", do: func() error { return s1.Service().SetUserDisabled(ctx, s1.Super, a.UserID, true) },
			undo: func() error { return s1.Service().SetUserDisabled(ctx, s1.Super, a.UserID, false) }},
		{name: "token revoked", do: func() error { return s1.Service().RevokeToken(ctx, a, tok.ID) }},
	} {
		for _, s := range []*cloudtest.Server{s1, s2} {
			if got, err := s.Service().AuthenticateToken(ctx, secret); err != nil || got.Role != fleet.RoleOperator {
				t.Fatalf("%s: before: %+v, %v", change.name, got, err)
			}
		}
		if err := change.do(); err != nil {
			t.Fatal(err)
		}
		check := func(s *cloudtest.Server) bool {
			got, err := s.Service().AuthenticateToken(ctx, secret)
			if change.stillOK {
				return err == nil && got.Role == fleet.RoleViewer
			}
			return errors.Is(err, fleet.ErrUnauthenticated)
		}
		if !check(s1) {
			t.Fatalf("%s: the replica that made the change still trusts its cache", change.name)
		}
		cloudtest.Eventually(t, time.Second, func() bool { return check(s2) }, "%s: the other replica sees it", change.name)
		if change.undo != nil {
			if err := change.undo(); err != nil {
				t.Fatal(err)
			}
			// The undo reaches the other replica's cache over NATS too:
			// wait for it there before the next change starts from it.
			for i, s := range []*cloudtest.Server{s1, s2} {
				cloudtest.Eventually(t, time.Second, func() bool {
					got, err := s.Service().AuthenticateToken(ctx, secret)
					return err == nil && got.Role == fleet.RoleOperator
				}, "%s undone: seen by replica %d", change.name, i+1)
			}
		}
	}
}
