package devices

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/bosunhq/bosun/cloud/internal/web/app"
)

// FuzzFilter feeds the devices list's query-string filter (parseFilter)
// arbitrary query strings. No panic; a refusal is a 400 app error; an
// accepted filter has a known status, online "", yes or no, bounded text
// and a page from 1 to 100000, and Filter.Query gives it back unchanged
// (the pager's links keep the filter).
func FuzzFilter(f *testing.F) {
	for _, s := range []string{
		"status=accepted&online=yes&tag=lab&q=dev&page=2", "status=bogus", "online=maybe", "page=0", "page=100001",
		"q=%27%3B+DROP+TABLE+devices%3B--", "tag=%25_%5C", "page=1e3", "q=a&q=b", "%zz", "tag=+lab+", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, query string) {
		r := httptest.NewRequest(http.MethodGet, "/devices", nil)
		r.URL.RawQuery = query
		flt, err := parseFilter(r)
		if err != nil {
			var he *app.HTTPError
			if !errors.As(err, &he) || he.Status != http.StatusBadRequest {
				t.Fatalf("parseFilter(%q) = %v, not a 400", query, err)
			}
			return
		}
		if (flt.Status != "" && !slices.Contains(Statuses, flt.Status)) || (flt.Online != "" && flt.Online != "yes" && flt.Online != "no") ||
			len(flt.Tag) > 64 || len(flt.Text) > 128 || flt.Page < 1 || flt.Page > 100000 {
			t.Fatalf("parseFilter(%q) = %+v", query, flt)
		}
		r2 := httptest.NewRequest(http.MethodGet, "/devices", nil)
		r2.URL.RawQuery = flt.Query(flt.Page)
		again, err := parseFilter(r2)
		if err != nil || again != flt {
			t.Fatalf("parseFilter(%q) = %+v; its Query %q gives %+v, %v", query, flt, r2.URL.RawQuery, again, err)
		}
	})
}
