package bridge

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/bosunhq/bosun/pkg/rpcproto"
)

// FuzzAnnounce feeds the bridge's registry arbitrary worker announcements
// (what any process on the device's NATS may publish) after a genuine one.
// No panic; an announcement not understood changes nothing; one understood
// replaces (or, with no methods, withdraws) that worker's methods only;
// and the methods the bridge lists to the cloud (rpc.list, state.report)
// are sorted, unique and valid names, each with its worker, the bridge's
// own first.
func FuzzAnnounce(f *testing.F) {
	for _, s := range []string{
		`{"worker":"ota","methods":[{"name":"ota.update","description":"d"}]}`,
		`{"worker":"ota","methods":[]}`,
		`{"worker":"evil","methods":[{"name":"system.info","description":"shadow"}]}`,
		`{"worker":"w","methods":[{"name":"a..b"},{"name":"","description":""},{"name":"bad name"}]}`,
		`{"worker":"w","methods":[{"name":"x","worker":"other"}]}`,
		`{"worker":"","methods":[{"name":"x"}]}`,
		`{"Worker":"w","Methods":null}`, `[]`, `null`, `{"worker":1}`, ``,
	} {
		f.Add([]byte(s))
	}
	own := []rpcproto.MethodInfo{{Name: "system.info", Description: "built in"}, {Name: "rpc.list", Description: "built in"}}
	genuine := []byte(`{"worker":"app","methods":[{"name":"app.ping","description":"p"}]}`)
	f.Fuzz(func(t *testing.T, data []byte) {
		r := newRegistry()
		if _, ok := r.announce(genuine); !ok {
			t.Fatal("genuine announcement refused")
		}
		before := r.methods(own)
		a, ok := r.announce(data)
		after := r.methods(own)
		if !ok {
			if !slices.Equal(before, after) {
				t.Fatalf("announcement %q not understood, but the methods changed: %v", data, after)
			}
			return
		}
		if a.Worker == "" || json.Valid(data) == false {
			t.Fatalf("understood %q as %+v", data, a)
		}
		seen := map[string]bool{}
		for i, m := range after {
			if !rpcproto.ValidMethod(m.Name) || seen[m.Name] {
				t.Fatalf("listed method %q (%d of %v)", m.Name, i, after)
			}
			seen[m.Name] = true
			if i > 0 && strings.Compare(after[i-1].Name, m.Name) >= 0 {
				t.Fatalf("not sorted: %v", after)
			}
			if o := slices.IndexFunc(own, func(o rpcproto.MethodInfo) bool { return o.Name == m.Name }); o >= 0 && m != own[o] {
				t.Fatalf("worker %q shadows the bridge's %q", m.Worker, m.Name)
			}
			if o := slices.IndexFunc(own, func(o rpcproto.MethodInfo) bool { return o.Name == m.Name }); o < 0 && m.Worker == "" {
				t.Fatalf("method %q has no worker", m.Name)
			}
		}
		if a.Worker != "app" && !seen["app.ping"] {
			t.Fatalf("announcement of %q removed another worker's method", a.Worker)
		}
		if len(a.Methods) == 0 && slices.Contains(r.workerNames(), a.Worker) {
			t.Fatalf("worker %q withdrew but is still listed", a.Worker)
		}
	})
}
