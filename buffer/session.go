// Package buffer is duet's L2 core: sessions executed at once on an overlay
// of the verified L1 state, turned into signed bundles for L1.
package buffer

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/duet-bft/duet/protocol"
	"github.com/duet-bft/duet/service"
)

// Session is one open session: the ops its actor has signed so far, each
// already executed on the session's overlay (committed state plus the
// session's own writes). It is pure: no clock, no I/O; the caller supplies
// op times and makes steps durable.
//
// A session stays within what L1 accepts: Step refuses (413 TOO_LARGE) an op
// after which the session, with room left for its commit, would hold more
// than protocol.MaxOps ops or a bundle larger than MaxBytes. So a node never
// signs a receipt for an op L1 could not accept. The answers the node keeps
// for the session are bounded by MaxBytes too, so its memory is.
type Session struct {
	ID    string
	Actor string
	// MaxBytes bounds the session's bundle (its encoded size, with room for
	// the commit), and apart from it the bytes of the answers kept for GET
	// and the event stream. 0 means protocol.MaxBundleBytes; more is not
	// allowed.
	MaxBytes int

	tx        *service.Tx
	ops       []protocol.Op
	prev      protocol.Hash
	opBytes   int // protocol.OpSize of every kept op
	respBytes int // answer bytes of every kept op
	commit    int // protocol.OpSize of the largest commit of this session
	pending   *protocol.Op
	pendKind  service.OpKind
	check     func(tx *service.Tx, resp service.Response, size int) error // the caller's own limits (Buffer: reservations, quotas), given the size the session would have
}

// ErrSeq is returned by Step for an op whose seq is not the next one.
var ErrSeq = errors.New("buffer: op out of sequence")

// NewSession opens a session view over base (the committed state).
func NewSession(id, actor string, base service.Store) *Session {
	s := &Session{ID: id, Actor: actor, tx: service.NewTx(base)}
	s.tx.Limit(s.limit)
	s.commit = protocol.OpSize(&protocol.Op{Method: http.MethodPost, Path: service.CommitPath(id), Body: []byte(service.ControlBody),
		Signature: make([]byte, ed25519.SignatureSize), Time: 1 << 62, Expires: 1 << 62})
	return s
}

// Seq is the seq the next op must carry.
func (s *Session) Seq() uint64 { return uint64(len(s.ops)) }

// Prev is the hash of the last kept op (zero before the first).
func (s *Session) Prev() protocol.Hash { return s.prev }

// Size is the bytes the session holds: its bundle, with room for the
// commit, the answers kept for it, and its overlay's keys and values.
func (s *Session) Size() int {
	n, readSz := s.tx.ReadSetSize()
	return s.size(len(s.ops), s.opBytes, n, readSz, true) + s.respBytes + s.tx.Bytes()
}

// anyNode is the longest node id: sizes are counted as if the bundle were
// signed by it, so they bound what any node would submit.
var anyNode = strings.Repeat("n", protocol.MaxIDLen)

func (s *Session) size(nops, opBytes, nreads, readSz int, commitRoom bool) int {
	if commitRoom {
		nops++
		opBytes += s.commit
	}
	return protocol.BundleSize(s.ID, s.Actor, anyNode, nops, opBytes, nreads, readSz, protocol.MaxAttempt)
}

func (s *Session) maxBytes() int {
	if s.MaxBytes <= 0 || s.MaxBytes > protocol.MaxBundleBytes {
		return protocol.MaxBundleBytes
	}
	return s.MaxBytes
}

// limit is the session's check before Apply keeps an op (service.Tx.Limit).
func (s *Session) limit(tx *service.Tx, resp service.Response) error {
	op := s.pending
	if op == nil || s.pendKind == service.KindAbort {
		return nil // an abort never reaches L1
	}
	final := s.pendKind == service.KindCommit || s.pendKind == service.KindDirect
	nops := len(s.ops) + 1
	if !final {
		nops++ // the commit must still fit
	}
	if nops > protocol.MaxOps {
		return fmt.Errorf("a session holds at most %d ops, its commit included (protocol.MaxOps); commit this one and start another", protocol.MaxOps)
	}
	n, readSz := tx.ReadSetSize()
	bundle := s.size(len(s.ops)+1, s.opBytes+protocol.OpSize(op), n, readSz, !final)
	answers := s.respBytes + len(resp.Body)
	if max := s.maxBytes(); bundle > max {
		return fmt.Errorf("the session's bundle would be %d bytes with room for its commit, over the limit of %d (max_session_bytes, at most protocol.MaxBundleBytes); commit it and start another", bundle, max)
	} else if answers > max {
		return fmt.Errorf("the answers this node keeps for the session would be %d bytes, over the limit of %d (max_session_bytes); commit it and start another", answers, max)
	}
	if s.check != nil {
		return s.check(tx, resp, bundle+answers+tx.Bytes())
	}
	return nil
}

// Step executes op (its Method, Path, Body, Signature, Time and Expires) as
// op seq s.Seq() through reg.Apply. A successful op is kept (its writes stay
// in the overlay, the op with its result enters the bundle); a failed one
// leaves the session unchanged. It returns the result and the op's hash;
// an error is ErrSeq, or a failure of the store under the session (no
// result at all).
func (s *Session) Step(reg *service.Registry, seq uint64, op protocol.Op) (service.Response, protocol.Hash, error) {
	if seq != s.Seq() {
		return service.Response{}, protocol.Hash{}, fmt.Errorf("%w: got seq %d, want %d", ErrSeq, seq, s.Seq())
	}
	sop := &service.Op{Session: s.ID, Seq: seq, Actor: s.Actor, Method: op.Method, Path: op.Path,
		Body: op.Body, Prev: s.prev, Signature: op.Signature, Time: op.Time, Expires: op.Expires}
	s.pending, s.pendKind = &op, service.Classify(s.ID, seq, op.Method, op.Path)
	resp, err := reg.Apply(s.tx, sop)
	s.pending = nil
	h := protocol.OpHash(sop.Bytes())
	if err != nil {
		return resp, h, err
	}
	if resp.OK() {
		op.Result = resp.Hash()
		s.ops = append(s.ops, op)
		s.prev = h
		s.opBytes += protocol.OpSize(&op)
		s.respBytes += len(resp.Body)
	}
	return resp, h, nil
}

// started is the time of the session's first op (0 before it).
func (s *Session) started() int64 {
	if len(s.ops) == 0 {
		return 0
	}
	return s.ops[0].Time
}

// expires is the expiry of the session's last op (0 before the first).
func (s *Session) expires() int64 {
	if len(s.ops) == 0 {
		return 0
	}
	return s.ops[len(s.ops)-1].Expires
}

// Tx exposes the session's overlay (for its read and write sets).
func (s *Session) Tx() *service.Tx { return s.tx }

// Results returns the results digest of the kept ops, as L1 records it.
func (s *Session) Results() protocol.Hash {
	rs := make([]protocol.Hash, len(s.ops))
	for i := range s.ops {
		rs[i] = s.ops[i].Result
	}
	return protocol.ResultsDigest(rs)
}

// Bundle returns the session as a bundle signed by the L2 node, at attempt
// (the node's count of earlier submissions of it).
func (s *Session) Bundle(node string, key ed25519.PrivateKey, attempt uint64) protocol.Bundle {
	b := protocol.Bundle{Session: s.ID, Actor: s.Actor, Node: node,
		Ops: append([]protocol.Op(nil), s.ops...), Reads: s.tx.Reads(), Attempt: attempt}
	b.Sign(key)
	return b
}
