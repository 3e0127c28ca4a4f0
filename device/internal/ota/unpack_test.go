package ota

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestUnpackRefuses(t *testing.T) {
	lim := unpackLimits{maxBytes: 1000, maxEntries: 5}
	tests := []struct {
		name    string
		entries []entry
		want    string
	}{
		{"dot dot", []entry{{name: "a/../../x", body: "x"}}, "has a .. component"},
		{"leading dot dot", []entry{{name: "../x", body: "x"}}, "has a .. component"},
		{"absolute", []entry{{name: "/etc/x", body: "x"}}, "absolute path"},
		{"symlink out", []entry{{name: "l", typ: tar.TypeSymlink, linkname: "../../etc"}}, "points out of the slot"},
		{"symlink out from a subdir", []entry{{name: "d/l", typ: tar.TypeSymlink, linkname: "../.."}}, "points out of the slot"},
		{"absolute symlink", []entry{{name: "l", typ: tar.TypeSymlink, linkname: "/etc/passwd"}}, "absolute path"},
		{"symlink out through a symlink to .", []entry{{name: "c", typ: tar.TypeSymlink, linkname: "."}, {name: "a", typ: tar.TypeSymlink, linkname: "c/.."}}, "points out of the slot"},
		{"symlink out through a later symlink", []entry{{name: "a", typ: tar.TypeSymlink, linkname: "x/.."}, {name: "x", typ: tar.TypeSymlink, linkname: "."}}, "makes symlink \"a\" point out"},
		{"symlink out through a chain", []entry{{name: "d/", typ: tar.TypeDir}, {name: "d/up", typ: tar.TypeSymlink, linkname: ".."}, {name: "d/a", typ: tar.TypeSymlink, linkname: "up/d/up/.."}}, "points out of the slot"},
		{"file where a directory was", []entry{{name: "d/", typ: tar.TypeDir}, {name: "d", body: "x"}}, "clashes with an earlier entry"},
		{"directory below a file", []entry{{name: "f", body: "x"}, {name: "f/x", body: "y"}}, "clashes with an earlier entry"},
		{"write through a symlink", []entry{{name: "d", typ: tar.TypeSymlink, linkname: "."}, {name: "d/x", body: "x"}}, "lies below a symlink"},
		{"hard link out", []entry{{name: "h", typ: tar.TypeLink, linkname: "../../etc/passwd"}}, "has a .. component"},
		{"hard link to absolute", []entry{{name: "h", typ: tar.TypeLink, linkname: "/etc/passwd"}}, "absolute path"},
		{"hard link to a non-file", []entry{{name: "h", typ: tar.TypeLink, linkname: "nothing"}}, "not a file of the bundle"},
		{"char device", []entry{{name: "null", typ: tar.TypeChar}}, "device files"},
		{"block device", []entry{{name: "sda", typ: tar.TypeBlock}}, "device files"},
		{"fifo", []entry{{name: "f", typ: tar.TypeFifo}}, "device files"},
		{"duplicate", []entry{{name: "x", body: "1"}, {name: "x", body: "2"}}, "appears twice"},
		{"entries beyond the limit", []entry{{name: "1"}, {name: "2"}, {name: "3"}, {name: "4"}, {name: "5"}, {name: "6"}}, "more than 5 entries"},
		{"bytes beyond the limit", []entry{{name: "a", body: strings.Repeat("a", 600)}, {name: "b", body: strings.Repeat("b", 401)}}, "expands past 1000 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			dir := filepath.Join(root, "slot", "new")
			os.MkdirAll(filepath.Dir(dir), 0o755)
			err := unpack(bytes.NewReader(makeBundle(t, tt.entries...)), dir, lim)
			if !errors.Is(err, ErrUnsafeBundle) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err %v, want %q", err, tt.want)
			}
			// Nothing outside the slot directory.
			des, _ := os.ReadDir(root)
			if len(des) != 1 {
				t.Fatalf("something outside the slot: %v", des)
			}
		})
	}
	t.Run("a gzip stream going on past the tar", func(t *testing.T) {
		tarBytes := mustTar(t, entry{name: "a", body: "a"})
		for _, tc := range []struct {
			extra int
			ok    bool
		}{{maxTrailer, true}, {maxTrailer + 1, false}} {
			var buf bytes.Buffer
			zw := gzip.NewWriter(&buf)
			zw.Write(tarBytes)
			zw.Write(make([]byte, tc.extra))
			zw.Close()
			dir := filepath.Join(t.TempDir(), "n")
			err := unpack(&buf, dir, lim)
			if tc.ok != (err == nil) || (err != nil && !errors.Is(err, ErrUnsafeBundle)) {
				t.Fatalf("%d bytes after the tar: %v", tc.extra, err)
			}
		}
	})
	t.Run("not gzip", func(t *testing.T) {
		err := unpack(strings.NewReader("plain text"), filepath.Join(t.TempDir(), "n"), lim)
		if !errors.Is(err, ErrUnsafeBundle) {
			t.Fatal(err)
		}
	})
}

func TestUnpackAtTheLimits(t *testing.T) {
	lim := unpackLimits{maxBytes: 1000, maxEntries: 5}
	b := makeBundle(t,
		entry{name: "d/", typ: tar.TypeDir},
		entry{name: "d/a", body: strings.Repeat("a", 600), mode: 0o4755}, // setuid is dropped
		entry{name: "b", body: strings.Repeat("b", 400)},
		entry{name: "l", typ: tar.TypeSymlink, linkname: "d/a"},
		entry{name: "h", typ: tar.TypeLink, linkname: "b"},
	)
	dir := filepath.Join(t.TempDir(), "n")
	if err := unpack(bytes.NewReader(b), dir, lim); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"d/a": strings.Repeat("a", 600), "l": strings.Repeat("a", 600), "h": strings.Repeat("b", 400)} {
		if got := readFileT(t, filepath.Join(dir, name)); got != want {
			t.Fatalf("%s: %d bytes", name, len(got))
		}
	}
	fi, _ := os.Stat(filepath.Join(dir, "d/a"))
	if fi.Mode() != 0o755 {
		t.Fatalf("mode %v", fi.Mode())
	}
	_ = fmt.Sprint()
}
