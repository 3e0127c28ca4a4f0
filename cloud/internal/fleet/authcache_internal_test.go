package fleet

import (
	"crypto/sha256"
	"strconv"
	"testing"
	"time"
)

// TestTokenCacheBound: the cache holds at most maxCachedTokens entries; the
// one past the bound empties it rather than growing it; an entry expires
// at its TTL; a lookup that started before an invalidation is not cached.
func TestTokenCacheBound(t *testing.T) {
	c := newTokenCache()
	now := time.Now()
	key := func(i int) [32]byte { return sha256.Sum256([]byte(strconv.Itoa(i))) }
	for i := range maxCachedTokens {
		c.put(key(i), Actor{UserID: int64(i)}, c.begin(), now)
	}
	if c.len() != maxCachedTokens {
		t.Fatalf("%d entries, want %d", c.len(), maxCachedTokens)
	}
	if a, ok := c.get(key(7), now); !ok || a.UserID != 7 {
		t.Fatalf("entry 7 at the bound: %+v %v", a, ok)
	}
	c.put(key(maxCachedTokens), Actor{UserID: -1}, c.begin(), now)
	if c.len() != 1 {
		t.Fatalf("%d entries after one past the bound, want 1 (emptied, then the new one)", c.len())
	}
	if _, ok := c.get(key(7), now); ok {
		t.Fatal("an entry survived the emptying")
	}
	if _, ok := c.get(key(maxCachedTokens), now.Add(TokenCacheTTL)); ok {
		t.Fatal("an entry outlived its TTL")
	}
	epoch := c.begin()
	c.invalidate()
	c.put(key(1), Actor{UserID: 1}, epoch, now)
	if _, ok := c.get(key(1), now); ok {
		t.Fatal("a lookup that raced an invalidation was cached")
	}
}
