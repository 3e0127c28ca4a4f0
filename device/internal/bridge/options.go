package bridge

import (
	"crypto"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/bosunhq/bosun/pkg/envelope"
	"github.com/bosunhq/bosun/pkg/jsonrpc"
	"github.com/bosunhq/bosun/pkg/keys"
	"github.com/bosunhq/bosun/pkg/rpcproto"
)

// Version is the bridge version reported in state.report.
var Version = "0.1.0-dev"

// DefaultRejectedRetry is the default of Options.RejectedRetry.
const DefaultRejectedRetry = 10 * time.Second

// Options configure a Bridge. DeviceID, DataDir, CloudURL and CloudKey are
// required; every other field documents its default.
type Options struct {
	// DeviceID names this device; it signs every envelope with it.
	DeviceID string
	// DataDir holds the device key, nats.url, nats.token, state.json, the
	// outbox and the logs. It is created (0700) when missing.
	DataDir string
	// CloudURL is the websocket endpoint, e.g. wss://cloud.example/v1/device,
	// or several separated by commas (the replicas of one cloud, when no
	// load balancer stands in front of them): the bridge dials the first,
	// and after each connection that fails or ends the next one, round the
	// list, waiting its usual backoff in between.
	CloudURL string
	// CloudKey is the cloud's pinned public key. Nothing the cloud sends is
	// acted on unless this key (or one of CloudKeys) verifies it. Once the
	// cloud has announced its keys (auth.cloud_keys), the announced set in
	// DataDir/cloud_keys.pem is trusted instead of CloudKey and CloudKeys.
	CloudKey crypto.PublicKey
	// CloudKeys are further pinned cloud keys (e.g. the next key of a
	// rotation). nil means CloudKey alone.
	CloudKeys []crypto.PublicKey
	// CloudID, when set, is the only signer name the cloud may use. Empty
	// means the name the (verified) auth.challenge gives.
	CloudID string

	// Key is the device's private key. nil means the key in
	// DataDir/device_key.pem, generated there (KeyAlg) on first start.
	Key crypto.Signer
	// KeyAlg is "ed25519" (the default) or "rsa" (RSA-PSS, 3072 bits); it
	// is used only when a key is generated.
	KeyAlg string
	// Attributes are the identity attributes sent with registration and
	// state.report (e.g. serial, model). nil means none.
	Attributes map[string]string
	// EnrollmentToken is sent with registration. Empty means none.
	EnrollmentToken string
	// Versions are reported with state.report, with the bridge's own.
	Versions map[string]string

	// Local, when set, serves the cloud's requests in-process instead of
	// through workers on a device-local NATS: the bridge starts no NATS
	// server and connects to none (NATSListen, NATSURL and NATSToken are
	// ignored), rpc.list and state.report list Local's methods, and the
	// first state.report does not wait for workers to settle. bosun-sim
	// runs thousands of bridges in one process this way. nil means the
	// device-local NATS.
	Local *LocalWorker

	// NATSListen is the embedded NATS server's address. Defaults to
	// 127.0.0.1:4222; port 0 picks a free port. Ignored with NATSURL.
	NATSListen string
	// NATSURL names an external NATS to use instead of the embedded server.
	NATSURL string
	// NATSToken is the NATS token. Empty means DataDir/nats.token, which is
	// generated for the embedded server when missing.
	NATSToken string

	// WorkerTimeout bounds a worker's answer to a forwarded request.
	// Defaults to 30s.
	WorkerTimeout time.Duration
	// CloudCallTimeout bounds a device → cloud call whose caller gave no
	// shorter deadline. Defaults to 30s.
	CloudCallTimeout time.Duration
	// HandshakeTimeout bounds dialling and the auth.challenge. Defaults to 30s.
	HandshakeTimeout time.Duration
	// WriteTimeout bounds every websocket write. Defaults to 10s.
	WriteTimeout time.Duration
	// Backoff schedules reconnects. The zero value means 1s base, 60s cap,
	// full jitter.
	Backoff Backoff
	// RejectedRetry is the reconnect interval while the cloud rejects the
	// key (result "rejected" or close code 4003): each wait is uniform in
	// [RejectedRetry/2, RejectedRetry], the same every time, so that a
	// device an operator accepts again is back within RejectedRetry (and
	// one handshake) of the accept, and a rejected fleet costs the cloud
	// one refused handshake per device per interval. Defaults to 10s.
	RejectedRetry time.Duration
	// HealthyAfter is how long an accepted session must last for the next
	// reconnect to start the backoff from the beginning. Defaults to 30s.
	HealthyAfter time.Duration
	// StateDebounce delays a new state.report after the set of workers
	// changes. Defaults to 2s.
	StateDebounce time.Duration
	// SettleQuiet is how long the first state.report of a session waits
	// after the last worker announcement: on acceptance the bridge asks
	// every worker to announce (bosun.workers.discover) and reports once
	// none has announced for this long, so that the report lists the
	// methods of the workers that run. The cloud sends queued calls only
	// after that report, and only those of methods it lists. Defaults to
	// 500ms.
	SettleQuiet time.Duration
	// SettleMax bounds that wait from acceptance to the first report, so
	// that workers announcing without pause cannot hold it back. Defaults
	// to 3s.
	SettleMax time.Duration
	// OutboxRetry is the first delay before the outbox retries a report the
	// cloud refused with a transient error; it doubles up to 5m. Defaults
	// to 5s.
	OutboxRetry time.Duration
	// Skew is the accepted clock difference. Defaults to envelope.DefaultSkew.
	Skew time.Duration
	// MaxMessageSize bounds an envelope. Defaults to envelope.DefaultMaxSize.
	MaxMessageSize int
	// MaxConcurrent bounds the cloud → device requests served at once.
	// Defaults to 64.
	MaxConcurrent int
	// HTTPClient dials the websocket. nil means http.DefaultClient.
	HTTPClient *http.Client
	// Logger receives the bridge's logs. nil means slog.Default().
	Logger *slog.Logger
	// Now is the clock. nil means time.Now.
	Now func() time.Time
	// Metrics keeps Prometheus metrics, served by Bridge.MetricsHandler.
	// false (the default) keeps none and costs nothing.
	Metrics bool

	cloudURLs []string // CloudURL split by setDefaults; at least one
}

// MaxCloudURLs bounds the URLs of Options.CloudURL.
const MaxCloudURLs = 16

// SplitCloudURLs splits a comma-separated list of cloud endpoints (spaces
// around them allowed) and checks each is ws:// or wss:// with a host. An
// empty list, an empty entry or more than MaxCloudURLs are errors.
func SplitCloudURLs(list string) ([]string, error) {
	if strings.TrimSpace(list) == "" {
		return nil, errors.New("cloud URL is required")
	}
	parts := strings.Split(list, ",")
	if len(parts) > MaxCloudURLs {
		return nil, fmt.Errorf("cloud URL: %d URLs, want at most %d", len(parts), MaxCloudURLs)
	}
	urls := make([]string, 0, len(parts))
	for _, p := range parts {
		p = strings.TrimSpace(p)
		if p == "" {
			return nil, fmt.Errorf("cloud URL %q: an empty entry in the list", list)
		}
		if u, err := url.Parse(p); err != nil || (u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "" {
			return nil, fmt.Errorf("cloud URL %q: want ws:// or wss://", p)
		}
		urls = append(urls, p)
	}
	return urls, nil
}

// LocalWorker is an in-process worker for Options.Local.
type LocalWorker struct {
	// Name is the worker's name in rpc.list and state.report.
	Name string
	// Dispatcher serves the requests; it answers -32601 for a method it
	// does not know. It may be shared by many bridges.
	Dispatcher *jsonrpc.Dispatcher
	// Methods are what rpc.list and state.report list for it.
	Methods []rpcproto.MethodInfo
}

func (o *Options) setDefaults() error {
	var errs []error
	if o.DeviceID == "" {
		errs = append(errs, errors.New("device id is required"))
	} else if !rpcproto.ValidDeviceID(o.DeviceID) {
		errs = append(errs, fmt.Errorf("device id %q: want %s (the cloud refuses other ids)", o.DeviceID, rpcproto.DeviceIDRule))
	}
	if o.DataDir == "" {
		errs = append(errs, errors.New("data dir is required"))
	}
	if urls, err := SplitCloudURLs(o.CloudURL); err != nil {
		errs = append(errs, err)
	} else {
		o.cloudURLs = urls
	}
	if o.CloudKey == nil {
		errs = append(errs, errors.New("the cloud's public key is required"))
	} else if _, err := keys.Alg(o.CloudKey); err != nil {
		errs = append(errs, fmt.Errorf("cloud key: %w", err))
	}
	for i, k := range o.CloudKeys {
		if _, err := keys.Alg(k); err != nil {
			errs = append(errs, fmt.Errorf("cloud key %d: %w", i+2, err))
		}
	}
	if o.Local != nil && (o.Local.Name == "" || o.Local.Dispatcher == nil) {
		errs = append(errs, errors.New("a local worker needs a name and a dispatcher"))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if o.KeyAlg == "" {
		o.KeyAlg = keys.AlgEd25519
	}
	if o.NATSListen == "" {
		o.NATSListen = "127.0.0.1:4222"
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.WorkerTimeout, 30*time.Second)
	def(&o.CloudCallTimeout, 30*time.Second)
	def(&o.HandshakeTimeout, 30*time.Second)
	def(&o.WriteTimeout, 10*time.Second)
	def(&o.HealthyAfter, 30*time.Second)
	def(&o.StateDebounce, 2*time.Second)
	def(&o.SettleQuiet, 500*time.Millisecond)
	def(&o.SettleMax, 3*time.Second)
	def(&o.OutboxRetry, 5*time.Second)
	def(&o.Skew, envelope.DefaultSkew)
	def(&o.RejectedRetry, DefaultRejectedRetry)
	if o.MaxMessageSize <= 0 {
		o.MaxMessageSize = envelope.DefaultMaxSize
	}
	if o.MaxConcurrent <= 0 {
		o.MaxConcurrent = 64
	}
	if o.HTTPClient == nil {
		o.HTTPClient = http.DefaultClient
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return nil
}
