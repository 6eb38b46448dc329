// Package buffer is duet's L2 core: sessions executed at once on an overlay
// of the verified L1 state, turned into signed bundles for L1.
package buffer

import (
	"crypto/ed25519"
	"errors"
	"fmt"

	"github.com/duet-bft/duet/protocol"
	"github.com/duet-bft/duet/service"
)

// Session is one open session: the ops its actor has signed so far, each
// already executed on the session's overlay (committed state plus the
// session's own writes). It is pure: no clock, no I/O; the caller supplies
// op times and makes steps durable.
type Session struct {
	ID    string
	Actor string
	tx    *service.Tx
	ops   []protocol.Op
	prev  protocol.Hash
}

// ErrSeq is returned by Step for an op whose seq is not the next one.
var ErrSeq = errors.New("buffer: op out of sequence")

// NewSession opens a session view over base (the committed state).
func NewSession(id, actor string, base service.Store) *Session {
	return &Session{ID: id, Actor: actor, tx: service.NewTx(base)}
}

// Seq is the seq the next op must carry.
func (s *Session) Seq() uint64 { return uint64(len(s.ops)) }

// Prev is the hash of the last kept op (zero before the first).
func (s *Session) Prev() protocol.Hash { return s.prev }

// Step executes op seq s.Seq() through reg.Apply. A successful op is kept
// (its writes stay in the overlay, the op enters the bundle); a failed one
// leaves the session unchanged. It returns the result and the op's hash.
func (s *Session) Step(reg *service.Registry, seq uint64, method, path string, body, sig []byte, timeMs int64) (service.Response, protocol.Hash, error) {
	if seq != s.Seq() {
		return service.Response{}, protocol.Hash{}, fmt.Errorf("%w: got seq %d, want %d", ErrSeq, seq, s.Seq())
	}
	op := &service.Op{Session: s.ID, Seq: seq, Actor: s.Actor, Method: method, Path: path,
		Body: body, Prev: s.prev, Signature: sig, Time: timeMs}
	resp := reg.Apply(s.tx, op)
	h := protocol.OpHash(op.Bytes())
	if resp.OK() {
		s.ops = append(s.ops, protocol.Op{Method: method, Path: path, Body: body, Signature: sig, Time: timeMs, Result: resp.Hash()})
		s.prev = h
	}
	return resp, h, nil
}

// Tx exposes the session's overlay (for its read and write sets).
func (s *Session) Tx() *service.Tx { return s.tx }

// Bundle returns the session as a bundle signed by the L2 node.
func (s *Session) Bundle(node string, key ed25519.PrivateKey) protocol.Bundle {
	b := protocol.Bundle{Session: s.ID, Actor: s.Actor, Node: node,
		Ops: append([]protocol.Op(nil), s.ops...), Reads: s.tx.Reads()}
	b.Sign(key)
	return b
}
