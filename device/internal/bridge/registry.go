package bridge

import (
	"encoding/json"
	"slices"
	"strings"
	"sync"

	"github.com/bosunhq/bosun/pkg/rpcproto"
)

// registry remembers what each worker announced, for rpc.list and
// state.report.
type registry struct {
	mu      sync.Mutex // guards workers
	workers map[string][]rpcproto.MethodInfo

	changed   chan struct{} // buffered 1: "the set of workers or methods changed"
	announced chan struct{} // buffered 1: "a worker announced" (changed or not)
}

func newRegistry() *registry {
	return &registry{workers: map[string][]rpcproto.MethodInfo{}, changed: make(chan struct{}, 1),
		announced: make(chan struct{}, 1)}
}

// announce records a WorkerAnnounce; one with no methods withdraws the
// worker. It reports whether the message was understood: valid JSON,
// a worker name, and only method names rpcproto.ValidMethod accepts
// (anything else is ignored as a whole, the registry unchanged).
func (r *registry) announce(data []byte) (rpcproto.WorkerAnnounce, bool) {
	var a rpcproto.WorkerAnnounce
	if err := json.Unmarshal(data, &a); err != nil || a.Worker == "" ||
		slices.ContainsFunc(a.Methods, func(m rpcproto.MethodInfo) bool { return !rpcproto.ValidMethod(m.Name) }) {
		return a, false
	}
	for i := range a.Methods {
		a.Methods[i].Worker = a.Worker
	}
	r.mu.Lock()
	old, had := r.workers[a.Worker]
	if len(a.Methods) == 0 {
		delete(r.workers, a.Worker)
	} else {
		r.workers[a.Worker] = a.Methods
	}
	same := had == (len(a.Methods) > 0) && slices.Equal(old, a.Methods)
	r.mu.Unlock()
	select {
	case r.announced <- struct{}{}:
	default:
	}
	if !same {
		select {
		case r.changed <- struct{}{}:
		default:
		}
	}
	return a, true
}

// workerNames returns the announced workers, sorted.
func (r *registry) workerNames() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	names := make([]string, 0, len(r.workers))
	for n := range r.workers {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// methods returns own plus every announced method, sorted by name; when two
// workers announce one method, the first worker by name is listed.
func (r *registry) methods(own []rpcproto.MethodInfo) []rpcproto.MethodInfo {
	seen := map[string]bool{}
	var out []rpcproto.MethodInfo
	add := func(m rpcproto.MethodInfo) {
		if !seen[m.Name] {
			seen[m.Name] = true
			out = append(out, m)
		}
	}
	for _, m := range own {
		add(m)
	}
	for _, w := range r.workerNames() {
		r.mu.Lock()
		ms := slices.Clone(r.workers[w])
		r.mu.Unlock()
		for _, m := range ms {
			add(m)
		}
	}
	slices.SortFunc(out, func(a, b rpcproto.MethodInfo) int { return strings.Compare(a.Name, b.Name) })
	return out
}
