package protocol

import (
	"crypto/ed25519"
	"crypto/sha256"
	"sync"
)

// SigCache remembers signatures that verified, so a process that checks the
// same signed op several times (an L2 node when it executes the op and again
// when its follower applies the block; a validator in CheckTx and again in
// FinalizeBlock) pays for Ed25519 once. Validity is a pure function of
// (key, message, signature), so a cache cannot change any verdict: only
// successes are kept, keyed by a hash of all three. It is bounded (oldest
// entries are evicted first) and safe for concurrent use.
type SigCache struct {
	mu   sync.Mutex
	seen map[Hash]struct{}
	ring []Hash
	next int
}

// NewSigCache returns a cache of up to n verified signatures.
func NewSigCache(n int) *SigCache {
	return &SigCache{seen: make(map[Hash]struct{}, n), ring: make([]Hash, n)}
}

func sigKey(pub ed25519.PublicKey, msg, sig []byte) Hash {
	h := sha256.New()
	h.Write(pub)
	h.Write(sig)
	h.Write(msg)
	var k Hash
	h.Sum(k[:0])
	return k
}

func (c *SigCache) has(k Hash) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.seen[k]
	return ok
}

func (c *SigCache) add(k Hash) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.seen[k]; !ok && len(c.ring) > 0 {
		delete(c.seen, c.ring[c.next])
		c.ring[c.next] = k
		c.seen[k] = struct{}{}
		c.next = (c.next + 1) % len(c.ring)
	}
}

// Known reports whether the signature verified before (and is still
// remembered).
func (c *SigCache) Known(pub ed25519.PublicKey, msg, sig []byte) bool {
	return c.has(sigKey(pub, msg, sig))
}

// Verify is protocol.Verify with memory.
func (c *SigCache) Verify(pub ed25519.PublicKey, msg, sig []byte) bool {
	k := sigKey(pub, msg, sig)
	if c.has(k) {
		return true
	}
	if !Verify(pub, msg, sig) {
		return false
	}
	c.add(k)
	return true
}

// VerifyBatch is protocol.VerifyBatch with memory: items seen before are
// not checked again, the rest are checked in one batch.
func (c *SigCache) VerifyBatch(items []SigItem) []bool {
	ok := make([]bool, len(items))
	keys := make([]Hash, len(items))
	var todo []SigItem
	var at []int
	for i, it := range items {
		keys[i] = sigKey(it.Key, it.Msg, it.Sig)
		if c.has(keys[i]) {
			ok[i] = true
			continue
		}
		todo = append(todo, it)
		at = append(at, i)
	}
	for j, v := range VerifyBatch(todo) {
		if v {
			ok[at[j]] = true
			c.add(keys[at[j]])
		}
	}
	return ok
}
