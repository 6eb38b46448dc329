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

func (v *verifier) judge(rc Receipt) (*Promise, error) {
	p := v.p
	if rc.Node != p.Node {
		return nil, fmt.Errorf("the receipt is node %s's; the proof's session went through node %s", rc.Node, p.Node)
	}
	if rc.Session != p.Session || rc.Actor != p.Actor {
		return nil, fmt.Errorf("the receipt is for session %s of %s, the proof for %s of %s", rc.Session, rc.Actor, p.Session, p.Actor)
	}
	if !rc.Verify(v.nodeKey, rc.Signature) {
		return nil, fmt.Errorf("node %s's signature of the receipt does not verify", rc.Node)
	}
	pr := &Promise{Node: rc.Node, Seq: rc.Seq}
	promised := fmt.Sprintf("it promised op %d (%s) with result %s at %s", rc.Seq, rc.Op, rc.Result,
		time.UnixMilli(rc.Time).UTC().Format(time.RFC3339Nano))
	n := uint64(len(p.Ops))
	if p.Outcome.Code == Absent {
		deadline := rc.Time + ReceiptDeadline.Milliseconds()
		at := v.header.Time.UnixMilli()
		when := func(ms int64) string { return time.UnixMilli(ms).UTC().Format(time.RFC3339) }
		if at > deadline {
			pr.Broken = true
			pr.Evidence = fmt.Sprintf("%s; L1 had not committed the session as of height %d (%s), past the deadline %s (%s after the op's time) after which L1 takes no op of it",
				promised, p.Height, when(at), when(deadline), ReceiptDeadline)
		} else {
			pr.Evidence = fmt.Sprintf("%s; L1 had not committed the session as of height %d (%s), but the node has until %s to get it there",
				promised, p.Height, when(at), when(deadline))
		}
		return pr, nil
	}
	switch v.outcome.Code {
	case protocol.CodeOK:
		pr.Broken = true
		switch {
		case rc.Seq >= n:
			pr.Evidence = fmt.Sprintf("%s; L1 committed the session at height %d with %d ops", promised, p.Height, n)
		case rc.Op != p.Ops[rc.Seq].Hash:
			pr.Evidence = fmt.Sprintf("%s; L1 committed op %d as %s at height %d", promised, rc.Seq, p.Ops[rc.Seq].Hash, p.Height)
		case rc.Result != p.Ops[rc.Seq].ResultHash:
			pr.Evidence = fmt.Sprintf("%s; L1 committed result %s for it at height %d", promised, p.Ops[rc.Seq].ResultHash, p.Height)
		default:
			pr.Broken, pr.Kept = false, true
			pr.Evidence = fmt.Sprintf("op %d and its result were committed at height %d", rc.Seq, p.Height)
		}
	case protocol.CodeResultMismatch:
		pr.Broken = true
		ev := v.r.Evidence
		pr.Evidence = fmt.Sprintf("%s; L1 rejected the session as RESULT_MISMATCH at height %d: node %s claimed result %s for op %d, re-execution gives %s",
			promised, p.Height, p.Node, ev.Claimed, ev.Seq, ev.Actual)
	default:
		pr.Evidence = fmt.Sprintf("%s; L1 rejected the session as %s at height %d, which an honest node can meet (a conflict with another session, or the actor's own error)",
			promised, v.outcome.Code, p.Height)
	}
	return pr, nil
}
