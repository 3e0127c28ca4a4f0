package fleet_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/bosunhq/bosun/cloud/internal/fleet"
)

// loginEnv is an admitEnv with a user to log in as.
type loginEnv struct {
	*admitEnv
	email, password string
}

func newLoginEnv(t *testing.T) *loginEnv {
	t.Helper()
	e := newAdmitEnv(t, fleet.Options{})
	pw, err := e.svc.CreateUser(tctx(t), "admin@login.test", fleet.RoleAdmin, "")
	if err != nil {
		t.Fatal(err)
	}
	return &loginEnv{admitEnv: e, email: "admin@login.test", password: pw}
}

func (e *loginEnv) login(t *testing.T, email, password, addr string) error {
	t.Helper()
	_, _, err := e.svc.Login(tctx(t), fleet.LoginRequest{Email: email, Password: password, RemoteIP: addr, UserAgent: "test"})
	return err
}

// refusedState is what a refused login must not change: sessions and
// failures recorded; the audit rows are checked on their own.
func (e *loginEnv) refusedState(t *testing.T) string {
	return fmt.Sprint(e.count(t, `SELECT count(*) FROM web_sessions`), " sessions, ",
		e.count(t, `SELECT count(*) FROM web_login_failures`), " failures")
}

func (e *loginEnv) audits(t *testing.T, outcome string) int {
	return e.count(t, `SELECT count(*) FROM audit_log WHERE action = 'web.login' AND outcome = $1`, outcome)
}

// throttled checks that err refuses the attempt and says when to retry:
// within the window, about want from now.
func throttled(t *testing.T, err error, address bool, want time.Duration) *fleet.ThrottledError {
	t.Helper()
	var te *fleet.ThrottledError
	if !errors.As(err, &te) || !errors.Is(err, fleet.ErrThrottled) || te.Address != address {
		t.Fatalf("err = %v, want throttled (address %v)", err, address)
	}
	if te.RetryAfter > want || te.RetryAfter < want-30*time.Second {
		t.Fatalf("retry after %v, want about %v", te.RetryAfter, want)
	}
	return te
}

// TestLoginThrottlesTheAttackerNotTheUser: five wrong passwords for an
// email from address A refuse that email from A (the fifth is still
// checked, the sixth is not, even with the right password) and say when to
// retry; the real user logs in from B at once, and B's login does not free
// A; once A's failures leave the window A may try again.
func TestLoginThrottlesTheAttackerNotTheUser(t *testing.T) {
	e := newLoginEnv(t)
	const a, b = "203.0.113.9:5555", "198.51.100.4:443"
	for i := 1; i <= fleet.MaxLoginFailuresPerAccountAddr; i++ {
		if err := e.login(t, e.email, "guess", a); !errors.Is(err, fleet.ErrUnauthenticated) {
			t.Fatalf("failure %d: %v, want a wrong password", i, err)
		}
	}
	if n := e.audits(t, "denied"); n != fleet.MaxLoginFailuresPerAccountAddr {
		t.Fatalf("%d denied logins audited", n)
	}
	// The next attempt from A, even with the right password, is refused:
	// nothing recorded, no session, one audit row.
	before := e.refusedState(t)
	te := throttled(t, e.login(t, e.email, e.password, a), false, fleet.LoginWindow)
	if msg, _ := fleet.PublicMessage(te); msg != "Too many failed logins for this account from your address. Try again in 15 minutes." {
		t.Fatalf("message %q", msg)
	}
	if te.RetryAfterSeconds() < 870 || te.RetryAfterSeconds() > 900 {
		t.Fatalf("Retry-After %d s", te.RetryAfterSeconds())
	}
	// The attacker keeps going: 10 attempts in all; still refused.
	for range 4 {
		throttled(t, e.login(t, e.email, "guess", a), false, fleet.LoginWindow)
	}
	if after := e.refusedState(t); after != before {
		t.Fatalf("throttled logins changed %s into %s", before, after)
	}
	if n := e.audits(t, "throttled"); n != 1 {
		t.Fatalf("%d throttled logins audited, want 1 (one a minute per address and email)", n)
	}
	// The real user, elsewhere: in at once.
	if err := e.login(t, e.email, e.password, b); err != nil {
		t.Fatalf("the user from B: %v", err)
	}
	throttled(t, e.login(t, e.email, e.password, a), false, fleet.LoginWindow)

	// A's failures leave the window: A may try again.
	if _, err := e.st.Pool().Exec(tctx(t), `UPDATE web_login_failures SET at = at - interval '15 minutes 1 second'`); err != nil {
		t.Fatal(err)
	}
	if err := e.login(t, e.email, e.password, a); err != nil {
		t.Fatalf("A after the window: %v", err)
	}
}

// TestLoginThrottlesAnIPv6Block: the addresses of one /64 share their
// failures; another /64 does not.
func TestLoginThrottlesAnIPv6Block(t *testing.T) {
	e := newLoginEnv(t)
	for i := 1; i <= fleet.MaxLoginFailuresPerAccountAddr; i++ {
		if err := e.login(t, e.email, "guess", fmt.Sprintf("[2001:db8:1:2::%x]:1", i)); !errors.Is(err, fleet.ErrUnauthenticated) {
			t.Fatalf("failure %d: %v", i, err)
		}
	}
	throttled(t, e.login(t, e.email, e.password, "[2001:db8:1:2:ffff::1]:1"), false, fleet.LoginWindow)
	if err := e.login(t, e.email, e.password, "[2001:db8:1:3::1]:1"); err != nil {
		t.Fatalf("another /64: %v", err)
	}
}

// TestLoginThrottlesSpraying: failures from one address over many emails
// (each below the per-email bound) refuse that address for every email
// after MaxLoginFailuresPerAddr: the last is still checked, the next is
// not; the user logs in from elsewhere.
func TestLoginThrottlesSpraying(t *testing.T) {
	e := newLoginEnv(t)
	const c, d = "192.0.2.77:1", "192.0.2.78:1"
	for i := 1; i <= fleet.MaxLoginFailuresPerAddr; i++ {
		if err := e.login(t, fmt.Sprintf("user%d@login.test", i), "password1", c); !errors.Is(err, fleet.ErrUnauthenticated) {
			t.Fatalf("failure %d: %v", i, err)
		}
	}
	before := e.refusedState(t)
	te := throttled(t, e.login(t, e.email, e.password, c), true, fleet.LoginWindow)
	if msg, _ := fleet.PublicMessage(te); msg != "Too many failed logins from your address. Try again in 15 minutes." {
		t.Fatalf("message %q", msg)
	}
	throttled(t, e.login(t, "someone-else@login.test", "x", c), true, fleet.LoginWindow)
	if after := e.refusedState(t); after != before {
		t.Fatalf("throttled logins changed %s into %s", before, after)
	}
	if err := e.login(t, e.email, e.password, d); err != nil {
		t.Fatalf("the user from another address: %v", err)
	}
}

// TestLoginAttemptsInParallel: attempts sent at once from one address
// cannot all pass the count taken before any of them failed: exactly the
// bound is checked, the rest refused.
func TestLoginAttemptsInParallel(t *testing.T) {
	e := newLoginEnv(t)
	const a = "203.0.113.50:1"
	errs := make(chan error, 12)
	for range cap(errs) {
		go func() { errs <- e.login(t, e.email, "guess", a) }()
	}
	checked, refused := 0, 0
	for range cap(errs) {
		switch err := <-errs; {
		case errors.Is(err, fleet.ErrUnauthenticated):
			checked++
		case errors.Is(err, fleet.ErrThrottled):
			refused++
		default:
			t.Errorf("err = %v", err)
		}
	}
	if checked != fleet.MaxLoginFailuresPerAccountAddr || refused != cap(errs)-checked {
		t.Fatalf("%d checked, %d refused; want %d checked", checked, refused, fleet.MaxLoginFailuresPerAccountAddr)
	}
}

// TestSweepDeletesOldLoginFailures: Sweep deletes failures older than a
// day and keeps the others.
func TestSweepDeletesOldLoginFailures(t *testing.T) {
	e := newLoginEnv(t)
	for _, addr := range []string{"192.0.2.1:1", "192.0.2.2:1"} {
		if err := e.login(t, e.email, "guess", addr); !errors.Is(err, fleet.ErrUnauthenticated) {
			t.Fatal(err)
		}
	}
	if _, err := e.st.Pool().Exec(tctx(t), `UPDATE web_login_failures SET at = at - interval '25 hours' WHERE remote_ip = '192.0.2.1'`); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.Sweep(tctx(t)); err != nil {
		t.Fatal(err)
	}
	if n := e.count(t, `SELECT count(*) FROM web_login_failures`); n != 1 {
		t.Fatalf("%d failures after the sweep, want 1", n)
	}
}
