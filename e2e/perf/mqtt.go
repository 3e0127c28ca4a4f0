package perf

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/bosunhq/bosun/e2e"
	"github.com/eclipse/paho.golang/paho"
)

// EnvMosquitto names the mosquitto binary (scripts/test.sh and
// scripts/bench.sh set it; Debian's package installs /usr/sbin/mosquitto).
const EnvMosquitto = "BOSUN_TEST_MOSQUITTO"

// mosquittoConf is the broker's configuration: loopback only, anonymous,
// no persistence (the cloud's database runs with fsync off too), Nagle off
// (as Go does on every connection; with it each answer waits ~40 ms), room
// for every in-flight QoS 1 message a run has, so that the baseline is not
// held back by the broker's default of 20 per client.
const mosquittoConf = `listener %d 127.0.0.1
allow_anonymous true
persistence false
max_inflight_messages 1000
set_tcp_nodelay true
max_queued_messages 100000
log_dest stderr
log_type error
log_type warning
`

// StartMosquitto starts Debian's mosquitto on a free loopback port with a
// temporary configuration and returns its address; it stops when the test
// ends. Without mosquitto the test is skipped, or fails under CI=true.
func StartMosquitto(tb testing.TB) string {
	tb.Helper()
	bin := os.Getenv(EnvMosquitto)
	if bin == "" {
		if p, err := exec.LookPath("mosquitto"); err == nil {
			bin = p
		} else if _, err := os.Stat("/usr/sbin/mosquitto"); err == nil {
			bin = "/usr/sbin/mosquitto"
		}
	}
	if bin == "" {
		e2e.Require(tb, EnvMosquitto, "mosquitto (apt-get install mosquitto)")
	}
	port := e2e.FreePort(tb)
	dir := tb.TempDir()
	conf := filepath.Join(dir, "mosquitto.conf")
	if err := os.WriteFile(conf, fmt.Appendf(nil, mosquittoConf, port), 0o600); err != nil {
		tb.Fatal(err)
	}
	e2e.StartProcess(tb, dir, "mosquitto", nil, bin, "-c", conf)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	e2e.Eventually(tb, 10*time.Second, "mosquitto listening on "+addr, func() error {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return err
		}
		return c.Close()
	})
	return addr
}

// mqttConnect connects an MQTT v5 client named id to the broker at addr,
// with handle (nil: none) receiving its publishes.
func mqttConnect(ctx context.Context, addr, id string, handle func(paho.PublishReceived) (bool, error)) (*paho.Client, error) {
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	cfg := paho.ClientConfig{Conn: conn, ClientID: id}
	if handle != nil {
		cfg.OnPublishReceived = []func(paho.PublishReceived) (bool, error){handle}
	}
	c := paho.NewClient(cfg)
	ack, err := c.Connect(ctx, &paho.Connect{ClientID: id, CleanStart: true, KeepAlive: 60})
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("mqtt connect %s: %w", id, err)
	}
	if ack.ReasonCode != 0 {
		conn.Close()
		return nil, fmt.Errorf("mqtt connect %s: reason %d", id, ack.ReasonCode)
	}
	return c, nil
}

// MQTTBaseline is MQTT v5 request/response through the mosquitto at addr
// (StartMosquitto): devices clients, each subscribed at QoS 1 to its own
// request topic and answering every request on its ResponseTopic with its
// CorrelationData at QoS 1, and one caller client driving requests of
// about EnvelopeSize bytes at QoS 1, one in flight per device, for d.
// A round trip is counted when the answer with the right correlation and
// payload is back at the caller.
func MQTTBaseline(tb testing.TB, addr string, devices int, d time.Duration) LoadResult {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cctx, ccancel := context.WithTimeout(ctx, 30*time.Second)
	defer ccancel()
	var clients []*paho.Client
	defer func() {
		for _, c := range clients {
			c.Disconnect(&paho.Disconnect{ReasonCode: 0})
		}
	}()
	for i := range devices {
		dev, err := mqttConnect(cctx, addr, fmt.Sprintf("dev-%d", i), func(pr paho.PublishReceived) (bool, error) {
			p := pr.Packet
			if p.Properties == nil || p.Properties.ResponseTopic == "" {
				return true, nil
			}
			reply := &paho.Publish{Topic: p.Properties.ResponseTopic, QoS: 1, Payload: p.Payload,
				Properties: &paho.PublishProperties{CorrelationData: p.Properties.CorrelationData}}
			// Publish waits for the broker's PUBACK, which this client's
			// reader delivers: never wait for it on the reader itself.
			go pr.Client.Publish(ctx, reply)
			return true, nil
		})
		if err != nil {
			tb.Fatalf("perf: %v", err)
		}
		clients = append(clients, dev)
		if _, err := dev.Subscribe(cctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: reqTopic(i), QoS: 1}}}); err != nil {
			tb.Fatalf("perf: subscribing dev-%d: %v", i, err)
		}
	}
	var (
		mu      sync.Mutex // guards waiting
		waiting = map[uint64]chan []byte{}
	)
	const respTopic = "bosun/caller/resp"
	caller, err := mqttConnect(cctx, addr, "caller", func(pr paho.PublishReceived) (bool, error) {
		p := pr.Packet
		if p.Properties == nil || len(p.Properties.CorrelationData) != 8 {
			return true, nil
		}
		id := binary.BigEndian.Uint64(p.Properties.CorrelationData)
		mu.Lock()
		ch := waiting[id]
		delete(waiting, id)
		mu.Unlock()
		if ch != nil {
			ch <- p.Payload
		}
		return true, nil
	})
	if err != nil {
		tb.Fatalf("perf: %v", err)
	}
	clients = append(clients, caller)
	if _, err := caller.Subscribe(cctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: respTopic, QoS: 1}}}); err != nil {
		tb.Fatalf("perf: subscribing the caller: %v", err)
	}
	payload := []byte(`{"jsonrpc":"2.0","method":"system.info","params":{"data":"` + filler(EnvelopeSize-80) + `"},"id":1}`)
	var next uint64
	var nextMu sync.Mutex
	return ClosedLoop(devices, d, 10*time.Second, func(ctx context.Context, w int) error {
		nextMu.Lock()
		next++
		id := next
		nextMu.Unlock()
		corr := binary.BigEndian.AppendUint64(nil, id)
		ch := make(chan []byte, 1)
		mu.Lock()
		waiting[id] = ch
		mu.Unlock()
		_, err := caller.Publish(ctx, &paho.Publish{Topic: reqTopic(w), QoS: 1, Payload: payload,
			Properties: &paho.PublishProperties{ResponseTopic: respTopic, CorrelationData: corr}})
		if err == nil {
			select {
			case got := <-ch:
				if !bytes.Equal(got, payload) {
					err = errors.New("mqtt: the answer's payload is not the request's")
				}
			case <-ctx.Done():
				err = fmt.Errorf("mqtt: no answer to request %d: %w", id, ctx.Err())
			}
		}
		if err != nil {
			mu.Lock()
			delete(waiting, id)
			mu.Unlock()
		}
		return err
	})
}

func reqTopic(i int) string { return "bosun/dev-" + strconv.Itoa(i) + "/req" }
