package bridge

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bosunhq/bosun/pkg/keys"
)

// outbox is a small on-disk queue of device → cloud reports that must not be
// lost (ota.status). Each entry is one file named by a zero-padded sequence
// number, written to a temporary file, synced and renamed into place, then
// the directory is synced: an entry is either complete on disk or absent.
// Entries are delivered in sequence order and removed only after the cloud
// answered them. Entries the cloud refuses as malformed move to dead/.
type outbox struct {
	dir string

	mu   sync.Mutex // guards next, last and lastName, and serialises writers
	next uint64
	// last is the method and params of the newest entry (enqueued, or
	// found by openOutbox), lastName its file name: a worker that did not
	// get the answer to a report (the bridge died after writing it, or the
	// worker before it removed its copy) sends the same bytes again, and
	// they are that entry, not a new one.
	last     []byte
	lastName string

	notify chan struct{} // buffered 1: "an entry was added"
}

// outboxEntry is the content of one outbox file.
type outboxEntry struct {
	Method     string          `json:"method"`
	Params     json.RawMessage `json:"params,omitempty"`
	EnqueuedAt time.Time       `json:"enqueued_at"`

	name string // file name, not stored
}

const outboxExt = ".json"

func openOutbox(dir string) (*outbox, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating outbox: %w", err)
	}
	o := &outbox{dir: dir, next: 1, notify: make(chan struct{}, 1)}
	names, err := o.names()
	if err != nil {
		return nil, err
	}
	if len(names) > 0 {
		name := names[len(names)-1]
		last, _ := strconv.ParseUint(strings.TrimSuffix(name, outboxExt), 10, 64)
		o.next = last + 1
		var e outboxEntry
		if b, err := os.ReadFile(filepath.Join(dir, name)); err == nil && json.Unmarshal(b, &e) == nil {
			o.last, o.lastName = entryKey(e.Method, e.Params), name
		}
	}
	// Leftover temporary files are writes a crash interrupted: never
	// acknowledged to the worker, so they can go.
	tmps, _ := filepath.Glob(filepath.Join(dir, ".tmp-*"))
	for _, t := range tmps {
		os.Remove(t)
	}
	return o, nil
}

// names returns the entry file names in delivery order.
func (o *outbox) names() ([]string, error) {
	des, err := os.ReadDir(o.dir)
	if err != nil {
		return nil, fmt.Errorf("reading outbox: %w", err)
	}
	var names []string
	for _, de := range des {
		n := de.Name()
		if de.Type().IsRegular() && strings.HasSuffix(n, outboxExt) && !strings.HasPrefix(n, ".") {
			if _, err := strconv.ParseUint(strings.TrimSuffix(n, outboxExt), 10, 64); err == nil {
				names = append(names, n)
			}
		}
	}
	slices.Sort(names) // zero-padded, so lexical order is sequence order
	return names, nil
}

func entryKey(method string, params json.RawMessage) []byte {
	return append([]byte(method+"\x00"), params...)
}

// enqueue stores a report durably and returns its name. When it returns
// nil, the entry survives a crash. The same method and params as the
// newest entry are that entry again (again true): nothing is written.
func (o *outbox) enqueue(method string, params json.RawMessage, now time.Time) (name string, again bool, err error) {
	data, err := json.Marshal(outboxEntry{Method: method, Params: params, EnqueuedAt: now.UTC()})
	if err != nil {
		return "", false, err
	}
	key := entryKey(method, params)
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.last != nil && bytes.Equal(o.last, key) {
		return o.lastName, true, nil
	}
	name = fmt.Sprintf("%020d%s", o.next, outboxExt)
	if err := writeSynced(o.dir, name, data); err != nil {
		return "", false, fmt.Errorf("writing outbox entry: %w", err)
	}
	o.next++
	o.last, o.lastName = key, name
	select {
	case o.notify <- struct{}{}:
	default:
	}
	return name, false, nil
}

// peek returns the oldest entry, or ok false when the outbox is empty.
func (o *outbox) peek() (e outboxEntry, ok bool, err error) {
	names, err := o.names()
	if err != nil || len(names) == 0 {
		return e, false, err
	}
	b, err := os.ReadFile(filepath.Join(o.dir, names[0]))
	if err != nil {
		return e, false, err
	}
	if err := json.Unmarshal(b, &e); err != nil {
		// Cannot happen for files we wrote; keep it out of the way
		// rather than blocking the queue forever.
		o.bury(names[0])
		return e, false, fmt.Errorf("outbox entry %s: %w", names[0], err)
	}
	e.name = names[0]
	return e, true, nil
}

// remove deletes a delivered entry.
func (o *outbox) remove(name string) error {
	if err := os.Remove(filepath.Join(o.dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return keys.SyncDir(o.dir)
}

// bury moves an entry the cloud will never accept to dead/.
func (o *outbox) bury(name string) error {
	dead := filepath.Join(o.dir, "dead")
	if err := os.MkdirAll(dead, 0o700); err != nil {
		return err
	}
	if err := os.Rename(filepath.Join(o.dir, name), filepath.Join(dead, name)); err != nil {
		return err
	}
	return keys.SyncDir(o.dir)
}

// len returns the number of entries waiting.
func (o *outbox) len() int {
	names, _ := o.names()
	return len(names)
}

func writeSynced(dir, name string, data []byte) error {
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		os.Remove(tmp)
		return err
	}
	return keys.SyncDir(dir)
}
