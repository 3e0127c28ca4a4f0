// Package ui holds the dashboard's layout and the small components every
// page uses (status badges, online dots, the CSRF field, the error page).
package ui

import (
	"net/url"

	"encoding/json"
	"github.com/a-h/templ"
	"strconv"

	"github.com/bosunhq/bosun/cloud/internal/web/app"
	"github.com/bosunhq/bosun/cloud/internal/web/assets"
)

// CSRFField is the name of the form field carrying the session's CSRF token.
const CSRFField = "csrf"

// CSRFHeader is the request header htmx sends the token in.
const CSRFHeader = "X-CSRF-Token"

func asset(name string) string { return assets.URL(name) }

func htmxURL() string { return assets.URL(assets.HTMX) }

// hxHeaders is the hx-headers value that makes every htmx request carry the
// session's CSRF token.
func hxHeaders(p app.Page) string {
	b, _ := json.Marshal(map[string]string{CSRFHeader: p.CSRF()})
	return string(b)
}

func navClass(p app.Page, nav string) string {
	if p.Nav == nav {
		return "on"
	}
	return ""
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// Title is the document title of a page.
func Title(p app.Page) string {
	if p.Title == "" {
		return "Bosun"
	}
	return p.Title + " · Bosun"
}

// DeviceURL is the device page of id.
func DeviceURL(id string) templ.SafeURL {
	return templ.SafeURL("/devices/" + url.PathEscape(id))
}

// DevicePath is DeviceURL as a string, plus a suffix ("/call", ...).
func DevicePath(id, suffix string) string {
	return "/devices/" + url.PathEscape(id) + suffix
}
