package tokens

import (
	"github.com/bosunhq/bosun/cloud/internal/fleet"
	"github.com/bosunhq/bosun/cloud/internal/web/app"
)

// Model is the API tokens page.
type Model struct {
	Page   app.Page
	Tokens []fleet.Token
	// Secret is the token just created, shown once.
	Secret  string
	Created *fleet.Token
	Name    string
}

// Own reports whether t belongs to the page's user.
func (m Model) Own(t fleet.Token) bool {
	return m.Page.Session != nil && m.Page.Session.Actor.UserID == t.UserID
}
