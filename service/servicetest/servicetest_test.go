package servicetest

import (
	"crypto/ed25519"
	"testing"

	"github.com/duet-bft/duet/service"
)

func TestStore(t *testing.T) {
	st := Store{}
	if v, ver, err := st.Get("k"); v != nil || ver != 0 || err != nil {
		t.Fatalf("absent key: got %q, %d, %v; want nil, 0, nil", v, ver, err)
	}
	st.Apply([]service.KV{{Key: "k", Value: []byte("a")}}, 3)
	st.Apply([]service.KV{{Key: "k", Value: []byte("b")}, {Key: "j", Value: []byte{}}}, 5)
	if v, ver, _ := st.Get("k"); string(v) != "b" || ver != 5 {
		t.Errorf("got %q at %d, want b at 5", v, ver)
	}
	// A Tx over the store sees the write and records its version.
	tx := service.NewTx(st)
	if v, ok := tx.Get("j"); !ok || len(v) != 0 {
		t.Errorf("Tx.Get(j): got %q, %v; want empty, true", v, ok)
	}
}

func TestActor(t *testing.T) {
	a, b := NewActor("a", "operator", 1), NewActor("a", "operator", 1)
	if !a.Public().Equal(b.Public()) {
		t.Error("same seed, different keys")
	}
	if NewActor("a", "operator", 2).Public().Equal(a.Public()) {
		t.Error("different seeds, same key")
	}
	sig := ed25519.Sign(a.Key, []byte("m"))
	if !ed25519.Verify(a.Public(), []byte("m"), sig) {
		t.Error("signature does not verify with Public")
	}
}
