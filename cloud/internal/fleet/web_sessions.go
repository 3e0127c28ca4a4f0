package fleet

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/bosunhq/bosun/cloud/internal/store"
)

// This file is the part of Service the dashboard uses to log people in:
// web sessions stored in PostgreSQL and login throttling.

// ErrThrottled is returned (as *ThrottledError) by Login while the email
// from the client's address, or the address itself, has too many recent
// failed logins.
var ErrThrottled = errors.New("too many failed logins")

// Login throttling. Failures count per source address (an IPv6 address
// counts as its /64, like registrations) over a sliding LoginWindow, in
// PostgreSQL, so that every replica sees the same counts:
//
//   - an email from one address: after MaxLoginFailuresPerAccountAddr
//     failures, that email is refused from that address (without checking
//     the password) until the oldest of them leaves the window;
//   - one address, every email (password spraying): after
//     MaxLoginFailuresPerAddr failures the address is refused for every
//     email the same way;
//   - one email, every address: never locked, so that nobody can lock the
//     real user out from elsewhere. (A delay for every attempt at a much
//     tried email would not slow an attacker who sends them in parallel;
//     guessing from many addresses is bounded by the number of addresses,
//     and an IPv6 attacker gets one per /64.)
//
// A refused attempt is answered with how long until a retry can succeed
// (ThrottledError.RetryAfter), records no failure and starts no session. A
// login clears the failures of its email from its address only.
const (
	// LoginWindow is how far back failed logins count.
	LoginWindow = 15 * time.Minute
	// MaxLoginFailuresPerAccountAddr is the failures of one email from
	// one address after which that pair is refused.
	MaxLoginFailuresPerAccountAddr = 5
	// MaxLoginFailuresPerAddr is the failures from one address, every
	// email counted, after which the address is refused.
	MaxLoginFailuresPerAddr = 30
	// throttledAuditEvery bounds the audit rows of refused attempts: one
	// per locked pair or address per minute on each replica.
	throttledAuditEvery = time.Minute
)

// ThrottledError is the ErrThrottled of one attempt. Its message is safe
// to show.
type ThrottledError struct {
	// RetryAfter is how long until an attempt from the same address can
	// be checked again.
	RetryAfter time.Duration
	// Address is true when the address is refused for every email, false
	// when only this email from this address is.
	Address bool
}

func (e *ThrottledError) Error() string { return e.PublicMessage() }

// PublicMessage says what is refused and when to try again.
func (e *ThrottledError) PublicMessage() string {
	what := "for this account from your address"
	if e.Address {
		what = "from your address"
	}
	return fmt.Sprintf("Too many failed logins %s. Try again in %s.", what, inMinutes(e.RetryAfter))
}

// Unwrap returns ErrThrottled.
func (e *ThrottledError) Unwrap() error { return ErrThrottled }

// RetryAfterSeconds is RetryAfter in whole seconds, rounded up (at least
// 1), for a Retry-After header: a retry before then is refused.
func (e *ThrottledError) RetryAfterSeconds() int {
	return max(1, int((e.RetryAfter+time.Second-1)/time.Second))
}

// inMinutes says d in whole minutes, rounded up: "1 minute", "15 minutes".
func inMinutes(d time.Duration) string {
	m := int((d + time.Minute - 1) / time.Minute)
	if m <= 1 {
		return "1 minute"
	}
	return fmt.Sprintf("%d minutes", m)
}

// Web session limits.
const (
	// WebSessionIdle ends a session nobody used for this long.
	WebSessionIdle = 12 * time.Hour
	// WebSessionMax ends every session this long after login.
	WebSessionMax = 7 * 24 * time.Hour
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
	RemoteIP        string // counted for throttling (see Login), recorded with the session
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
// password is ErrUnauthenticated, an attempt refused by the throttling
// rules above a *ThrottledError (ErrThrottled). Every refusal is audited
// (a throttled one at most once a minute per pair or address and replica);
// none writes a session.
func (s *Service) Login(ctx context.Context, req LoginRequest) (string, WebSession, error) {
	email := strings.TrimSpace(strings.ToLower(req.Email))
	if len(email) > 254 || len(req.Password) > 1024 {
		return "", WebSession{}, ErrUnauthenticated
	}
	src := sourceAddr(req.RemoteIP)
	la, err := s.st.BeginLoginAttempt(ctx, email, src, LoginWindow, MaxLoginFailuresPerAccountAddr, MaxLoginFailuresPerAddr)
	if err != nil {
		return "", WebSession{}, err
	}
	f := la.Before
	var te *ThrottledError
	if f.Pair >= MaxLoginFailuresPerAccountAddr {
		te = &ThrottledError{RetryAfter: f.PairFreeIn}
	}
	if f.Source >= MaxLoginFailuresPerAddr && (te == nil || f.SourceFreeIn > te.RetryAfter) {
		te = &ThrottledError{RetryAfter: f.SourceFreeIn, Address: true}
	}
	if te != nil {
		key := "pair\x00" + email + "\x00" + src
		if te.Address {
			key = "addr\x00" + src
		}
		if s.throttled.first(key, time.Now()) {
			s.audit(ctx, s.loginOrg(ctx, email), Actor{Email: email}, "web.login", email, "throttled",
				map[string]any{"remote_ip": req.RemoteIP, "retry_after_s": te.RetryAfterSeconds(), "address": te.Address})
		}
		return "", WebSession{}, te
	}
	a, err := s.AuthenticatePassword(ctx, email, req.Password)
	if errors.Is(err, ErrUnauthenticated) {
		// The failure was recorded in advance (BeginLoginAttempt).
		s.audit(ctx, s.loginOrg(ctx, email), Actor{Email: email}, "web.login", email, "denied", map[string]string{"remote_ip": req.RemoteIP})
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
	if err := s.st.ClearLoginFailures(ctx, email, src); err != nil {
		s.log.Warn("clearing login failures", "err", err)
	}
	secret, ws, err := s.startWebSession(ctx, a, req.RemoteIP, req.UserAgent)
	if err != nil {
		return "", ws, err
	}
	s.audit(ctx, a.OrgID, a, "web.login", a.Email, "ok", map[string]string{"remote_ip": req.RemoteIP})
	return secret, ws, nil
}

// loginOrg is the organisation whose audit log records a refused login:
// the user's, or the default one for an unknown email.
func (s *Service) loginOrg(ctx context.Context, email string) int64 {
	if u, err := s.st.UserByEmail(ctx, email); err == nil {
		return u.OrgID
	}
	return s.defOrg
}

// auditOnce remembers which keys it let through lately, so that a flood
// of refused attempts writes a bounded number of audit rows: one per key
// per period, and at most max keys remembered (the oldest are forgotten).
type auditOnce struct {
	every time.Duration
	max   int

	mu   sync.Mutex // guards seen
	seen map[string]time.Time
}

func newAuditOnce(every time.Duration, max int) *auditOnce {
	return &auditOnce{every: every, max: max, seen: map[string]time.Time{}}
}

// first reports whether key was not let through within the period, and
// records it.
func (o *auditOnce) first(key string, now time.Time) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if t, ok := o.seen[key]; ok && now.Sub(t) < o.every {
		return false
	}
	if len(o.seen) >= o.max {
		for k, t := range o.seen {
			if now.Sub(t) >= o.every {
				delete(o.seen, k)
			}
		}
		for len(o.seen) >= o.max { // all recent: forget the oldest
			var oldest string
			for k, t := range o.seen {
				if oldest == "" || t.Before(o.seen[oldest]) {
					oldest = k
				}
			}
			delete(o.seen, oldest)
		}
	}
	o.seen[key] = now
	return true
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

// SweepWebSessions deletes expired sessions and login failures older than
// a day (at most 5000 a round; Sweep calls it).
func (s *Service) SweepWebSessions(ctx context.Context) error {
	return s.st.DeleteExpiredWebSessions(ctx, 24*time.Hour, 5000)
}
