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
