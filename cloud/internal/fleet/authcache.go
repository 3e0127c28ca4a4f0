package fleet

import (
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// SubjectAuthChanged tells every replica that a token was revoked or a
// user's role or status changed: each drops its whole token cache.
const SubjectAuthChanged = "bosun.auth.changed"

// TokenCacheTTL is how long a replica trusts a token it looked up without
// looking again. Revocation through any replica reaches the others over
// NATS at once; the TTL bounds what a change made behind the cloud's back
// (SQL by hand, a lost NATS message) can outlive, and how stale a token's
// last_used may be.
const TokenCacheTTL = 5 * time.Second

// maxCachedTokens bounds the cache: a full cache is emptied, not grown.
const maxCachedTokens = 10000

// tokenCache maps SHA-256(token) to the actor it stood for when looked
// up. Only tokens that authenticated are cached: an unknown token always
// goes to the database (and cannot fill the cache).
type tokenCache struct {
	mu      sync.Mutex
	entries map[[32]byte]cachedToken
	epoch   uint64 // bumped by every invalidation
}

type cachedToken struct {
	actor Actor
	until time.Time
}

func newTokenCache() *tokenCache { return &tokenCache{entries: map[[32]byte]cachedToken{}} }

func (c *tokenCache) get(h [32]byte, now time.Time) (Actor, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[h]
	if !ok || !now.Before(e.until) {
		return Actor{}, false
	}
	return e.actor, true
}

// begin returns the epoch a lookup starts in; put caches its result only
// if no invalidation came in between, so a lookup that raced a revocation
// is never cached.
func (c *tokenCache) begin() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.epoch
}

func (c *tokenCache) put(h [32]byte, a Actor, epoch uint64, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if epoch != c.epoch {
		return
	}
	if len(c.entries) >= maxCachedTokens {
		clear(c.entries)
	}
	c.entries[h] = cachedToken{actor: a, until: now.Add(TokenCacheTTL)}
}

func (c *tokenCache) invalidate() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.epoch++
	clear(c.entries)
}

func (c *tokenCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

// authChanged drops this replica's token cache at once and tells the
// others. Called after the change is committed.
func (s *Service) authChanged() {
	s.tokens.invalidate()
	if err := s.nc.Publish(SubjectAuthChanged, nil); err != nil {
		s.log.Error("announcing an auth change", "err", err)
	}
}

// subscribeAuthChanged drops the cache whenever another replica changed a
// token or user.
func (s *Service) subscribeAuthChanged() (*nats.Subscription, error) {
	return s.nc.Subscribe(SubjectAuthChanged, func(*nats.Msg) { s.tokens.invalidate() })
}
