package protocol_test

import (
	"testing"

	"github.com/duet-bft/duet/protocol"
)

func testReceipt() protocol.Receipt {
	return protocol.Receipt{
		Node:    "node-1",
		Actor:   "alice",
		Session: "s-1",
		Seq:     2,
		Kind:    "step",
		Op:      seqHash(),
		Result:  protocol.ZeroHash,
		Time:    1_700_000_000_123,
		Expires: 1_700_000_600_123,
	}
}

func TestReceiptBytesGolden(t *testing.T) {
	r := testReceipt()
	want := "duet/receipt/v2\nnode-1\nalice\ns-1\n2\nstep\n" +
		"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n" +
		"0000000000000000000000000000000000000000000000000000000000000000\n" +
		"1700000000123\n1700000600123"
	if got := string(r.Bytes()); got != want {
		t.Errorf("Receipt.Bytes:\ngot  %q\nwant %q", got, want)
	}
}

func TestReceiptSignVerify(t *testing.T) {
	r := testReceipt()
	sig := r.Sign(nodeKey)
	if !r.Verify(pub(nodeKey), sig) {
		t.Fatal("Verify(node key) = false, want true")
	}
	if r.Verify(pub(aliceKey), sig) {
		t.Error("Verify(other key) = true, want false")
	}
	if r.Verify(pub(nodeKey), sig[:63]) {
		t.Error("Verify(short signature) = true, want false")
	}
	bad := append([]byte(nil), sig...)
	bad[0] ^= 1
	if r.Verify(pub(nodeKey), bad) {
		t.Error("Verify(flipped signature) = true, want false")
	}

	tests := []struct {
		name   string
		mutate func(r *protocol.Receipt)
	}{
		{"node", func(r *protocol.Receipt) { r.Node = "node-2" }},
		{"session", func(r *protocol.Receipt) { r.Session = "s-2" }},
		{"seq", func(r *protocol.Receipt) { r.Seq++ }},
		{"op hash", func(r *protocol.Receipt) { r.Op[0] ^= 1 }},
		{"result hash", func(r *protocol.Receipt) { r.Result[31] = 1 }},
		{"time", func(r *protocol.Receipt) { r.Time-- }},
		{"negative time", func(r *protocol.Receipt) { r.Time = -r.Time }},
	}
	for _, tt := range tests {
		r := testReceipt()
		tt.mutate(&r)
		if r.Verify(pub(nodeKey), sig) {
			t.Errorf("Verify after changing the %s = true, want false", tt.name)
		}
	}
}
