package fleet

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/bosunhq/bosun/cloud/internal/store"
	"golang.org/x/crypto/argon2"
)

// TokenPrefix starts every API token: "bsn_" + base64url(32 random bytes).
const TokenPrefix = "bsn_"

// argon2id parameters: the OWASP recommendation for argon2id (19 MiB, two
// passes, one lane). They are stored in each PHC string, so raising them
// later keeps old hashes verifiable.
const (
	argonMemory  = 19 * 1024
	argonTime    = 2
	argonThreads = 1
	argonKeyLen  = 32
)

// HashPassword returns the argon2id PHC string of password:
// $argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash> (unpadded standard base64).
func HashPassword(password string) string {
	salt := make([]byte, 16)
	rand.Read(salt)
	h := argon2.IDKey([]byte(password), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime, argonThreads,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(h))
}

// CheckPassword reports whether password matches the PHC string phc.
func CheckPassword(phc, password string) bool {
	parts := strings.Split(phc, "$")
	if len(parts) != 6 || parts[1] != "argon2id" || parts[2] != fmt.Sprintf("v=%d", argon2.Version) {
		return false
	}
	var m uint32
	var t uint32
	var p uint8
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil || m == 0 || t == 0 || p == 0 || m > 1<<22 || t > 16 {
		return false
	}
	salt, err1 := base64.RawStdEncoding.DecodeString(parts[4])
	want, err2 := base64.RawStdEncoding.DecodeString(parts[5])
	if err1 != nil || err2 != nil || len(want) == 0 {
		return false
	}
	got := argon2.IDKey([]byte(password), salt, t, m, p, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1
}

func randomSecret(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func tokenHash(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

// cliActor is the actor of bootstrap commands run with database access.
var cliActor = Actor{Email: "cli", Role: RoleSuper}

// CreateUser is the bootstrap for `bosun-cloud user add`: whoever runs it
// holds the database URL, so no actor is checked. It creates the
// organisation named org when missing ("" means the default organisation),
// stores an argon2id hash and returns the generated password, which is
// shown once.
func (s *Service) CreateUser(ctx context.Context, email string, role Role, org string) (password string, err error) {
	if org == "" {
		org = s.opts.DefaultOrg
	}
	o, err := s.st.OrgByName(ctx, org)
	if errors.Is(err, store.ErrNotFound) {
		o, err = s.st.CreateOrg(ctx, org)
	}
	if err != nil {
		return "", fmt.Errorf("organisation %s: %w", org, mapStoreErr(err))
	}
	password, _, err = s.addUser(ctx, cliActor, email, role, o.ID)
	return password, err
}

// AddUser creates a user in orgID with a generated password, returned once.
// Admins add users to their own organisation, super users anywhere; only a
// super user creates super users.
func (s *Service) AddUser(ctx context.Context, a Actor, email string, role Role, orgID int64) (password string, u store.User, err error) {
	if !a.administers(orgID) || (role == RoleSuper && a.Role != RoleSuper) {
		return "", u, fmt.Errorf("%w: role %s may not add %s users here", ErrForbidden, a.Role, role)
	}
	return s.addUser(ctx, a, email, role, orgID)
}

func (s *Service) addUser(ctx context.Context, a Actor, email string, role Role, orgID int64) (string, store.User, error) {
	if !validText(email) {
		return "", store.User{}, invalidf("%q is not an email address", email)
	}
	email = strings.TrimSpace(strings.ToLower(email))
	if !role.Valid() {
		return "", store.User{}, invalidf("role must be super, admin, operator or viewer")
	}
	if len(email) < 3 || len(email) > 254 || !strings.Contains(email, "@") || strings.ContainsAny(email, " \t\r\n") {
		return "", store.User{}, invalidf("%q is not an email address", email)
	}
	password := randomSecret(18)
	u, err := s.st.CreateUser(ctx, store.User{OrgID: orgID, Email: email, Role: string(role), PasswordHash: HashPassword(password)})
	if err != nil {
		err = mapStoreErr(err)
		if errors.Is(err, ErrConflict) {
			err = &PublicError{Kind: ErrConflict, Msg: fmt.Sprintf("a user with email %s exists already", email), Err: err}
		}
		s.audit(ctx, orgID, a, "user.create", email, "error",
			map[string]string{"role": string(role), "error": s.auditError("user.create", email, err)})
		return "", u, err
	}
	s.audit(ctx, orgID, a, "user.create", email, "ok", map[string]string{"role": string(role)})
	return password, u, nil
}

// AuthenticatePassword checks a user's email and password (for the
// dashboard's login). Any mismatch is ErrUnauthenticated.
func (s *Service) AuthenticatePassword(ctx context.Context, email, password string) (Actor, error) {
	u, err := s.st.UserByEmail(ctx, strings.TrimSpace(strings.ToLower(email)))
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			HashPassword(password) // same work either way: no user enumeration by timing
			return Actor{}, ErrUnauthenticated
		}
		return Actor{}, err
	}
	if u.Disabled || !CheckPassword(u.PasswordHash, password) {
		return Actor{}, ErrUnauthenticated
	}
	return Actor{UserID: u.ID, Email: u.Email, OrgID: u.OrgID, Role: Role(u.Role)}, nil
}

// AuthenticateToken returns the actor an API token stands for and records
// its use. A malformed, unknown or revoked token, or one of a disabled
// user, is ErrUnauthenticated.
//
// A token that authenticated is trusted for TokenCacheTTL without a
// database read (last_used is then at most that old); revoking it,
// disabling its user or changing the user's role empties the cache of
// every replica at once (SubjectAuthChanged).
func (s *Service) AuthenticateToken(ctx context.Context, token string) (Actor, error) {
	if !strings.HasPrefix(token, TokenPrefix) || len(token) != len(TokenPrefix)+43 {
		return Actor{}, ErrUnauthenticated
	}
	h := sha256.Sum256([]byte(token))
	now := time.Now()
	if a, ok := s.tokens.get(h, now); ok {
		return a, nil
	}
	epoch := s.tokens.begin()
	o, err := s.st.TokenByHash(ctx, h[:])
	if errors.Is(err, store.ErrNotFound) {
		return Actor{}, ErrUnauthenticated
	}
	if err != nil {
		return Actor{}, err
	}
	a := Actor{UserID: o.User.ID, Email: o.User.Email, OrgID: o.User.OrgID, Role: Role(o.User.Role), TokenID: o.TokenID}
	s.tokens.put(h, a, epoch, now)
	return a, nil
}

// CreateToken creates an API token for the actor's own user. The secret is
// returned once; only its SHA-256 is stored.
func (s *Service) CreateToken(ctx context.Context, a Actor, name string) (string, Token, error) {
	if a.UserID == 0 || !a.Role.Valid() {
		return "", Token{}, fmt.Errorf("%w: only users own tokens", ErrForbidden)
	}
	return s.createToken(ctx, a, a.OrgID, a.UserID, a.Email, name)
}

// CreateTokenForUser is the bootstrap for `bosun-cloud token create`: it
// creates a token for the user with that email (no actor is checked; the
// caller holds the database URL).
func (s *Service) CreateTokenForUser(ctx context.Context, email, name string) (string, Token, error) {
	u, err := s.st.UserByEmail(ctx, strings.TrimSpace(strings.ToLower(email)))
	if err != nil {
		return "", Token{}, fmt.Errorf("user %s: %w", email, mapStoreErr(err))
	}
	return s.createToken(ctx, cliActor, u.OrgID, u.ID, u.Email, name)
}

func (s *Service) createToken(ctx context.Context, a Actor, orgID, userID int64, email, name string) (string, Token, error) {
	name = strings.TrimSpace(name)
	if len(name) > 100 {
		return "", Token{}, invalidf("a token name has at most 100 characters")
	}
	if !validText(name) {
		return "", Token{}, invalidf("a token name is UTF-8 text without NUL bytes")
	}
	secret := TokenPrefix + randomSecret(32)
	t, err := s.st.InsertToken(ctx, orgID, userID, name, tokenHash(secret))
	if err != nil {
		err = mapStoreErr(err)
		s.audit(ctx, orgID, a, "token.create", email, "error",
			map[string]string{"name": name, "error": s.auditError("token.create", email, err)})
		return "", t, err
	}
	s.audit(ctx, orgID, a, "token.create", email, "ok", map[string]any{"name": name, "token_id": t.ID})
	return secret, t, nil
}

// ListTokens lists tokens: a user's own; an admin's organisation's; all
// for super.
func (s *Service) ListTokens(ctx context.Context, a Actor) ([]Token, error) {
	var ts []Token
	var err error
	switch a.Role {
	case RoleSuper:
		ts, err = s.st.ListTokens(ctx, 0, 0)
	case RoleAdmin:
		ts, err = s.st.ListTokens(ctx, a.OrgID, 0)
	case RoleOperator, RoleViewer:
		if a.UserID == 0 {
			return []Token{}, nil
		}
		ts, err = s.st.ListTokens(ctx, a.OrgID, a.UserID)
	default:
		return nil, ErrForbidden
	}
	if ts == nil {
		ts = []Token{}
	}
	return ts, err
}

// RevokeToken revokes a token: one's own, any of one's organisation for an
// admin, any for super.
func (s *Service) RevokeToken(ctx context.Context, a Actor, id int64) error {
	org, user, err := s.st.TokenOrgUser(ctx, id)
	if err != nil {
		return mapStoreErr(err)
	}
	if !a.sees(org) {
		return fmt.Errorf("%w: token %d", ErrNotFound, id)
	}
	if !(a.administers(org) || (a.UserID != 0 && a.UserID == user)) {
		return fmt.Errorf("%w: not your token", ErrForbidden)
	}
	if err := s.st.RevokeToken(ctx, id); err != nil {
		return mapStoreErr(err)
	}
	s.authChanged()
	s.audit(ctx, org, a, "token.revoke", fmt.Sprint(id), "ok", nil)
	return nil
}
