package proof

import (
	"fmt"
	"time"

	"github.com/duet-bft/duet/protocol"
)

// ReceiptDeadline is how long after a receipt's time an honest node has to
// get its op on L1: L1 takes no op older than protocol.MaxOpAge before the
// block time, so a session not committed by then never will be.
const ReceiptDeadline = protocol.MaxOpAge

// Promise is what a receipt (an L2 node's signed promise) turned out to be,
// judged against a verified proof.
type Promise struct {
	Node   string `json:"node"`
	Seq    uint64 `json:"seq"`
	Kept   bool   `json:"kept"`
	Broken bool   `json:"broken"` // provably broken by Node: Evidence says how
	// Evidence says what the receipt promised and what L1 decided.
	Evidence string `json:"evidence"`
}

// String is the promise in one line.
func (p *Promise) String() string {
	switch {
	case p.Broken:
		return fmt.Sprintf("broken promise by node %s: %s", p.Node, p.Evidence)
	case p.Kept:
		return fmt.Sprintf("promise kept by node %s: %s", p.Node, p.Evidence)
	}
	return fmt.Sprintf("not attributable to node %s: %s", p.Node, p.Evidence)
}

// VerifyReceipt verifies a proof and judges a receipt against it. The
// receipt must be signed by the node the proof names (its key is in the
// proven state) and be for the proof's session.
func VerifyReceipt(trust Trust, raw []byte, rc Receipt) (*Report, *Promise, error) {
	r := &Report{ProofHash: Hash(raw)}
	p, err := Decode(raw)
	if err != nil {
		r, err = r.fail(&CheckError{"format", err})
		return r, nil, err
	}
	r.Checks = append(r.Checks, "format")
	v := verifier{trust: trust, p: p, r: r}
	if err := v.run(); err != nil {
		r, err = r.fail(err)
		return r, nil, err
	}
	r.Valid = true
	pr, err := v.judge(rc)
	if err != nil {
		return r, nil, &CheckError{"receipt", err}
	}
	return r, pr, nil
}

// judge holds a receipt against the verified proof. A node is blamed only
// for what it alone could have done:
//   - its receipt gave op seq a result other than the one L1 committed for
//     that very op (same op hash);
//   - L1 rejected the bundle it signed as RESULT_MISMATCH, and the receipt's
//     op is in that bundle;
//   - its receipt of a commit (or a direct-mode op) promised a session that
//     L1 had not committed by the deadline, ReceiptDeadline after the op's
//     time (a rebuttable claim: the node answers it with the proof of L1's
//     verdict on the session, which any node builds).
//
// Anything else the actor could have caused (an abort, a session id used
// again, two commits signed, a stale read) is not attributable to the node.
func (v *verifier) judge(rc Receipt) (*Promise, error) {
	p := v.p
	if rc.Node != p.Node {
		return nil, fmt.Errorf("the receipt is node %s's; the proof is held against node %s", rc.Node, p.Node)
	}
	if rc.Session != p.Session || rc.Actor != p.Actor {
		return nil, fmt.Errorf("the receipt is for session %s of %s, the proof for %s of %s", rc.Session, rc.Actor, p.Session, p.Actor)
	}
	if !rc.Verify(v.nodeKey, rc.Signature) {
		return nil, fmt.Errorf("node %s's signature of the receipt does not verify", rc.Node)
	}
	pr := &Promise{Node: rc.Node, Seq: rc.Seq}
	promised := fmt.Sprintf("it promised op %d (%s, %s) with result %s at %s", rc.Seq, rc.Kind, rc.Op, rc.Result,
		time.UnixMilli(rc.Time).UTC().Format(time.RFC3339Nano))
	var op *Op // the proof's op with the receipt's hash at its seq, if any
	if rc.Seq < uint64(len(p.Ops)) && p.Ops[rc.Seq].Hash == rc.Op {
		op = &p.Ops[rc.Seq]
	}
	final := rc.Kind == "commit" || rc.Kind == "direct"
	switch {
	case p.Outcome.Code == Absent:
		deadline := rc.Time + ReceiptDeadline.Milliseconds()
		at := v.header.Time.UnixMilli()
		when := func(ms int64) string { return time.UnixMilli(ms).UTC().Format(time.RFC3339) }
		switch {
		case !final:
			pr.Evidence = fmt.Sprintf("%s; L1 had not committed the session as of height %d, but only a commit's receipt promises that a session goes to L1 (its actor may have aborted it)", promised, p.Height)
		case at > deadline:
			pr.Broken = true
			pr.Evidence = fmt.Sprintf("%s; L1 had not committed the session as of height %d (%s), past the deadline %s (%s after the op's time) after which L1 takes no op of it; unless the node shows L1's verdict on the session",
				promised, p.Height, when(at), when(deadline), ReceiptDeadline)
		default:
			pr.Evidence = fmt.Sprintf("%s; L1 had not committed the session as of height %d (%s), but the node has until %s to get it there",
				promised, p.Height, when(at), when(deadline))
		}
	case op == nil:
		pr.Evidence = fmt.Sprintf("%s; the session L1 judged at height %d has no such op at seq %d (%d ops): its actor signed other ops under this id (an abort and the id used again), which no node can forge",
			promised, p.Height, rc.Seq, len(p.Ops))
	case v.outcome.Code == protocol.CodeResultMismatch:
		pr.Broken = true
		ev := v.r.Evidence
		pr.Evidence = fmt.Sprintf("%s; L1 rejected the bundle node %s signed, which holds this op, as RESULT_MISMATCH at height %d: it claimed result %s for op %d, re-execution gives %s",
			promised, p.Node, p.Height, ev.Claimed, ev.Seq, ev.Actual)
	case v.outcome.Code != protocol.CodeOK:
		pr.Evidence = fmt.Sprintf("%s; L1 rejected the session as %s at height %d, which an honest node can meet (a conflict with another session, an expiry)",
			promised, v.outcome.Code, p.Height)
	case rc.Result != op.ResultHash:
		pr.Broken = true
		pr.Evidence = fmt.Sprintf("%s; L1 committed that op with result %s at height %d", promised, op.ResultHash, p.Height)
	default:
		pr.Kept = true
		pr.Evidence = fmt.Sprintf("op %d and its result were committed at height %d", rc.Seq, p.Height)
	}
	return pr, nil
}
