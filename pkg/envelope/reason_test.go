package envelope

import (
	"errors"
	"fmt"
	"testing"
)

func TestReasonNamesEverySentinelOnce(t *testing.T) {
	seen := map[string]error{}
	for _, r := range reasons {
		wrapped := fmt.Errorf("%w: detail", r.err)
		got := Reason(wrapped)
		if got != r.name {
			t.Errorf("Reason(%v) = %q, want %q", wrapped, got, r.name)
		}
		if prev, dup := seen[got]; dup {
			t.Errorf("%q names both %v and %v", got, prev, r.err)
		}
		seen[got] = r.err
	}
	if got := Reason(errors.New("something else")); got != "invalid" {
		t.Errorf("Reason(foreign error) = %q, want invalid", got)
	}
	if len(reasons) != 12 {
		t.Errorf("%d reasons; every sentinel error of the package needs one", len(reasons))
	}
}
