// Package assets embeds the dashboard's static files (stylesheet, scripts,
// vendored htmx) and names each with a content hash, so that their URLs
// change when they do and browsers may cache them forever.
package assets

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"net/http"
	"path"
	"strings"
)

//go:embed *.css *.js
var files embed.FS

// HTMX is the file name of the vendored htmx (see README.md).
const HTMX = "htmx-2.0.11.min.js"

var hashes = func() map[string]string {
	m := map[string]string{}
	ents, _ := fs.ReadDir(files, ".")
	for _, e := range ents {
		b, _ := files.ReadFile(e.Name())
		h := sha256.Sum256(b)
		m[e.Name()] = hex.EncodeToString(h[:6])
	}
	return m
}()

// URL returns the URL of an asset, with its content hash.
func URL(name string) string {
	return "/static/" + name + "?v=" + hashes[name]
}

// Handler serves the assets under /static/. A request naming the current
// hash may be cached for a year.
func Handler() http.Handler {
	fsrv := http.StripPrefix("/static/", http.FileServerFS(files))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(path.Clean(r.URL.Path), "/static/")
		h, ok := hashes[name]
		if !ok {
			http.NotFound(w, r)
			return
		}
		if r.URL.Query().Get("v") == h {
			w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		} else {
			w.Header().Set("Cache-Control", "no-cache")
		}
		fsrv.ServeHTTP(w, r)
	})
}
