// Package servicetest provides what tests of applications and of the
// framework need around service: an in-memory committed state and actors
// with fixed keys. Like net/http/httptest, it is for tests only.
package servicetest

import (
	"bytes"
	"crypto/ed25519"

	"github.com/duet-bft/duet/service"
)

// Store is committed state in memory: key -> value and the version (L1
// height) that wrote it. It implements service.Store.
type Store map[string]Entry

// Entry is one key of a Store.
type Entry struct {
	Value   []byte
	Version uint64
}

// Get implements service.Store.
func (s Store) Get(key string) ([]byte, uint64, error) {
	e, ok := s[key]
	if !ok {
		return nil, 0, nil
	}
	return e.Value, e.Version, nil
}

// Apply writes a session's write set at version, as L1 would.
func (s Store) Apply(writes []service.KV, version uint64) {
	for _, kv := range writes {
		s[kv.Key] = Entry{Value: kv.Value, Version: version}
	}
}

// Actor is an identity whose key derives from a one-byte seed, so tests are
// repeatable.
type Actor struct {
	ID   string
	Role string
	Key  ed25519.PrivateKey
}

// NewActor returns the actor id with role and the key of seed.
func NewActor(id, role string, seed byte) Actor {
	return Actor{ID: id, Role: role, Key: ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))}
}

// Public returns the actor's public key.
func (a Actor) Public() ed25519.PublicKey { return a.Key.Public().(ed25519.PublicKey) }
