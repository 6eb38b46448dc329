package protocol

import (
	"crypto/ed25519"
	"encoding/hex"
	"strconv"
)

// Receipt is an L2 node's signed acknowledgement of one step: it executed op
// seq of actor's session (the op identified by its hash, of kind Kind) at
// Time and got Result. A client holding a receipt can prove what L2
// promised; L1's verdict on the bundle then either matches it or is
// evidence against the node (package proof). It names the actor because L1
// keys sessions by actor and id: without it, a receipt could not be held
// against L1's record of one actor's session, nor against its absence. It
// names the kind because only a commit (or a direct-mode op) is a promise
// to take the session to L1: an actor may abort a session after any step.
type Receipt struct {
	Node    string `json:"node"`
	Actor   string `json:"actor"`
	Session string `json:"session"`
	Seq     uint64 `json:"seq"`
	Kind    string `json:"kind"`    // service.OpKind: start, step, commit, abort or direct
	Op      Hash   `json:"op"`      // hex
	Result  Hash   `json:"result"`  // hex
	Time    int64  `json:"time"`    // Unix milliseconds: the op's time, which L1 checks against its block time
	Expires int64  `json:"expires"` // Unix milliseconds: the expiry the actor signed; L1 applies no session after its last op's
}

// Bytes returns what the node signs:
//
//	duet/receipt/v2\n<node>\n<actor>\n<session>\n<seq>\n<kind>\n<op hash hex>\n<result hash hex>\n<time ms>\n<expires ms>
//
// (v1 had no actor, kind or expiry.)
func (r *Receipt) Bytes() []byte {
	b := []byte("duet/receipt/v2\n")
	b = append(b, r.Node...)
	b = append(b, '\n')
	b = append(b, r.Actor...)
	b = append(b, '\n')
	b = append(b, r.Session...)
	b = append(b, '\n')
	b = strconv.AppendUint(b, r.Seq, 10)
	b = append(b, '\n')
	b = append(b, r.Kind...)
	b = append(b, '\n')
	b = hex.AppendEncode(b, r.Op[:])
	b = append(b, '\n')
	b = hex.AppendEncode(b, r.Result[:])
	b = append(b, '\n')
	b = strconv.AppendInt(b, r.Time, 10)
	b = append(b, '\n')
	b = strconv.AppendInt(b, r.Expires, 10)
	return b
}

// Sign returns the node's signature of r.
func (r *Receipt) Sign(key ed25519.PrivateKey) []byte { return ed25519.Sign(key, r.Bytes()) }

// Verify checks a receipt signature against the node's key.
func (r *Receipt) Verify(nodeKey ed25519.PublicKey, sig []byte) bool {
	return Verify(nodeKey, r.Bytes(), sig)
}
