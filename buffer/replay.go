package buffer

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/duet-bft/duet/protocol"
	"github.com/duet-bft/duet/service"
)

// walRecord is one WAL entry: an acknowledged op ("op") or a session's end
// ("end"). JSON keeps the log readable with standard tools.
type walRecord struct {
	Kind    string        `json:"k"`
	Session string        `json:"s"`
	Actor   string        `json:"a,omitempty"`
	Seq     uint64        `json:"q,omitempty"`
	Method  string        `json:"m,omitempty"`
	Path    string        `json:"p,omitempty"`
	Body    []byte        `json:"b,omitempty"`
	Sig     []byte        `json:"g,omitempty"`
	Time    int64         `json:"t,omitempty"`
	Expires int64         `json:"x,omitempty"`
	Result  protocol.Hash `json:"r,omitzero"`
	Final   *Final        `json:"f,omitempty"`
}

func encodeOp(session, actor string, seq uint64, op protocol.Op) []byte {
	return service.MustJSON(walRecord{Kind: "op", Session: session, Actor: actor, Seq: seq, Method: op.Method,
		Path: op.Path, Body: op.Body, Sig: op.Signature, Time: op.Time, Expires: op.Expires, Result: op.Result})
}

func (r *walRecord) op() protocol.Op {
	return protocol.Op{Method: r.Method, Path: r.Path, Body: r.Body, Signature: r.Sig, Time: r.Time, Expires: r.Expires, Result: r.Result}
}

func encodeFinal(session string, f *Final) []byte {
	return service.MustJSON(walRecord{Kind: "end", Session: session, Final: f})
}

// replay rebuilds the live sessions of the WAL records raw by re-executing
// their ops on the committed state, in the order they were acknowledged.
// It returns the records to keep (those of live sessions).
func (c *core) replay(raw [][]byte, st service.Store, now time.Time) ([][]byte, error) {
	type entry struct {
		ops   []walRecord
		raws  [][]byte
		ended bool
	}
	var order []*entry
	bySession := map[string]*entry{} // the latest session of each id
	for _, r := range raw {
		var rec walRecord
		if err := json.Unmarshal(r, &rec); err != nil {
			return nil, fmt.Errorf("buffer: wal record: %w", err)
		}
		e := bySession[rec.Session]
		// An id is used again once its earlier session ended and was
		// forgotten: a seq 0 after an end (or after ops) opens a new one.
		if e == nil || (rec.Kind == "op" && rec.Seq == 0 && (e.ended || len(e.ops) > 0)) {
			e = &entry{}
			bySession[rec.Session] = e
			order = append(order, e)
		}
		switch rec.Kind {
		case "op":
			e.ops = append(e.ops, rec)
			e.raws = append(e.raws, r)
		case "end":
			e.ended = true
		}
	}
	var live [][]byte
	for _, e := range order {
		if e.ended || len(e.ops) == 0 {
			continue
		}
		id := e.ops[0].Session
		switch err := c.restore(e.ops, e.raws, st, now); {
		case errors.Is(err, errReplayDone):
			continue // L1 committed it; nothing left to do
		case errors.Is(err, errReplayDiverged):
			c.cfg.Logger.Warn("session could not be restored", "session", id, "err", err)
			continue
		case err != nil:
			return nil, err // the node cannot read its state: do not start
		}
		live = append(live, e.raws...)
	}
	c.cfg.Logger.Info("wal replayed", "records", len(raw), "live_sessions", len(c.sessions))
	return live, nil
}

var (
	errReplayDiverged = errors.New("buffer: replay diverged")
	errReplayDone     = errors.New("buffer: session committed on L1")
)

// chainHead returns the hash of the last op of the contiguous records
// from seq 0: the op chain the node acknowledged.
func chainHead(ops []walRecord) protocol.Hash {
	prev := protocol.ZeroHash
	for i, r := range ops {
		if r.Seq != uint64(i) {
			break
		}
		prev = protocol.OpHash(protocol.OpBytes(r.Session, r.Seq, prev, r.Method, r.Path, r.Body, r.Expires))
	}
	return prev
}

// restore re-executes one session's acknowledged ops (raws: their records).
// A session L1 already holds is done if L1's record is its op chain, and
// rejected if the id was taken by other ops. If any result differs from the
// one acknowledged, the state moved while the node was down: the session is
// kept as rejected (CONFLICT) so its user learns why.
func (c *core) restore(ops []walRecord, raws [][]byte, st service.Store, now time.Time) error {
	first := ops[0]
	rec, done := service.LookupSession(st, first.Actor, first.Session)
	if done && rec.LastOp == chainHead(ops).String() {
		return errReplayDone
	}
	s := c.newState(first.Session, first.Actor)
	c.add(s, now)
	if done {
		c.finish(s, &Final{Status: StatusRejected, Code: protocol.CodeAlreadyCommitted.String(),
			Reason: fmt.Sprintf("session id %s of %s was committed at height %d with other ops", first.Session, first.Actor, rec.Height)}, now)
		return errReplayDiverged
	}
	s.lastActive = now
	for i, op := range ops {
		if op.Seq != s.Seq() {
			break // a record past a gap was never acknowledged in order
		}
		resp, h, err := s.Step(c.cfg.Registry, op.Seq, op.op())
		if err != nil {
			return fmt.Errorf("buffer: replay of session %s: %w", op.Session, err)
		}
		if resp.Hash() != op.Result {
			code := "CONFLICT"
			if resp.Status == http.StatusRequestEntityTooLarge {
				code = "TOO_LARGE"
			}
			c.finish(s, &Final{Status: StatusRejected, Code: code,
				Reason: fmt.Sprintf("state changed while the L2 node was down: op %d now gives %d %s", op.Seq, resp.Status, truncate(resp.Body))}, now)
			return errReplayDiverged
		}
		s.lastTime = op.Time
		s.wal = append(s.wal, raws[i])
		c.reserveAll(s, now)
		c.resize(s)
		r := OpResult{Seq: op.Seq, Method: op.Method, Path: op.Path, Status: resp.Status, Result: resp.Body, Time: op.Time, OpHash: h.String()}
		s.results = append(s.results, r)
		s.events = append(s.events, Event{Type: "op", Op: &r, Status: StatusOpen})
		switch service.Classify(s.ID, op.Seq, op.Method, op.Path) {
		case service.KindCommit:
			c.commit(s, now)
			c.enqueue(s)
		case service.KindAbort:
			c.finish(s, &Final{Status: StatusAborted}, now)
			return nil // nothing follows an abort
		case service.KindDirect:
			s.direct = true
			c.commit(s, now)
			c.enqueue(s)
		}
	}
	return nil
}

// add registers a restored session as open.
func (c *core) add(s *state, now time.Time) {
	c.opened++
	s.opened = c.opened
	c.sessions[s.ID] = s
	c.open++
	c.actor(s.Actor, now).open++
}
