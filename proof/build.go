package proof

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	abci "github.com/cometbft/cometbft/abci/types"
	"github.com/cometbft/cometbft/crypto/merkle"
	"github.com/cometbft/cometbft/types"

	"github.com/duet-bft/duet/protocol"
	"github.com/duet-bft/duet/service"
)

// Input is what Build assembles a proof from: block Height's material from
// the chain's stores, the ledger's state proofs, and what the serving L2
// node holds of the session.
type Input struct {
	ChainID string
	Header  types.Header // block Height
	Txs     types.Txs
	Results []*abci.ExecTxResult
	Next    types.SignedHeader  // block Height+1 with its canonical commit
	Vals    *types.ValidatorSet // of Height+1
	TxHash  string              // the transaction that carried the session
	Session string
	Actor   string
	// Prove returns ics23 proofs of keys in the state after a height.
	Prove func(height int64, keys []string) ([]State, error)
	// Answers are the session's answers (by seq) if the serving node kept
	// them; nil otherwise.
	Answers []protocol.OpResult
	// SignReceipt signs a receipt again (Ed25519 is deterministic: the same
	// bytes the node gave), or returns nil if the receipt is not its own.
	SignReceipt func(protocol.Receipt) []byte
}

// ErrNotFound is returned by Build when the transaction does not carry
// the session.
var ErrNotFound = errors.New("proof: the session is not in that transaction")

// Build assembles a session proof and encodes it. The document is
// deterministic in its inputs.
func Build(in Input) ([]byte, error) {
	h := in.Header.Height
	if h < 2 {
		return nil, fmt.Errorf("proof: height %d has no state before it to prove against", h)
	}
	ti := -1
	for i, tx := range in.Txs {
		if strings.EqualFold(hex.EncodeToString(tx.Hash()), in.TxHash) {
			ti = i
			break
		}
	}
	if ti < 0 || len(in.Results) != len(in.Txs) {
		return nil, ErrNotFound
	}
	batch, err := protocol.DecodeBatch(in.Txs[ti])
	if err != nil {
		return nil, fmt.Errorf("proof: transaction %s: %w", in.TxHash, err)
	}
	bi := -1
	for i := range batch.Bundles {
		if batch.Bundles[i].Session == in.Session && batch.Bundles[i].Actor == in.Actor {
			bi = i
			break
		}
	}
	if bi < 0 {
		return nil, ErrNotFound
	}
	b := &batch.Bundles[bi]
	res := abci.DeterministicExecTxResult(in.Results[ti])
	outs, err := protocol.DecodeOutcomes(res.Data)
	if err != nil || len(outs) != len(batch.Bundles) {
		return nil, fmt.Errorf("proof: the result of transaction %s does not list its verdicts", in.TxHash)
	}
	out := outs[bi]
	if out.Code == protocol.CodeUnauthenticated || out.Code == protocol.CodePermissionDenied {
		return nil, fmt.Errorf("%w: L1 rejected it as %s, for an actor or node it does not know as such", ErrUnprovable, out.Code)
	}
	p := Proof{Format: Format, ChainID: in.ChainID, Session: b.Session, Actor: b.Actor, Node: b.Node, Height: h,
		Outcome: Outcome{Code: out.Code.String(), Results: out.Results}, Ops: []Op{}, Receipts: []Receipt{}}

	answers := in.Answers
	if len(answers) != len(b.Ops) {
		answers = nil
	}
	for c := range b.Chain() {
		o := c.Op
		op := Op{Seq: uint64(c.Seq), Method: o.Method, Path: o.Path, Body: o.Body, Time: o.Time, Expires: o.Expires,
			Signed: c.Signed, Signature: o.Signature, Hash: c.Hash, ResultHash: o.Result}
		if answers != nil && answers[c.Seq].OpHash == c.Hash.String() && protocol.ResultHash(answers[c.Seq].Status, answers[c.Seq].Result) == o.Result {
			op.Status, op.Result = answers[c.Seq].Status, append([]byte{}, answers[c.Seq].Result...)
		} else {
			answers = nil
		}
		p.Ops = append(p.Ops, op)
		if in.SignReceipt != nil {
			kind := service.Classify(b.Session, uint64(c.Seq), o.Method, o.Path)
			rc := protocol.Receipt{Node: b.Node, Actor: b.Actor, Session: b.Session, Seq: uint64(c.Seq), Kind: kind.String(), Op: c.Hash, Result: o.Result, Time: o.Time, Expires: o.Expires}
			p.Receipts = append(p.Receipts, Receipt{Receipt: rc, Signature: in.SignReceipt(rc)})
		}
	}
	for _, rc := range p.Receipts {
		if rc.Signature == nil { // SignReceipt signs only the sessions of its own node
			p.Receipts = []Receipt{}
			break
		}
	}
	if answers == nil { // all or none
		for i := range p.Ops {
			p.Ops[i].Status, p.Ops[i].Result = 0, nil
		}
	}

	txProof := in.Txs.Proof(ti)
	leaves := make([][]byte, len(in.Results))
	for i, r := range in.Results {
		if leaves[i], err = abci.DeterministicExecTxResult(r).Marshal(); err != nil {
			return nil, err
		}
	}
	_, resProofs := merkle.ProofsFromByteSlices(leaves)
	header, err := in.Header.ToProto().Marshal()
	if err != nil {
		return nil, err
	}
	p.Block = Block{Header: header, Tx: in.Txs[ti], TxProof: merkleProof(&txProof.Proof), Bundle: bi,
		Result:      TxResult{Code: res.Code, Data: res.Data, GasWanted: res.GasWanted, GasUsed: res.GasUsed},
		ResultProof: merkleProof(resProofs[ti])}
	if p.LightBlock, err = lightBlock(in.Next, in.Vals); err != nil {
		return nil, err
	}

	if p.StateBefore, err = in.Prove(h-1, []string{service.ActorKey(b.Actor), service.ActorKey(b.Node)}); err != nil {
		return nil, err
	}
	switch out.Code {
	case protocol.CodeOK:
		rec, err := in.Prove(h, []string{service.SessionKey(b.Actor, b.Session)})
		if err != nil {
			return nil, err
		}
		var sr service.SessionRecord
		if len(rec[0].Stored) == 0 {
			return nil, errors.New("proof: no session record")
		}
		if err := json.Unmarshal(rec[0].Stored[uvarintLen(rec[0].Stored):], &sr); err != nil {
			return nil, fmt.Errorf("proof: session record: %w", err)
		}
		writes, err := in.Prove(h, sr.Writes)
		if err != nil {
			return nil, err
		}
		for _, w := range writes {
			if len(w.Stored) == 0 { // a key that is not UTF-8 is not recorded as it was written (JSON)
				return nil, fmt.Errorf("%w: the session's record names a key %q that is not in the state", ErrUnprovable, w.Key)
			}
		}
		p.StateAfter = append(rec, writes...)
	case protocol.CodeResultMismatch:
		if p.StateAfter, err = in.Prove(h, []string{service.EvidenceKey(b.Node, b.Actor, b.Session)}); err != nil {
			return nil, err
		}
	default:
		p.StateAfter = []State{}
	}
	doc, err := Encode(&p)
	if err == nil && len(doc) > MaxProofBytes {
		return nil, fmt.Errorf("%w: its proof would be %d bytes, over the %d a verifier reads", ErrUnprovable, len(doc), MaxProofBytes)
	}
	return doc, err
}

// AbsenceInput is what BuildAbsence assembles a proof of absence from.
type AbsenceInput struct {
	ChainID string
	Header  types.Header        // block Height
	Next    types.SignedHeader  // block Height+1 with its canonical commit
	Vals    *types.ValidatorSet // of Height+1
	Session string
	Actor   string
	Node    string // the L2 node whose promises the proof is held against
	Prove   func(height int64, keys []string) ([]State, error)
}

// BuildAbsence assembles a proof that L1 had not committed session Session
// of Actor as of block Height (Outcome Absent).
func BuildAbsence(in AbsenceInput) ([]byte, error) {
	h := in.Header.Height
	if h < 2 {
		return nil, fmt.Errorf("proof: height %d has no state before it to prove against", h)
	}
	header, err := in.Header.ToProto().Marshal()
	if err != nil {
		return nil, err
	}
	p := Proof{Format: Format, ChainID: in.ChainID, Session: in.Session, Actor: in.Actor, Node: in.Node, Height: h,
		Outcome: Outcome{Code: Absent}, Ops: []Op{}, Receipts: []Receipt{},
		Block: Block{Header: header, TxProof: MerkleProof{Aunts: [][]byte{}}, ResultProof: MerkleProof{Aunts: [][]byte{}}}}
	if p.LightBlock, err = lightBlock(in.Next, in.Vals); err != nil {
		return nil, err
	}
	if p.StateBefore, err = in.Prove(h-1, []string{service.ActorKey(in.Actor), service.ActorKey(in.Node)}); err != nil {
		return nil, err
	}
	for _, s := range p.StateBefore {
		if len(s.Stored) == 0 {
			return nil, fmt.Errorf("%w: L1 has no %s", ErrNotFound, s.Key)
		}
	}
	var node service.Actor
	if json.Unmarshal(p.StateBefore[1].Stored[uvarintLen(p.StateBefore[1].Stored):], &node) != nil || node.Role != service.RoleL2 {
		return nil, fmt.Errorf("%w: %s is not an L2 node", ErrNotFound, in.Node)
	}
	if p.StateAfter, err = in.Prove(h, []string{service.SessionKey(in.Actor, in.Session)}); err != nil {
		return nil, err
	}
	if len(p.StateAfter[0].Stored) != 0 {
		return nil, ErrNotYet // committed since the transaction index was asked: ask again for its proof
	}
	return Encode(&p)
}

func uvarintLen(b []byte) int {
	for i, c := range b {
		if c < 0x80 {
			return i + 1
		}
	}
	return len(b)
}

func merkleProof(p *merkle.Proof) MerkleProof {
	aunts := p.Aunts
	if aunts == nil {
		aunts = [][]byte{}
	}
	return MerkleProof{Total: p.Total, Index: p.Index, LeafHash: p.LeafHash, Aunts: aunts}
}

// lightBlock encodes a signed header and its validators. Only the commit
// signatures for the block are kept (a vote for nil is marked absent): a
// light client checks no other, and a proof carries nothing unchecked.
func lightBlock(sh types.SignedHeader, vals *types.ValidatorSet) (LightBlock, error) {
	commit := *sh.Commit
	commit.Signatures = make([]types.CommitSig, len(sh.Commit.Signatures))
	for i, s := range sh.Commit.Signatures {
		if s.BlockIDFlag == types.BlockIDFlagCommit {
			commit.Signatures[i] = s
		} else {
			commit.Signatures[i] = types.NewCommitSigAbsent()
		}
	}
	sh.Commit = &commit
	raw, err := sh.ToProto().Marshal()
	if err != nil {
		return LightBlock{}, err
	}
	lb := LightBlock{SignedHeader: raw}
	for _, v := range vals.Validators {
		lb.Validators = append(lb.Validators, Validator{PubKey: v.PubKey.Bytes(), Power: v.VotingPower})
	}
	return lb, nil
}
