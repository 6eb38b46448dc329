package service

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"filippo.io/edwards25519"

	"github.com/duet-bft/duet/protocol"
)

// smallOrder lists the canonical encodings of the eight points of small
// order (the torsion subgroup of Curve25519) with their orders.
// TestSmallOrderPoints checks the list rather than trusting it.
var smallOrder = []struct {
	hex   string
	order int
}{
	{"0100000000000000000000000000000000000000000000000000000000000000", 1},
	{"ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", 2},
	{"0000000000000000000000000000000000000000000000000000000000000000", 4},
	{"0000000000000000000000000000000000000000000000000000000000000080", 4},
	{"c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a", 8},
	{"c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa", 8},
	{"26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05", 8},
	{"26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85", 8},
}

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("hex %q: %v", s, err)
	}
	return b
}

// pointOrder returns the order of p if it is at most 8, else 0.
func pointOrder(p *edwards25519.Point) int {
	q := edwards25519.NewIdentityPoint()
	for n := 1; n <= 8; n++ {
		q.Add(q, p)
		if q.Equal(edwards25519.NewIdentityPoint()) == 1 {
			return n
		}
	}
	return 0
}

// TestSmallOrderPoints checks that smallOrder is exactly the torsion
// subgroup: each entry decodes canonically to a point of the stated order,
// and the multiples of one point of order 8 are the eight entries.
func TestSmallOrderPoints(t *testing.T) {
	listed := map[string]bool{}
	for _, tt := range smallOrder {
		b := mustHex(t, tt.hex)
		p, err := new(edwards25519.Point).SetBytes(b)
		if err != nil {
			t.Fatalf("SetBytes(%s): %v", tt.hex, err)
		}
		if got := hex.EncodeToString(p.Bytes()); got != tt.hex {
			t.Errorf("%s re-encodes to %s, want itself", tt.hex, got)
		}
		if got := pointOrder(p); got != tt.order {
			t.Errorf("order of %s: got %d, want %d", tt.hex, got, tt.order)
		}
		listed[tt.hex] = true
	}
	gen, err := new(edwards25519.Point).SetBytes(mustHex(t, smallOrder[4].hex))
	if err != nil {
		t.Fatal(err)
	}
	multiples := map[string]bool{}
	q := edwards25519.NewIdentityPoint()
	for range 8 {
		multiples[hex.EncodeToString(q.Bytes())] = true
		q.Add(q, gen)
	}
	if len(multiples) != 8 || len(listed) != 8 {
		t.Fatalf("got %d multiples and %d listed points, want 8 and 8", len(multiples), len(listed))
	}
	for h := range multiples {
		if !listed[h] {
			t.Errorf("small-order point %s is missing from the list", h)
		}
	}
}

// nonCanonicalSmallOrder derives the non-canonical encodings of small-order
// points: y + p for the small-order y below 19 (y = 0 and y = 1), with
// either sign bit, and the canonical encodings of the points with x = 0
// with the sign bit set.
func nonCanonicalSmallOrder(t testing.TB) [][]byte {
	t.Helper()
	var candidates [][]byte
	for y := range 19 {
		for _, sign := range []byte{0, 0x80} {
			// p = 2^255 - 19 is ed ff .. ff 7f in little endian, and
			// 0xed + 18 = 0xff, so y + p needs no carry.
			b := bytes.Repeat([]byte{0xff}, 32)
			b[0] = 0xed + byte(y)
			b[31] = 0x7f | sign
			candidates = append(candidates, b)
		}
	}
	for _, tt := range smallOrder {
		b := mustHex(t, tt.hex)
		b[31] ^= 0x80
		candidates = append(candidates, b)
	}
	var out [][]byte
	for _, b := range candidates {
		p, err := new(edwards25519.Point).SetBytes(b)
		if err != nil || bytes.Equal(p.Bytes(), b) || pointOrder(p) == 0 {
			continue
		}
		out = append(out, b)
	}
	return out
}

func TestValidPublicKey(t *testing.T) {
	type test struct {
		name string
		pub  []byte
		want error
	}
	var tests []test
	for _, so := range smallOrder {
		tests = append(tests, test{fmt.Sprintf("order %d %s", so.order, so.hex), mustHex(t, so.hex), ErrWeakKey})
	}
	nc := nonCanonicalSmallOrder(t)
	// ed..7f and ed..ff (y = 0, order 4), ee..7f and ee..ff (y = 1, the
	// identity), and the identity and the point of order 2 with x = -0.
	if len(nc) != 6 {
		t.Errorf("got %d non-canonical small-order encodings, want 6", len(nc))
	}
	for _, b := range nc {
		tests = append(tests, test{"non-canonical small order " + hex.EncodeToString(b), b, ErrKeyEncoding})
	}
	tests = append(tests,
		test{"not on the curve (y = 2)", mustHex(t, "0200000000000000000000000000000000000000000000000000000000000000"), ErrKeyEncoding},
		test{"non-canonical y = p + 3, a point of large order", mustHex(t, "f0ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"), ErrKeyEncoding},
		test{"canonical y = 3", mustHex(t, "0300000000000000000000000000000000000000000000000000000000000000"), nil},
		test{"nil", nil, ErrKeyEncoding},
		test{"0 bytes", []byte{}, ErrKeyEncoding},
		test{"31 bytes", bytes.Repeat([]byte{0x11}, 31), ErrKeyEncoding},
		test{"33 bytes", append(ed25519.NewKeyFromSeed(make([]byte, 32)).Public().(ed25519.PublicKey), 0), ErrKeyEncoding},
	)
	for _, tt := range tests {
		err := ValidPublicKey(tt.pub)
		if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
			t.Errorf("%s: ValidPublicKey(%x) = %v, want %v", tt.name, tt.pub, err, tt.want)
		}
	}
	// y = 2 must really be off the curve, and y = p + 3 a point that only
	// the canonical check refuses.
	if _, err := new(edwards25519.Point).SetBytes(mustHex(t, "0200000000000000000000000000000000000000000000000000000000000000")); err == nil {
		t.Error("y = 2 decodes; the not-on-the-curve case tests nothing")
	}
	if _, err := new(edwards25519.Point).SetBytes(mustHex(t, "f0ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f")); err != nil {
		t.Errorf("y = p + 3 does not decode (%v); the non-canonical case tests nothing", err)
	}
}

func TestValidPublicKeyHonest(t *testing.T) {
	const seed = 20261201
	rng := rand.New(rand.NewPCG(seed, 0))
	var s [ed25519.SeedSize]byte
	for i := range 1000 {
		for j := range s {
			s[j] = byte(rng.Uint32())
		}
		pub := ed25519.NewKeyFromSeed(s[:]).Public().(ed25519.PublicKey)
		if err := ValidPublicKey(pub); err != nil {
			t.Fatalf("seed %d, key %d (from seed %x): ValidPublicKey(%x) = %v, want nil", seed, i, s, pub, err)
		}
	}
}

// TestWeakKeyForgery shows why ValidPublicKey exists: under the ZIP-215
// rules protocol.Verify uses, for a small-order key the constant signature
// R = identity, S = 0 verifies for every message, canonical encoding or not.
func TestWeakKeyForgery(t *testing.T) {
	forged := append(mustHex(t, smallOrder[0].hex), make([]byte, 32)...)
	msgs := [][]byte{nil, []byte("transfer 100 to mallory"), bytes.Repeat([]byte{7}, 1000)}

	zero := make([]byte, 32) // the point of order 4 with y = 0
	for _, msg := range msgs {
		if got := protocol.Verify(zero, msg, forged); !got {
			t.Errorf("Verify(zero key, %q, identity||0) = %v, want true", msg, got)
		}
	}
	keys := nonCanonicalSmallOrder(t)
	for _, so := range smallOrder {
		keys = append(keys, mustHex(t, so.hex))
	}
	for _, pub := range keys {
		if got := protocol.Verify(pub, msgs[1], forged); !got {
			t.Errorf("Verify(%x, msg, identity||0) = %v, want true", pub, got)
		}
	}
	honest := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{9}, 32)).Public().(ed25519.PublicKey)
	if got := protocol.Verify(honest, msgs[1], forged); got {
		t.Errorf("Verify(honest key, msg, identity||0) = %v, want false", got)
	}
}

// FuzzValidPublicKey checks that ValidPublicKey never panics and accepts
// only 32-byte canonical encodings of points that are not of small order.
func FuzzValidPublicKey(f *testing.F) {
	for _, so := range smallOrder {
		f.Add(mustHex(f, so.hex))
	}
	for _, b := range nonCanonicalSmallOrder(f) {
		f.Add(b)
	}
	f.Add([]byte(ed25519.NewKeyFromSeed(make([]byte, 32)).Public().(ed25519.PublicKey)))
	f.Add([]byte{})
	f.Add(bytes.Repeat([]byte{0xff}, 32))
	f.Fuzz(func(t *testing.T, pub []byte) {
		if ValidPublicKey(pub) != nil {
			return
		}
		if len(pub) != 32 {
			t.Fatalf("accepted a %d-byte key", len(pub))
		}
		p, err := new(edwards25519.Point).SetBytes(pub)
		if err != nil {
			t.Fatalf("accepted %x, which does not decode: %v", pub, err)
		}
		if !bytes.Equal(p.Bytes(), pub) {
			t.Fatalf("accepted %x, which re-encodes to %x", pub, p.Bytes())
		}
		if pointOrder(p) != 0 {
			t.Fatalf("accepted %x, a point of order %d", pub, pointOrder(p))
		}
	})
}
