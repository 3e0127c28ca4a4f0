package ota

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bosunhq/bosun/device/worker"
	"github.com/bosunhq/bosun/pkg/jsonrpc"
	"github.com/bosunhq/bosun/pkg/rpcproto"
)

// FuzzUnpack feeds unpack, the device's reader of OTA bundles, arbitrary
// tar streams (gzipped here, or taken as they are when raw). Whatever the
// bytes: no panic; a refusal wraps ErrUnsafeBundle; nothing appears
// outside the slot directory; and what it accepts keeps the slot's rules
// on disk: only directories, regular files within the limits and symlinks
// that, followed as the kernel follows them (through the other symlinks of
// the slot), never leave it.
//
// The seed corpus is testdata/fuzz/FuzzUnpack (crashers kept as
// regression inputs) plus the shapes added here.
func FuzzUnpack(f *testing.F) {
	seeds := [][]entry{
		{{name: "VERSION", body: "1.0.0"}, {name: "bin/", typ: tar.TypeDir}, {name: "bin/run", body: "#!/bin/sh\n", mode: 0o755}},
		{{name: "d/", typ: tar.TypeDir}, {name: "d/a", body: "a"}, {name: "l", typ: tar.TypeSymlink, linkname: "d/a"}, {name: "h", typ: tar.TypeLink, linkname: "d/a"}},
		{{name: "c", typ: tar.TypeSymlink, linkname: "."}, {name: "a", typ: tar.TypeSymlink, linkname: "c/.."}},
		{{name: "a", typ: tar.TypeSymlink, linkname: "x/.."}, {name: "x", typ: tar.TypeSymlink, linkname: "."}},
		{{name: "d/l", typ: tar.TypeSymlink, linkname: "../d/../.."}},
		{{name: "lib", typ: tar.TypeSymlink, linkname: "lib64"}, {name: "lib64/", typ: tar.TypeDir}, {name: "lib64/x.so", body: "elf"}, {name: "bin/x", typ: tar.TypeSymlink, linkname: "../lib/x.so"}},
		{{name: "x", body: "1"}, {name: "x/y", body: "2"}},
		{{name: "d/", typ: tar.TypeDir}, {name: "d", body: "f"}},
		{{name: "p", typ: tar.TypeFifo}},
		{{name: "./a/./b", body: "b"}, {name: "a//c", body: "c"}},
	}
	for _, s := range seeds {
		f.Add(mustTar(f, s...), false)
	}
	f.Add(makeBundle(f, entry{name: "a", body: "a"}), true)
	f.Add([]byte("not gzip"), true)
	lim := unpackLimits{maxBytes: 4096, maxEntries: 32}

	f.Fuzz(func(t *testing.T, data []byte, raw bool) {
		if !raw {
			var buf bytes.Buffer
			zw := gzip.NewWriter(&buf)
			zw.Write(data)
			zw.Close()
			data = buf.Bytes()
		}
		root := t.TempDir()
		dir := filepath.Join(root, "slot")
		err := unpack(bytes.NewReader(data), dir, lim)
		des, rerr := os.ReadDir(root)
		if rerr != nil || len(des) != 1 || des[0].Name() != "slot" {
			t.Fatalf("unpack (err %v) left %v beside the slot", err, des)
		}
		if err != nil {
			if !errors.Is(err, ErrUnsafeBundle) {
				t.Fatalf("unpack: %v, not an ErrUnsafeBundle", err)
			}
			return
		}
		var total int64
		n := 0
		werr := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			n++
			info, err := d.Info()
			if err != nil {
				return err
			}
			switch {
			case d.IsDir():
			case info.Mode().IsRegular():
				if info.Mode()&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky) != 0 {
					t.Errorf("%s: mode %v", p, info.Mode())
				}
				total += info.Size()
			case info.Mode()&fs.ModeSymlink != 0:
				rel, _ := filepath.Rel(dir, p)
				if !followInside(t, dir, filepath.ToSlash(rel)) {
					t.Errorf("symlink %s leaves the slot", rel)
				}
			default:
				t.Errorf("%s: mode %v in a slot", p, info.Mode())
			}
			return nil
		})
		if werr != nil {
			t.Fatal(werr)
		}
		// Hard links count once per name; each is at most maxBytes.
		if total > lim.maxBytes*int64(lim.maxEntries) || n > lim.maxEntries*8 {
			t.Fatalf("accepted %d bytes in %d names", total, n)
		}
	})
}

// followInside resolves the symlink at rel (slash-separated, below dir)
// on the disk, one component at a time the way the kernel does, and
// reports whether every step stays in dir. A component that does not
// exist ends the walk: whatever is created there later is inside.
func followInside(tb testing.TB, dir, rel string) bool {
	tb.Helper()
	var stack []string
	hops := 0
	var walk func(rest []string) bool
	walk = func(rest []string) bool {
		for _, c := range rest {
			switch c {
			case "", ".":
				continue
			case "..":
				if len(stack) == 0 {
					return false
				}
				stack = stack[:len(stack)-1]
				continue
			}
			stack = append(stack, c)
			p := filepath.Join(append([]string{dir}, stack...)...)
			fi, err := os.Lstat(p)
			if err != nil {
				return true // missing (or not a directory): nothing to follow
			}
			if fi.Mode()&fs.ModeSymlink == 0 {
				continue
			}
			if hops++; hops > 40 {
				return true // ELOOP for the kernel too
			}
			t, err := os.Readlink(p)
			if err != nil {
				tb.Fatal(err)
			}
			if strings.HasPrefix(t, "/") {
				return false
			}
			stack = stack[:len(stack)-1]
			if !walk(strings.Split(t, "/")) {
				return false
			}
		}
		return true
	}
	return walk(strings.Split(rel, "/"))
}

// mustTar is the uncompressed tar stream of entries.
func mustTar(tb testing.TB, entries ...entry) []byte {
	tb.Helper()
	var buf bytes.Buffer
	zr, err := gzip.NewReader(bytes.NewReader(makeBundle(tb, entries...)))
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := buf.ReadFrom(zr); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// handlers is a Registrar that keeps the handlers.
type handlers map[string]worker.HandlerFunc

func (h handlers) Handle(method, _ string, fn worker.HandlerFunc) { h[method] = fn }

// refusingTransport answers no request: the fuzzed ota.update never
// reaches a network (its verifier refuses every target first anyway).
type refusingTransport struct{}

func (refusingTransport) RoundTrip(*http.Request) (*http.Response, error) {
	return nil, errors.New("no network in FuzzMethodParams")
}

// FuzzMethodParams calls each ota.* method of a real Manager (a slot
// directory on disk, a verifier that signs nothing) with arbitrary params.
// No panic; an error is a *jsonrpc.Error with one of the codes the worker
// documents; a result marshals to JSON; and after every call the boot
// state still reads back and is one a device can boot (active slot a or b,
// revert slot a, b or none, commit timeout not negative).
func FuzzMethodParams(f *testing.F) {
	for _, s := range []struct {
		m byte
		p string
	}{
		{0, `{"target":"hello/1.0.0","url":"http://127.0.0.1:1/b.tar.gz","commit_timeout":60}`},
		{0, `{"target":"hello","url":"ftp://x"}`}, {0, `{"target":"a/b","url":"/rel","id":"u1"}`},
		{1, `{}`}, {2, `{}`}, {3, `{"set_as_revert":true,"commit_timeout":0}`}, {4, ``},
		{5, `{"id":"u1"}`}, {6, `{"active_slot":"b","is_committed":false,"revert_slot":"a","commit_timeout":5}`},
		{6, `{"active_slot":"c","revert_slot":"a"}`}, {6, `{"active_slot":"a","revert_slot":"a","commit_timeout":-1}`},
		{3, `{"Set_As_Revert":true}`}, {0, `[1]`}, {1, `null`}, {2, `{"x":1}`},
	} {
		f.Add(s.m, []byte(s.p))
	}
	methods := []string{rpcproto.MethodOTAUpdate, rpcproto.MethodOTACommit, rpcproto.MethodOTARevert, rpcproto.MethodOTACreateSnap,
		rpcproto.MethodOTAGetBootState, rpcproto.MethodOTAAbort, rpcproto.MethodOTASetBootState}
	codes := map[int]bool{jsonrpc.CodeInvalidParams: true, rpcproto.CodeBusy: true, rpcproto.CodeConflict: true, rpcproto.CodeNotFound: true}
	f.Fuzz(func(t *testing.T, which byte, params []byte) {
		d := newDevice(t, mapVerifier{}, func(c *Config) { c.HTTPClient = &http.Client{Transport: refusingTransport{}} })
		h := handlers{}
		d.m.Register(h)
		method := methods[int(which)%len(methods)]
		res, err := h[method](context.Background(), params)
		if err != nil {
			var e *jsonrpc.Error
			if !errors.As(err, &e) || !codes[e.Code] {
				t.Fatalf("%s(%q): %v (%T), not a documented *jsonrpc.Error", method, params, err, err)
			}
		} else if _, merr := json.Marshal(res); merr != nil {
			t.Fatalf("%s(%q): result %#v does not marshal: %v", method, params, res, merr)
		}
		raw, err := h[rpcproto.MethodOTAGetBootState](context.Background(), nil)
		if err != nil {
			t.Fatalf("after %s(%q): ota.get_boot_state: %v", method, params, err)
		}
		st, ok := raw.(rpcproto.OTABootState)
		if !ok {
			b, _ := json.Marshal(raw)
			if json.Unmarshal(b, &st) != nil {
				t.Fatalf("boot state %#v", raw)
			}
		}
		if (st.ActiveSlot != "a" && st.ActiveSlot != "b") || (st.RevertSlot != "" && st.RevertSlot != "a" && st.RevertSlot != "b") || st.CommitTimeout < 0 {
			t.Fatalf("after %s(%q): boot state %+v", method, params, st)
		}
	})
}
