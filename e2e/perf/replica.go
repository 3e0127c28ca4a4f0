package perf

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bosunhq/bosun/e2e"
)

// StartCluster starts n bosun-cloud replicas (named replica-1 ...
// replica-n) on one fresh database, signing with one cloud key, their
// embedded NATS servers joined as one NATS cluster by routes with a route
// secret: what a production deployment of several replicas is. The first
// is StartCloud's cloud (its token, CLI config and CloudPublic serve for
// all); opts.Env goes to every replica. It returns once every replica
// answers /readyz. Cleanup stops them and drops the database.
func StartCluster(tb testing.TB, n int, opts CloudOptions) []*Cloud {
	tb.Helper()
	if n < 1 {
		tb.Fatalf("StartCluster: %d replicas", n)
	}
	secret := filepath.Join(tb.TempDir(), "nats-cluster.secret")
	var sec [24]byte
	rand.Read(sec[:])
	if err := os.WriteFile(secret, []byte(hex.EncodeToString(sec[:])+"\n"), 0o600); err != nil {
		tb.Fatal(err)
	}
	routes := make([]string, n)
	for i := range routes {
		routes[i] = "127.0.0.1:" + strconv.Itoa(e2e.FreePort(tb))
	}
	clusterEnv := func(i int) []string {
		var others []string
		for j, r := range routes {
			if j != i {
				others = append(others, "nats-route://"+r)
			}
		}
		return []string{"BOSUN_REPLICA=replica-" + strconv.Itoa(i+1), "BOSUN_NATS_CLUSTER_LISTEN=" + routes[i],
			"BOSUN_NATS_ROUTES=" + strings.Join(others, ","), "BOSUN_NATS_CLUSTER_SECRET_FILE=" + secret}
	}
	first := StartCloud(tb, CloudOptions{Env: append(append([]string(nil), opts.Env...), clusterEnv(0)...)})
	clouds := []*Cloud{first}
	for i := 1; i < n; i++ {
		c := &Cloud{tb: tb, Dir: tb.TempDir(), opts: opts, DatabaseURL: first.DatabaseURL,
			Token: first.Token, CloudPublic: first.CloudPublic}
		c.Listen = "127.0.0.1:" + strconv.Itoa(e2e.FreePort(tb))
		c.URL = "http://" + c.Listen
		c.DeviceURL = "ws://" + c.Listen + "/v1/device"
		c.env = append(os.Environ(),
			"BOSUN_DATABASE_URL="+c.DatabaseURL,
			"BOSUN_LISTEN="+c.Listen,
			"BOSUN_PUBLIC_URL="+c.URL,
			"BOSUN_CLOUD_KEY="+filepath.Join(first.Dir, "keys", "cloud_private.pem"),
			"BOSUN_DATA_DIR="+filepath.Join(first.Dir, "data"), // artifacts are shared
		)
		c.env = append(append(c.env, opts.Env...), clusterEnv(i)...)
		c.Config = filepath.Join(c.Dir, "bosun.json")
		cfg := fmt.Sprintf(`{"url":%q,"token":%q}`, c.URL, c.Token)
		if err := os.WriteFile(c.Config, []byte(cfg), 0o600); err != nil {
			tb.Fatal(err)
		}
		c.Start(tb)
		clouds = append(clouds, c)
	}
	for _, c := range clouds {
		e2e.Eventually(tb, 30*time.Second, c.Listen+" ready", func() error {
			resp, err := http.Get(c.URL + "/readyz")
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("/readyz: %s", resp.Status)
			}
			return nil
		})
	}
	return clouds
}
