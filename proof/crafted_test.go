package proof

import (
	"os"
	"strings"
	"testing"

	cmtproto "github.com/cometbft/cometbft/proto/tendermint/types"
	ics23 "github.com/cosmos/ics23/go"
)

// TestCraftedProofs: proofs built to exploit the libraries underneath fail
// their check, and never panic: a compressed ics23 batch whose lookup
// indices point nowhere, an existence proof with a junk entry riding along,
// a vote for nil with a signature no one checks.
func TestCraftedProofs(t *testing.T) {
	raw, err := os.ReadFile("testdata/4/proof.json")
	if err != nil {
		t.Fatal(err)
	}
	genesis, err := os.ReadFile("testdata/4/genesis.json")
	if err != nil {
		t.Fatal(err)
	}
	trust, err := TrustGenesis(genesis)
	if err != nil {
		t.Fatal(err)
	}
	marshal := func(cp *ics23.CommitmentProof) []byte {
		b, err := cp.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, tc := range []struct {
		name, want string
		edit       func(p *Proof)
	}{
		{"a compressed batch with lookups out of range", "state_before", func(p *Proof) {
			p.StateBefore[0].Proof = marshal(&ics23.CommitmentProof{Proof: &ics23.CommitmentProof_Compressed{Compressed: &ics23.CompressedBatchProof{
				Entries: []*ics23.CompressedBatchEntry{{Proof: &ics23.CompressedBatchEntry_Exist{Exist: &ics23.CompressedExistenceProof{
					Key: []byte(p.StateBefore[0].Key), Value: p.StateBefore[0].Stored, Path: []int32{7}}}}}}}})
		}},
		{"an empty compressed entry", "state_after", func(p *Proof) {
			p.StateAfter[0].Proof = marshal(&ics23.CommitmentProof{Proof: &ics23.CommitmentProof_Compressed{Compressed: &ics23.CompressedBatchProof{
				Entries: []*ics23.CompressedBatchEntry{{}}}}})
		}},
		{"a batch with a junk entry beside the real one", "state_after", func(p *Proof) {
			var cp ics23.CommitmentProof
			if err := cp.Unmarshal(p.StateAfter[1].Proof); err != nil {
				t.Fatal(err)
			}
			junk := &ics23.ExistenceProof{Key: []byte("junk"), Value: []byte("anything")}
			p.StateAfter[1].Proof = marshal(&ics23.CommitmentProof{Proof: &ics23.CommitmentProof_Batch{Batch: &ics23.BatchProof{Entries: []*ics23.BatchEntry{
				{Proof: &ics23.BatchEntry_Exist{Exist: cp.GetExist()}}, {Proof: &ics23.BatchEntry_Exist{Exist: junk}}}}}})
		}},
		{"a vote for nil with a junk signature", "light_block", func(p *Proof) {
			var sh cmtproto.SignedHeader
			if err := sh.Unmarshal(p.LightBlock.SignedHeader); err != nil {
				t.Fatal(err)
			}
			last := &sh.Commit.Signatures[len(sh.Commit.Signatures)-1]
			last.BlockIdFlag = cmtproto.BlockIDFlagNil
			last.Signature = []byte(strings.Repeat("x", 64))
			b, err := sh.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			p.LightBlock.SignedHeader = b
		}},
	} {
		p, err := Decode(raw)
		if err != nil {
			t.Fatal(err)
		}
		tc.edit(p)
		doc, err := Encode(p)
		if err != nil {
			t.Fatal(err)
		}
		r, err := Verify(trust, doc)
		if err == nil || r.Failed != tc.want {
			t.Errorf("%s: got %+v (%v), want a failure of %s", tc.name, r, err, tc.want)
		} else {
			t.Logf("%s: %s", tc.name, err)
		}
	}
}
