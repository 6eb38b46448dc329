package buffer

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"

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
	Result  protocol.Hash `json:"r,omitzero"`
	Final   *Final        `json:"f,omitempty"`
}

func encodeOp(session, actor string, seq uint64, method, path string, body, sig []byte, t int64, result protocol.Hash) []byte {
	return service.MustJSON(walRecord{Kind: "op", Session: session, Actor: actor, Seq: seq, Method: method,
		Path: path, Body: body, Sig: sig, Time: t, Result: result})
}

func encodeFinal(session string, f *Final) []byte {
	return service.MustJSON(walRecord{Kind: "end", Session: session, Final: f})
}

// replay rebuilds the live sessions of the WAL by re-executing their ops on
// the current committed state, in the order they were acknowledged. It
// returns the records to keep (those of live sessions).
func (b *Buffer) replay() ([][]byte, error) {
	raw, err := readWALFile(b.cfg.WALPath)
	if err != nil {
		return nil, err
	}
	type entry struct {
		ops   []walRecord
		raws  [][]byte
		ended bool
	}
	var order []string
	bySession := map[string]*entry{}
	for _, r := range raw {
		var rec walRecord
		if err := json.Unmarshal(r, &rec); err != nil {
			return nil, fmt.Errorf("buffer: wal record: %w", err)
		}
		e := bySession[rec.Session]
		if e == nil {
			e = &entry{}
			bySession[rec.Session] = e
			order = append(order, rec.Session)
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
	st, _ := b.chain.Committed()
	for _, id := range order {
		e := bySession[id]
		if e.ended || len(e.ops) == 0 {
			continue
		}
		if rec, ok := service.LookupSession(st, id); ok && rec.Node == b.cfg.Node {
			continue // L1 committed it; nothing left to do
		}
		if err := b.restore(e.ops, e.raws); err != nil {
			b.log.Warn("session could not be restored", "session", id, "err", err)
			continue
		}
		live = append(live, e.raws...)
	}
	b.log.Info("wal replayed", "records", len(raw), "live_sessions", len(b.sessions))
	return live, nil
}

var errReplayDiverged = errors.New("buffer: replay diverged")

// restore re-executes one session's acknowledged ops (raws: their records).
// If any result differs from the one acknowledged, the state moved while the
// node was down: the session is kept as rejected (CONFLICT) so its user
// learns why.
func (b *Buffer) restore(ops []walRecord, raws [][]byte) error {
	first := ops[0]
	s := &state{status: StatusOpen, subs: map[chan Event]struct{}{}, done: make(chan struct{})}
	s.Session = NewSession(first.Session, first.Actor, view{b, s})
	b.addLocked(s)
	now := b.cfg.Now()
	s.lastActive = now
	for i, op := range ops {
		if op.Seq != s.Seq() {
			break // a record past a gap was never acknowledged in order
		}
		s.hit = ""
		resp, h, _ := s.Step(b.cfg.Registry, op.Seq, op.Method, op.Path, op.Body, op.Sig, op.Time)
		if s.hit != "" || resp.Hash() != op.Result {
			b.finishLocked(s, &Final{Status: StatusRejected, Code: "CONFLICT",
				Reason: fmt.Sprintf("state changed while the L2 node was down: op %d now gives %d %s", op.Seq, resp.Status, truncate(resp.Body))})
			return errReplayDiverged
		}
		s.lastTime = op.Time
		s.wal = append(s.wal, raws[i])
		if op.Seq == 0 && op.Method == http.MethodPost && op.Path == service.PathSessions {
			s.claims = b.cfg.Registry.StartKeys(op.Body)
		}
		b.reserveLocked(s)
		r := OpResult{Seq: op.Seq, Method: op.Method, Path: op.Path, Status: resp.Status, Result: resp.Body, Time: op.Time, OpHash: h.String()}
		s.results = append(s.results, r)
		s.events = append(s.events, Event{Type: "op", Op: &r, Status: StatusOpen})
		switch {
		case op.Method == http.MethodPost && op.Path == service.CommitPath(s.ID):
			b.commitLocked(s, now)
		case op.Method == http.MethodDelete && op.Path == service.AbortPath(s.ID):
			b.finishLocked(s, &Final{Status: StatusAborted})
			return nil // nothing follows an abort
		case op.Seq == 0 && !(op.Method == http.MethodPost && op.Path == service.PathSessions):
			s.direct = true
			b.commitLocked(s, now)
		}
	}
	return nil
}

func readWALFile(path string) ([][]byte, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	recs, _, err := readRecords(f)
	return recs, err
}
