package ledger_test

import (
	"bytes"
	"testing"

	"github.com/duet-bft/duet/protocol"
)

// FuzzCheckTx feeds arbitrary bytes to CheckTx and, as a one-tx block, to
// FinalizeBlock + Commit. Neither may panic or fail; a tx CheckTx calls
// malformed is malformed for FinalizeBlock too, and then, as for a batch
// that applies nothing, the app hash does not move.
func FuzzCheckTx(f *testing.F) {
	h := newHarness(f)
	h.created("PKG-1", "PKG-5")
	valid := batch(h.process(op1, "S-1", "PKG-1").bundle(node1))
	create := batch(h.create(sup2, "PKG-2"))
	lie := batch(tamper(h.process(op2, "S-2", "PKG-5").bundle(node2), node2, func(b *protocol.Bundle) { b.Ops[1].Result[0] ^= 1 }))
	for _, seed := range [][]byte{
		valid, create, lie, batch(h.create(sup1, "PKG-3"), h.create(sup1, "PKG-4")),
		nil, {0xD1}, {0xD1, 0}, {0xD2, 0}, []byte("junk"),
		valid[:len(valid)/2], append(bytes.Clone(valid), 0), append(bytes.Clone(create), create[1:]...),
	} {
		f.Add(seed)
	}
	for _, i := range []int{1, 5, 20, len(valid) / 2, len(valid) - 70, len(valid) - 1} {
		b := bytes.Clone(valid)
		b[i] ^= 0x40
		f.Add(b)
	}

	f.Fuzz(func(t *testing.T, data []byte) {
		h.t = t
		check := h.checkTx(data)
		before := h.appHash()
		res := h.block(data)
		r := res.TxResults[0]
		malformed := uint32(protocol.CodeMalformed)
		if (check.Code == malformed) != (r.Code == malformed) {
			t.Fatalf("got CheckTx code %d and FinalizeBlock code %d, want both or neither %d", check.Code, r.Code, malformed)
		}
		changes := false
		if r.Code != malformed {
			for _, o := range outcomes(t, r) {
				changes = changes || o.Code == protocol.CodeOK || o.Code == protocol.CodeResultMismatch
			}
		} else if r.Data != nil {
			t.Fatalf("got data %x for a malformed tx, want none", r.Data)
		}
		if !changes && !bytes.Equal(res.AppHash, before) {
			t.Fatalf("got app hash %X, want it unchanged %X (tx code %d)", res.AppHash, before, r.Code)
		}
	})
}

// FuzzQuery sends arbitrary paths and keys to Query, which must answer
// without panicking.
func FuzzQuery(f *testing.F) {
	h := newHarness(f)
	h.created("PKG-1")
	for _, p := range []string{"/store", "/session/new-PKG-1", "/evidence", "/evidence/L2-1", "/app/v1/packages/PKG-1", "/app/", "/x"} {
		f.Add(p, []byte("pkg/PKG-1"), true)
	}
	f.Add("/store", []byte{}, true)
	f.Add("/store", []byte{0xff, 0xff}, true)
	f.Fuzz(func(t *testing.T, path string, data []byte, prove bool) {
		h.t = t
		h.query(path, data, prove)
	})
}
