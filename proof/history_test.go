package proof

import (
	"strings"
	"testing"
	"time"

	"github.com/cometbft/cometbft/crypto"
	"github.com/cometbft/cometbft/crypto/ed25519"
	"github.com/cometbft/cometbft/crypto/tmhash"
	cmtproto "github.com/cometbft/cometbft/proto/tendermint/types"
	cmtversion "github.com/cometbft/cometbft/proto/tendermint/version"
	"github.com/cometbft/cometbft/types"
	"github.com/cometbft/cometbft/version"
)

// keys is a validator set's private keys, in the set's order.
type keys []crypto.PrivKey

func newKeys(n int) keys {
	k := make(keys, n)
	for i := range k {
		k[i] = ed25519.GenPrivKey()
	}
	return k
}

func (k keys) set() *types.ValidatorSet {
	vals := make([]*types.Validator, len(k))
	for i, key := range k {
		vals[i] = types.NewValidator(key.PubKey(), 10)
	}
	return types.NewValidatorSet(vals)
}

// signed returns a light block of height h signed by the first n of k's
// validators, whose next set is next.
func signed(t *testing.T, chain string, h int64, at time.Time, k keys, next *types.ValidatorSet, n int) LightBlock {
	t.Helper()
	vals := k.set()
	hdr := &types.Header{Version: cmtversion.Consensus{Block: version.BlockProtocol}, ChainID: chain, Height: h, Time: at,
		LastBlockID:    types.BlockID{Hash: tmhash.Sum([]byte("last")), PartSetHeader: types.PartSetHeader{Total: 1, Hash: tmhash.Sum([]byte("parts"))}},
		ValidatorsHash: vals.Hash(), NextValidatorsHash: next.Hash(), ConsensusHash: tmhash.Sum(nil), AppHash: tmhash.Sum(nil),
		LastResultsHash: tmhash.Sum(nil), DataHash: tmhash.Sum(nil), LastCommitHash: tmhash.Sum(nil), EvidenceHash: tmhash.Sum(nil),
		ProposerAddress: vals.Validators[0].Address}
	id := types.BlockID{Hash: hdr.Hash(), PartSetHeader: types.PartSetHeader{Total: 1, Hash: tmhash.Sum([]byte("p"))}}
	sigs := make([]types.CommitSig, len(vals.Validators))
	for i := range sigs {
		sigs[i] = types.NewCommitSigAbsent()
	}
	signers := 0
	for i, v := range vals.Validators {
		var key crypto.PrivKey
		for _, pk := range k {
			if pk.PubKey().Equals(v.PubKey) {
				key = pk
			}
		}
		if signers == n {
			break
		}
		signers++
		vote := &types.Vote{Type: cmtproto.PrecommitType, Height: h, Round: 0, BlockID: id, Timestamp: at,
			ValidatorAddress: v.Address, ValidatorIndex: int32(i)}
		sig, err := key.Sign(types.VoteSignBytes(chain, vote.ToProto()))
		if err != nil {
			t.Fatal(err)
		}
		vote.Signature = sig
		sigs[i] = vote.CommitSig()
	}
	sh := types.SignedHeader{Header: hdr, Commit: &types.Commit{Height: h, Round: 0, BlockID: id, Signatures: sigs}}
	lb, err := lightBlock(sh, vals)
	if err != nil {
		t.Fatal(err)
	}
	return lb
}

// TestValidatorHistory: a light block signed by a set other than the
// genesis one is accepted only through a chain of valid set changes,
// checked with the light client's rules.
func TestValidatorHistory(t *testing.T) {
	const chain = "duet-test"
	genesis, other := newKeys(4), newKeys(4)
	mixed := append(keys{genesis[0], genesis[1]}, other[:2]...) // half of the genesis set's power stays
	trust := Trust{ChainID: chain, ValidatorsHash: genesis.set().Hash()}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	check := func(lb LightBlock, history ...LightBlock) error {
		v := verifier{trust: trust, p: &Proof{Height: 10, LightBlock: lb, ValidatorHistory: history}, r: &Report{}}
		return v.lightBlock()
	}
	for _, tc := range []struct {
		name    string
		lb      LightBlock
		history []LightBlock
		want    string // "" valid, or a part of the error
	}{
		{"the genesis set", signed(t, chain, 11, t0, genesis, genesis.set(), 3), nil, ""},
		{"the genesis set, 2 of 4 signed", signed(t, chain, 11, t0, genesis, genesis.set(), 2), nil, "voting power"},
		{"another set, no history", signed(t, chain, 11, t0, other, other.set(), 4), nil, "not the genesis set"},
		{"another set, announced the block before", signed(t, chain, 11, t0.Add(time.Second), other, other.set(), 3),
			[]LightBlock{signed(t, chain, 10, t0, genesis, other.set(), 3)}, ""},
		{"another set, not announced", signed(t, chain, 11, t0.Add(time.Second), other, other.set(), 3),
			[]LightBlock{signed(t, chain, 10, t0, genesis, genesis.set(), 3)}, "next validators"},
		{"a disjoint set, far later", signed(t, chain, 11, t0.Add(time.Hour), other, other.set(), 4),
			[]LightBlock{signed(t, chain, 5, t0, genesis, genesis.set(), 3)}, "trust"},
		{"an overlapping set, far later", signed(t, chain, 11, t0.Add(time.Hour), mixed, mixed.set(), 4),
			[]LightBlock{signed(t, chain, 5, t0, genesis, genesis.set(), 3)}, ""},
		{"a history that starts from another set", signed(t, chain, 11, t0.Add(time.Second), other, other.set(), 3),
			[]LightBlock{signed(t, chain, 10, t0, other, other.set(), 3)}, "not the genesis set"},
	} {
		err := check(tc.lb, tc.history...)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: got %v, want an error about %q", tc.name, err, tc.want)
		}
	}
}
