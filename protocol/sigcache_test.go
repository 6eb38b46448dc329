package protocol

import (
	"crypto/ed25519"
	"testing"
)

func TestSigCache(t *testing.T) {
	key := ed25519.NewKeyFromSeed(make([]byte, 32))
	pub := key.Public().(ed25519.PublicKey)
	c := NewSigCache(2)
	msgs := [][]byte{[]byte("a"), []byte("b"), []byte("c")}
	for _, m := range msgs {
		sig := ed25519.Sign(key, m)
		for i := 0; i < 2; i++ { // second call is served from the cache
			if !c.Verify(pub, m, sig) {
				t.Fatalf("got false for a valid signature of %q", m)
			}
		}
		bad := append([]byte(nil), sig...)
		bad[0] ^= 1
		if c.Verify(pub, m, bad) {
			t.Fatalf("got true for a corrupted signature of %q", m)
		}
		if c.Verify(pub, []byte("other"), sig) {
			t.Fatalf("got true for the signature of %q over another message", m)
		}
	}
	if got := len(c.seen); got != 2 {
		t.Errorf("got %d cached entries, want 2 (bounded)", got)
	}
	// A cached success for one key does not vouch for another key.
	other := ed25519.NewKeyFromSeed(append(make([]byte, 31), 1)).Public().(ed25519.PublicKey)
	if c.Verify(other, msgs[2], ed25519.Sign(key, msgs[2])) {
		t.Error("got true for a signature checked against the wrong key")
	}
}
