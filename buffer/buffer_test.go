package buffer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/duet-bft/duet/apps/supplychain"
	"github.com/duet-bft/duet/protocol"
	"github.com/duet-bft/duet/service"
	"github.com/duet-bft/duet/service/servicetest"
)

func TestConfigValidate(t *testing.T) {
	good := func() Config {
		c := Config{Node: node.ID, Key: node.Key, Registry: supplychain.New(), WALPath: "wal.log"}
		c.SetDefaults()
		return c
	}
	tests := []struct {
		name   string
		adjust func(*Config)
		ok     bool
	}{
		{"complete", func(*Config) {}, true},
		{"no node", func(c *Config) { c.Node = "" }, false},
		{"bad node id", func(c *Config) { c.Node = "l2 0" }, false},
		{"no key", func(c *Config) { c.Key = nil }, false},
		{"short key", func(c *Config) { c.Key = c.Key[:32] }, false},
		{"no registry", func(c *Config) { c.Registry = nil }, false},
		{"no wal", func(c *Config) { c.WALPath = "" }, false},
		{"negative batch max", func(c *Config) { c.BatchMax = -1 }, false},
		{"negative interval", func(c *Config) { c.BatchInterval = -time.Millisecond }, false},
		{"zero quota", func(c *Config) { c.MaxOpenPerActor = 0 }, false},
		{"no rate limit", func(c *Config) { c.ActorRate = -1 }, true},
		{"no clock", func(c *Config) { c.Now = nil }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := good()
			tt.adjust(&c)
			before := fmt.Sprintf("%+v", c)
			if err := c.Validate(); (err == nil) != tt.ok {
				t.Fatalf("Validate: got %v, want ok %v", err, tt.ok)
			}
			if after := fmt.Sprintf("%+v", c); after != before {
				t.Errorf("Validate changed the config:\n%s\n%s", before, after)
			}
		})
	}
	var c Config
	c.SetDefaults()
	if c.BatchInterval != 10*time.Millisecond || c.BatchMax != 256 || c.SessionTTL != 15*time.Minute ||
		c.MaxOpen != 10000 || c.MaxQueue != 20000 || c.MaxLag != 2*time.Second || c.ResubmitAfter != 10*time.Second || c.MaxRebase != 5 ||
		c.Retain != 10*time.Minute || c.ActorBurst != 400 || c.Now == nil || c.Logger == nil || c.Observer == nil || c.FS == nil {
		t.Errorf("defaults not filled: %+v", c)
	}
	// Set fields are kept.
	c = Config{BatchMax: 7, ActorRate: -1}
	c.SetDefaults()
	if c.BatchMax != 7 || c.ActorRate != -1 || c.ActorBurst != 1 {
		t.Errorf("SetDefaults over set fields: BatchMax %d, ActorRate %g, ActorBurst %d", c.BatchMax, c.ActorRate, c.ActorBurst)
	}
}

// TestWorkflowCommit runs the paper's workflow: every step is answered at
// once with a receipt; the commit produces exactly one bundle holding every
// op as signed, with the results that were answered; an OK verdict commits.
func TestWorkflowCommit(t *testing.T) {
	e := newEnv(t, nil)
	s := newSess("wf-1", operator1)
	var inputs []*Input
	var replies []*Reply
	send := func(want int, method, path, body string) {
		t.Helper()
		in := s.next(method, path, body)
		rep := e.buf.Do(context.Background(), in)
		if rep.Resp.Status != want {
			t.Fatalf("%s %s: got %d %s, want %d", method, path, rep.Resp.Status, rep.Resp.Body, want)
		}
		s.advance(in)
		inputs, replies = append(inputs, in), append(replies, rep)
	}
	send(http.StatusCreated, http.MethodPost, service.PathSessions, `{"package_id":"PKG-1"}`)
	send(http.StatusOK, http.MethodPost, pkgPath("PKG-1", "scan"), `{}`)
	send(http.StatusOK, http.MethodPost, pkgPath("PKG-1", "validate"), validateBody)
	send(http.StatusOK, http.MethodPost, pkgPath("PKG-1", "qc"), qcBody)
	send(http.StatusOK, http.MethodPost, pkgPath("PKG-1", "label"), labelBody)
	before := e.chain.snapshot()
	if got := e.status("wf-1"); got != StatusOpen {
		t.Fatalf("status before commit: got %s, want %s", got, StatusOpen)
	}
	if got := stage(t, e.buf.PendingView(), "PKG-1"); got != supplychain.StageCreated {
		t.Errorf("L2 view of an open session's package: got stage %s, want %s (open sessions are private)", got, supplychain.StageCreated)
	}
	send(http.StatusAccepted, http.MethodPost, service.CommitPath("wf-1"), `{}`)

	// Receipts: signed by the node, for this op and the result answered.
	prev := protocol.ZeroHash
	for i, in := range inputs {
		rep := replies[i]
		rc := rep.Receipt
		if rc == nil {
			t.Fatalf("op %d: no receipt", i)
		}
		if !rc.Verify(node.Public(), rep.ReceiptSig) {
			t.Errorf("op %d: receipt signature does not verify with the node key", i)
		}
		opHash := protocol.OpHash(protocol.OpBytes(in.Session, in.Seq, prev, in.Method, in.Path, in.Body, in.Expires))
		prev = opHash
		if rc.Node != node.ID || rc.Session != "wf-1" || rc.Seq != uint64(i) {
			t.Errorf("op %d: receipt names node %s session %s seq %d, want %s wf-1 %d", i, rc.Node, rc.Session, rc.Seq, node.ID, i)
		}
		if rc.Op != opHash {
			t.Errorf("op %d: receipt op hash: got %s, want %s", i, rc.Op, opHash)
		}
		if want := protocol.ResultHash(rep.Resp.Status, rep.Resp.Body); rc.Result != want {
			t.Errorf("op %d: receipt result hash: got %s, want %s", i, rc.Result, want)
		}
		if rep.Final != nil {
			t.Errorf("op %d: got a final outcome for a session op", i)
		}
	}
	if got := e.status("wf-1"); got != StatusCommitting {
		t.Fatalf("status after commit: got %s, want %s", got, StatusCommitting)
	}
	if got := stage(t, e.buf.PendingView(), "PKG-1"); got != supplychain.StageLabeled {
		t.Errorf("L2 view of a committing session's package: got stage %s, want %s", got, supplychain.StageLabeled)
	}

	// Exactly one bundle with every op as signed and answered.
	sub := e.chain.next(t)
	if got := len(sub.batch.Bundles); got != 1 {
		t.Fatalf("bundles in the batch: got %d, want 1", got)
	}
	b := sub.batch.Bundles[0]
	if b.Session != "wf-1" || b.Actor != operator1.ID || b.Node != node.ID {
		t.Errorf("bundle names session %s actor %s node %s, want wf-1 %s %s", b.Session, b.Actor, b.Node, operator1.ID, node.ID)
	}
	if len(b.Ops) != len(inputs) {
		t.Fatalf("ops in the bundle: got %d, want %d", len(b.Ops), len(inputs))
	}
	for i, op := range b.Ops {
		in, rep := inputs[i], replies[i]
		if op.Method != in.Method || op.Path != in.Path || !bytes.Equal(op.Body, in.Body) || !bytes.Equal(op.Signature, in.Signature) {
			t.Errorf("op %d: got %s %s %s, want %s %s %s with the actor's signature", i, op.Method, op.Path, op.Body, in.Method, in.Path, in.Body)
		}
		if want := rep.Resp.Hash(); op.Result != want {
			t.Errorf("op %d: claimed result %s, want the answered %s", i, op.Result, want)
		}
		if op.Time != rep.Receipt.Time {
			t.Errorf("op %d: time %d, receipt says %d", i, op.Time, rep.Receipt.Time)
		}
	}
	if i := b.VerifyOps(operator1.Public()); i != -1 {
		t.Errorf("actor signature of op %d does not verify", i)
	}
	if !b.VerifyNode(node.Public()) {
		t.Error("bundle's node signature does not verify")
	}
	wantReads := map[string]bool{service.ActorKey(operator1.ID): true, supplychain.PackageKey("PKG-1"): true,
		service.ActorKey(supplier.ID): true, supplychain.CourierKey("courier-1"): true}
	for _, r := range b.Reads {
		e, _ := e.chain.get(r.Key)
		if !wantReads[r.Key] || r.Version != e.version {
			t.Errorf("read %s@%d: not a committed key at its version (%d)", r.Key, r.Version, e.version)
		}
		delete(wantReads, r.Key)
	}
	if len(wantReads) != 0 {
		t.Errorf("read set misses %v", wantReads)
	}
	if after := e.chain.snapshot(); !sameState(before, after) {
		t.Error("committed state changed before the verdict")
	}

	h := e.chain.judge(t, e.reg, e.buf, sub, protocol.CodeOK)
	f := e.waitFinal("wf-1")
	if f.Status != StatusCommitted || f.Height != h || f.TxHash != sub.hash {
		t.Errorf("final: got %+v, want committed at %d in %s", f, h, sub.hash)
	}
	st, _ := e.chain.Committed()
	if got := stage(t, st, "PKG-1"); got != supplychain.StageLabeled {
		t.Errorf("committed stage: got %s, want %s", got, supplychain.StageLabeled)
	}
	e.chain.none(t, 50*time.Millisecond)
	v, _ := e.buf.Lookup("wf-1", "")
	if len(v.Ops) != len(inputs) || v.Actor != operator1.ID || v.Direct {
		t.Errorf("view: %d ops actor %s direct %v, want %d %s false", len(v.Ops), v.Actor, v.Direct, len(inputs), operator1.ID)
	}
	for i, op := range v.Ops {
		if op.Seq != uint64(i) || op.Status != replies[i].Resp.Status || !bytes.Equal(op.Result, replies[i].Resp.Body) ||
			op.OpHash != replies[i].Receipt.Op.String() {
			t.Errorf("view op %d: %+v does not match the reply", i, op)
		}
	}
}

func sameState(a, b map[string]entry) bool {
	if len(a) != len(b) {
		return false
	}
	for k, e := range a {
		if f, ok := b[k]; !ok || f.version != e.version || !bytes.Equal(f.value, e.value) {
			return false
		}
	}
	return true
}

// TestBadOps sends ops that must be refused and checks that nothing
// changed: the session's ops, the L2 view, and the next good op still works.
func TestBadOps(t *testing.T) {
	e := newEnv(t, nil)
	s := newSess("bad-1", operator1)
	e.start(s, "PKG-1")
	e.scan(s, "PKG-1")
	firstOp := s.input(0, protocol.ZeroHash, http.MethodPost, service.PathSessions, `{"package_id":"PKG-1"}`)
	other := &sess{id: s.id, who: operator2, seq: s.seq, prev: s.prev}
	wrongPrev := s.input(s.seq, protocol.Hash{1}, http.MethodPost, pkgPath("PKG-1", "validate"), validateBody)
	forged := s.next(http.MethodPost, pkgPath("PKG-1", "validate"), validateBody)
	forged.Signature = bytes.Clone(forged.Signature)
	forged.Signature[0] ^= 1
	bodySwap := s.next(http.MethodPost, pkgPath("PKG-1", "validate"), validateBody)
	bodySwap.Body = []byte(`{"observed_items":[]}`)
	tests := []struct {
		name       string
		in         *Input
		wantStatus int
		wantCode   string
	}{
		{"seq gap", s.input(s.seq+1, s.prev, http.MethodPost, pkgPath("PKG-1", "validate"), validateBody), http.StatusConflict, "FAILED_PRECONDITION"},
		{"replayed op", s.input(1, protocol.OpHash(protocol.OpBytes(s.id, 0, protocol.ZeroHash, firstOp.Method, firstOp.Path, firstOp.Body, firstOp.Expires)),
			http.MethodPost, pkgPath("PKG-1", "scan"), `{}`), http.StatusConflict, "FAILED_PRECONDITION"},
		{"replayed start", firstOp, http.StatusConflict, "FAILED_PRECONDITION"},
		{"another actor", other.next(http.MethodPost, pkgPath("PKG-1", "validate"), validateBody), http.StatusConflict, "CONFLICT"},
		{"wrong prev hash", wrongPrev, http.StatusUnauthorized, "UNAUTHENTICATED"},
		{"forged signature", forged, http.StatusUnauthorized, "UNAUTHENTICATED"},
		{"body not the one signed", bodySwap, http.StatusUnauthorized, "UNAUTHENTICATED"},
		{"step out of order", s.next(http.MethodPost, pkgPath("PKG-1", "label"), labelBody), http.StatusConflict, "FAILED_PRECONDITION"},
		{"bad body", s.next(http.MethodPost, pkgPath("PKG-1", "validate"), `{"observed_items":`), http.StatusBadRequest, "MALFORMED"},
		{"unknown route", s.next(http.MethodPost, "/v1/nothing", `{}`), http.StatusNotFound, "NOT_FOUND"},
		{"commit of another session", s.next(http.MethodPost, service.CommitPath("bad-2"), `{}`), http.StatusBadRequest, "INVALID_ARGUMENT"},
		{"unknown session at seq 1", newSess("nobody", operator1).input(1, protocol.ZeroHash, http.MethodPost, pkgPath("PKG-1", "scan"), `{}`), http.StatusConflict, "FAILED_PRECONDITION"},
		{"commit of an unknown session", newSess("nobody", operator1).next(http.MethodPost, service.CommitPath("nobody"), `{}`), http.StatusNotFound, "NOT_FOUND"},
		{"unknown actor", newSess("anon", servicetest.NewActor("anon-1", "operator", 9)).next(http.MethodPost, service.PathSessions, `{}`), http.StatusUnauthorized, "UNAUTHENTICATED"},
		{"role", newSess("sup", supplier).next(http.MethodPost, pkgPath("PKG-2", "scan"), `{}`), http.StatusForbidden, "PERMISSION_DENIED"},
	}
	pkgBefore := e.buf.PendingView()
	stageBefore := stage(t, pkgBefore, "PKG-1")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := e.buf.Do(context.Background(), tt.in)
			if rep.Resp.Status != tt.wantStatus || errorCode(rep.Resp) != tt.wantCode {
				t.Errorf("got %d %s, want %d %s", rep.Resp.Status, rep.Resp.Body, tt.wantStatus, tt.wantCode)
			}
			if rep.Receipt != nil {
				t.Error("got a receipt for a refused op")
			}
			v, _ := e.buf.Lookup(s.id, "")
			if len(v.Ops) != 2 || v.Status != StatusOpen {
				t.Errorf("session after the refused op: %d ops, %s; want 2 ops, open", len(v.Ops), v.Status)
			}
			if _, ok := e.buf.Lookup(tt.in.Session, ""); !ok && tt.in.Session == s.id {
				t.Error("session lost")
			}
		})
	}
	if got := stage(t, e.buf.PendingView(), "PKG-1"); got != stageBefore {
		t.Errorf("stage after refused ops: got %s, want %s", got, stageBefore)
	}
	for _, id := range []string{"nobody", "anon", "sup"} {
		if _, ok := e.buf.Lookup(id, ""); ok {
			t.Errorf("refused seq 0 op left a session %s", id)
		}
	}
	// The session goes on where it was.
	e.must(s, http.StatusOK, http.MethodPost, pkgPath("PKG-1", "validate"), validateBody)

	e.chain.none(t, 20*time.Millisecond)
}

// TestSessionIDReuse: an id in use in memory cannot start another
// session on this node; an id is its actor's own on L1, so one committed
// there is refused to its actor only.
func TestSessionIDReuse(t *testing.T) {
	e := newEnv(t, nil)
	e.start(newSess("used", operator1), "PKG-1")
	e.chain.putJSON(service.SessionKey(operator1.ID, "on-l1"), service.SessionRecord{Session: "on-l1", Actor: operator1.ID, Node: "l2-9", Height: 2})
	tests := []struct {
		id       string
		who      actor
		wantCode string
	}{
		{"used", operator1, "FAILED_PRECONDITION"},
		{"used", operator2, "CONFLICT"},
		{"on-l1", operator1, "CONFLICT"},
		{"on-l1", operator2, ""},
	}
	for _, tt := range tests {
		rep := e.do(newSess(tt.id, tt.who), http.MethodPost, service.PathSessions, `{}`)
		if errorCode(rep.Resp) != tt.wantCode {
			t.Errorf("start of %s by %s: got %d %s, want %q", tt.id, tt.who.ID, rep.Resp.Status, rep.Resp.Body, tt.wantCode)
		}
	}
	v, ok := e.buf.Lookup("on-l1", operator1.ID)
	if !ok || v.Status != StatusCommitted || v.Final == nil || v.Final.Height != 2 {
		t.Errorf("Lookup of a session committed on L1: got %+v %v, want committed at 2", v, ok)
	}
	if _, ok := e.buf.Lookup("never", ""); ok {
		t.Error("Lookup of an unknown session: got ok")
	}
}

// TestReservation: a package written by an open session is refused to
// every other session of the node with 409 CONFLICT naming the holder,
// until the holder ends.
func TestReservation(t *testing.T) {
	tests := []struct {
		name string
		end  func(e *env, s *sess)
	}{
		{"released by abort", func(e *env, s *sess) { e.abort(s) }},
		{"released by commit", func(e *env, s *sess) {
			t := e.t
			e.commit(s)
			sub := e.chain.next(t)
			// Still held while committing.
			e.wantReserved(newSess("probe-2", operator2), s.id)
			e.chain.judge(t, e.reg, e.buf, sub, protocol.CodeOK)
			if f := e.waitFinal(s.id); f.Status != StatusCommitted {
				t.Fatalf("holder final: %+v", f)
			}
		}},
		{"released by rejection", func(e *env, s *sess) {
			t := e.t
			e.commit(s)
			e.chain.judge(t, e.reg, e.buf, e.chain.next(t), protocol.CodeResultMismatch)
			if f := e.waitFinal(s.id); f.Status != StatusRejected {
				t.Fatalf("holder final: %+v", f)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil)
			holder := newSess("holder", operator1)
			e.start(holder, "PKG-1")
			// A session start that names a held package is refused at once.
			late := newSess("late", operator2)
			if r := e.do(late, http.MethodPost, service.PathSessions, `{"package_id":"PKG-1"}`); r.Resp.Status != http.StatusConflict ||
				errorCode(r.Resp) != "CONFLICT" || !strings.Contains(string(r.Resp.Body), "holder") {
				t.Fatalf("start naming a held package: got %d %s, want 409 CONFLICT naming holder", r.Resp.Status, r.Resp.Body)
			}
			e.scan(holder, "PKG-1")
			other := newSess("other", operator2)
			e.start(other, "PKG-2")
			e.wantReserved(other, "holder")
			// A direct-mode op on the package is refused too.
			e.wantReserved(newSess("direct-1", operator2), "holder")
			// Other packages are free.
			e.scan(other, "PKG-2")

			tt.end(e, holder)
			e.scan(other, "PKG-1")
			// Now other holds PKG-1.
			e.wantReserved(newSess("third", operator1), "other")
		})
	}
}

// wantReserved checks that s's scan of PKG-1 is refused because holder
// has it, and that s did not advance.
func (e *env) wantReserved(s *sess, holder string) {
	e.t.Helper()
	seq := s.seq
	rep := e.do(s, http.MethodPost, pkgPath("PKG-1", "scan"), `{}`)
	if rep.Resp.Status != http.StatusConflict || errorCode(rep.Resp) != "CONFLICT" || !strings.Contains(string(rep.Resp.Body), holder) {
		e.t.Fatalf("scan of a package held by %s: got %d %s, want 409 CONFLICT naming the holder", holder, rep.Resp.Status, rep.Resp.Body)
	}
	if s.seq != seq {
		e.t.Fatal("refused op advanced the session")
	}
}

// TestExpiry: an idle open session is aborted (EXPIRED) by housekeeping
// once older than SessionTTL, which releases its package; final sessions
// are forgotten after Retain.
func TestExpiry(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.SessionTTL = time.Minute; c.Retain = time.Hour; c.MaxOpen = 1 })
	s := newSess("idle", operator1)
	e.start(s, "PKG-1")
	e.scan(s, "PKG-1")

	e.clock.Advance(50 * time.Second)
	e.buf.housekeep()
	if got := e.status("idle"); got != StatusOpen {
		t.Fatalf("status 50s idle: got %s, want open", got)
	}
	e.scan(s, "PKG-1") // activity resets the idle time
	e.clock.Advance(50 * time.Second)
	e.buf.housekeep()
	if got := e.status("idle"); got != StatusOpen {
		t.Fatalf("status 50s after the last op: got %s, want open", got)
	}
	e.clock.Advance(11 * time.Second)
	e.buf.housekeep()
	v, _ := e.buf.Lookup("idle", "")
	if v.Status != StatusAborted || v.Final == nil || v.Final.Code != "EXPIRED" {
		t.Fatalf("after TTL: got %s %+v, want aborted EXPIRED", v.Status, v.Final)
	}
	rep := e.do(s, http.MethodPost, pkgPath("PKG-1", "validate"), validateBody)
	if rep.Resp.Status != http.StatusConflict || errorCode(rep.Resp) != "FAILED_PRECONDITION" {
		t.Errorf("op on an expired session: got %d %s, want 409 FAILED_PRECONDITION", rep.Resp.Status, rep.Resp.Body)
	}
	// Released: the package and the open-session slot (MaxOpen 1).
	next := newSess("next", operator2)
	e.start(next, "PKG-1")
	e.scan(next, "PKG-1")
	e.chain.none(t, 20*time.Millisecond)

	e.clock.Advance(2 * time.Hour)
	e.buf.housekeep()
	if _, ok := e.buf.Lookup("idle", ""); ok {
		t.Error("expired session still held after Retain")
	}
}

// TestExpiryByTicker lets the committer's own housekeeping expire a session.
func TestExpiryByTicker(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the 1s housekeeping tick")
	}
	e := newEnv(t, func(c *Config) { c.SessionTTL = time.Millisecond })
	s := newSess("idle", operator1)
	e.start(s, "PKG-1")
	e.clock.Advance(time.Second)
	if f := e.waitFinal("idle"); f.Status != StatusAborted || f.Code != "EXPIRED" {
		t.Errorf("final: got %+v, want aborted EXPIRED", f)
	}
}

func TestMaxOpen(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxOpen = 2 })
	a, b := newSess("a", operator1), newSess("b", operator2)
	e.start(a, "PKG-1")
	e.start(b, "PKG-2")
	for _, c := range []*sess{newSess("c", operator1), newSess("direct-c", operator1)} {
		var rep *Reply
		if c.id == "c" {
			rep = e.do(c, http.MethodPost, service.PathSessions, `{}`)
		} else {
			rep = e.do(c, http.MethodPost, pkgPath("PKG-1", "scan"), `{}`)
		}
		if rep.Resp.Status != http.StatusTooManyRequests || errorCode(rep.Resp) != "OVERLOADED" {
			t.Errorf("session %s beyond MaxOpen: got %d %s, want 429 OVERLOADED", c.id, rep.Resp.Status, rep.Resp.Body)
		}
	}
	// A commit frees a slot (the session is no longer open).
	e.commit(a)
	e.start(newSess("c", operator1), "")
	if rep := e.do(newSess("d", operator1), http.MethodPost, service.PathSessions, `{}`); rep.Resp.Status != http.StatusTooManyRequests {
		t.Errorf("again beyond MaxOpen: got %d, want 429", rep.Resp.Status)
	}
	e.abort(b)
	e.start(newSess("d", operator1), "")
}

func TestMaxQueue(t *testing.T) {
	// While a batch awaits its verdict the queue is not flushed before
	// the batch interval ends.
	e := newEnv(t, func(c *Config) { c.MaxQueue = 1; c.BatchInterval = time.Hour })
	e.lead()
	a, c := e.startNew("a", operator1, "PKG-1"), e.startNew("c", operator2, "PKG-2")
	e.commit(a)
	if got := e.buf.QueueDepth(); got != 1 {
		t.Fatalf("queue depth: got %d, want 1", got)
	}
	if rep := e.do(newSess("b", operator2), http.MethodPost, service.PathSessions, `{}`); rep.Resp.Status != http.StatusTooManyRequests {
		t.Errorf("start with a full queue: got %d %s, want 429", rep.Resp.Status, rep.Resp.Body)
	}
	rep := e.do(c, http.MethodPost, service.CommitPath(c.id), `{}`)
	if rep.Resp.Status != http.StatusTooManyRequests || errorCode(rep.Resp) != "OVERLOADED" {
		t.Errorf("commit with a full queue: got %d %s, want 429 OVERLOADED", rep.Resp.Status, rep.Resp.Body)
	}
	if got := e.status("c"); got != StatusOpen {
		t.Errorf("session refused a commit: got %s, want open", got)
	}
	// Its other ops go on.
	e.scan(c, "PKG-2")
}

// TestMaxLag: while a commit has waited longer than MaxLag for L1, new
// sessions (and direct-mode ops) are refused, open ones go on; a verdict
// lifts the refusal.
func TestMaxLag(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxLag = time.Second })
	a := e.startNew("a", operator1, "PKG-1")
	e.commit(a)
	sub := e.chain.next(t)
	open := e.startNew("open", operator2, "PKG-2")
	e.clock.Advance(900 * time.Millisecond)
	e.startNew("in-time", operator1, "")
	e.clock.Advance(200 * time.Millisecond)
	for _, c := range []*sess{newSess("late", operator1), newSess("direct-late", operator1)} {
		var rep *Reply
		if c.id == "late" {
			rep = e.do(c, http.MethodPost, service.PathSessions, `{}`)
		} else {
			rep = e.do(c, http.MethodPost, pkgPath("PKG-3", "scan"), `{}`)
		}
		if rep.Resp.Status != http.StatusTooManyRequests || errorCode(rep.Resp) != "OVERLOADED" ||
			!strings.Contains(string(rep.Resp.Body), "behind") {
			t.Errorf("%s with L1 1.1s behind: got %d %s, want 429 OVERLOADED naming the lag", c.id, rep.Resp.Status, rep.Resp.Body)
		}
		if _, known := e.buf.Lookup(c.id, ""); known {
			t.Errorf("%s: a refused session was kept", c.id)
		}
	}
	// The open session goes on to its commit.
	e.scan(open, "PKG-2")
	e.commit(open)
	// The verdict for the old commit arrives: the lag is the open
	// session's commit, just made, and new sessions are welcome again.
	e.chain.judge(t, e.reg, e.buf, sub, protocol.CodeOK)
	e.waitFinal("a")
	e.startNew("after", operator1, "")
}

// lead commits a session whose batch then awaits a verdict that never
// comes, so that later commits are batched.
func (e *env) lead() {
	e.t.Helper()
	s := e.startNew("lead", operator1, "")
	e.commit(s)
	if sub := e.chain.next(e.t); sub.batch.Bundles[0].Session != "lead" {
		e.t.Fatalf("lead batch holds %s", sub.batch.Bundles[0].Session)
	}
}

// createBody is a supplier's signed package creation.
func createBody(id string) string {
	sig := packageRecord(id).ManifestSignature
	return string(service.MustJSON(map[string]any{"id": id, "destination": "DC Jakarta", "items": testItems,
		"manifest_signature": sig}))
}

// TestDirectMode: a mutating op at seq 0 of a new session id is a one-op
// session answered only after L1's verdict.
func TestDirectMode(t *testing.T) {
	e := newEnv(t, nil)
	s := newSess("create-PKG-9", supplier)
	done := make(chan *Reply, 1)
	go func() { done <- e.do(s, http.MethodPost, supplychain.PathPackages, createBody("PKG-9")) }()
	sub := e.chain.next(t)
	select {
	case rep := <-done:
		t.Fatalf("direct op answered before the verdict: %d %s", rep.Resp.Status, rep.Resp.Body)
	case <-time.After(20 * time.Millisecond):
	}
	if got := e.status(s.id); got != StatusCommitting {
		t.Errorf("status while waiting: got %s, want committing", got)
	}
	b := sub.batch.Bundles[0]
	if len(b.Ops) != 1 || b.Session != s.id || b.Actor != supplier.ID {
		t.Fatalf("direct bundle: %d ops session %s actor %s", len(b.Ops), b.Session, b.Actor)
	}
	h := e.chain.judge(t, e.reg, e.buf, sub, protocol.CodeOK)
	var rep *Reply
	select {
	case rep = <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("direct op not answered after the verdict")
	}
	if rep.Resp.Status != http.StatusCreated || rep.Final == nil || rep.Final.Status != StatusCommitted ||
		rep.Final.Height != h || rep.Final.TxHash != sub.hash || rep.Receipt == nil {
		t.Fatalf("direct reply: %d %s final %+v, want 201 committed at %d", rep.Resp.Status, rep.Resp.Body, rep.Final, h)
	}
	if v, _ := e.buf.Lookup(s.id, ""); !v.Direct || v.Status != StatusCommitted {
		t.Errorf("view: direct %v status %s, want direct committed", v.Direct, v.Status)
	}
	st, _ := e.chain.Committed()
	if got := stage(t, st, "PKG-9"); got != supplychain.StageCreated {
		t.Errorf("committed package: got stage %s, want created", got)
	}
}

func TestDirectModeTimeout(t *testing.T) {
	e := newEnv(t, nil)
	s := newSess("create-PKG-9", supplier)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	rep := e.doCtx(ctx, s, http.MethodPost, supplychain.PathPackages, createBody("PKG-9"))
	if rep.Resp.Status != http.StatusServiceUnavailable || errorCode(rep.Resp) != "UNAVAILABLE" {
		t.Fatalf("direct op without verdict: got %d %s, want 503 UNAVAILABLE", rep.Resp.Status, rep.Resp.Body)
	}
	if !strings.Contains(string(rep.Resp.Body), "/v1/sessions/create-PKG-9") {
		t.Errorf("503 body does not say where to follow the session: %s", rep.Resp.Body)
	}
	// It stays queued, and the verdict still lands.
	sub := e.chain.next(t)
	if got := e.status(s.id); got != StatusCommitting {
		t.Errorf("status after the timeout: got %s, want committing", got)
	}
	e.chain.judge(t, e.reg, e.buf, sub, protocol.CodeOK)
	if f := e.waitFinal(s.id); f.Status != StatusCommitted {
		t.Errorf("final: got %+v, want committed", f)
	}
}

func TestDirectModeRejected(t *testing.T) {
	e := newEnv(t, nil)
	s := newSess("create-PKG-9", supplier)
	done := make(chan *Reply, 1)
	go func() { done <- e.do(s, http.MethodPost, supplychain.PathPackages, createBody("PKG-9")) }()
	e.chain.judge(t, e.reg, e.buf, e.chain.next(t), protocol.CodeTimeOutOfBounds)
	rep := <-done
	if rep.Final == nil || rep.Final.Status != StatusRejected || rep.Final.Code != "TIME_OUT_OF_BOUNDS" {
		t.Errorf("final: got %+v, want rejected TIME_OUT_OF_BOUNDS", rep.Final)
	}
}

// TestDirectModeRebaseTimeout: a direct op whose bundle is rebased while
// its caller waits, then times out.
func TestDirectModeRebaseTimeout(t *testing.T) {
	e := newEnv(t, nil)
	s := newSess("direct-scan", operator1)
	done := make(chan *Reply, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	go func() { done <- e.doCtx(ctx, s, http.MethodPost, pkgPath("PKG-1", "scan"), `{}`) }()
	e.chain.judge(t, e.reg, e.buf, e.chain.next(t), protocol.CodeConflict)
	e.chain.next(t) // rebased and resubmitted
	rep := <-done
	if rep.Resp.Status != http.StatusServiceUnavailable {
		t.Errorf("got %d %s, want 503", rep.Resp.Status, rep.Resp.Body)
	}
}

// commitOne runs start, scan and commit of pkg and returns the first
// submission.
func (e *env) commitOne(s *sess, pkg string) submission {
	e.t.Helper()
	e.start(s, pkg)
	e.scan(s, pkg)
	e.commit(s)
	return e.chain.next(e.t)
}

// TestConflict: L1 finds a read stale. Re-execution on the new state with
// identical results rebases and resubmits the session; different results
// reject it as CONFLICT with what changed.
func TestConflict(t *testing.T) {
	moved, touched := pkgChanges()
	tests := []struct {
		name       string
		change     func(c *fakeChain)
		wantRebase bool
		wantReason string
	}{
		{"state unchanged", func(*fakeChain) {}, true, ""},
		{"package rewritten, same results", func(c *fakeChain) { c.putJSON(supplychain.PackageKey("PKG-1"), touched) }, true, ""},
		{"package moved on", func(c *fakeChain) { c.putJSON(supplychain.PackageKey("PKG-1"), moved) }, false, `requires stage \"created\" or \"scanned\"`},
		{"actor key rotated", func(c *fakeChain) {
			c.putJSON(service.ActorKey(operator1.ID), service.Actor{ID: operator1.ID, Role: operator1.Role, Org: "org", PublicKey: operator2.Public()})
		}, false, "bad signature"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil)
			s := newSess("wf-1", operator1)
			sub := e.commitOne(s, "PKG-1")
			tt.change(e.chain)
			e.chain.judge(t, e.reg, e.buf, sub, protocol.CodeConflict)
			if !tt.wantRebase {
				f := e.waitFinal(s.id)
				if f.Status != StatusRejected || f.Code != "CONFLICT" || !strings.Contains(f.Reason, "test verdict CONFLICT") ||
					!strings.Contains(f.Reason, tt.wantReason) {
					t.Fatalf("final: got %+v, want rejected CONFLICT with the L1 reason and %q", f, tt.wantReason)
				}
				e.chain.none(t, 50*time.Millisecond)
				// Its reservation is gone.
				after := e.startNew("after", operator2, "")
				if rep := e.do(after, http.MethodPost, pkgPath("PKG-1", "scan"), `{}`); errorCode(rep.Resp) == "CONFLICT" {
					t.Errorf("scan after the rejection: got %d %s, want the package free", rep.Resp.Status, rep.Resp.Body)
				}
				return
			}
			again := e.chain.next(t)
			if len(again.batch.Bundles) != 1 || again.batch.Bundles[0].Session != s.id {
				t.Fatalf("resubmission: got %d bundles, want session %s alone", len(again.batch.Bundles), s.id)
			}
			b, old := again.batch.Bundles[0], sub.batch.Bundles[0]
			if len(b.Ops) != len(old.Ops) {
				t.Fatalf("rebased ops: got %d, want %d", len(b.Ops), len(old.Ops))
			}
			for i := range b.Ops {
				if !bytes.Equal(b.Ops[i].Signature, old.Ops[i].Signature) || b.Ops[i].Result != old.Ops[i].Result || b.Ops[i].Time != old.Ops[i].Time {
					t.Errorf("rebased op %d differs from the acknowledged one", i)
				}
			}
			pkgEntry, _ := e.chain.get(supplychain.PackageKey("PKG-1"))
			for _, r := range b.Reads {
				if r.Key == supplychain.PackageKey("PKG-1") && r.Version != pkgEntry.version {
					t.Errorf("rebased read of the package: version %d, want the current %d", r.Version, pkgEntry.version)
				}
			}
			// Still reserved while rebased.
			e.wantReserved(e.startNew("probe", operator2, ""), s.id)
			h := e.chain.judge(t, e.reg, e.buf, again, protocol.CodeOK)
			if f := e.waitFinal(s.id); f.Status != StatusCommitted || f.Height != h || f.TxHash != again.hash {
				t.Errorf("final after rebase: got %+v, want committed at %d in %s", f, h, again.hash)
			}
		})
	}
}

// startNew starts a session, naming pkg in its start body ("" for none).
func (e *env) startNew(id string, who actor, pkg string) *sess {
	e.t.Helper()
	s := newSess(id, who)
	e.start(s, pkg)
	return s
}

func TestConflictRebaseLimit(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxRebase = 2 })
	s := newSess("wf-1", operator1)
	sub := e.commitOne(s, "PKG-1")
	for range 2 {
		e.chain.judge(t, e.reg, e.buf, sub, protocol.CodeConflict)
		sub = e.chain.next(t)
	}
	e.chain.judge(t, e.reg, e.buf, sub, protocol.CodeConflict)
	f := e.waitFinal(s.id)
	if f.Status != StatusRejected || f.Code != "CONFLICT" || !strings.Contains(f.Reason, "rebased too often") {
		t.Errorf("final: got %+v, want rejected CONFLICT, rebased too often", f)
	}
	e.chain.none(t, 50*time.Millisecond)
}

// TestVerdicts maps L1 codes to final statuses.
func TestVerdicts(t *testing.T) {
	tests := []struct {
		name       string
		code       protocol.Code
		record     *service.SessionRecord // written to L1 before the verdict
		wantStatus string
		wantCode   string
	}{
		{"result mismatch", protocol.CodeResultMismatch, nil, StatusRejected, "RESULT_MISMATCH"},
		{"unauthenticated", protocol.CodeUnauthenticated, nil, StatusRejected, "UNAUTHENTICATED"},
		{"invalid session", protocol.CodeInvalidSession, nil, StatusRejected, "INVALID_SESSION"},
		{"unknown code", protocol.Code(42), nil, StatusRejected, "CODE_42"},
		{"already committed: this session", protocol.CodeAlreadyCommitted,
			&service.SessionRecord{Node: node.ID}, StatusCommitted, ""},
		{"already committed: this session, sent by another node", protocol.CodeAlreadyCommitted,
			&service.SessionRecord{Node: "l2-1"}, StatusCommitted, ""},
		{"already committed: other ops", protocol.CodeAlreadyCommitted,
			&service.SessionRecord{Node: node.ID, LastOp: protocol.ZeroHash.String()}, StatusRejected, "ALREADY_COMMITTED"},
		{"already committed: other results", protocol.CodeAlreadyCommitted,
			&service.SessionRecord{Node: node.ID, Results: protocol.ZeroHash.String()}, StatusRejected, "ALREADY_COMMITTED"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil)
			s := newSess("wf-1", operator1)
			sub := e.commitOne(s, "PKG-1")
			if tt.record != nil {
				// L1's record of this very bundle, with the fields the case sets.
				rec := recordOf(&sub.batch.Bundles[0], 77, "ABCDEF")
				rec.Node = tt.record.Node
				if tt.record.LastOp != "" {
					rec.LastOp = tt.record.LastOp
				}
				if tt.record.Results != "" {
					rec.Results = tt.record.Results
				}
				tt.record = &rec
				e.chain.putJSON(service.SessionKey(operator1.ID, "wf-1"), rec)
			}
			e.chain.judge(t, e.reg, e.buf, sub, tt.code)
			f := e.waitFinal(s.id)
			if f.Status != tt.wantStatus || f.Code != tt.wantCode {
				t.Fatalf("final: got %+v, want %s %s", f, tt.wantStatus, tt.wantCode)
			}
			if tt.wantStatus == StatusCommitted && (f.Height != tt.record.Height || f.TxHash != tt.record.TxHash) {
				t.Errorf("final: got %+v, want the L1 record's height and tx", f)
			}
			if tt.wantStatus == StatusRejected && f.Reason == "" {
				t.Error("rejected without a reason")
			}
			e.chain.none(t, 30*time.Millisecond)
		})
	}
}

// TestForeignVerdicts: verdicts on txs this node did not send change
// nothing.
func TestForeignVerdicts(t *testing.T) {
	e := newEnv(t, nil)
	s := newSess("wf-1", operator1)
	e.commitOne(s, "PKG-1")
	e.buf.OnBlock(protocol.Block{Height: 9, Txs: []protocol.TxResult{
		{Hash: "00FF", Outcomes: []protocol.Outcome{{Session: "wf-1", Code: protocol.CodeResultMismatch}}, Reasons: []string{"x"}},
	}})
	time.Sleep(20 * time.Millisecond)
	if got := e.status(s.id); got != StatusCommitting {
		t.Fatalf("status after foreign verdicts: got %s, want committing", got)
	}
	// Unjudged, the bundle is resubmitted after ResubmitAfter.
	e.clock.Advance(2 * time.Hour)
	e.buf.housekeep()
	again := e.chain.next(t)
	if again.batch.Bundles[0].Session != s.id {
		t.Fatalf("resubmission of %s", again.batch.Bundles[0].Session)
	}
	e.chain.judge(t, e.reg, e.buf, again, protocol.CodeOK)
	if f := e.waitFinal(s.id); f.Status != StatusCommitted {
		t.Errorf("final: %+v", f)
	}
}

// wantResubmission checks that second resends the bundles of first at
// their next attempt: new bytes, so no mempool cache answers it, and the
// same sessions otherwise.
func wantResubmission(t *testing.T, first, second submission) {
	t.Helper()
	if bytes.Equal(second.tx, first.tx) {
		t.Error("resubmitted the same bytes, which a mempool's cache would answer")
	}
	for i := range first.batch.Bundles {
		a, b := first.batch.Bundles[i], second.batch.Bundles[i]
		if b.Attempt != a.Attempt+1 {
			t.Errorf("bundle %d: attempt %d, want %d", i, b.Attempt, a.Attempt+1)
		}
		b.Attempt, b.Signature = a.Attempt, a.Signature
		if !bytes.Equal(protocol.EncodeBatch(&protocol.Batch{Bundles: []protocol.Bundle{a}}), protocol.EncodeBatch(&protocol.Batch{Bundles: []protocol.Bundle{b}})) {
			t.Errorf("bundle %d differs from the first beyond its attempt", i)
		}
	}
}

// TestResubmitAfter: a bundle L1 never judged is sent again; a late
// verdict of the first copy is ignored and the second settles it.
func TestResubmitAfter(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.ResubmitAfter = 10 * time.Second })
	s := newSess("wf-1", operator1)
	first := e.commitOne(s, "PKG-1")
	e.clock.Advance(5 * time.Second)
	e.buf.housekeep()
	e.chain.none(t, 30*time.Millisecond)
	e.clock.Advance(6 * time.Second)
	e.buf.housekeep()
	second := e.chain.next(t)
	wantResubmission(t, first, second)
	// L1 applied the first copy: the second is ALREADY_COMMITTED.
	h := e.chain.judge(t, e.reg, e.buf, first, protocol.CodeOK)
	e.chain.judge(t, e.reg, e.buf, second, protocol.CodeAlreadyCommitted)
	if f := e.waitFinal(s.id); f.Status != StatusCommitted || f.Height != h {
		t.Errorf("final: got %+v, want committed at %d", f, h)
	}
}

// TestSubmitFailure: a transient Submit error requeues the batch and the
// committer retries it.
func TestSubmitFailure(t *testing.T) {
	e := newEnv(t, nil)
	e.chain.setFail(func(n int, _ *protocol.Batch) error {
		if n <= 2 {
			return errUnreachable
		}
		return nil
	})
	s := newSess("wf-1", operator1)
	sub := e.commitOne(s, "PKG-1")
	if sub.batch.Bundles[0].Session != s.id {
		t.Fatalf("retried batch holds %s", sub.batch.Bundles[0].Session)
	}
	if got := e.status(s.id); got != StatusCommitting {
		t.Errorf("status while failing: got %s, want committing", got)
	}
	e.chain.judge(t, e.reg, e.buf, sub, protocol.CodeOK)
	if f := e.waitFinal(s.id); f.Status != StatusCommitted {
		t.Errorf("final: %+v", f)
	}
}

// TestSubmitRejectedSplit: a batch L1 refuses outright is split, and each
// bundle is sent alone; a refused single bundle rejects its session.
func TestSubmitRejectedSplit(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.BatchMax = 2; c.BatchInterval = time.Hour })
	e.chain.setFail(func(n int, b *protocol.Batch) error {
		if len(b.Bundles) > 1 {
			return rejectedErr{code: uint32(protocol.CodeMalformed), log: "batch too big"}
		}
		if b.Bundles[0].Session == "bad" {
			return rejectedErr{code: uint32(protocol.CodeUnauthenticated), log: "bad node signature"}
		}
		return nil
	})
	e.lead()
	var seen []string
	for _, id := range []string{"good", "bad"} {
		s := newSess(id, operator1)
		e.start(s, "")
		e.commit(s)
	}
	sub := e.chain.next(t)
	if len(sub.batch.Bundles) != 1 {
		t.Fatalf("bundles after the split: got %d, want 1", len(sub.batch.Bundles))
	}
	seen = append(seen, sub.batch.Bundles[0].Session)
	if seen[0] != "good" {
		t.Fatalf("submitted alone: %v, want good", seen)
	}
	f := e.waitFinal("bad")
	if f.Status != StatusRejected || f.Code != "UNAUTHENTICATED" || f.Reason != "bad node signature" {
		t.Errorf("refused bundle: got %+v, want rejected UNAUTHENTICATED with the CheckTx log", f)
	}
	e.chain.mu.Lock()
	calls := e.chain.calls
	e.chain.mu.Unlock()
	if calls != 4 {
		t.Errorf("Submit calls: got %d, want 4 (the lead, the pair, then each alone)", calls)
	}
	e.chain.judge(t, e.reg, e.buf, sub, protocol.CodeOK)
	if f := e.waitFinal("good"); f.Status != StatusCommitted {
		t.Errorf("good: %+v", f)
	}
}

// TestBatching: a commit on an idle node is submitted at once; while a
// batch awaits its verdict, commits within one batch interval share a
// transaction, and a full batch goes at once without waiting for the
// interval.
func TestBatching(t *testing.T) {
	t.Run("idle", func(t *testing.T) {
		e := newEnv(t, func(c *Config) { c.BatchInterval = time.Hour })
		s := e.startNew("a", operator1, "")
		e.commit(s)
		if sub := e.chain.next(t); len(sub.batch.Bundles) != 1 {
			t.Fatalf("bundles: got %d, want 1", len(sub.batch.Bundles))
		}
	})
	t.Run("interval", func(t *testing.T) {
		e := newEnv(t, func(c *Config) { c.BatchInterval = 200 * time.Millisecond })
		e.lead()
		var ss []*sess
		for _, id := range []string{"a", "b", "c"} {
			ss = append(ss, e.startNew(id, operator1, ""))
		}
		for _, s := range ss {
			e.commit(s)
		}
		sub := e.chain.next(t)
		if got := len(sub.batch.Bundles); got != 3 {
			t.Fatalf("bundles: got %d, want 3", got)
		}
		e.chain.judge(t, e.reg, e.buf, sub, protocol.CodeOK, protocol.CodeConflict, protocol.CodeResultMismatch)
		for id, want := range map[string]string{"a": StatusCommitted, "c": StatusRejected} {
			if f := e.waitFinal(id); f.Status != want {
				t.Errorf("%s: got %+v, want %s", id, f, want)
			}
		}
		if again := e.chain.next(t); len(again.batch.Bundles) != 1 || again.batch.Bundles[0].Session != "b" {
			t.Errorf("rebased alone: got %d bundles", len(again.batch.Bundles))
		}
	})
	t.Run("full", func(t *testing.T) {
		e := newEnv(t, func(c *Config) { c.BatchInterval = time.Hour; c.BatchMax = 2 })
		e.lead()
		for _, id := range []string{"a", "b"} {
			s := newSess(id, operator1)
			e.start(s, "")
			e.commit(s)
		}
		sub := e.chain.next(t)
		if got := len(sub.batch.Bundles); got != 2 {
			t.Fatalf("bundles: got %d, want 2", got)
		}
	})
}

// TestEvents: a session's event stream holds every op and status change,
// the final event last, and subscribers see live events.
func TestEvents(t *testing.T) {
	e := newEnv(t, nil)
	s := newSess("wf-1", operator1)
	e.start(s, "PKG-1")
	past, ch, cancel, ok := e.buf.Subscribe(s.id)
	if !ok || len(past) != 1 {
		t.Fatalf("Subscribe: %d past events, ok %v; want 1, true", len(past), ok)
	}
	defer cancel()
	e.scan(s, "PKG-1")
	e.commit(s)
	e.chain.judge(t, e.reg, e.buf, e.chain.next(t), protocol.CodeOK)
	var got []string
	for ev := range ch {
		got = append(got, ev.Type+":"+ev.Status)
	}
	want := []string{"op:open", "op:open", "status:committing", "final:committed"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("live events: got %v, want %v", got, want)
	}
	past, ch, _, _ = e.buf.Subscribe(s.id)
	if _, open := <-ch; open {
		t.Error("channel of a final session is open")
	}
	if len(past) != 5 || past[4].Final == nil || past[4].Final.Status != StatusCommitted {
		t.Errorf("past events of a final session: %+v", past)
	}
	if _, _, _, ok := e.buf.Subscribe("nobody"); ok {
		t.Error("Subscribe of an unknown session: ok")
	}
	raw, _ := json.Marshal(past[1])
	if !strings.Contains(string(raw), `"op_hash"`) {
		t.Errorf("event JSON: %s", raw)
	}
}

// TestAfterClose: an op after Close is refused as not durable.
func TestAfterClose(t *testing.T) {
	e := newEnv(t, nil)
	if err := e.buf.Close(); err != nil {
		t.Fatal(err)
	}
	rep := e.do(newSess("late", operator1), http.MethodPost, service.PathSessions, `{}`)
	if rep.Resp.Status != http.StatusServiceUnavailable || rep.Receipt != nil {
		t.Errorf("op after Close: got %d %s, want 503 and no receipt", rep.Resp.Status, rep.Resp.Body)
	}
	if err := e.buf.wal.Append([]byte("x")); !errors.Is(err, ErrWALClosed) {
		t.Errorf("WAL after Close: %v", err)
	}
	e.buf = nil
}

// recorder is an Observer that keeps what it is told.
type recorder struct {
	mu                       sync.Mutex
	fsyncs, records, batches int
	bundles                  []int
	finality                 []time.Duration
	depths                   []int
}

func (r *recorder) Fsync(d time.Duration, n int) {
	r.mu.Lock()
	r.fsyncs, r.records = r.fsyncs+1, r.records+n
	r.mu.Unlock()
}
func (r *recorder) Batch(n int) { r.mu.Lock(); r.bundles = append(r.bundles, n); r.mu.Unlock() }
func (r *recorder) Finality(d time.Duration) {
	r.mu.Lock()
	r.finality = append(r.finality, d)
	r.mu.Unlock()
}
func (r *recorder) QueueDepth(n int) { r.mu.Lock(); r.depths = append(r.depths, n); r.mu.Unlock() }

func TestObserver(t *testing.T) {
	obs := &recorder{}
	e := newEnv(t, func(c *Config) { c.Observer = obs })
	s := newSess("wf-1", operator1)
	sub := e.commitOne(s, "PKG-1")
	e.clock.Advance(3 * time.Second)
	e.chain.judge(t, e.reg, e.buf, sub, protocol.CodeOK)
	e.waitFinal(s.id)
	obs.mu.Lock()
	defer obs.mu.Unlock()
	if obs.fsyncs == 0 || obs.records < 3 {
		t.Errorf("fsyncs: %d covering %d records, want at least the 3 ops", obs.fsyncs, obs.records)
	}
	if !slices.Equal(obs.bundles, []int{1}) {
		t.Errorf("batches: got %v, want [1]", obs.bundles)
	}
	if !slices.Equal(obs.finality, []time.Duration{3 * time.Second}) {
		t.Errorf("finality: got %v, want [3s] (commit request to verdict, on the config clock)", obs.finality)
	}
	if len(obs.depths) < 2 || obs.depths[0] != 1 || obs.depths[len(obs.depths)-1] != 0 {
		t.Errorf("queue depths: got %v, want 1 first and 0 last", obs.depths)
	}
}

// TestSlowSubscriber: a subscriber that does not read is cut off (its
// channel closed) instead of holding the buffer up: 257 events (254 scans,
// the commit, its status, the final one) do not fit its 256.
func TestSlowSubscriber(t *testing.T) {
	e := newEnv(t, nil)
	s := e.startNew("wf-1", operator1, "PKG-1")
	_, slow, cancel, _ := e.buf.Subscribe(s.id)
	defer cancel()
	for range protocol.MaxOps - 2 {
		e.scan(s, "PKG-1")
	}
	e.commit(s)
	e.chain.judge(t, e.reg, e.buf, e.chain.next(t), protocol.CodeOK)
	if f := e.waitFinal(s.id); f.Status != StatusCommitted {
		t.Fatalf("final %+v", f)
	}
	n := 0
	for range slow {
		n++
	}
	if n != 256 {
		t.Errorf("events delivered before the cut: got %d, want 256 (the channel's buffer)", n)
	}
	cancel() // after the cut: no double close
}

// TestVerdictListMismatch: a verdict for our transaction that does not name
// our sessions (too few outcomes, or another session) resubmits them instead
// of leaving them committing forever.
func TestVerdictListMismatch(t *testing.T) {
	e := newEnv(t, nil)
	s := newSess("wf-1", operator1)
	first := e.commitOne(s, "PKG-1")
	e.buf.OnBlock(protocol.Block{Height: 7, Txs: []protocol.TxResult{{Hash: first.hash}}})
	second := e.chain.next(t)
	wantResubmission(t, first, second)
	h := e.chain.judge(t, e.reg, e.buf, second, protocol.CodeOK)
	if f := e.waitFinal(s.id); f.Status != StatusCommitted || f.Height != h {
		t.Errorf("final: got %+v, want committed at %d", f, h)
	}
}
