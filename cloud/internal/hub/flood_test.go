package hub_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bosunhq/bosun/cloud/internal/cloudtest"
	"github.com/bosunhq/bosun/cloud/internal/server"
	"github.com/bosunhq/bosun/pkg/jsonrpc"
	"github.com/bosunhq/bosun/pkg/rpcproto"
)

// rowCounts is what registration can grow: devices and key sets.
func rowCounts(t *testing.T, s *cloudtest.Server) (devices, keySets int64) {
	t.Helper()
	err := s.Service().Store().Pool().QueryRow(context.Background(),
		`SELECT (SELECT count(*) FROM devices), (SELECT count(*) FROM device_keys)`).Scan(&devices, &keySets)
	if err != nil {
		t.Fatal(err)
	}
	return devices, keySets
}

// TestRegistrationFlood: an unauthenticated client floods registrations
// from one address — distinct ids held open, distinct ids connecting and
// leaving, fresh keys for one id — and the database stays bounded, refused
// attempts leave no row, and a device from another address registers
// during the flood. BOSUN_FLOOD sets the attempts per phase (default 300).
func TestRegistrationFlood(t *testing.T) {
	const perAddr, newPerAddr, keysPerDevice = 16, 100, 4
	s := cloudtest.NewServer(t, cloudtest.WithConfig(func(c *server.Config) {
		c.MaxPendingPerAddr, c.MaxNewPendingPerAddr, c.MaxPendingKeys = perAddr, newPerAddr, keysPerDevice
	}))
	attempts := 300
	if v, err := strconv.Atoi(os.Getenv("BOSUN_FLOOD")); err == nil && v > 0 {
		attempts = v
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	d0, k0 := rowCounts(t, s)

	// Phase 1: distinct ids from 127.0.0.1, every connection held open.
	var held []*cloudtest.Device
	var mu sync.Mutex
	var refused, other atomic.Int64
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for i := range attempts {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			d, err := cloudtest.Connect(ctx, t, s.DeviceURL(), s.CloudPublic(), fmt.Sprintf("flood-%d", i), cloudtest.DeviceOptions{})
			var re *jsonrpc.Error
			switch {
			case err == nil:
				mu.Lock()
				held = append(held, d)
				mu.Unlock()
			case errors.As(err, &re) && re.Code == rpcproto.CodeTryLater:
				refused.Add(1)
			default:
				other.Add(1)
				t.Errorf("flood registration %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	d1, k1 := rowCounts(t, s)
	t.Logf("held open: %d attempts from 127.0.0.1: %d pending sessions held, %d refused; rows devices %d→%d, key sets %d→%d",
		attempts, len(held), refused.Load(), d0, d1, k0, k1)
	if len(held) != perAddr || refused.Load() != int64(attempts-perAddr) {
		t.Fatalf("held %d, refused %d; want %d held, %d refused", len(held), refused.Load(), perAddr, attempts-perAddr)
	}
	if d1-d0 != perAddr || k1-k0 != perAddr {
		t.Fatalf("rows grew by %d devices, %d key sets; want %d each", d1-d0, k1-k0, perAddr)
	}

	// A device from another address registers during the flood.
	other2 := cloudtest.MustConnectFrom(t, s, "real-device", "127.0.0.2")
	if other2.Registration.Status != rpcproto.StatusPending {
		t.Fatalf("device from 127.0.0.2 during the flood: %+v", other2.Registration)
	}

	// Phase 2: distinct ids that connect and leave at once (so the live
	// bound never bites): at most newPerAddr new rows per hour.
	for _, d := range held {
		d.Close()
	}
	cloudtest.Eventually(t, 10*time.Second, func() bool { return s.Hub().Sessions() == 1 }, "flood sessions gone")
	created, refused2 := 0, 0
	for i := range attempts {
		d, err := cloudtest.Connect(ctx, t, s.DeviceURL(), s.CloudPublic(), fmt.Sprintf("churn-%d", i), cloudtest.DeviceOptions{})
		var re *jsonrpc.Error
		switch {
		case err == nil:
			created++
			d.Close()
			cloudtest.Eventually(t, 5*time.Second, func() bool { return d.Closed() }, "churn device closed")
		case errors.As(err, &re) && re.Code == rpcproto.CodeTryLater:
			refused2++
		default:
			t.Fatalf("churn registration %d: %v", i, err)
		}
	}
	d2, k2 := rowCounts(t, s)
	t.Logf("connect and leave: %d attempts: %d new pending devices, %d refused; rows devices %d→%d, key sets %d→%d",
		attempts, created, refused2, d1, d2, k1, k2)
	// The held-open phase already created perAddr of the address's hourly
	// allowance; real-device came from elsewhere.
	if want := newPerAddr - perAddr; created != want || d2-d1 != int64(want)+1 {
		t.Fatalf("created %d (rows +%d); want %d (+%d with real-device)", created, d2-d1, want, want+1)
	}

	// Phase 3: fresh keys for one known id, from yet another address.
	// While the device is online none is stored and it is not disturbed;
	// offline, at most keysPerDevice pending key sets are kept.
	freshKeys := func() (kept, refused int) {
		for range attempts / 10 {
			d, err := cloudtest.Connect(ctx, t, s.DeviceURL(), s.CloudPublic(), "real-device", cloudtest.DeviceOptions{LocalAddr: "127.0.0.3"})
			var re *jsonrpc.Error
			switch {
			case err == nil:
				kept++
				d.Close()
				cloudtest.Eventually(t, 5*time.Second, func() bool { return d.Closed() }, "key device closed")
				// And closed on the cloud's side too, or the next key
				// finds the id online (and is refused) on a loaded machine.
				cloudtest.Eventually(t, 5*time.Second, func() bool {
					dev, _ := s.Service().GetDevice(ctx, s.Super, "real-device")
					return !dev.Online
				}, "real-device offline after its key device left")
			case errors.As(err, &re) && re.Code == rpcproto.CodeTryLater:
				refused++
			default:
				t.Fatalf("new key: %v", err)
			}
		}
		return kept, refused
	}
	kept, refused3 := freshKeys()
	_, k3 := rowCounts(t, s)
	t.Logf("fresh keys for one id while it is online: %d attempts: %d stored, %d refused; key sets %d→%d", attempts/10, kept, refused3, k2, k3)
	if kept != 0 || k3 != k2 {
		t.Fatalf("%d new keys taken while the device was online (key sets %d→%d)", kept, k2, k3)
	}
	if other2.Closed() {
		t.Fatal("the device from another address was disconnected")
	}
	other2.Close()
	cloudtest.Eventually(t, 5*time.Second, func() bool {
		dev, _ := s.Service().GetDevice(ctx, s.Super, "real-device")
		return !dev.Online
	}, "real-device offline")
	kept, refused3 = freshKeys()
	_, k4 := rowCounts(t, s)
	t.Logf("fresh keys for one id while it is offline: %d attempts: %d stored, %d refused; key sets %d→%d", attempts/10, kept, refused3, k3, k4)
	// real-device's own key is pending already: keysPerDevice-1 more fit.
	if k4-k3 != keysPerDevice-1 || kept != keysPerDevice-1 {
		t.Fatalf("key sets grew by %d (%d kept), want %d", k4-k3, kept, keysPerDevice-1)
	}
}
