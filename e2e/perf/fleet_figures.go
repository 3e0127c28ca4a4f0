package perf

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// FleetSizes are the sizes of the fleet figures (P3, P4, P5).
type FleetSizes struct {
	Devices int // P3 and P4: idle devices, restart storm
	FanOut  int // P5: devices one fan-out calls
	Short   bool
}

// fdMargin is what the cloud (and bosun-sim) need beside the devices'
// sockets: PostgreSQL pool, NATS, listeners, files.
const fdMargin = 200

// FleetLimit returns how many devices one process may hold open here:
// RLIMIT_NOFILE less fdMargin. Go raises the soft limit to the hard one
// at start-up, so the hard limit is what counts.
func FleetLimit() int {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 1000
	}
	return int(r.Max) - fdMargin
}

// fleetCommand reproduces the fleet figures.
const fleetCommand = "go test -run '^$' -bench BenchmarkFleet -benchtime 1x -timeout 20m ./e2e/perf"

// RunFleet runs the fleet figures on one cloud and one simulated fleet and
// records P3 (cloud RSS per idle device), P4 (all online again after a
// cloud restart) and P5 (fan-out of system.info).
func RunFleet(tb testing.TB, sz FleetSizes) {
	tb.Helper()
	ctx := context.Background()
	var opts CloudOptions
	prof := os.Getenv(EnvProfile)
	if prof != "" {
		opts.Env = []string{"BOSUN_PPROF_LISTEN=127.0.0.1:0"}
	}
	c := StartCloud(tb, opts)
	// A figure, not a wait for a condition: let the fresh cloud settle
	// before the baseline, and the sessions go idle before the reading.
	settle := 5 * time.Second
	if sz.Short {
		settle = 0
	}
	time.Sleep(settle / 2)
	before := c.RSS(tb)
	start := time.Now()
	// The first connect is paced (P3 measures memory, not a storm; P4 is
	// the storm): at about what the cores handshake, so that no device
	// times out, backs off and leaves the run waiting for its retry.
	s := StartSim(tb, c, sz.Devices, SimOptions{Duration: 15 * time.Minute, Rate: 600})
	setup := time.Since(start)
	first := s.WaitAccepted(tb, 8*time.Minute)
	time.Sleep(settle)
	after := c.RSS(tb)
	perDev := float64(after-before) / float64(sz.Devices) / 1024
	Record(tb, Row{
		ID: "P3", What: fmt.Sprintf("cloud RSS per idle, authenticated device (%d devices)", sz.Devices),
		Result: perDev, Unit: "KiB/device", Goal: "≤ 16 KiB", Met: perDev <= 16, Command: fleetCommand,
		Short: sz.Short,
		Notes: fmt.Sprintf("bosun-cloud VmRSS %.1f MiB before, %.1f MiB with %d accepted sessions; preauthorised in %v, all accepted %v after bosun-sim started",
			mib(before), mib(after), sz.Devices, setup.Round(time.Millisecond), first.Round(time.Millisecond)),
	})

	// P4: kill the cloud, start it again, wait for every session.
	c.Kill(tb)
	killed := time.Now()
	c.Start(tb)
	up := time.Since(killed)
	cpu0 := ReadCPU("bosun-cloud", "bosun-sim", "postgres") // the new cloud's, from its start
	var storm <-chan error
	if prof != "" { // the reconnect storm, as the restarted cloud sees it
		storm = ProfileFromLog(c.Process().Log, prof, "p4-cloud", 15*time.Second)
	}
	back := s.WaitAccepted(tb, 3*time.Minute)
	if storm != nil {
		if err := <-storm; err != nil {
			tb.Logf("profile: %v", err)
		}
	}
	total := time.Since(killed)
	cpu := ReadCPU("bosun-cloud", "bosun-sim", "postgres").Sub(cpu0)
	st, _ := s.Get(ctx)
	Record(tb, Row{
		ID: "P4", What: fmt.Sprintf("reconnect storm: %d devices online again after a cloud restart", sz.Devices),
		Result: total.Seconds(), Unit: "s", Goal: "≤ 20 s", Met: total <= 20*time.Second, Command: fleetCommand,
		Short: sz.Short,
		Notes: fmt.Sprintf("from kill -9 of bosun-cloud: serving again after %v, every device accepted %v after that; refused messages by reason %v; CPU per reconnect: %s",
			up.Round(time.Millisecond), back.Round(time.Millisecond), st.Rejected, cpu.PerCall(int64(sz.Devices))),
	})

	// P5: one fan-out of system.info to sz.FanOut devices, by tag.
	tagDevices(tb, c, s, sz.FanOut, "p5")
	sum, el, bad := fanOut(tb, c, "p5")
	Record(tb, Row{
		ID: "P5", What: fmt.Sprintf("fan-out system.info to %d online devices: every result", sz.FanOut),
		Result: el.Seconds(), Unit: "s", Goal: "≤ 3 s", Met: el <= 3*time.Second && sum.Succeeded == sz.FanOut,
		Command: fleetCommand, Short: sz.Short,
		Notes: fmt.Sprintf("POST /api/v1/calls {tag, system.info}: %d succeeded, %d failed, %d offline, %d timed out%s",
			sum.Succeeded, sum.Failed, sum.Offline, sum.TimedOut, bad),
	})
	if sum.Succeeded != sz.FanOut {
		tb.Errorf("fan-out: %+v, want %d succeeded%s", sum, sz.FanOut, bad)
	}
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// tagDevices gives the first n simulated devices the tag, in one UPDATE
// on the cloud's database: setup, not a figure (PUT /devices/{id}/tags one
// device at a time costs half a minute of the run's 15 at 10,000).
func tagDevices(tb testing.TB, c *Cloud, s *Sim, n int, tag string) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = s.ID(i)
	}
	conn, err := pgx.Connect(ctx, c.DatabaseURL)
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close(ctx)
	// In chunks, retried: the cloud updates the same rows meanwhile
	// (last_seen, state reports), so a large UPDATE can deadlock with it.
	done := int64(0)
	for len(ids) > 0 {
		chunk := ids[:min(500, len(ids))]
		var err error
		for try := 0; try < 5; try++ {
			var t2 interface{ RowsAffected() int64 }
			t2, err = conn.Exec(ctx, `UPDATE devices SET tags = array_append(array_remove(tags, $2), $2) WHERE id = ANY($1)`, chunk, tag)
			if err == nil {
				done += t2.RowsAffected()
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err != nil {
			tb.Fatalf("tagging: %v", err)
		}
		ids = ids[len(chunk):]
	}
	if done != int64(n) {
		tb.Fatalf("tagging: %d of %d devices", done, n)
	}
}

// fanOutSummary is the summary line of POST /calls.
type fanOutSummary struct {
	Total, Succeeded, Failed, Offline int
	TimedOut                          int `json:"timed_out"`
}

// fanOut calls system.info on every device with tag and returns the
// summary, the time to it, and the first few failures.
func fanOut(tb testing.TB, c *Cloud, tag string) (fanOutSummary, time.Duration, string) {
	tb.Helper()
	body := fmt.Sprintf(`{"tag":%q,"method":"system.info","timeout":"30s"}`, tag)
	req, _ := http.NewRequest("POST", c.URL+"/api/v1/calls", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+c.Token)
	req.Header.Set("Content-Type", "application/json")
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		tb.Fatalf("POST /calls: %s", resp.Status)
	}
	var sum fanOutSummary
	var bad []string
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var line struct {
			Type string `json:"type"`
			Call *struct {
				DeviceID string          `json:"device_id"`
				Status   string          `json:"status"`
				Error    json.RawMessage `json:"error"`
			} `json:"call"`
			Summary *fanOutSummary  `json:"summary"`
			Error   json.RawMessage `json:"error"`
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			tb.Fatalf("fan-out line %q: %v", sc.Text(), err)
		}
		switch line.Type {
		case "result":
			if line.Call.Status != "succeeded" && len(bad) < 5 {
				bad = append(bad, fmt.Sprintf("%s %s %s", line.Call.DeviceID, line.Call.Status, line.Call.Error))
			}
		case "summary":
			sum = *line.Summary
		case "error":
			tb.Fatalf("fan-out broke off: %s", line.Error)
		}
	}
	el := time.Since(start)
	if err := sc.Err(); err != nil {
		tb.Fatal(err)
	}
	note := ""
	if len(bad) > 0 {
		note = "; first failures: " + strings.Join(bad, "; ")
	}
	return sum, el, note
}
