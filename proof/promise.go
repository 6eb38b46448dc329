package proof

import (
	"fmt"
	"time"

	"github.com/duet-bft/duet/protocol"
)

// MinPromiseWindow is the least time, from a commit's receipt to the
// commit's expiry, for which a node answers for getting the session on L1.
// L1 applies no session after its last op's expiry, so the expiry is the
// deadline; a commit that expires sooner is the actor's choice, and a node
// that misses it is not blamed.
const MinPromiseWindow = time.Minute

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
	v, r, err := verify(trust, raw)
	if err != nil {
		return r, nil, err
	}
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
//     L1 had not committed by the commit's expiry, after which L1 never
//     applies it, the node having had at least MinPromiseWindow (a
//     rebuttable claim: the node answers it with the proof of L1's verdict
//     on the session, which any node builds).
//
// Anything else the actor could have caused (an abort, a session id used
// again, the same signed op sent again, two commits signed, a stale read)
// is not attributable to the node.
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
	var op *Op // the proof's op with the receipt's hash at its seq, run at the receipt's time
	if rc.Seq < uint64(len(p.Ops)) && p.Ops[rc.Seq].Hash == rc.Op && p.Ops[rc.Seq].Time == rc.Time {
		op = &p.Ops[rc.Seq]
	}
	final := rc.Kind == "commit" || rc.Kind == "direct"
	switch {
	case p.Outcome.Code == Absent:
		at := v.header.Time.UnixMilli()
		when := func(ms int64) string { return time.UnixMilli(ms).UTC().Format(time.RFC3339Nano) }
		switch {
		case !final:
			pr.Evidence = fmt.Sprintf("%s; L1 had not committed the session as of height %d, but only a commit's receipt promises that a session goes to L1 (its actor may have aborted it)", promised, p.Height)
		case rc.Expires-rc.Time < MinPromiseWindow.Milliseconds():
			pr.Evidence = fmt.Sprintf("%s; L1 had not committed the session as of height %d, but the commit expired %s after the receipt, less than the %s a node answers for",
				promised, p.Height, time.Duration(rc.Expires-rc.Time)*time.Millisecond, MinPromiseWindow)
		case at > rc.Expires:
			pr.Broken = true
			pr.Evidence = fmt.Sprintf("%s; L1 had not committed the session as of height %d (%s), after the commit's expiry %s, after which L1 never applies it; unless the node shows L1's verdict on the session",
				promised, p.Height, when(at), when(rc.Expires))
		default:
			pr.Evidence = fmt.Sprintf("%s; L1 had not committed the session as of height %d (%s), but the node has until the commit's expiry, %s, to get it there: ask again after it",
				promised, p.Height, when(at), when(rc.Expires))
		}
	case op == nil:
		pr.Evidence = fmt.Sprintf("%s; the session L1 judged at height %d has no such op at seq %d run at that time (%d ops): its actor sent other ops under this id, or the same op again after an abort, which no node can forge",
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
