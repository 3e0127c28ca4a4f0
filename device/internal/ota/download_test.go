package ota

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// newDL returns a downloader with quick retries and its own transport.
func newDL(tb testing.TB) *downloader {
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{}}
	tb.Cleanup(c.CloseIdleConnections)
	return &downloader{client: c, attempts: 5, base: time.Millisecond, cap: 5 * time.Millisecond}
}

func hexSum(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

func TestDownloadFaults(t *testing.T) {
	body := appBundle(t, "2.0.0", 200<<10)
	size := len(body)
	tests := []struct {
		name  string
		fault func(n int, w http.ResponseWriter, r *http.Request, body []byte, sent *atomic.Int64) bool
		// maxFactor bounds the bytes sent by the server, in bundle sizes.
		maxFactor float64
		wantErr   string
	}{
		{name: "plain", maxFactor: 1},
		{name: "cut in the middle resumes", maxFactor: 1.5, fault: func(n int, w http.ResponseWriter, r *http.Request, b []byte, sent *atomic.Int64) bool {
			if n == 1 {
				cutAfter(w, r, b, len(b)/2, sent)
			}
			return false
		}},
		{name: "cut many times resumes", maxFactor: 1.5, fault: func(n int, w http.ResponseWriter, r *http.Request, b []byte, sent *atomic.Int64) bool {
			if n <= 10 {
				cutAfter(w, r, b, len(b)/12, sent)
			}
			return false
		}},
		{name: "200 instead of 206 restarts from zero", maxFactor: 1.5, fault: func(n int, w http.ResponseWriter, r *http.Request, b []byte, sent *atomic.Int64) bool {
			switch n {
			case 1:
				cutAfter(w, r, b, len(b)/2, sent)
			default: // ignore Range
				r.Header.Del("Range")
				serveRange(w, r, b, sent)
				return true
			}
			return false
		}},
		{name: "wrong Content-Range restarts from zero", maxFactor: 1.5, fault: func(n int, w http.ResponseWriter, r *http.Request, b []byte, sent *atomic.Int64) bool {
			switch n {
			case 1:
				cutAfter(w, r, b, len(b)/2, sent)
			case 2: // claims to start at 0 while sending from the middle
				w.Header().Set("Content-Range", fmt.Sprintf("bytes 0-%d/%d", len(b)-1, len(b)))
				w.WriteHeader(http.StatusPartialContent)
				w.Write(b[len(b)/2 : len(b)/2+10])
				return true
			}
			return false
		}},
		{name: "changed length fails", wantErr: "the target has", fault: func(n int, w http.ResponseWriter, r *http.Request, b []byte, sent *atomic.Int64) bool {
			serveRange(w, r, append(bytes.Clone(b), 'x'), sent)
			return true
		}},
		{name: "changed length after a cut restarts, then fails", wantErr: "does not continue byte", fault: func(n int, w http.ResponseWriter, r *http.Request, b []byte, sent *atomic.Int64) bool {
			if n == 1 {
				cutAfter(w, r, b, len(b)/2, sent)
			}
			if n >= 2 && r.Header.Get("Range") != "" {
				serveRange(w, r, append(bytes.Clone(b), 'x'), sent)
				return true
			}
			if n >= 2 {
				cutAfter(w, r, b, len(b)/2, sent)
			}
			return false
		}},
		{name: "server errors are retried", maxFactor: 1, fault: func(n int, w http.ResponseWriter, r *http.Request, b []byte, sent *atomic.Int64) bool {
			if n <= 3 {
				http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
				return true
			}
			return false
		}},
		{name: "persistent errors give up", wantErr: "gave up after 5 attempts", fault: func(n int, w http.ResponseWriter, r *http.Request, b []byte, sent *atomic.Int64) bool {
			http.Error(w, "gone", http.StatusInternalServerError)
			return true
		}},
		{name: "more bytes than the length are refused", wantErr: "gave up", fault: func(n int, w http.ResponseWriter, r *http.Request, b []byte, sent *atomic.Int64) bool {
			w.Header().Set("Content-Range", fmt.Sprintf("bytes 0-%d/%d", len(b)-1, len(b)))
			w.WriteHeader(http.StatusPartialContent)
			w.Write(b)
			w.Write([]byte("trailing"))
			return true
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var sent atomic.Int64
			fs := &fileServer{body: body}
			if tt.fault != nil {
				fs.fault = func(n int, w http.ResponseWriter, r *http.Request, b []byte) bool { return tt.fault(n, w, r, b, &sent) }
			}
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				fs.ServeHTTP(w, r)
			}))
			defer srv.Close()
			fs.sent = atomic.Int64{}
			path := filepath.Join(t.TempDir(), "b.partial")
			d := newDL(t)
			err := d.fetch(t.Context(), srv.URL, path, int64(size), hexSum(body))
			total := sent.Load() + fs.sent.Load()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, _ := os.ReadFile(path)
			if !bytes.Equal(got, body) {
				t.Fatalf("file differs from the body (%d vs %d bytes)", len(got), len(body))
			}
			if float64(total) > tt.maxFactor*float64(size) || float64(d.transferred) > tt.maxFactor*float64(size) {
				t.Fatalf("server sent %d, client read %d bytes for a %d-byte bundle (limit %.2fx)", total, d.transferred, size, tt.maxFactor)
			}
			t.Logf("%s: %d requests, %.2fx the size", tt.name, fs.requests(), float64(total)/float64(size))
		})
	}
}

// A server that goes down and comes back 20 times: the download resumes
// each time and ends with exactly the target's bytes.
func TestDownloadServerDownUp20Times(t *testing.T) {
	body := appBundle(t, "2.0.0", 400<<10)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	var sent atomic.Int64
	var ups atomic.Int32
	chunk := len(body) / 25
	// Each life of the server serves one request of chunk bytes, cut,
	// then the server goes down and a new one comes up on the same port.
	serveOnce := func(ln net.Listener) {
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if ups.Load() > 20 {
				serveRange(w, r, body, &sent)
				return
			}
			cutAfter(w, r, body, chunk, &sent)
		})}
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })
	}
	d := newDL(t)
	d.attempts = 50
	d.cap = 20 * time.Millisecond
	done := make(chan error, 1)
	path := filepath.Join(t.TempDir(), "p")
	serveOnce(ln)
	ups.Add(1)
	go func() { done <- d.fetch(t.Context(), "http://"+addr+"/b", path, int64(len(body)), hexSum(body)) }()
	for i := 0; i < 20; i++ {
		// Wait for the server's life to be used, then take it down and
		// bring up the next one.
		want := int64(i+1) * int64(chunk)
		eventually(t, "progress", func() bool { n, _ := fileSize(path); return n >= want })
		ln.Close()
		for {
			ln, err = net.Listen("tcp", addr)
			if err == nil {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		serveOnce(ln)
		ups.Add(1)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("download did not finish")
	}
	got, _ := os.ReadFile(path)
	if !bytes.Equal(got, body) {
		t.Fatal("the downloaded file differs")
	}
	if float64(sent.Load()) > 1.5*float64(len(body)) {
		t.Fatalf("sent %d for %d", sent.Load(), len(body))
	}
	ln.Close()
}

// Garbled bytes: the hash check catches them, the bundle is downloaded
// again (HashRetries), and the update installs exactly the signed bytes;
// a server that always garbles ends in failed.
func TestGarbledBytes(t *testing.T) {
	body := appBundle(t, "2.0.0", 20<<10)
	garbled := bytes.Clone(body)
	garbled[100] ^= 1
	for _, always := range []bool{false, true} {
		t.Run(fmt.Sprintf("always=%v", always), func(t *testing.T) {
			d := newDevice(t, mapVerifier{"hello/2.0.0": body})
			fs, u := startServer(t, body)
			fs.fault = func(n int, w http.ResponseWriter, r *http.Request, b []byte) bool {
				if n == 1 || always {
					serveRange(w, r, garbled, nil)
					return true
				}
				return false
			}
			r, err := d.m.Update(updateParams("hello/2.0.0", u, 60))
			if err != nil {
				t.Fatal(err)
			}
			st := d.waitStatus(r.ID, "awaiting_commit", "failed")
			if always {
				if st.Status != "failed" || !strings.Contains(st.Reason, "does not match the target") {
					t.Fatalf("%+v", st)
				}
				if d.m.BootState().ActiveSlot != "a" {
					t.Fatal("switched")
				}
				return
			}
			if st.Status != "awaiting_commit" {
				t.Fatalf("%+v", st)
			}
			if got := readFileT(t, filepath.Join(d.dir, "current", "data", "pad.bin")); got != string(mustUnpackFile(t, body, "data/pad.bin")) {
				t.Fatal("installed bytes differ from the signed bundle")
			}
		})
	}
}
