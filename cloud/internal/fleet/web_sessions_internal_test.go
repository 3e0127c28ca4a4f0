package fleet

import (
	"testing"
	"time"
)

// TestAuditOnce: a key is let through once per period; at most max keys
// are remembered, the oldest forgotten first (so a flood of new keys costs
// bounded memory and, at worst, an audit row more).
func TestAuditOnce(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	o := newAuditOnce(time.Minute, 3)
	steps := []struct {
		key  string
		at   time.Duration
		want bool
	}{
		{"a", 0, true},
		{"a", 59 * time.Second, false},
		{"a", time.Minute, true},                        // the period has passed
		{"b", time.Minute + 500*time.Millisecond, true}, // after "a": "a" is the unique oldest
		{"c", time.Minute + time.Second, true},          // three remembered: the bound
		{"b", time.Minute + 2*time.Second, false},
		{"d", time.Minute + 3*time.Second, true}, // beyond it: "a" (the oldest) is forgotten
		{"a", time.Minute + 4*time.Second, true},
		{"c", time.Minute + 5*time.Second, false},
	}
	for i, s := range steps {
		if got := o.first(s.key, t0.Add(s.at)); got != s.want {
			t.Fatalf("step %d: first(%q) at %v = %v, want %v", i, s.key, s.at, got, s.want)
		}
		if len(o.seen) > 3 {
			t.Fatalf("step %d: %d keys remembered, max 3", i, len(o.seen))
		}
	}
}

// TestThrottledMessage: the time to wait is said in whole minutes, rounded
// up, and Retry-After in whole seconds, rounded up, at least 1.
func TestThrottledMessage(t *testing.T) {
	for _, tc := range []struct {
		after   time.Duration
		minutes string
		seconds int
	}{
		{15 * time.Minute, "15 minutes", 900},
		{14*time.Minute + 1*time.Second, "15 minutes", 841},
		{61 * time.Second, "2 minutes", 61},
		{60 * time.Second, "1 minute", 60},
		{200 * time.Millisecond, "1 minute", 1},
		{0, "1 minute", 1},
	} {
		e := &ThrottledError{RetryAfter: tc.after}
		want := "Too many failed logins for this account from your address. Try again in " + tc.minutes + "."
		if e.PublicMessage() != want || e.RetryAfterSeconds() != tc.seconds {
			t.Errorf("%v: %q, %d s; want %q, %d s", tc.after, e.PublicMessage(), e.RetryAfterSeconds(), want, tc.seconds)
		}
	}
	if e := (&ThrottledError{RetryAfter: time.Minute, Address: true}); e.PublicMessage() != "Too many failed logins from your address. Try again in 1 minute." {
		t.Errorf("address: %q", e.PublicMessage())
	}
}
