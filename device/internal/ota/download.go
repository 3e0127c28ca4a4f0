package ota

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/bosunhq/bosun/pkg/keys"
)

// errRestart marks an attempt whose partial file was thrown away: the next
// attempt starts from byte 0.
var errRestart = errors.New("restarting the download from zero")

// partialMeta is stored next to a partial download (<file>.meta) so that a
// resumed download continues only the same bytes: same URL, length and
// hash.
type partialMeta struct {
	URL    string `json:"url"`
	Length int64  `json:"length"`
	SHA256 string `json:"sha256"`
}

// downloader fetches one bundle into a partial file with HTTP Range
// resume.
type downloader struct {
	client   *http.Client
	attempts int           // consecutive attempts without progress before giving up
	base     time.Duration // first backoff window
	cap      time.Duration
	progress func(done, total int64)
	// transferred counts the body bytes read from the network, for tests
	// and logs.
	transferred int64
}

// fetch makes path hold exactly want.Length bytes fetched from url (not yet
// verified: the caller checks the hash). An existing partial file for the
// same url/length/hash is continued with a Range request.
func (d *downloader) fetch(ctx context.Context, url, path string, length int64, sum string) error {
	meta := partialMeta{URL: url, Length: length, SHA256: sum}
	metaPath := path + ".meta"
	var old partialMeta
	if b, err := os.ReadFile(metaPath); err != nil || json.Unmarshal(b, &old) != nil || old != meta {
		// Not the same download: start afresh.
		os.Remove(path)
		b, _ := json.Marshal(meta)
		if err := keys.WriteFileAtomic(metaPath, b, 0o600); err != nil {
			return fmt.Errorf("writing %s: %w", metaPath, err)
		}
	}
	failures := 0
	best, _ := fileSize(path)
	var last error
	for {
		have, err := fileSize(path)
		if err != nil {
			return err
		}
		if have > length {
			os.Remove(path)
			have = 0
		}
		if have == length {
			return nil
		}
		err = d.attempt(ctx, url, path, have, length)
		if err == nil {
			continue // loop checks the size
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		// Progress is bytes beyond the most the file ever held: a server
		// that makes us restart and then serves the same bytes again is
		// not making progress, and runs out of attempts.
		now, _ := fileSize(path)
		if now > best && !errors.Is(err, errRestart) {
			best = now
			failures = 0
		} else {
			failures++
		}
		last = err
		if failures >= d.attempts {
			return fmt.Errorf("download gave up after %d attempts without progress: %w", failures, last)
		}
		w := d.base << min(max(failures-1, 0), 16)
		if w > d.cap || w <= 0 {
			w = d.cap
		}
		delay := time.Duration(rand.Float64() * float64(w))
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// attempt makes one request for the bytes from have on and appends what
// arrives. Every answer that is not the expected continuation of the file
// either restarts it (200, a Content-Range for other bytes or another
// total) or is an error to retry.
func (d *downloader) attempt(ctx context.Context, url, path string, have, length int64) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	if have > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", have))
	}
	resp, err := d.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	start := int64(0)
	switch resp.StatusCode {
	case http.StatusOK:
		// The server ignored Range (or we asked for everything): the
		// body is the whole file.
		if resp.ContentLength >= 0 && resp.ContentLength != length {
			os.Remove(path)
			return fmt.Errorf("%w: the server sends %d bytes, the target has %d", errRestart, resp.ContentLength, length)
		}
	case http.StatusPartialContent:
		s, total, err := parseContentRange(resp.Header.Get("Content-Range"))
		if err != nil || s != have || total != length {
			os.Remove(path)
			if err != nil {
				return fmt.Errorf("%w: %v", errRestart, err)
			}
			return fmt.Errorf("%w: Content-Range %q does not continue byte %d of %d", errRestart, resp.Header.Get("Content-Range"), have, length)
		}
		start = have
	case http.StatusRequestedRangeNotSatisfiable:
		os.Remove(path)
		return fmt.Errorf("%w: the server has no byte %d (416)", errRestart, have)
	default:
		return fmt.Errorf("HTTP %s", resp.Status)
	}
	flags := os.O_WRONLY | os.O_CREATE
	if start == 0 {
		flags |= os.O_TRUNC
	}
	f, err := os.OpenFile(path, flags, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Seek(start, io.SeekStart); err != nil {
		f.Close()
		return err
	}
	if start == 0 && have > 0 && d.progress != nil {
		d.progress(0, length)
	}
	// Never take more than the target's length.
	body := io.LimitReader(resp.Body, length-start+1)
	buf := make([]byte, 64<<10)
	done := start
	var rerr error
	for {
		n, err := body.Read(buf)
		if n > 0 {
			d.transferred += int64(n)
			if done+int64(n) > length {
				f.Close()
				os.Remove(path)
				return fmt.Errorf("%w: the server sends more than %d bytes", errRestart, length)
			}
			if _, werr := f.Write(buf[:n]); werr != nil {
				f.Close()
				return werr
			}
			done += int64(n)
			if d.progress != nil {
				d.progress(done, length)
			}
		}
		if err != nil {
			if err != io.EOF {
				rerr = err
			}
			break
		}
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if rerr != nil {
		return rerr
	}
	if done < length {
		return fmt.Errorf("connection ended at byte %d of %d", done, length)
	}
	return nil
}

// parseContentRange parses "bytes START-END/TOTAL".
func parseContentRange(v string) (start, total int64, err error) {
	rest, ok := strings.CutPrefix(v, "bytes ")
	if !ok {
		return 0, 0, fmt.Errorf("malformed Content-Range %q", v)
	}
	rng, tot, ok := strings.Cut(rest, "/")
	if !ok {
		return 0, 0, fmt.Errorf("malformed Content-Range %q", v)
	}
	s, e, ok := strings.Cut(rng, "-")
	if !ok {
		return 0, 0, fmt.Errorf("malformed Content-Range %q", v)
	}
	start, err1 := strconv.ParseInt(s, 10, 64)
	end, err2 := strconv.ParseInt(e, 10, 64)
	total, err3 := strconv.ParseInt(tot, 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || start < 0 || end < start || end >= total {
		return 0, 0, fmt.Errorf("malformed Content-Range %q", v)
	}
	if end != total-1 {
		return 0, 0, fmt.Errorf("Content-Range %q does not run to the end", v)
	}
	return start, total, nil
}

func fileSize(path string) (int64, error) {
	fi, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// hashFile returns the length and hex sha256 of what f holds from its
// start.
func hashFile(f *os.File) (int64, string, error) {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return 0, "", err
	}
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return 0, "", err
	}
	return n, hex.EncodeToString(h.Sum(nil)), nil
}
