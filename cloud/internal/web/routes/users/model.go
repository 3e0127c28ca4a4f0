package users

import (
	"github.com/bosunhq/bosun/cloud/internal/fleet"
	"github.com/bosunhq/bosun/cloud/internal/web/app"
)

// Model is the users page.
type Model struct {
	Page  app.Page
	Users []fleet.User
	// Created is the user just added and its password, shown once.
	Created  *fleet.User
	Password string
	// Form keeps the add form's values after an error.
	Email, Role string
	// Org is the organisation new users join.
	Org     int64
	ShowOrg bool
}

// Roles the actor may give.
func (m Model) Roles() []fleet.Role {
	rs := []fleet.Role{fleet.RoleViewer, fleet.RoleOperator, fleet.RoleAdmin}
	if m.Page.Session != nil && m.Page.Session.Actor.Role == fleet.RoleSuper {
		rs = append(rs, fleet.RoleSuper)
	}
	return rs
}

// Manages reports whether the page's user may change u's role and state:
// not when u's role is above what they may give (an admin and a super
// user).
func (m Model) Manages(u fleet.User) bool {
	for _, r := range m.Roles() {
		if string(r) == u.Role {
			return true
		}
	}
	return false
}

// Self reports whether u is the page's user.
func (m Model) Self(u fleet.User) bool {
	return m.Page.Session != nil && m.Page.Session.Actor.UserID == u.ID
}
