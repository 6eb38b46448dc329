package buffer

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/duet-bft/duet/apps/supplychain"
	"github.com/duet-bft/duet/protocol"
	"github.com/duet-bft/duet/service"
)

// walSessions returns the sessions named by the WAL's records, in order of
// first appearance, and the kinds of their records.
func (e *env) walSessions() ([]string, map[string][]string) {
	e.t.Helper()
	recs, err := ReadWAL(nil, e.cfg.WALPath)
	if err != nil {
		e.t.Fatal(err)
	}
	var order []string
	kinds := map[string][]string{}
	for _, r := range recs {
		var rec walRecord
		if err := json.Unmarshal(r, &rec); err != nil {
			e.t.Fatalf("WAL record %q: %v", r, err)
		}
		if _, seen := kinds[rec.Session]; !seen {
			order = append(order, rec.Session)
		}
		kinds[rec.Session] = append(kinds[rec.Session], rec.Kind)
	}
	return order, kinds
}

// fourSessions leaves the node with a session in each state: "open"
// (start and scan, on PKG-1, returned), "committing" (start, scan and commit
// on PKG-2, submitted and never judged; its ops come between open's two),
// "aborted" and "committed" (judged OK).
func (e *env) fourSessions() *sess {
	e.t.Helper()
	open := newSess("open", operator1)
	e.start(open, "PKG-1")
	e.commitOne(newSess("committing", operator2), "PKG-2")
	e.scan(open, "PKG-1")
	e.abort(e.startNew("aborted", operator1, ""))
	committed := newSess("committed", operator2)
	e.start(committed, "")
	e.commit(committed)
	e.chain.judge(e.t, e.reg, e.buf, e.chain.next(e.t), protocol.CodeOK)
	e.waitFinal("committed")
	return open
}

// TestReplay restarts the node over its WAL: open sessions come back with
// their ops and go on, committing ones are resubmitted, ended ones are
// gone, and the WAL is compacted to the live sessions.
func TestReplay(t *testing.T) {
	e := newEnv(t, nil)
	open := e.fourSessions()
	before, _ := e.buf.Lookup("open", "")

	_, kinds := e.walSessions()
	if got := kinds["aborted"]; !slices.Contains(got, "end") {
		t.Fatalf("aborted session's records before restart: %v, want an end record", got)
	}

	e.reopen()

	// Open: same ops, same results, still reserved, and it goes on.
	after, ok := e.buf.Lookup("open", "")
	if !ok || after.Status != StatusOpen || len(after.Ops) != len(before.Ops) {
		t.Fatalf("open session after restart: %+v, want open with %d ops", after, len(before.Ops))
	}
	for i := range before.Ops {
		a, b := after.Ops[i], before.Ops[i]
		if a.OpHash != b.OpHash || a.Status != b.Status || string(a.Result) != string(b.Result) || a.Time != b.Time {
			t.Errorf("op %d after restart: got %+v, want %+v", i, a, b)
		}
	}
	e.wantReserved(newSess("probe", operator2), "open")
	e.must(open, http.StatusOK, http.MethodPost, pkgPath("PKG-1", "validate"), validateBody)
	if rep := e.do(&sess{id: "open", who: operator1, seq: 2, prev: open.prev}, http.MethodPost, pkgPath("PKG-1", "qc"), qcBody); rep.Resp.Status != http.StatusConflict {
		t.Errorf("seq 2 again after restart: got %d, want 409", rep.Resp.Status)
	}

	// Committing: resubmitted as it was.
	sub := e.chain.next(t)
	if len(sub.batch.Bundles) != 1 || sub.batch.Bundles[0].Session != "committing" || len(sub.batch.Bundles[0].Ops) != 3 {
		t.Fatalf("resubmission after restart: %+v", sub.batch.Bundles)
	}
	if got := e.status("committing"); got != StatusCommitting {
		t.Errorf("committing session after restart: got %s", got)
	}
	e.chain.judge(t, e.reg, e.buf, sub, protocol.CodeOK)
	if f := e.waitFinal("committing"); f.Status != StatusCommitted {
		t.Errorf("committing session final: %+v", f)
	}

	// Ended: not restored.
	if _, ok := e.buf.Lookup("aborted", ""); ok {
		t.Error("aborted session restored")
	}
	if v, _ := e.buf.Lookup("committed", operator2.ID); v.Status != StatusCommitted || len(v.Ops) != 0 {
		t.Errorf("committed session: got %+v, want only its L1 record", v)
	}

	// Compacted: only the live sessions' records remain (then what
	// happened since the restart). An end record is written without
	// waiting for it.
	order, kinds := e.walSessions()
	for deadline := time.Now().Add(5 * time.Second); len(kinds["committing"]) < 4 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
		order, kinds = e.walSessions()
	}
	for _, id := range order {
		if id == "aborted" || id == "committed" {
			t.Errorf("WAL still holds records of ended session %s: %v", id, kinds[id])
		}
	}
	if got := kinds["open"]; len(got) != 3 {
		t.Errorf("records of the open session: got %v, want 3 ops", got)
	}
	if got := kinds["committing"]; !slices.Equal(got, []string{"op", "op", "op", "end"}) {
		t.Errorf("records of the committing session: got %v, want 3 ops and its end", got)
	}

	// A second restart drops what ended since.
	e.reopen()
	order, _ = e.walSessions()
	if !slices.Equal(order, []string{"open"}) {
		t.Errorf("sessions in the WAL after the second restart: got %v, want [open]", order)
	}
	e.chain.none(t, 30*time.Millisecond)
}

// TestReplayDiverged: the committed state changed while the node was down
// so that an acknowledged op gives another result; the session comes back
// rejected as CONFLICT, releases its package and leaves the WAL.
func TestReplayDiverged(t *testing.T) {
	moved, same := pkgChanges()
	tests := []struct {
		name     string
		change   func(c *fakeChain)
		diverged bool
	}{
		{"package moved on", func(c *fakeChain) { c.putJSON(supplychain.PackageKey("PKG-1"), moved) }, true},
		{"courier added", func(c *fakeChain) {
			c.putJSON(supplychain.CourierKey("courier-2"), supplychain.Courier{ID: "courier-2", Name: "Two"})
		}, false},
		{"package rewritten, same results", func(c *fakeChain) { c.putJSON(supplychain.PackageKey("PKG-1"), same) }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, s := stoppedMidSession(t)
			tt.change(e.chain)
			e.open()

			v, ok := e.buf.Lookup("wf-1", "")
			if !tt.diverged {
				if !ok || v.Status != StatusOpen {
					t.Fatalf("session after restart: %+v, want open", v)
				}
				e.must(s, http.StatusOK, http.MethodPost, pkgPath("PKG-1", "validate"), validateBody)
				return
			}
			if !ok || v.Status != StatusRejected || v.Final == nil || v.Final.Code != "CONFLICT" ||
				!strings.Contains(v.Final.Reason, "op 1 now gives 409") {
				t.Fatalf("session after restart: %+v final %+v, want rejected CONFLICT naming op 1", v, v.Final)
			}
			if rep := e.do(s, http.MethodPost, pkgPath("PKG-1", "validate"), validateBody); rep.Resp.Status != http.StatusConflict {
				t.Errorf("op on the rejected session: got %d %s, want 409", rep.Resp.Status, rep.Resp.Body)
			}
			other := e.startNew("other", operator2, "")
			if rep := e.do(other, http.MethodPost, pkgPath("PKG-1", "scan"), `{}`); errorCode(rep.Resp) == "CONFLICT" {
				t.Errorf("package still reserved by the rejected session: %s", rep.Resp.Body)
			}
			if order, _ := e.walSessions(); slices.Contains(order, "wf-1") {
				t.Errorf("WAL still holds the rejected session: %v", order)
			}
			e.chain.none(t, 30*time.Millisecond)
		})
	}
}

// TestReplayCommittedWhileDown: L1 applied a committing session while the
// node was down; it is not resubmitted.
func TestReplayCommittedWhileDown(t *testing.T) {
	e := newEnv(t, nil)
	s := newSess("wf-1", operator1)
	sub := e.commitOne(s, "PKG-1")
	e.close()
	e.chain.putJSON(service.SessionKey(operator1.ID, "wf-1"), recordOf(&sub.batch.Bundles[0], 40, "AB"))
	e.open()
	e.chain.none(t, 50*time.Millisecond)
	if v, _ := e.buf.Lookup("wf-1", operator1.ID); v.Status != StatusCommitted || v.Final.Height != 40 {
		t.Errorf("session: %+v", v)
	}
	if order, _ := e.walSessions(); len(order) != 0 {
		t.Errorf("WAL sessions: got %v, want none", order)
	}
}

// TestReplayDirect: a direct-mode op acknowledged to the WAL (its caller
// may have timed out) is resubmitted after a restart.
func TestReplayDirect(t *testing.T) {
	e := newEnv(t, nil)
	s := newSess("create-PKG-9", supplier)
	in := s.next(http.MethodPost, supplychain.PathPackages, createBody("PKG-9"))
	done := make(chan *Reply, 1)
	go func() { done <- e.buf.Do(t.Context(), in) }()
	// Wait until the op is in the WAL, then restart.
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, kinds := e.walSessions(); len(kinds[s.id]) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("direct op never reached the WAL")
		}
		time.Sleep(time.Millisecond)
	}
	e.chain.next(t) // submitted, never judged
	e.close()
	e.open()
	v, _ := e.buf.Lookup(s.id, "")
	if v.Status != StatusCommitting || !v.Direct {
		t.Fatalf("direct session after restart: %+v, want committing, direct", v)
	}
	sub := e.chain.next(t)
	e.chain.judge(t, e.reg, e.buf, sub, protocol.CodeOK)
	if f := e.waitFinal(s.id); f.Status != StatusCommitted {
		t.Errorf("final: %+v", f)
	}
	select {
	case rep := <-done:
		t.Errorf("the caller of the first node got an answer: %d %s", rep.Resp.Status, rep.Resp.Body)
	default:
	}
}

// TestReplayTornTail: a crash in the middle of a WAL write loses only the
// op that was never acknowledged.
func TestReplayTornTail(t *testing.T) {
	tests := []struct {
		name   string
		mangle func([]byte) []byte
	}{
		// The log is zero-filled past its records: cut into the last one.
		{"cut", func(d []byte) []byte { d = bytes.TrimRight(d, "\x00"); return d[:len(d)-7] }},
		{"zero-filled", func(d []byte) []byte { return append(d, make([]byte, 4096)...) }},
		{"garbage", func(d []byte) []byte { return append(bytes.TrimRight(d, "\x00"), "\x10not a record"...) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, s := stoppedMidSession(t)
			data, err := os.ReadFile(e.cfg.WALPath)
			if err != nil {
				t.Fatal(err)
			}
			if tt.name == "cut" {
				// Lose the scan: append a third op, then cut into it.
				e.open()
				e.must(s, http.StatusOK, http.MethodPost, pkgPath("PKG-1", "validate"), validateBody)
				e.close()
				data, _ = os.ReadFile(e.cfg.WALPath)
				s.seq-- // the validate is lost
			}
			if err := os.WriteFile(e.cfg.WALPath, tt.mangle(data), 0o600); err != nil {
				t.Fatal(err)
			}
			e.open()
			v, _ := e.buf.Lookup("wf-1", "")
			if v.Status != StatusOpen || len(v.Ops) != 2 {
				t.Fatalf("session after a torn tail: %s with %d ops, want open with 2", v.Status, len(v.Ops))
			}
			if tt.name == "cut" {
				return
			}
			e.must(s, http.StatusOK, http.MethodPost, pkgPath("PKG-1", "validate"), validateBody)
			e.reopen()
			if v, _ := e.buf.Lookup("wf-1", ""); len(v.Ops) != 3 {
				t.Errorf("ops after another restart: got %d, want 3", len(v.Ops))
			}
		})
	}
}

// TestReplayKeepsStartClaims: a session that named its package at start
// still holds it after a restart, before it has written anything.
func TestReplayKeepsStartClaims(t *testing.T) {
	e := newEnv(t, nil)
	e.start(newSess("holder", operator1), "PKG-1")
	e.reopen()
	late := newSess("late", operator2)
	if r := e.do(late, http.MethodPost, service.PathSessions, `{"package_id":"PKG-1"}`); r.Resp.Status != http.StatusConflict ||
		!strings.Contains(string(r.Resp.Body), "holder") {
		t.Fatalf("start naming the held package after restart: got %d %s, want 409 naming holder", r.Resp.Status, r.Resp.Body)
	}
}

// TestOnlineCompaction: once the WAL has grown by CompactAt, the running
// node rewrites it with the records of its live sessions only, in the order
// they opened, and appends go on in the new log; a restart restores exactly
// those sessions, and they go on.
func TestOnlineCompaction(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.CompactAt = 1 })
	open := e.fourSessions()

	// The committer compacts on its next housekeeping tick (every second).
	want := map[string][]string{"open": {"op", "op"}, "committing": {"op", "op", "op"}}
	var order []string
	var kinds map[string][]string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if order, kinds = e.walSessions(); reflect.DeepEqual(kinds, want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("WAL never compacted: sessions %v with records %v, want %v", order, kinds, want)
		}
	}
	if !slices.Equal(order, []string{"open", "committing"}) {
		t.Errorf("compacted WAL order: got %v, want the order the sessions opened", order)
	}

	// An op after the compaction lands in the new log, and survives a restart.
	e.must(open, http.StatusOK, http.MethodPost, pkgPath("PKG-1", "validate"), validateBody)
	e.reopen()
	if v, ok := e.buf.Lookup("open", ""); !ok || v.Status != StatusOpen || len(v.Ops) != 3 {
		t.Fatalf("open session after compaction and restart: %+v, want open with 3 ops", v)
	}
	if got := e.status("committing"); got != StatusCommitting {
		t.Errorf("committing session after compaction and restart: got %s", got)
	}
	for _, id := range []string{"aborted", "committed"} {
		if v, ok := e.buf.Lookup(id, ""); ok && v.Status == StatusOpen {
			t.Errorf("%s came back open after compaction: %+v", id, v)
		}
	}
	e.must(open, http.StatusOK, http.MethodPost, pkgPath("PKG-1", "qc"), qcBody)
	e.commit(open)
}

// TestReplayReusedID: a session id used again after its first session
// ended and was forgotten comes back after a restart as the new session;
// the end of the old one does not hide it.
func TestReplayReusedID(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Retain = time.Minute })
	old := newSess("x", operator1)
	e.start(old, "")
	e.abort(old)
	e.clock.Advance(2 * time.Minute)
	e.buf.housekeep() // forgets the aborted x
	reused := newSess("x", operator2)
	e.start(reused, "PKG-1")
	e.scan(reused, "PKG-1")
	if order, kinds := e.walSessions(); len(order) != 1 || strings.Join(kinds["x"], " ") != "op op end op op" {
		t.Fatalf("WAL before the restart: %v %v", order, kinds)
	}
	e.reopen()
	v, ok := e.buf.Lookup("x", "")
	if !ok || v.Actor != operator2.ID || v.Status != StatusOpen || len(v.Ops) != 2 {
		t.Fatalf("x after the restart: %+v (found %v), want operator-2's open session with 2 ops", v, ok)
	}
	e.must(reused, http.StatusOK, http.MethodPost, pkgPath("PKG-1", "validate"), validateBody)
}
