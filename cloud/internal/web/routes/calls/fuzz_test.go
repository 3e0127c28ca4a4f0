package calls

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/bosunhq/bosun/cloud/internal/fleet"
	"github.com/bosunhq/bosun/cloud/internal/web/app"
	"github.com/bosunhq/bosun/pkg/rpcproto"
)

// FuzzCallForm posts arbitrary urlencoded bodies to the fan-out form's
// decoding (ParseForm, formOf, then parse with app.CallParams and
// app.CallTimeout). No panic; an accepted request names a tag and a valid
// method, carries no params or a JSON object or array within
// app.MaxCallParams, and a timeout from 1s to fleet.MaxCallTimeout.
func FuzzCallForm(f *testing.F) {
	for _, s := range []string{
		"tag=lab&method=system.info&params=%7B%7D&timeout=30",
		"tag=lab&method=containers.logs&params=%7B%22name%22%3A%22web%22%2C%22lines%22%3A10%7D&timeout=5",
		"tag=lab&method=x&params=%5B1%2C2%5D", "tag=lab&method=..&params=", "tag=lab&method=a.b&params=1",
		"tag=lab&method=a.b&params=%7B&timeout=0", "tag=lab&method=a.b&timeout=99999999999999999999", "tag=&method=a", "%zz", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		r := httptest.NewRequest(http.MethodPost, "/calls", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if err := r.ParseForm(); err != nil {
			return
		}
		form := formOf(r)
		req, msg := parse(form)
		if msg != "" {
			if !strings.HasSuffix(msg, ".") && !strings.Contains(msg, "not valid JSON") {
				t.Fatalf("message %q", msg)
			}
			return
		}
		if req.Tag == "" || !rpcproto.ValidMethod(req.Method) || len(req.Method) > 128 {
			t.Fatalf("accepted tag %q method %q", req.Tag, req.Method)
		}
		if req.Params != nil {
			var v any
			if len(req.Params) > app.MaxCallParams || json.Unmarshal(req.Params, &v) != nil {
				t.Fatalf("params %q", req.Params)
			}
			switch v.(type) {
			case map[string]any, []any:
			default:
				t.Fatalf("params %q are not an object or array", req.Params)
			}
		}
		if req.Timeout < time.Second || req.Timeout > fleet.MaxCallTimeout || req.Timeout%time.Second != 0 {
			t.Fatalf("timeout %v from %q", req.Timeout, form.Timeout)
		}
	})
}
