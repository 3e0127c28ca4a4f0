package e2e

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// clusterReplica is one bosun-cloud of TestClusterReplicas.
type clusterReplica struct {
	name   string // BOSUN_REPLICA
	listen string // HTTP host:port
	route  string // NATS cluster host:port
	cmd    *exec.Cmd
}

func (r *clusterReplica) url() string { return "http://" + r.listen }

// clusterDevice is one device (bosun-bridge and bosun-worker) of
// TestClusterReplicas.
type clusterDevice struct {
	id, dir string
	env     []string // of its bridge
	bridge  *exec.Cmd
}

// apiCall is a call as the API returns it.
type apiCall struct {
	ID       string `json:"id"`
	DeviceID string `json:"device_id"`
	Method   string `json:"method"`
	Status   string `json:"status"`
	Error    *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func (c apiCall) final() bool {
	switch c.Status {
	case "succeeded", "failed", "timeout", "expired":
		return true
	}
	return false
}

// clusterAPI calls base's API with token and decodes a JSON answer into
// out; it returns the HTTP status.
func clusterAPI(ctx context.Context, base, token, method, path, body string, out any) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, base+"/api/v1"+path, r)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 != 2 {
		return resp.StatusCode, fmt.Errorf("%s %s%s: %s: %s", method, base, path, resp.Status, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return resp.StatusCode, fmt.Errorf("decoding %s: %w", b, err)
		}
	}
	return resp.StatusCode, nil
}

// callEvents follows /api/v1/events of one replica and keeps the ids of
// the calls whose call.finished it saw.
type callEvents struct {
	mu  sync.Mutex
	ids map[string]string // call id → status
}

func followCallEvents(ctx context.Context, t *testing.T, base, token string) *callEvents {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/api/v1/events", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		resp.Body.Close()
		t.Fatalf("GET %s/api/v1/events: %s", base, resp.Status)
	}
	ev := &callEvents{ids: map[string]string{}}
	go func() { // ends with ctx (the test's cleanup) or the replica
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line, ok := strings.CutPrefix(sc.Text(), "data: ")
			if !ok {
				continue
			}
			var e struct {
				Type   string `json:"type"`
				CallID string `json:"call_id"`
				Data   struct {
					Status string `json:"status"`
				} `json:"data"`
			}
			if json.Unmarshal([]byte(line), &e) != nil || e.Type != "call.finished" {
				continue
			}
			ev.mu.Lock()
			ev.ids[e.CallID] = e.Data.Status
			ev.mu.Unlock()
		}
	}()
	return ev
}

func (e *callEvents) saw(id string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	_, ok := e.ids[id]
	return ok
}

// TestClusterReplicas is item 4 of issue 11 with the real processes: three
// bosun-cloud replicas on one PostgreSQL, their embedded NATS servers
// joined as a NATS cluster by routes (with a route secret), and three
// devices (bosun-bridge and bosun-worker each) given all three cloud URLs,
// each starting on another replica. Calls made on one replica reach the
// devices held by the others, and the call.finished events reach an event
// stream on a third. Then replica B is killed (-9) while calls to its
// device are being made: the device reconnects to another replica and
// answers again, every call the API answered ends with an outcome in its
// row (those with a ttl succeed), and calls queued through B for a device
// that was offline are delivered when the device comes back through A.
func TestClusterReplicas(t *testing.T) {
	s := StartStack(t, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	_, _, token := s.Credentials(t)
	// run-dev.sh's cloud and dev-1's bridge make way for the cluster (its
	// worker stays, and finds the bridge again on the same NATS port).
	s.stopComponent(t, "bridge")
	s.stopComponent(t, "cloud")

	secretFile := writeClusterSecret(t, s.Dir)
	reps := []*clusterReplica{{name: "replica-a", listen: s.Listen}, {name: "replica-b"}, {name: "replica-c"}}
	for _, r := range reps {
		if r.listen == "" {
			r.listen = "127.0.0.1:" + strconv.Itoa(FreePort(t))
		}
		r.route = "127.0.0.1:" + strconv.Itoa(FreePort(t))
	}
	startReplica := func(r *clusterReplica) {
		var routes []string
		for _, o := range reps {
			if o != r {
				routes = append(routes, "nats-route://"+o.route)
			}
		}
		env := append(s.cloudEnv(r.listen, filepath.Join(s.Dir, "cloud")), "BOSUN_REPLICA="+r.name,
			"BOSUN_NATS_CLUSTER_LISTEN="+r.route, "BOSUN_NATS_ROUTES="+strings.Join(routes, ","),
			"BOSUN_NATS_CLUSTER_SECRET_FILE="+secretFile)
		r.cmd = s.startProc(t, "cloud-"+r.name, env, s.Bin("bosun-cloud"), "serve")
	}
	for _, r := range reps {
		startReplica(r)
	}
	for _, r := range reps {
		Eventually(t, 30*time.Second, r.name+" ready", func() error {
			resp, err := http.Get(r.url() + "/readyz")
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				return fmt.Errorf("/readyz: %s", resp.Status)
			}
			return nil
		})
	}
	a, b, c := reps[0], reps[1], reps[2]

	// Devices: each lists the three replicas starting with its own.
	wsURL := func(rs ...*clusterReplica) string {
		var u []string
		for _, r := range rs {
			u = append(u, "ws://"+r.listen+"/v1/device")
		}
		return strings.Join(u, ",")
	}
	devs := []*clusterDevice{{id: s.Device}, {id: "dev-2"}, {id: "dev-3"}}
	lists := [][]*clusterReplica{{a, b, c}, {b, c, a}, {c, a, b}}
	for i, d := range devs {
		if d.id == s.Device {
			d.dir, d.env = filepath.Join(s.Dir, d.id), s.bridgeEnv(t)
		} else {
			d.dir = filepath.Join(s.Dir, d.id)
			d.env = []string{"BOSUN_DEVICE_ID=" + d.id, "BOSUN_DATA_DIR=" + d.dir,
				"BOSUN_CLOUD_PUBLIC_KEY=" + filepath.Join(s.Keys, "device", "cloud_public.pem"),
				"BOSUN_NATS_LISTEN=127.0.0.1:" + strconv.Itoa(FreePort(t))}
		}
		d.env = append(d.env, "BOSUN_CLOUD_URL="+wsURL(lists[i]...))
		d.bridge = s.startProc(t, "bridge-"+d.id, d.env, s.Bin("bosun-bridge"))
		if d.id != s.Device {
			Eventually(t, 30*time.Second, d.id+"'s NATS", func() error {
				_, err := os.Stat(filepath.Join(d.dir, "nats.url"))
				return err
			})
			s.startProc(t, "worker-"+d.id, []string{"BOSUN_DATA_DIR=" + d.dir}, s.Bin("bosun-worker"))
		}
	}
	holder := func(id string) (string, bool, error) {
		var d struct {
			Online  bool   `json:"online"`
			Replica string `json:"replica"`
		}
		_, err := clusterAPI(ctx, a.url(), token, "GET", "/devices/"+id, "", &d)
		return d.Replica, d.Online, err
	}
	for i, d := range devs {
		Eventually(t, 30*time.Second, d.id+" accepted", func() error {
			_, err := s.CLI(ctx, "accept", d.id)
			return err
		})
		Eventually(t, 30*time.Second, d.id+" online on "+lists[i][0].name, func() error {
			r, online, err := holder(d.id)
			if err != nil || !online || r != lists[i][0].name {
				return fmt.Errorf("online %v on %q, %v", online, r, err)
			}
			return nil
		})
	}

	// Calls cross replicas: from every replica to every device.
	callOn := func(r *clusterReplica, dev, body string) (apiCall, int, error) {
		var out apiCall
		code, err := clusterAPI(ctx, r.url(), token, "POST", "/devices/"+dev+"/call", body, &out)
		return out, code, err
	}
	sysinfo := `{"method":"system.info","timeout":"3s"}`
	for _, r := range reps {
		for _, d := range devs {
			// Subscription interest crosses routes a moment after a
			// device connects: the first call may find no route yet.
			Eventually(t, 10*time.Second, "system.info via "+r.name+" to "+d.id, func() error {
				got, _, err := callOn(r, d.id, sysinfo)
				if err == nil && got.Status != "succeeded" {
					err = fmt.Errorf("%s: %+v", got.Status, got.Error)
				}
				return err
			})
		}
	}
	t.Logf("system.info from each of %d replicas reached each of %d devices, held by %s, %s and %s", len(reps), len(devs), a.name, b.name, c.name)

	// Events published by one replica reach a stream on another: call.finished
	// of calls made on A to dev-2 (held by B), seen on C's stream.
	evC := followCallEvents(ctx, t, c.url(), token)
	Eventually(t, 10*time.Second, "a call.finished of a call made on A seen on C", func() error {
		got, _, err := callOn(a, "dev-2", sysinfo)
		if err != nil {
			return err
		}
		for range 10 {
			if evC.saw(got.ID) {
				return nil
			}
			time.Sleep(50 * time.Millisecond)
		}
		return fmt.Errorf("call %s not seen on %s's event stream", got.ID, c.name)
	})

	// dev-1 goes offline; calls with a ttl are queued for it through B.
	syscall.Kill(-devs[0].bridge.Process.Pid, syscall.SIGTERM)
	Eventually(t, 15*time.Second, s.Device+" offline", func() error {
		if _, online, err := holder(s.Device); err != nil || online {
			return fmt.Errorf("online %v, %v", online, err)
		}
		return nil
	})
	var queuedViaB []string
	for range 3 {
		got, code, err := callOn(b, s.Device, `{"method":"system.info","ttl":"5m"}`)
		if err != nil || code != 202 || got.Status != "queued" {
			t.Fatalf("queueing for offline %s via %s: %d %+v %v", s.Device, b.name, code, got, err)
		}
		queuedViaB = append(queuedViaB, got.ID)
	}

	// Calls to dev-2 (held by B) through A, before, during and after B is
	// killed, alternately synchronous and with a ttl. Bounded: the loop
	// stops once dev-2 is back and a few calls have succeeded after it.
	type made struct {
		id    string
		ttl   bool
		start time.Time
	}
	var (
		mu      sync.Mutex
		calls   []made
		callErr []error
	)
	stop := make(chan struct{})
	loopDone := make(chan struct{})
	stopLoop := sync.OnceFunc(func() { close(stop); <-loopDone })
	t.Cleanup(stopLoop) // also when the test fails before the end
	go func() {
		defer close(loopDone)
		for i := 0; i < 3000; i++ { // a bound far beyond what the test needs
			select {
			case <-stop:
				return
			default:
			}
			ttl := i%2 == 1
			body := sysinfo
			if ttl {
				body = `{"method":"system.info","timeout":"3s","ttl":"5m"}`
			}
			start := time.Now()
			got, _, err := callOn(a, "dev-2", body)
			mu.Lock()
			if err != nil {
				callErr = append(callErr, err)
			} else {
				calls = append(calls, made{got.ID, ttl, start})
			}
			mu.Unlock()
			time.Sleep(20 * time.Millisecond)
		}
	}()
	Eventually(t, 10*time.Second, "calls before the kill", func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(calls) < 6 {
			return fmt.Errorf("%d calls", len(calls))
		}
		return nil
	})
	if err := syscall.Kill(b.cmd.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	Eventually(t, 10*time.Second, b.name+" gone", func() error {
		if Alive(b.cmd.Process.Pid) {
			return fmt.Errorf("pid %d alive", b.cmd.Process.Pid)
		}
		return nil
	})
	Eventually(t, 20*time.Second, "dev-2 online on another replica", func() error {
		r, online, err := holder("dev-2")
		if err != nil || !online || r == b.name {
			return fmt.Errorf("online %v on %q, %v", online, r, err)
		}
		return nil
	})
	back := time.Since(killed)
	Eventually(t, 20*time.Second, "dev-2 answers again through A", func() error {
		got, _, err := callOn(a, "dev-2", sysinfo)
		if err == nil && got.Status != "succeeded" {
			err = fmt.Errorf("%s: %+v", got.Status, got.Error)
		}
		return err
	})
	backAt := time.Now()
	r2, _, _ := holder("dev-2")
	t.Logf("dev-2 online on %s %v after kill -9 of %s", r2, back.Round(time.Millisecond), b.name)
	mu.Lock()
	before := len(calls)
	mu.Unlock()
	Eventually(t, 10*time.Second, "calls after dev-2 is back", func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(calls) < before+4 {
			return fmt.Errorf("%d calls", len(calls)-before)
		}
		return nil
	})
	stopLoop()
	if len(callErr) > 0 {
		// Through A, which stayed up, every call gets an answer.
		t.Errorf("%d calls through %s got no answer, first: %v", len(callErr), a.name, callErr[0])
	}

	// dev-1 comes back (through A, the first of its list): the calls
	// queued through B, dead since, are delivered.
	devs[0].bridge = s.startProc(t, "bridge-"+s.Device+"-2", devs[0].env, s.Bin("bosun-bridge"))
	Eventually(t, 30*time.Second, "the calls queued through B delivered to "+s.Device, func() error {
		for _, id := range queuedViaB {
			var got apiCall
			if _, err := clusterAPI(ctx, c.url(), token, "GET", "/calls/"+id, "", &got); err != nil {
				return err
			}
			if got.Status != "succeeded" {
				return fmt.Errorf("call %s %s", id, got.Status)
			}
		}
		return nil
	})

	// No acknowledged call is lost: every one has its row and an outcome.
	// A ttl call succeeds, unless B had it on the wire when it was
	// killed: then it ends timeout (the device may have run it; it is
	// never sent twice). Every call made once dev-2 was back succeeded.
	statuses := map[string]int{}
	Eventually(t, 30*time.Second, "every call made around the kill final", func() error {
		clear(statuses)
		for _, m := range calls {
			var got apiCall
			if _, err := clusterAPI(ctx, c.url(), token, "GET", "/calls/"+m.id, "", &got); err != nil {
				return err
			}
			if !got.final() {
				return fmt.Errorf("call %s (ttl %v) is %s", m.id, m.ttl, got.Status)
			}
			after := m.start.After(backAt)
			if (m.ttl && got.Status != "succeeded" && got.Status != "timeout") || (after && got.Status != "succeeded") {
				t.Fatalf("call %s (ttl %v, made %v after the kill, after dev-2 was back: %v) ended %s %+v",
					m.id, m.ttl, m.start.Sub(killed).Round(time.Millisecond), after, got.Status, got.Error)
			}
			key := got.Status
			if got.Error != nil {
				key += " " + strconv.Itoa(got.Error.Code)
			}
			if m.ttl {
				key = "ttl " + key
			}
			statuses[key]++
		}
		return nil
	})
	keys := make([]string, 0, len(statuses))
	for k := range statuses {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var summary []string
	for _, k := range keys {
		summary = append(summary, fmt.Sprintf("%s: %d", k, statuses[k]))
	}
	t.Logf("%d calls to dev-2 through %s around the kill: %s", len(calls), a.name, strings.Join(summary, ", "))

	// What A's log says of the cluster (warnings and errors of its NATS
	// server): for the record, and never the secret.
	logA, err := os.ReadFile(filepath.Join(s.Dir, "logs", "cloud-"+a.name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	secret, err := os.ReadFile(secretFile)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(logA), strings.TrimSpace(string(secret))) {
		t.Errorf("%s's log shows the route secret", a.name)
	}
	var natsLines []string
	for _, l := range strings.Split(string(logA), "\n") {
		if strings.Contains(l, "component=nats") || strings.Contains(l, "nats_cluster=") {
			natsLines = append(natsLines, l)
		}
	}
	t.Logf("%s's log (%d bytes) of its NATS cluster:\n%s", a.name, len(logA), tail(strings.Join(natsLines, "\n"), 3000))

	// And the cluster still routes: C to dev-1 (on A), A to dev-3 (on C).
	for _, x := range []struct {
		via *clusterReplica
		dev string
	}{{c, s.Device}, {a, "dev-3"}, {c, "dev-2"}} {
		Eventually(t, 10*time.Second, "system.info via "+x.via.name+" to "+x.dev, func() error {
			got, _, err := callOn(x.via, x.dev, sysinfo)
			if err == nil && got.Status != "succeeded" {
				err = fmt.Errorf("%s: %+v", got.Status, got.Error)
			}
			return err
		})
	}
}

// writeClusterSecret writes a fresh NATS cluster route secret into dir
// (mode 0600) and returns its path.
func writeClusterSecret(t *testing.T, dir string) string {
	t.Helper()
	file := filepath.Join(dir, "nats-cluster.secret")
	var sec [24]byte
	rand.Read(sec[:])
	if err := os.WriteFile(file, []byte(hex.EncodeToString(sec[:])+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}
