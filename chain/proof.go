package chain

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	abci "github.com/cometbft/cometbft/abci/types"
	"github.com/cometbft/cometbft/libs/pubsub/query"
	rpccore "github.com/cometbft/cometbft/rpc/core"
	"github.com/cometbft/cometbft/types"

	"github.com/duet-bft/duet/protocol"
)

// ErrNotProvable is returned by ProofBlock for a height whose proof is not
// stored yet: the commit of block h+1 is recorded by block h+2.
var ErrNotProvable = errors.New("chain: not provable yet (the block after the next is not committed)")

// ProofBlock is what a session proof needs from the chain about block h:
// its header, transactions and their results, and the light block h+1
// (its header, its canonical commit, its validator set), whose AppHash and
// LastResultsHash cover the state and the verdicts of h.
type ProofBlock struct {
	Header  types.Header
	Txs     types.Txs
	Results []*abci.ExecTxResult
	Next    types.SignedHeader
	Vals    *types.ValidatorSet
}

// ProofBlock loads block h's proof material from this node's stores. The
// commit of h+1 is the canonical one (block h+2's LastCommit), not the one
// this node happened to see, so every node gives the same.
func (n *Node) ProofBlock(h int64) (*ProofBlock, error) {
	bs := n.CometBFT.BlockStore()
	if h < 1 || bs.Height() < h+2 {
		return nil, ErrNotProvable
	}
	blk, next := bs.LoadBlock(h), bs.LoadBlockMeta(h+1)
	commit := bs.LoadBlockCommit(h + 1)
	if blk == nil || next == nil || commit == nil {
		return nil, fmt.Errorf("chain: block %d or %d is not stored (pruned?)", h, h+1)
	}
	env, err := n.rpcEnv()
	if err != nil {
		return nil, err
	}
	res, err := env.StateStore.LoadFinalizeBlockResponse(h)
	if err != nil {
		return nil, fmt.Errorf("chain: results of block %d: %w", h, err)
	}
	vals, err := env.StateStore.LoadValidators(h + 1)
	if err != nil {
		return nil, fmt.Errorf("chain: validators of block %d: %w", h+1, err)
	}
	return &ProofBlock{Header: blk.Header, Txs: blk.Txs, Results: res.TxResults,
		Next: types.SignedHeader{Header: &next.Header, Commit: commit}, Vals: vals}, nil
}

// FindSession searches the transaction index for the transactions that
// carried session id of actor and returns the height and hash of the one
// L1 judged last (an accepted one, if any): how a node finds a session it
// did not execute, or one L1 rejected, to prove it.
func (n *Node) FindSession(ctx context.Context, id, actor string) (height int64, txHash string, ok bool, err error) {
	if !protocol.ValidID(id) || !protocol.ValidID(actor) {
		return 0, "", false, nil
	}
	env, err := n.rpcEnv()
	if err != nil {
		return 0, "", false, err
	}
	q, err := query.New(fmt.Sprintf("bundle.session = '%s'", id))
	if err != nil {
		return 0, "", false, err
	}
	res, err := env.TxIndexer.Search(ctx, q)
	if err != nil {
		return 0, "", false, err
	}
	best := protocol.Code(1 << 30)
	for _, r := range res {
		batch, err := protocol.DecodeBatch(r.Tx)
		if err != nil {
			continue
		}
		outs, err := protocol.DecodeOutcomes(r.Result.Data)
		if err != nil || len(outs) != len(batch.Bundles) {
			continue
		}
		for i, b := range batch.Bundles {
			if b.Session != id || b.Actor != actor {
				continue
			}
			c := outs[i].Code
			if !ok || accepted(c) > accepted(best) || accepted(c) == accepted(best) && r.Height > height {
				height, txHash, best, ok = r.Height, strings.ToUpper(hex.EncodeToString(types.Tx(r.Tx).Hash())), c, true
			}
		}
	}
	return height, txHash, ok, nil
}

// rpcEnv is CometBFT's RPC environment (its block, state and transaction
// stores), made once: making it chunks the genesis and asks the validator
// key for its public key.
func (n *Node) rpcEnv() (*rpccore.Environment, error) { return n.env() }

func accepted(c protocol.Code) int {
	if c == protocol.CodeOK {
		return 1
	}
	return 0
}
