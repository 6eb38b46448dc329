package service

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"

	"filippo.io/edwards25519"
)

// Errors of ValidPublicKey; test them with errors.Is.
var (
	// ErrKeyEncoding: the key is not the canonical 32-byte encoding of a
	// point on the curve.
	ErrKeyEncoding = errors.New("service: public key is not a canonical Ed25519 point encoding")
	// ErrWeakKey: the key is one of the eight points of small order.
	ErrWeakKey = errors.New("service: public key is a small-order point (a weak key anyone can sign for)")
)

// ValidPublicKey refuses an Ed25519 public key that no honest key pair
// produces: one that is not 32 bytes, not the encoding of a curve point,
// not the canonical encoding of its point, or a point of small order.
//
// Signatures are verified with the ZIP-215 rules (protocol.Verify), which
// accept both non-canonical and small-order keys. For a small-order key A
// the signature R = identity, S = 0 satisfies [8][S]B = [8]R + [8][k]A for
// every message, so anyone could act as its actor. A non-canonical encoding
// verifies exactly like the canonical one, so it would be a second name for
// the same key. Every key that enters state (actors, L2 nodes, genesis
// entries) passes this check first.
func ValidPublicKey(pub []byte) error {
	if len(pub) != ed25519.PublicKeySize {
		return fmt.Errorf("%w: %d bytes, want %d", ErrKeyEncoding, len(pub), ed25519.PublicKeySize)
	}
	p, err := new(edwards25519.Point).SetBytes(pub)
	if err != nil {
		return fmt.Errorf("%w: not a point on the curve", ErrKeyEncoding)
	}
	if !bytes.Equal(p.Bytes(), pub) {
		return fmt.Errorf("%w: the point's canonical encoding is %x", ErrKeyEncoding, p.Bytes())
	}
	if new(edwards25519.Point).MultByCofactor(p).Equal(edwards25519.NewIdentityPoint()) == 1 {
		return ErrWeakKey
	}
	return nil
}
