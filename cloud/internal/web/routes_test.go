package web_test

import (
	"bufio"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/bosunhq/bosun/cloud/internal/api"
	"github.com/bosunhq/bosun/cloud/internal/fleet"
	"github.com/bosunhq/bosun/cloud/internal/web"
)

const routesFile = "testdata/routes.txt"

// routeLine is one route as routes.txt and docs/api.md list it.
type routeLine struct {
	Surface string // "dashboard" or "api"
	Method  string
	Path    string // as documented: "/" for the dashboard's "/{$}"
	Role    string // least role; "-" for none
}

func (r routeLine) String() string {
	return fmt.Sprintf("%s %s %s %s", r.Surface, r.Method, r.Path, r.Role)
}

// mountedRoutes is every route of the dashboard and the API, from their
// routers, in mount order.
func mountedRoutes(t *testing.T) []routeLine {
	t.Helper()
	var out []routeLine
	role := func(r fleet.Role) string {
		if r == "" {
			return "-"
		}
		return string(r)
	}
	// A zero Service: Routes only builds the handlers, nothing runs.
	for _, rt := range web.Routes(new(fleet.Service), nil, web.Options{}) {
		method, path, ok := strings.Cut(rt.Pattern, " ")
		if !ok {
			t.Fatalf("dashboard route %q has no method", rt.Pattern)
		}
		out = append(out, routeLine{"dashboard", method, strings.TrimSuffix(path, "{$}"), role(rt.Role)})
	}
	for _, rt := range api.Routes() {
		method, path, ok := strings.Cut(rt.Pattern, " ")
		if !ok {
			t.Fatalf("API route %q has no method", rt.Pattern)
		}
		out = append(out, routeLine{"api", method, path, role(rt.Role)})
	}
	return out
}

const routesHeader = `# Every route of the dashboard and of the API (/api/v1) with its least role
# ("-": none), in mount order: surface method path role.
# Written by: go test ./cloud/internal/web -run TestRoutesFile -update
# Read by e2e's TestHostileWeb, which walks each as every role of two
# organisations. docs/api.md lists the same routes (TestDocsListEveryRoute).
`

// TestRoutesFile keeps testdata/routes.txt equal to the routers, so that a
// new route shows in review and e2e's hostile suite walks it.
func TestRoutesFile(t *testing.T) {
	var b strings.Builder
	b.WriteString(routesHeader)
	for _, r := range mountedRoutes(t) {
		b.WriteString(r.String() + "\n")
	}
	if *update { // the flag of snapshot_test.go
		if err := os.WriteFile(routesFile, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(routesFile)
	if err != nil {
		t.Fatalf("%v (run with -update to write it)", err)
	}
	if string(got) != b.String() {
		t.Errorf("%s differs from the routers; run go test ./cloud/internal/web -run TestRoutesFile -update\nwant:\n%s", routesFile, b.String())
	}
}

// docRow matches a row of a route table: | `METHOD /path...` | what | roles |
var docRow = regexp.MustCompile("^\\| `([A-Z]+) (/[^`]*)`((?:, `/[^`]+`)*) \\|.*\\| ([^|]+) \\|$")

// documentedRoutes reads the API's table (## Endpoints) and the
// dashboard's (## Dashboard routes) from docs/api.md.
func documentedRoutes(t *testing.T) []routeLine {
	t.Helper()
	f, err := os.Open("../../../docs/api.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	roles := map[string]string{"all": "viewer", "viewer+": "viewer", "operator+": "operator", "admin+": "admin", "super": "super", "anyone": "-"}
	var out []routeLine
	surface := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "## Endpoints":
			surface = "api"
			continue
		case line == "## Dashboard routes":
			surface = "dashboard"
			continue
		case strings.HasPrefix(line, "## "):
			surface = ""
			continue
		}
		m := docRow.FindStringSubmatch(line)
		if surface == "" || m == nil {
			continue
		}
		roleWord, _, _ := strings.Cut(strings.TrimSpace(m[4]), " ")
		role, ok := roles[roleWord]
		if !ok {
			t.Errorf("docs/api.md: %q: unknown role %q", line, m[4])
		}
		path, _, _ := strings.Cut(m[2], "?")
		path, _, _ = strings.Cut(path, "[")
		prefix := ""
		if surface == "api" {
			prefix = "/api/v1"
		}
		out = append(out, routeLine{surface, m[1], prefix + path, role})
		// "`POST /deployments/{id}/pause`, `/resume`, `/abort`": the same
		// parent with other last segments.
		parent := path[:strings.LastIndex(path, "/")]
		for _, alt := range regexp.MustCompile("`(/[^`]+)`").FindAllStringSubmatch(m[3], -1) {
			out = append(out, routeLine{surface, m[1], prefix + parent + alt[1], role})
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestDocsListEveryRoute fails when a route is added, removed or changes
// its role without docs/api.md saying so.
func TestDocsListEveryRoute(t *testing.T) {
	key := func(r routeLine) string { return r.Surface + " " + r.Method + " " + r.Path }
	mounted := map[string]routeLine{}
	for _, r := range mountedRoutes(t) {
		mounted[key(r)] = r
	}
	docs := map[string]routeLine{}
	for _, r := range documentedRoutes(t) {
		if _, dup := docs[key(r)]; dup {
			t.Errorf("docs/api.md lists %s twice", key(r))
		}
		docs[key(r)] = r
	}
	if len(docs) < 20 {
		t.Fatalf("found only %d routes in docs/api.md: did the tables move?", len(docs))
	}
	var missing, extra, role []string
	for k, r := range mounted {
		d, ok := docs[k]
		switch {
		case !ok:
			missing = append(missing, k)
		case d.Role != r.Role:
			role = append(role, fmt.Sprintf("%s: docs say %s, the router %s", k, d.Role, r.Role))
		}
	}
	for k := range docs {
		if _, ok := mounted[k]; !ok {
			extra = append(extra, k)
		}
	}
	slices.Sort(missing)
	slices.Sort(extra)
	slices.Sort(role)
	for _, k := range missing {
		t.Errorf("route %s is not in docs/api.md", k)
	}
	for _, k := range extra {
		t.Errorf("docs/api.md lists %s, which is not a route", k)
	}
	for _, k := range role {
		t.Errorf("role of %s", k)
	}
	t.Logf("%d routes (%d documented)", len(mounted), len(docs))
}
