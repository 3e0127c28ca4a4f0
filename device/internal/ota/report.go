package ota

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bosunhq/bosun/pkg/jsonrpc"
	"github.com/bosunhq/bosun/pkg/keys"
	"github.com/bosunhq/bosun/pkg/rpcproto"
)

// SendFunc hands one ota.status report to the bridge (worker.Call of
// rpcproto.MethodOTAStatus); it returns nil once the bridge has the report
// in its own outbox. A *jsonrpc.Error with code -32602 means the report
// will never be accepted.
type SendFunc func(ctx context.Context, p rpcproto.OTAStatusParams) error

// spool keeps the worker's status reports on disk until the bridge took
// them: the bridge's outbox makes a report survive a lost websocket, the
// spool makes it survive a bridge that is down (or restarting) when the
// worker reports. Each report is one file <seq>.json, written atomically;
// seq is stored in <dir>/seq as well so that it never goes back after the
// delivered files were removed. A report sent twice (the worker crashed
// after the bridge queued it, before removing its file) carries the same
// seq, so the cloud can count it once.
type spool struct {
	dir  string
	send SendFunc
	log  *slog.Logger
	base time.Duration
	cap  time.Duration

	mu   sync.Mutex // guards next
	next uint64

	notify chan struct{}
}

func openSpool(dir string, send SendFunc, log *slog.Logger, base time.Duration) (*spool, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	s := &spool{dir: dir, send: send, log: log, base: base, cap: time.Minute, next: 1, notify: make(chan struct{}, 1)}
	if b, err := os.ReadFile(filepath.Join(dir, "seq")); err == nil {
		if n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err == nil {
			s.next = n + 1
		}
	}
	names, err := s.names()
	if err != nil {
		return nil, err
	}
	if len(names) > 0 {
		last, _ := strconv.ParseUint(strings.TrimSuffix(names[len(names)-1], ".json"), 10, 64)
		s.next = max(s.next, last+1)
	}
	return s, nil
}

func (s *spool) names() ([]string, error) {
	des, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, de := range des {
		n := de.Name()
		if de.Type().IsRegular() && strings.HasSuffix(n, ".json") && !strings.HasPrefix(n, ".") {
			if _, err := strconv.ParseUint(strings.TrimSuffix(n, ".json"), 10, 64); err == nil {
				out = append(out, n)
			}
		}
	}
	slices.Sort(out)
	return out, nil
}

// add stores p durably with the next seq.
func (s *spool) add(p rpcproto.OTAStatusParams) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p.Seq = s.next
	b, err := json.Marshal(p)
	if err != nil {
		return 0, err
	}
	if err := keys.WriteFileAtomic(filepath.Join(s.dir, fmt.Sprintf("%020d.json", p.Seq)), b, 0o600); err != nil {
		return 0, fmt.Errorf("spooling ota.status: %w", err)
	}
	if err := keys.WriteFileAtomic(filepath.Join(s.dir, "seq"), []byte(strconv.FormatUint(p.Seq, 10)), 0o600); err != nil {
		return 0, fmt.Errorf("spooling ota.status: %w", err)
	}
	s.next++
	select {
	case s.notify <- struct{}{}:
	default:
	}
	return p.Seq, nil
}

// nextSeq is the seq the next report gets. A report with seq n has been
// spooled durably (and perhaps delivered since) exactly when nextSeq() > n:
// add writes the report before it moves next on, and openSpool takes next
// from the seq file and the reports left.
func (s *spool) nextSeq() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.next
}

// pending returns the reports not yet delivered, oldest first.
func (s *spool) pending() ([]rpcproto.OTAStatusParams, error) {
	names, err := s.names()
	if err != nil {
		return nil, err
	}
	var out []rpcproto.OTAStatusParams
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(s.dir, n))
		if err != nil {
			return nil, err
		}
		var p rpcproto.OTAStatusParams
		if err := json.Unmarshal(b, &p); err != nil {
			return nil, fmt.Errorf("spool entry %s: %w", n, err)
		}
		out = append(out, p)
	}
	return out, nil
}

// run delivers the reports in order until ctx ends, retrying with jittered
// exponential backoff while the bridge does not take them.
func (s *spool) run(ctx context.Context) {
	if s.send == nil {
		return
	}
	failures := 0
	for {
		names, err := s.names()
		if err == nil && len(names) > 0 {
			err = s.deliver(ctx, names[0])
			if err == nil {
				failures = 0
				continue
			}
		}
		if err == nil {
			select { // empty: wait for a report
			case <-ctx.Done():
				return
			case <-s.notify:
				continue
			}
		}
		if ctx.Err() != nil {
			return
		}
		failures++
		w := min(s.base<<min(failures-1, 16), s.cap)
		d := time.Duration(rand.Float64() * float64(w))
		s.log.Warn("ota.status not delivered; will retry", "err", err, "retry_ms", d.Milliseconds())
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

func (s *spool) deliver(ctx context.Context, name string) error {
	path := filepath.Join(s.dir, name)
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var p rpcproto.OTAStatusParams
	if err := json.Unmarshal(b, &p); err != nil {
		os.Remove(path) // cannot happen for files we wrote; do not block the queue
		return nil
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err = s.send(cctx, p)
	cancel()
	var re *jsonrpc.Error
	if errors.As(err, &re) && re.Code == jsonrpc.CodeInvalidParams {
		s.log.Error("bridge refused ota.status; dropped", "seq", p.Seq, "code", re.Code, "message", re.Message)
		err = nil
	}
	if err != nil {
		return err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return keys.SyncDir(s.dir)
}
