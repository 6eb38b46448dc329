package l2

import (
	"context"
	"crypto/ed25519"
	"errors"

	"github.com/duet-bft/duet/buffer"
	"github.com/duet-bft/duet/chain"
	"github.com/duet-bft/duet/proof"
	"github.com/duet-bft/duet/protocol"
	"github.com/duet-bft/duet/service"
)

// prover builds session proofs from this node's follower (blocks, results,
// state) and buffer (the answers it gave, while it keeps them).
type prover struct {
	cn   *chain.Node
	buf  *buffer.Buffer
	node string
	key  ed25519.PrivateKey
}

// Proof builds the proof of session id of actor. A canonical proof holds
// what every node builds alike (no answers, no receipts); otherwise the
// node adds the answers it kept and, for its own sessions, its receipts.
func (p prover) Proof(ctx context.Context, req proof.Request) ([]byte, error) {
	actor, id := req.Actor, req.Session
	v, ok := p.buf.Lookup(id, actor)
	if ok && v.Actor == actor && v.Final == nil {
		return nil, proof.ErrNotFinal
	}
	var height int64
	var txHash string
	if ok && v.Actor == actor && v.Final.Height != 0 && !req.Canonical {
		height, txHash = v.Final.Height, v.Final.TxHash
	} else {
		// Not held here, not judged by L1 as this node saw it (rejected for
		// good at CheckTx), or a canonical proof, which every node must
		// find alike: L1's transaction index says.
		var found bool
		var err error
		if height, txHash, found, err = p.cn.FindSession(ctx, id, actor); err != nil {
			return nil, err
		} else if !found && (ok && v.Actor == actor && v.Final.Height != 0 || committed(p.cn, actor, id)) {
			return nil, proof.ErrNotYet // L1 judged it; its transaction index is catching up
		} else if !found && req.Absent {
			return p.absence(req)
		} else if !found {
			return nil, proof.ErrNotFound
		}
		v.Ops = nil
	}
	pb, err := p.cn.ProofBlock(height)
	if errors.Is(err, chain.ErrNotProvable) {
		return nil, proof.ErrNotYet
	} else if err != nil {
		return nil, err
	}
	in := proof.Input{ChainID: p.cn.CometBFT.GenesisDoc().ChainID, Header: pb.Header, Txs: pb.Txs, Results: pb.Results,
		Next: pb.Next, Vals: pb.Vals, TxHash: txHash, Session: id, Actor: actor,
		Prove: p.prove}
	if !req.Canonical {
		in.Answers = v.Ops
		in.SignReceipt = func(rc protocol.Receipt) []byte {
			if rc.Node != p.node {
				return nil
			}
			return rc.Sign(p.key)
		}
	}
	return proof.Build(in)
}

func (p prover) prove(h int64, keys []string) ([]proof.State, error) {
	sp, err := p.cn.App.Prove(h, keys)
	out := make([]proof.State, len(sp))
	for i, s := range sp {
		out[i] = proof.State(s)
	}
	return out, err
}

// absence proves that L1 has not committed the session, as of the last
// height this node can prove.
func (p prover) absence(req proof.Request) ([]byte, error) {
	h := p.cn.CometBFT.BlockStore().Height() - 2
	if h < 2 {
		return nil, proof.ErrNotYet
	}
	pb, err := p.cn.ProofBlock(h)
	if err != nil {
		return nil, err
	}
	node := req.Node
	if node == "" {
		node = p.node
	}
	return proof.BuildAbsence(proof.AbsenceInput{ChainID: p.cn.CometBFT.GenesisDoc().ChainID, Header: pb.Header, Next: pb.Next, Vals: pb.Vals,
		Session: req.Session, Actor: req.Actor, Node: node, Prove: p.prove})
}

// committed reports whether L1's committed state records the session.
func committed(cn *chain.Node, actor, id string) bool {
	st, _ := cn.App.Committed()
	_, ok := service.LookupSession(st, actor, id)
	return ok
}
