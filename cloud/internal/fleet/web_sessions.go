package fleet

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/bosunhq/bosun/cloud/internal/store"
)

// This file is the part of Service the dashboard uses to log people in:
// web sessions stored in PostgreSQL and login throttling.

// ErrThrottled is returned by Login while an email or a client address has
// too many recent failed logins.
var ErrThrottled = errors.New("too many failed logins")

// Web session and throttling limits.
const (
	// WebSessionIdle ends a session nobody used for this long.
	WebSessionIdle = 12 * time.Hour
	// WebSessionMax ends every session this long after login.
	WebSessionMax = 7 * 24 * time.Hour
	// LoginWindow is how far back failed logins count.
	LoginWindow = 15 * time.Minute
	// MaxLoginFailuresPerEmail and MaxLoginFailuresPerIP are the failures
	// within LoginWindow after which Login refuses without checking the
	// password.
	MaxLoginFailuresPerEmail = 5
	MaxLoginFailuresPerIP    = 30
)

// WebSession is a dashboard login as seen on one request.
type WebSession struct {
	// Actor is who the session acts as.
	Actor Actor
	// CSRFToken must accompany every state-changing request.
	CSRFToken string
	// ViewOrg is the organisation a super user chose to look at; 0 means
	// every organisation. Always the actor's own for other roles.
	ViewOrg   int64
	ExpiresAt time.Time
	hash      []byte
}

// LoginRequest is a login attempt.
type LoginRequest struct {
	Email, Password string
	RemoteIP        string // counted for throttling
	UserAgent       string // recorded with the session
	// Replace is the cookie secret of the browser's current session, if
	// any; it is ended so that a login always starts a new session.
	Replace string
}

func sessionHash(secret string) []byte {
	h := sha256.Sum256([]byte("bosun-web-session\x00" + secret))
	return h[:]
}

// Login checks an email and password and starts a web session. It returns
// the session's secret (for the cookie) and the session. A wrong email or
// password is ErrUnauthenticated, too many recent failures ErrThrottled.
func (s *Service) Login(ctx context.Context, req LoginRequest) (string, WebSession, error) {
	email := strings.TrimSpace(strings.ToLower(req.Email))
	if len(email) > 254 || len(req.Password) > 1024 {
		return "", WebSession{}, ErrUnauthenticated
	}
	byEmail, byIP, err := s.st.LoginFailures(ctx, email, req.RemoteIP, time.Now().Add(-LoginWindow))
	if err != nil {
		return "", WebSession{}, fmt.Errorf("counting login failures: %w", err)
	}
	if byEmail >= MaxLoginFailuresPerEmail || byIP >= MaxLoginFailuresPerIP {
		s.audit(ctx, s.defOrg, Actor{Email: email}, "web.login", email, "throttled", map[string]string{"remote_ip": req.RemoteIP})
		return "", WebSession{}, ErrThrottled
	}
	a, err := s.AuthenticatePassword(ctx, email, req.Password)
	if errors.Is(err, ErrUnauthenticated) {
		if err := s.st.RecordLoginFailure(context.WithoutCancel(ctx), email, req.RemoteIP); err != nil {
			s.log.Error("recording login failure", "err", err)
		}
		org := s.defOrg
		if u, err := s.st.UserByEmail(ctx, email); err == nil {
			org = u.OrgID
		}
		s.audit(ctx, org, Actor{Email: email}, "web.login", email, "denied", map[string]string{"remote_ip": req.RemoteIP})
		return "", WebSession{}, ErrUnauthenticated
	}
	if err != nil {
		return "", WebSession{}, err
	}
	if req.Replace != "" {
		if err := s.st.DeleteWebSession(ctx, sessionHash(req.Replace)); err != nil {
			return "", WebSession{}, err
		}
	}
	if err := s.st.ClearLoginFailures(ctx, email); err != nil {
		s.log.Warn("clearing login failures", "err", err)
	}
	secret, ws, err := s.startWebSession(ctx, a, req.RemoteIP, req.UserAgent)
	if err != nil {
		return "", ws, err
	}
	s.audit(ctx, a.OrgID, a, "web.login", a.Email, "ok", map[string]string{"remote_ip": req.RemoteIP})
	return secret, ws, nil
}

func (s *Service) startWebSession(ctx context.Context, a Actor, remoteIP, userAgent string) (string, WebSession, error) {
	secret := randomSecret(32)
	csrf := randomSecret(32)
	exp := time.Now().Add(WebSessionIdle)
	if len(userAgent) > 256 {
		userAgent = userAgent[:256]
	}
	err := s.st.CreateWebSession(ctx, store.NewWebSession{IDHash: sessionHash(secret), UserID: a.UserID,
		CSRFToken: csrf, RemoteIP: remoteIP, UserAgent: userAgent, ExpiresAt: exp})
	if err != nil {
		return "", WebSession{}, fmt.Errorf("starting web session: %w", mapStoreErr(err))
	}
	return secret, WebSession{Actor: a, CSRFToken: csrf, ViewOrg: a.OrgID, ExpiresAt: exp, hash: sessionHash(secret)}, nil
}

// AuthenticateSession returns the live session a cookie secret names. A
// missing, expired or ended session, or one whose user was disabled or had
// its role or password changed since login, is ErrUnauthenticated (and is
// deleted). Activity slides the idle expiry, never past WebSessionMax.
func (s *Service) AuthenticateSession(ctx context.Context, secret string) (WebSession, error) {
	if secret == "" || len(secret) > 128 {
		return WebSession{}, ErrUnauthenticated
	}
	h := sessionHash(secret)
	w, err := s.st.WebSessionByHash(ctx, h)
	if errors.Is(err, store.ErrNotFound) {
		return WebSession{}, ErrUnauthenticated
	}
	if err != nil {
		return WebSession{}, err
	}
	if !w.Valid || time.Since(w.CreatedAt) > WebSessionMax {
		if err := s.st.DeleteWebSession(ctx, h); err != nil {
			s.log.Warn("deleting ended web session", "err", err)
		}
		return WebSession{}, ErrUnauthenticated
	}
	ws := WebSession{
		Actor:     Actor{UserID: w.User.ID, Email: w.User.Email, OrgID: w.User.OrgID, Role: Role(w.User.Role)},
		CSRFToken: w.CSRFToken,
		ViewOrg:   w.User.OrgID,
		ExpiresAt: w.ExpiresAt,
		hash:      h,
	}
	if ws.Actor.Role == RoleSuper {
		ws.ViewOrg = w.ViewOrg
	}
	// Slide the expiry at most once a minute: a page with live updates
	// must not write a row per request.
	if time.Since(w.LastSeen) > time.Minute {
		exp := time.Now().Add(WebSessionIdle)
		if lim := w.CreatedAt.Add(WebSessionMax); exp.After(lim) {
			exp = lim
		}
		if err := s.st.TouchWebSession(ctx, h, exp); err != nil {
			s.log.Warn("touching web session", "err", err)
		} else {
			ws.ExpiresAt = exp
		}
	}
	return ws, nil
}

// Logout ends the session a cookie secret names (nothing when none).
func (s *Service) Logout(ctx context.Context, secret string) error {
	if secret == "" {
		return nil
	}
	h := sessionHash(secret)
	w, err := s.st.WebSessionByHash(ctx, h)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		return err
	}
	if err := s.st.DeleteWebSession(ctx, h); err != nil {
		return err
	}
	a := Actor{UserID: w.User.ID, Email: w.User.Email, OrgID: w.User.OrgID, Role: Role(w.User.Role)}
	s.audit(ctx, a.OrgID, a, "web.logout", a.Email, "ok", nil)
	return nil
}

// SwitchOrg makes a super user's session look at org (0: every
// organisation).
func (s *Service) SwitchOrg(ctx context.Context, ws WebSession, org int64) error {
	if ws.Actor.Role != RoleSuper {
		return fmt.Errorf("%w: only super users switch organisation", ErrForbidden)
	}
	if org != 0 {
		if _, err := s.st.OrgByID(ctx, org); err != nil {
			return invalidf("there is no organisation %d", org)
		}
	}
	return mapStoreErr(s.st.SetWebSessionOrg(ctx, ws.hash, org))
}

// SweepWebSessions deletes expired sessions and old login failures.
func (s *Service) SweepWebSessions(ctx context.Context) error {
	return s.st.DeleteExpiredWebSessions(ctx, 24*time.Hour)
}
