package ledger

import (
	"fmt"

	"github.com/cometbft/cometbft/proto/tendermint/crypto"
	"github.com/cosmos/iavl"
)

// ProofOpType names the ics23 IAVL proofs the ledger returns for /store
// queries: a membership (or non-membership) proof of the stored value
// (uvarint version || value) against the app hash of the queried height.
const ProofOpType = "ics23:iavl"

func proveKey(t *iavl.ImmutableTree, key []byte, exists bool) (*crypto.ProofOps, error) {
	var (
		data []byte
		err  error
	)
	if exists {
		p, perr := t.GetMembershipProof(key)
		if perr != nil {
			return nil, fmt.Errorf("ledger: prove %q: %w", key, perr)
		}
		data, err = p.Marshal()
	} else {
		p, perr := t.GetNonMembershipProof(key)
		if perr != nil {
			return nil, fmt.Errorf("ledger: prove absence of %q: %w", key, perr)
		}
		data, err = p.Marshal()
	}
	if err != nil {
		return nil, err
	}
	return &crypto.ProofOps{Ops: []crypto.ProofOp{{Type: ProofOpType, Key: key, Data: data}}}, nil
}

// StateProof is one key of the state after a height: its stored bytes
// (uvarint version || value; nil if absent) and an ics23 proof of them
// (membership, or non-membership if absent) against that height's app
// hash, as protobuf (ics23.CommitmentProof).
type StateProof struct {
	Key    string
	Stored []byte
	Proof  []byte
}

// Prove returns proofs of keys in the state after height (which must still
// be stored: the ledger keeps every version).
func (a *App) Prove(height int64, keys []string) ([]StateProof, error) {
	a.saving.RLock()
	defer a.saving.RUnlock()
	imm, err := a.tree.GetImmutable(height)
	if err != nil {
		return nil, fmt.Errorf("ledger: state at height %d: %w", height, err)
	}
	out := make([]StateProof, 0, len(keys))
	for _, k := range keys {
		raw, err := imm.Get([]byte(k))
		if err != nil {
			return nil, fmt.Errorf("ledger: read %q at %d: %w", k, height, err)
		}
		ops, err := proveKey(imm, []byte(k), raw != nil)
		if err != nil {
			return nil, err
		}
		out = append(out, StateProof{Key: k, Stored: raw, Proof: ops.Ops[0].Data})
	}
	return out, nil
}
