package metrics

import (
	"io"
	"net/http"
	"strconv"
)

// The outcomes of an OTA download (bosun_ota_downloads_total).
const (
	DownloadComplete    = "complete"     // 200, every byte of the artifact sent
	DownloadPartial     = "partial"      // 206, the requested range sent (a resumed download)
	DownloadAborted     = "aborted"      // fewer bytes sent than announced: the device went away
	DownloadRefused     = "refused"      // 403, an invalid or expired download token
	DownloadNotFound    = "not_found"    // 404, the artifact was deleted
	DownloadNotModified = "not_modified" // 304, or 412/416 (a condition or range that did not hold)
	DownloadError       = "error"        // 5xx
)

var downloadOutcomes = []string{DownloadComplete, DownloadPartial, DownloadAborted, DownloadRefused,
	DownloadNotFound, DownloadNotModified, DownloadError}

// Downloads wraps the OTA download handler: it counts the bytes sent and
// each download by outcome. Bodies still go out through the connection's
// own ReadFrom (sendfile), so counting costs no copy.
func (m *Cloud) Downloads(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		dw := &downloadWriter{statusWriter: statusWriter{ResponseWriter: w}}
		next.ServeHTTP(dw, r)
		outcome := downloadOutcome(dw)
		switch outcome {
		case DownloadComplete, DownloadPartial, DownloadAborted:
			// Artifact bytes only, not the text of an error.
			m.otaBytes.Add(float64(dw.written))
		}
		m.otaDownloads.WithLabelValues(outcome).Inc()
	})
}

type downloadWriter struct{ statusWriter }

// ReadFrom passes the reader on untouched (http.ServeContent hands it the
// artifact's file, which the connection sends with sendfile).
func (w *downloadWriter) ReadFrom(r io.Reader) (int64, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := io.Copy(w.ResponseWriter, r)
	w.written += n
	return n, err
}

func downloadOutcome(w *downloadWriter) string {
	code := w.code()
	if code == http.StatusOK || code == http.StatusPartialContent {
		if cl, err := strconv.ParseInt(w.Header().Get("Content-Length"), 10, 64); err == nil && w.written < cl {
			return DownloadAborted
		}
		if code == http.StatusPartialContent {
			return DownloadPartial
		}
		return DownloadComplete
	}
	switch {
	case code == http.StatusForbidden:
		return DownloadRefused
	case code == http.StatusNotFound:
		return DownloadNotFound
	case code >= 500:
		return DownloadError
	}
	return DownloadNotModified
}
