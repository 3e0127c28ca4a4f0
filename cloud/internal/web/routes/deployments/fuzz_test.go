package deployments

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzDeploymentForm posts arbitrary urlencoded bodies to the real form
// decoding of the new-deployment page (ParseForm, formOf, Form.Spec). No
// panic; a refusal is one sentence for the page; an accepted spec names an
// artifact NAME@VERSION, devices or a tag, ids without separators, and
// values in the ranges the form promises.
func FuzzDeploymentForm(f *testing.F) {
	for _, s := range []string{
		"artifact=hello%401.0.0&devices=dev-1%2C+dev-2&phases=10%2C100&max_in_flight=5&failure_threshold=0&max_attempts=3&commit_timeout=5m&not_before=2026-01-02T15%3A04",
		"artifact=hello%401.0.0&tag=lab&commit_timeout=300&not_before=2026-01-02T15%3A04%3A05Z",
		"artifact=%40&devices=x", "artifact=a%40b&devices=%2C%2C", "artifact=a%40b&tag=t&phases=10%25%2C+100%25",
		"artifact=a%40b&tag=t&commit_timeout=1.5s", "artifact=a%40b&tag=t&max_in_flight=-1", "artifact=a%40b&tag=t&failure_threshold=-5",
		"artifact=a%40b&tag=t&commit_timeout=99999999h", "%zz", "artifact=a%40b&artifact=c%40d&tag=t", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		r := httptest.NewRequest(http.MethodPost, "/deployments", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if err := r.ParseForm(); err != nil {
			return // the handler answers 400 through app.FromFleet
		}
		form := formOf(r)
		s, msg := form.Spec()
		if msg != "" {
			if !strings.HasSuffix(msg, ".") && !strings.HasSuffix(msg, ").") {
				t.Fatalf("message %q", msg)
			}
			// The message quotes the value (%q: at most 10 bytes a byte).
			if n := utf8.RuneCountInString(msg); n > 200+10*len(body) {
				t.Fatalf("message of %d runes for a body of %d bytes", n, len(body))
			}
			return
		}
		if s.Name == "" || s.Version == "" || strings.Contains(s.Name, "@") || s.Name+"@"+s.Version != form.Artifact {
			t.Fatalf("artifact %q -> %q %q", form.Artifact, s.Name, s.Version)
		}
		if len(s.DeviceIDs) == 0 && s.Tag == "" {
			t.Fatal("a spec with neither devices nor a tag")
		}
		for _, id := range s.DeviceIDs {
			if id == "" || strings.ContainsAny(id, ", \n\r\t") {
				t.Fatalf("device id %q", id)
			}
		}
		if form.Phases != "" && len(s.Phases) == 0 && strings.Trim(form.Phases, ", %") != "" {
			t.Fatalf("phases %q -> %v", form.Phases, s.Phases)
		}
		if (form.MaxInFlight != "" && s.MaxInFlight < 1) || (form.MaxAttempts != "" && s.MaxAttempts < 1) || s.FailureThreshold < -1 {
			t.Fatalf("spec %+v from %+v", s, form)
		}
		if form.FailureThreshold != "" {
			if n, _ := strconv.Atoi(form.FailureThreshold); (n == 0) != (s.FailureThreshold == -1) {
				t.Fatalf("failure threshold %q -> %d", form.FailureThreshold, s.FailureThreshold)
			}
		}
		if form.CommitTimeout != "" && s.CommitTimeout < 1 {
			t.Fatalf("commit timeout %q -> %d", form.CommitTimeout, s.CommitTimeout)
		}
		if form.NotBefore != "" && (s.NotBefore.IsZero() || s.NotBefore.Location().String() != "UTC") {
			t.Fatalf("not before %q -> %v", form.NotBefore, s.NotBefore)
		}
	})
}
