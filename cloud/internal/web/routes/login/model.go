package login

import (
	"net/http"

	"github.com/bosunhq/bosun/cloud/internal/web/app"
)

// Cookies names and writes the dashboard's cookies.
type Cookies struct {
	// Secure forces the Secure attribute; otherwise it is set when the
	// request came over TLS.
	Secure bool
}

const (
	sessionCookie = "bosun_session"
	// loginCookie carries the login form's CSRF token (double submit:
	// there is no session yet to keep it in).
	loginCookie = "bosun_login"
)

func (c Cookies) secure(r *http.Request) bool { return c.Secure || r.TLS != nil }

// Session returns the session secret the browser sent ("" for none).
func (c Cookies) Session(r *http.Request) string {
	ck, err := r.Cookie(sessionCookie)
	if err != nil {
		return ""
	}
	return ck.Value
}

// SetSession gives the browser a session cookie: HttpOnly, SameSite=Lax,
// Secure under TLS, ending with the browser (the server ends it too).
func (c Cookies) SetSession(w http.ResponseWriter, r *http.Request, secret string) {
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: secret, Path: "/", HttpOnly: true,
		Secure: c.secure(r), SameSite: http.SameSiteLaxMode})
}

// Clear removes the session cookie.
func (c Cookies) Clear(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Path: "/", MaxAge: -1, HttpOnly: true,
		Secure: c.secure(r), SameSite: http.SameSiteLaxMode})
}

// Model is the login page.
type Model struct {
	Page  app.Page
	Email string
	Next  string
	Token string // the login form's CSRF token
}
