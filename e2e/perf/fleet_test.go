package perf

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/bosunhq/bosun/e2e"
)

// cloudDevice is the part of GET /devices/{id} the figures read.
type cloudDevice struct {
	ID     string `json:"id"`
	Status string `json:"status"`
	Online bool   `json:"online"`
}

// TestSimFleetShort is the short form of the fleet figures' set-up: a
// cloud, 50 simulated devices preauthorised in bulk, every one accepted
// and online as the cloud sees it, and system.info answered by the real
// built-in method of one of them.
func TestSimFleetShort(t *testing.T) {
	c := StartCloud(t, CloudOptions{})
	s := StartSim(t, c, 50, SimOptions{Duration: 2 * time.Minute})
	el := s.WaitAccepted(t, time.Minute)
	t.Logf("50 simulated devices accepted in %v", el.Round(time.Millisecond))
	ctx := context.Background()
	for i := range s.N {
		var d cloudDevice
		if err := c.API(ctx, "GET", "/devices/"+s.ID(i), nil, &d); err != nil {
			t.Fatal(err)
		}
		if d.Status != "accepted" || !d.Online {
			t.Fatalf("%s as the cloud sees it: %+v, want accepted and online", s.ID(i), d)
		}
	}
	var call struct {
		Status string `json:"status"`
		Result struct {
			Hostname string            `json:"hostname"`
			Versions map[string]string `json:"versions"`
		} `json:"result"`
	}
	e2e.Eventually(t, 30*time.Second, "system.info on "+s.ID(7), func() error {
		if err := c.API(ctx, "POST", "/devices/"+s.ID(7)+"/call", map[string]string{"method": "system.info"}, &call); err != nil {
			return err
		}
		if call.Status != "succeeded" || call.Result.Versions["worker"] == "" {
			return fmt.Errorf("call %+v", call)
		}
		return nil
	})
}
