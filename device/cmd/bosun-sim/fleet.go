package main

import (
	"context"
	"crypto"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/bosunhq/bosun/device/internal/bridge"
	"github.com/bosunhq/bosun/device/internal/builtin"
	"github.com/bosunhq/bosun/device/internal/datadir"
	"github.com/bosunhq/bosun/pkg/jsonrpc"
	"github.com/bosunhq/bosun/pkg/keys"
	"github.com/bosunhq/bosun/pkg/rpcproto"
)

// device is one simulated device.
type device struct {
	id  string
	dir string
	key crypto.Signer
	b   *bridge.Bridge
}

// ids returns the fleet's device ids.
func ids(cfg Config) []string {
	out := make([]string, cfg.Devices)
	for i := range out {
		out[i] = cfg.Prefix + strconv.Itoa(cfg.First+i)
	}
	return out
}

// loadKeys loads or generates every device's key, in parallel.
func loadKeys(ctx context.Context, cfg Config) ([]*device, error) {
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("creating data dir: %w", err)
	}
	devs := make([]*device, cfg.Devices)
	for i, id := range ids(cfg) {
		devs[i] = &device{id: id, dir: filepath.Join(cfg.DataDir, id)}
	}
	work := make(chan *device)
	errc := make(chan error, 1)
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for d := range work {
				if err := os.MkdirAll(d.dir, 0o700); err != nil {
					select {
					case errc <- fmt.Errorf("creating %s: %w", d.dir, err):
					default:
					}
					continue
				}
				k, _, err := keys.LoadOrGenerate(filepath.Join(d.dir, datadir.KeyFile), cfg.KeyAlg, 0)
				if err != nil {
					select {
					case errc <- fmt.Errorf("key of %s: %w", d.id, err):
					default:
					}
					continue
				}
				d.key = k
			}
		})
	}
feed:
	for _, d := range devs {
		select {
		case work <- d:
		case <-ctx.Done():
			break feed
		case err := <-errc:
			errc <- err
			break feed
		}
	}
	close(work)
	wg.Wait()
	select {
	case err := <-errc:
		return nil, err
	default:
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return devs, nil
}

// PreauthEntry is one device of the bulk preauthorisation request
// (POST /api/v1/devices/preauthorize), as `bosun-sim keys` prints it.
type PreauthEntry struct {
	ID        string `json:"id"`
	PublicKey string `json:"public_key"` // base64 DER SPKI
}

// runKeys generates or loads the keys and writes {"devices":[...]}.
func runKeys(ctx context.Context, cfg Config, w io.Writer) error {
	devs, err := loadKeys(ctx, cfg)
	if err != nil {
		return err
	}
	var out struct {
		Devices []PreauthEntry `json:"devices"`
	}
	for _, d := range devs {
		der, err := keys.PublicDER(d.key.Public())
		if err != nil {
			return fmt.Errorf("key of %s: %w", d.id, err)
		}
		out.Devices = append(out.Devices, PreauthEntry{ID: d.id, PublicKey: base64.StdEncoding.EncodeToString(der)})
	}
	enc := json.NewEncoder(w)
	return enc.Encode(out)
}

// sourceAddr is the loopback source address of the n-th group of devices:
// 127.0.0.1 for the first, then 127.0.1.2, 127.0.1.3, ... (all of
// 127.0.0.0/8 is loopback on Linux) so that each group has the whole
// ephemeral port range to itself. n is below maxDevices.
func sourceAddr(n int) net.IP {
	if n == 0 {
		return net.IPv4(127, 0, 0, 1).To4()
	}
	return net.IPv4(127, 0, byte(1+n/250), byte(1+n%250)).To4()
}

// clientFrom returns an HTTP client whose connections come from src.
func clientFrom(src net.IP) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: src}, Timeout: 30 * time.Second, KeepAlive: -1}
	return &http.Client{Transport: &http.Transport{
		DialContext:       d.DialContext,
		DisableKeepAlives: true,
		ForceAttemptHTTP2: false,
		WriteBufferSize:   1024,
		ReadBufferSize:    1024,
	}}
}

// localWorker returns the built-in methods, served in process.
func localWorker(dataDir string) (*bridge.LocalWorker, func()) {
	m := builtin.New(builtin.Config{DataDir: dataDir})
	d := jsonrpc.NewDispatcher()
	d.SetLogger(slog.New(slog.DiscardHandler))
	reg := &registrar{d: d}
	m.Register(reg)
	return &bridge.LocalWorker{Name: "bosun-worker", Dispatcher: d, Methods: reg.methods}, m.Close
}

type registrar struct {
	d       *jsonrpc.Dispatcher
	methods []rpcproto.MethodInfo
}

func (r *registrar) Handle(method, description string, h jsonrpc.HandlerFunc) {
	r.d.Register(method, h)
	r.methods = append(r.methods, rpcproto.MethodInfo{Name: method, Description: description, Worker: "bosun-worker"})
}

// Status is what GET /status answers.
type Status struct {
	Devices  int            `json:"devices"`
	Started  int            `json:"started"`
	Accepted int            `json:"accepted"`
	ByStatus map[string]int `json:"by_status"`
	Rejected map[string]int `json:"rejected,omitempty"` // messages refused, by reason
}

type fleet struct {
	mu   sync.Mutex // guards devs' b once set
	devs []*device
}

func (f *fleet) status() Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := Status{Devices: len(f.devs), ByStatus: map[string]int{}}
	for _, d := range f.devs {
		if d.b == nil {
			continue
		}
		s.Started++
		st := d.b.Status()
		s.ByStatus[string(st)]++
		if st == bridge.StatusAccepted {
			s.Accepted++
		}
		for k, v := range d.b.Rejected() {
			if s.Rejected == nil {
				s.Rejected = map[string]int{}
			}
			s.Rejected[k] += v
		}
	}
	return s
}

// run starts the fleet and serves it until ctx ends or cfg.Duration
// passes.
func run(ctx context.Context, cfg Config, log *slog.Logger) error {
	ctx, cancel := context.WithTimeout(ctx, cfg.Duration)
	defer cancel()
	if err := fdsFor(cfg.Devices); err != nil {
		return err
	}
	cloudKey, err := keys.LoadPublic(cfg.CloudPublicKey)
	if err != nil {
		return fmt.Errorf("loading the cloud's public key (--cloud-public-key): %w", err)
	}
	start := time.Now()
	devs, err := loadKeys(ctx, cfg)
	if err != nil {
		return err
	}
	log.Warn("keys ready", "devices", len(devs), "ms", time.Since(start).Milliseconds())
	local, closeLocal := localWorker(cfg.DataDir)
	defer closeLocal()
	f := &fleet{devs: devs}

	if cfg.StatusListen != "" {
		l, err := net.Listen("tcp", cfg.StatusListen)
		if err != nil {
			return fmt.Errorf("status listener: %w", err)
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/status" {
				http.NotFound(w, r)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(f.status())
		}), ReadHeaderTimeout: 5 * time.Second}
		var swg sync.WaitGroup
		swg.Go(func() { srv.Serve(l) })
		defer func() {
			sctx, c := context.WithTimeout(context.Background(), 2*time.Second)
			srv.Shutdown(sctx)
			c()
			swg.Wait()
		}()
	}

	clients := map[int]*http.Client{}
	var wg sync.WaitGroup
	defer wg.Wait()
	var tick <-chan time.Time
	if cfg.Rate > 0 {
		t := time.NewTicker(time.Second / time.Duration(cfg.Rate))
		defer t.Stop()
		tick = t.C
	}
	// Bridges are made a few at a time (each opens its data directory),
	// and each runs as soon as it is made, at --rate when one is set.
	for g := range (len(devs) + cfg.PerAddr - 1) / cfg.PerAddr {
		clients[g] = clientFrom(sourceAddr(g))
	}
	made := make(chan int)
	errc := make(chan error, 1)
	var mwg sync.WaitGroup
	for range 16 {
		mwg.Go(func() {
			for i := range made {
				d := devs[i]
				b, err := bridge.New(ctx, bridge.Options{
					DeviceID: d.id, DataDir: d.dir, CloudURL: cfg.CloudURL, CloudKey: cloudKey,
					Key: d.key, Local: local, HTTPClient: clients[i/cfg.PerAddr],
					Backoff:    bridge.Backoff{Base: cfg.BackoffBase, Cap: cfg.BackoffCap},
					Attributes: map[string]string{"simulated": "bosun-sim"},
					Logger:     log,
				})
				if err != nil {
					select {
					case errc <- fmt.Errorf("device %s: %w", d.id, err):
					default:
					}
					cancel()
					continue
				}
				f.mu.Lock()
				d.b = b
				f.mu.Unlock()
				wg.Go(func() {
					defer b.Close()
					b.Run(ctx)
				})
			}
		})
	}
feed:
	for i := range devs {
		if tick != nil {
			select {
			case <-tick:
			case <-ctx.Done():
			}
		}
		select {
		case made <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(made)
	mwg.Wait()
	select {
	case err := <-errc:
		return err
	default:
	}
	log.Warn("fleet started", "devices", len(devs), "ms", time.Since(start).Milliseconds())
	every := time.NewTicker(5 * time.Second)
	defer every.Stop()
	last := -1
	for {
		select {
		case <-ctx.Done():
			s := f.status()
			log.Warn("fleet stopping", "accepted", s.Accepted, "by_status", s.ByStatus)
			return nil
		case <-every.C:
			if s := f.status(); s.Accepted != last {
				last = s.Accepted
				log.Warn("fleet", "accepted", s.Accepted, "by_status", s.ByStatus)
			}
		}
	}
}

// loopbackAddr reports whether addr is host:port with a loopback IP host.
func loopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// fdReserve is the file descriptors bosun-sim needs beside one per device:
// its listeners, log, keys being read, the Go runtime's own.
const fdReserve = 64

// fdsFor refuses a fleet the process cannot hold open, before any device
// connects: each device is one socket, so past RLIMIT_NOFILE the last
// ones would fail their connects one by one, mid-run. (Go raises the soft
// limit to the hard one at start.)
func fdsFor(devices int) error {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return nil // no limit known: let the connects tell
	}
	return fdsCheck(devices, l.Cur, l.Max)
}

func fdsCheck(devices int, cur, hard uint64) error {
	need := uint64(devices) + fdReserve
	if need <= cur {
		return nil
	}
	return fmt.Errorf("--devices %d needs %d open files and this process may open %d (hard limit %d): "+
		"raise it (ulimit -n, or LimitNOFILE in a unit) or simulate %d devices or fewer",
		devices, need, cur, hard, max(cur, fdReserve)-fdReserve)
}
