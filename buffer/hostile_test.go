package buffer

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/duet-bft/duet/protocol"
	"github.com/duet-bft/duet/service"
	"github.com/duet-bft/duet/service/servicetest"
)

// wantRefused checks that rep is an error with status and code, carries no
// receipt, and that the session did not advance.
func wantRefused(t *testing.T, what string, rep *Reply, s *sess, seq uint64, status int, code string) {
	t.Helper()
	if rep.Resp.Status != status || errorCode(rep.Resp) != code {
		t.Fatalf("%s: got %d %s, want %d %s", what, rep.Resp.Status, rep.Resp.Body, status, code)
	}
	if rep.Receipt != nil {
		t.Errorf("%s: a receipt for a refused op", what)
	}
	if s != nil && s.seq != seq {
		t.Errorf("%s: the session advanced to seq %d", what, s.seq)
	}
}

// TestSessionOpLimit reproduces receipts for ops that could never reach
// L1: a session of 302 ops was answered 200 for every op, and L1 refused
// the bundle (at most 256 ops). Now the op that would leave no room for
// the commit is refused with 413, and the commit that fills the session
// goes to L1 and decodes there.
func TestSessionOpLimit(t *testing.T) {
	e := newEnv(t, nil)
	s := e.startNew("many", operator1, "")
	n := 1
	for ; ; n++ {
		rep := e.do(s, http.MethodPost, "/v1/test/blob", `{}`)
		if !rep.Resp.OK() {
			wantRefused(t, fmt.Sprintf("op %d", n), rep, s, uint64(n), http.StatusRequestEntityTooLarge, "TOO_LARGE")
			if !strings.Contains(string(rep.Resp.Body), "MaxOps") {
				t.Errorf("refusal does not name the limit: %s", rep.Resp.Body)
			}
			break
		}
		if rep.Receipt == nil {
			t.Fatalf("op %d: no receipt", n)
		}
	}
	if n != protocol.MaxOps-1 {
		t.Errorf("refused at op %d, want %d (the commit must still fit)", n, protocol.MaxOps-1)
	}
	e.commit(s)
	sub := e.chain.next(t)
	if got := len(sub.batch.Bundles[0].Ops); got != protocol.MaxOps {
		t.Errorf("bundle of %d ops, want %d", got, protocol.MaxOps)
	}
}

// TestSessionByteLimit reproduces the node wedged by one operator: a
// session of ops padded to the body limit grew past what L1 takes, and the
// refused batch blocked the queue for good. Now the step that would take
// the session past its byte limit (with room for the commit) is refused
// with 413; the session still commits, within protocol.MaxBundleBytes.
func TestSessionByteLimit(t *testing.T) {
	e := newEnv(t, nil)
	s := e.startNew("big", operator1, "")
	body := `"` + strings.Repeat("x", protocol.MaxBody-2) + `"`
	refused := false
	for n := 1; n < 100; n++ {
		rep := e.do(s, http.MethodPost, "/v1/test/blob", body)
		if !rep.Resp.OK() {
			wantRefused(t, fmt.Sprintf("op %d", n), rep, s, uint64(n), http.StatusRequestEntityTooLarge, "TOO_LARGE")
			refused = true
			break
		}
	}
	if !refused {
		t.Fatal("no op refused")
	}
	// A small op still fits, and so does the commit.
	e.must(s, http.StatusOK, http.MethodPost, "/v1/test/blob", `{}`)
	e.commit(s)
	sub := e.chain.next(t)
	if size := sub.batch.Bundles[0].Size(); size > protocol.MaxBundleBytes || size < protocol.MaxBundleBytes-2*protocol.MaxBody {
		t.Errorf("bundle of %d bytes, want at most %d and close to it", size, protocol.MaxBundleBytes)
	}
	// The queue is not wedged: the next session goes through.
	e.chain.judge(t, e.reg, e.buf, sub, protocol.CodeOK)
	next := newSess("after", operator2)
	e.commitOne(next, "PKG-2")
}

// TestSessionAnswerBytes: the answers a node keeps for a session are
// bounded by its limit too, so memory per session is bounded by it.
func TestSessionAnswerBytes(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxSessionBytes = 200 << 10 })
	s := e.startNew("echo", operator1, "")
	for n := 1; ; n++ {
		rep := e.do(s, http.MethodPost, "/v1/test/echo/50000", `{}`)
		if !rep.Resp.OK() {
			wantRefused(t, "echo", rep, s, uint64(n), http.StatusRequestEntityTooLarge, "TOO_LARGE")
			if n != 5 {
				t.Errorf("refused at op %d, want 5 (four 50 kB answers fit 200 KiB, five do not)", n)
			}
			return
		}
	}
}

// TestOversizedSessionReplay: a WAL holding a session over the limit (from
// a node with other limits) does not wedge the node after a restart: the
// session is rejected as TOO_LARGE and never submitted; the node goes on.
func TestOversizedSessionReplay(t *testing.T) {
	e := newEnv(t, nil)
	e.close()
	// The records a node without limits would have logged: start, then
	// 20 ops of 60 kB, then the commit.
	s := newSess("huge", operator1)
	t0 := e.clock.Now().UnixMilli()
	var recs [][]byte
	add := func(method, path, body string, result []byte, status int) {
		in := s.next(method, path, body)
		recs = append(recs, encodeOp(s.id, s.who.ID, in.Seq, protocol.Op{Method: method, Path: path, Body: in.Body,
			Signature: in.Signature, Time: t0, Expires: in.Expires, Result: protocol.ResultHash(status, result)}))
		s.advance(in)
	}
	add(http.MethodPost, service.PathSessions, `{}`, service.JSON(http.StatusCreated, map[string]service.SessionInfo{"session": {
		ID: s.id, Actor: s.who.ID, Status: "open", Time: t0, Start: []byte(`{}`)}}).Body, http.StatusCreated)
	for range 20 {
		add(http.MethodPost, "/v1/test/blob", `"`+strings.Repeat("x", 60000)+`"`, []byte(`{"ok":true}`), http.StatusOK)
	}
	if err := Rewrite(nil, e.cfg.WALPath, recs); err != nil {
		t.Fatal(err)
	}
	e.open()
	f := e.waitFinal("huge")
	if f.Status != StatusRejected || f.Code != "TOO_LARGE" {
		t.Fatalf("replayed oversized session: %+v, want rejected TOO_LARGE", f)
	}
	e.chain.none(t, 30*time.Millisecond)
	e.chain.judge(t, e.reg, e.buf, e.commitOne(newSess("after", operator2), "PKG-2"), protocol.CodeOK)
	e.waitFinal("after")
	e.reopen()
	e.chain.none(t, 30*time.Millisecond)
}

// TestBatchBytes: batches are cut at protocol.MaxBatchBytes, not only at
// BatchMax bundles.
func TestBatchBytes(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.BatchInterval = time.Hour; c.BatchMax = 3 })
	e.lead() // in flight from now on: the rest waits for a full batch
	body := `"` + strings.Repeat("x", protocol.MaxBody-2) + `"`
	for _, id := range []string{"a", "b", "c"} {
		s := e.startNew(id, operator1, "")
		for range 11 { // some 720 kB each
			e.must(s, http.StatusOK, http.MethodPost, "/v1/test/blob", body)
		}
		e.commit(s)
	}
	e.buf.rekick()
	var sizes []int
	for len(sizes) < 2 {
		sub := e.chain.next(t)
		if sub.batch.Bundles[0].Session == "lead" {
			continue
		}
		if len(sub.tx) > protocol.MaxBatchBytes {
			t.Errorf("batch of %d bytes, over %d", len(sub.tx), protocol.MaxBatchBytes)
		}
		sizes = append(sizes, len(sub.batch.Bundles))
	}
	if sizes[0] != 2 || sizes[1] != 1 {
		t.Errorf("bundles per batch %v, want [2 1]", sizes)
	}
}

// TestOpenSessionQuota reproduces one actor locking everyone out: 10,000
// empty session starts by one auditor filled the node-wide limit, and every
// other actor got 429 for 15 minutes. Now the actor over its own quota gets
// 429 naming it, and everyone else is served.
func TestOpenSessionQuota(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxOpenPerActor = 3; c.ActorRate = -1 })
	var mine []*sess
	for i := range 3 {
		mine = append(mine, e.startNew(fmt.Sprintf("a-%d", i), auditor, ""))
	}
	s := newSess("a-3", auditor)
	rep := e.do(s, http.MethodPost, service.PathSessions, `{}`)
	wantRefused(t, "fourth session", rep, s, 0, http.StatusTooManyRequests, "QUOTA_EXCEEDED")
	if !strings.Contains(string(rep.Resp.Body), auditor.ID) || !strings.Contains(string(rep.Resp.Body), "max_open_per_actor") {
		t.Errorf("refusal does not name the actor and the quota: %s", rep.Resp.Body)
	}
	e.startNew("other", operator2, "PKG-2")
	// A direct-mode op is never an open session: the quota leaves it be.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if rep := e.doCtx(ctx, newSess("a-direct", auditor), http.MethodPost, "/v1/test/blob", `{}`); rep.Resp.Status == http.StatusTooManyRequests {
		t.Errorf("a direct op at the open-session quota: %d %s", rep.Resp.Status, rep.Resp.Body)
	}
	if sub := e.chain.next(t); sub.batch.Bundles[0].Session != "a-direct" {
		t.Errorf("submitted %s, want the direct op", sub.batch.Bundles[0].Session)
	}
	e.abort(mine[0])
	e.startNew("a-4", auditor, "")
}

// TestActorRate: one actor's signed ops are limited by a token bucket; the
// actor over it gets 429, others are served, and the bucket refills. An op
// that does not verify costs its claimed actor nothing.
func TestActorRate(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.ActorRate = 5; c.ActorBurst = 5 })
	s := e.startNew("r", auditor, "")
	for range 3 {
		e.must(s, http.StatusOK, http.MethodPost, "/v1/test/blob", `{}`)
	}
	// Forged ops in the auditor's name, before its bucket is empty.
	forger := newSess("r", servicetest.NewActor(auditor.ID, auditor.Role, 99))
	forger.seq, forger.prev = s.seq, s.prev
	for range 10 {
		wantRefused(t, "forged", e.buf.Do(context.Background(), forger.next(http.MethodPost, "/v1/test/blob", `{}`)), nil, 0,
			http.StatusUnauthorized, "UNAUTHENTICATED")
	}
	e.must(s, http.StatusOK, http.MethodPost, "/v1/test/blob", `{}`)
	rep := e.do(s, http.MethodPost, "/v1/test/blob", `{}`)
	wantRefused(t, "over the rate", rep, s, s.seq, http.StatusTooManyRequests, "RATE_LIMITED")
	e.startNew("other", operator2, "PKG-2")
	e.clock.Advance(time.Second)
	e.must(s, http.StatusOK, http.MethodPost, "/v1/test/blob", `{}`)
}

// TestReservationQuota: the keys one actor's sessions reserve are bounded.
func TestReservationQuota(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxReservedPerActor = 3 })
	s := e.startNew("k", operator1, "")
	e.must(s, http.StatusOK, http.MethodPost, "/v1/test/put/a", `{}`)
	e.must(s, http.StatusOK, http.MethodPost, "/v1/test/put/b", `{}`)
	e.must(s, http.StatusOK, http.MethodPost, "/v1/test/put/c", `{}`)
	rep := e.do(s, http.MethodPost, "/v1/test/put/d", `{}`)
	wantRefused(t, "fourth key", rep, s, s.seq, http.StatusTooManyRequests, "QUOTA_EXCEEDED")
	e.must(s, http.StatusOK, http.MethodPost, "/v1/test/put/a", `{}`) // held already: no new key
	e.startNew("other", operator2, "PKG-2")
	e.abort(s)
	e.startNew("k2", operator1, "PKG-1")
}

// TestActorByteQuota: the bytes one actor's live sessions hold are bounded.
func TestActorByteQuota(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxBytesPerActor = 300 << 10; c.ActorRate = -1 })
	body := `"` + strings.Repeat("x", 60000) + `"`
	a := e.startNew("a", operator1, "")
	b := e.startNew("b", operator1, "")
	refused := false
	for n := 0; n < 10 && !refused; n++ {
		for _, s := range []*sess{a, b} {
			if rep := e.do(s, http.MethodPost, "/v1/test/blob", body); !rep.Resp.OK() {
				wantRefused(t, "over the actor's bytes", rep, s, s.seq, http.StatusTooManyRequests, "QUOTA_EXCEEDED")
				refused = true
				break
			}
		}
	}
	if !refused {
		t.Fatal("nothing refused")
	}
	other := e.startNew("c", operator2, "")
	e.must(other, http.StatusOK, http.MethodPost, "/v1/test/blob", body)
	e.abort(a)
	e.must(b, http.StatusOK, http.MethodPost, "/v1/test/blob", body)
}

// TestHeldKeys: an op may not write a key another session of this node
// holds, even without reading it.
func TestHeldKeys(t *testing.T) {
	e := newEnv(t, nil)
	a := e.startNew("a", operator1, "")
	e.must(a, http.StatusOK, http.MethodPost, "/v1/test/put/x", `{}`)
	b := e.startNew("b", operator2, "")
	rep := e.do(b, http.MethodPost, "/v1/test/put/x", `{}`)
	wantRefused(t, "blind write of a held key", rep, b, b.seq, http.StatusConflict, "CONFLICT")
}

// TestOpExpiry: an op is executed only before its signed expiry, and only
// if the expiry is within MaxOpLifetime; a committing session whose commit
// expired before L1's block time is rejected as EXPIRED and never sent.
func TestOpExpiry(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.BatchInterval = time.Hour })
	now := e.clock.Now().UnixMilli()
	s := newSess("x", operator1)
	s.exp = now
	wantRefused(t, "expired", e.do(s, http.MethodPost, service.PathSessions, `{}`), s, 0, http.StatusBadRequest, "EXPIRED")
	s.exp = now + (25 * time.Hour).Milliseconds()
	wantRefused(t, "too far", e.do(s, http.MethodPost, service.PathSessions, `{}`), s, 0, http.StatusBadRequest, "INVALID_ARGUMENT")

	e.lead()
	s = newSess("late", operator1)
	s.exp = now + 60_000
	e.start(s, "")
	e.commit(s)
	e.clock.Advance(2 * time.Minute)
	e.buf.OnBlock(protocol.Block{Height: 50, Time: now + 60_001})
	f := e.waitFinal("late")
	if f.Status != StatusRejected || f.Code != "EXPIRED" {
		t.Fatalf("final %+v, want rejected EXPIRED", f)
	}
	e.buf.rekick()
	e.chain.none(t, 30*time.Millisecond)
}

// TestSignedKeysOnly: a weak key cannot be registered through the node: the
// actor registry refuses it (at L2 as at L1, the same handler).
func TestSignedKeysOnly(t *testing.T) {
	e := newEnv(t, nil)
	s := newSess("reg", admin)
	body := service.MustJSON(service.Actor{ID: "weak", Role: "operator", Org: "x", PublicKey: make(ed25519.PublicKey, 32)})
	wantRefused(t, "weak key", e.do(s, http.MethodPost, service.PathActors, string(body)), s, 0, http.StatusBadRequest, "INVALID_ARGUMENT")
}

// TestRefusedAsCommitted: L1 refuses a batch whose every session it
// already applied (CheckTx: ALREADY_COMMITTED). A node that resubmits its
// session after missing the verdict reports it committed if L1's record is
// that session, and rejected if it is not.
func TestRefusedAsCommitted(t *testing.T) {
	for _, tc := range []struct {
		name   string
		other  bool // L1's record is of other ops
		status string
	}{{"this session", false, StatusCommitted}, {"other ops", true, StatusRejected}} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil)
			s := newSess("wf-1", operator1)
			e.start(s, "PKG-1")
			e.scan(s, "PKG-1")
			e.chain.setFail(func(n int, b *protocol.Batch) error {
				rec := recordOf(&b.Bundles[0], 9, "AB")
				if tc.other {
					rec.LastOp = protocol.ZeroHash.String()
				}
				e.chain.putJSON(service.SessionKey(operator1.ID, "wf-1"), rec)
				return rejectedErr{code: uint32(protocol.CodeAlreadyCommitted), log: "every bundle of the batch is already committed"}
			})
			e.commit(s)
			if f := e.waitFinal(s.id); f.Status != tc.status {
				t.Errorf("final %+v, want %s", f, tc.status)
			}
		})
	}
}

// TestStaleBlockTime: the first block after an L1 outage carries a time
// from before it (the median of the votes for the block before), so ops
// made during the outage are in its future and L1 answers
// TIME_OUT_OF_BOUNDS. That is not final: the session is resubmitted as new
// bytes (its next attempt) to the validators, and a later block applies it.
// Ops too old stay refused.
func TestStaleBlockTime(t *testing.T) {
	e := newEnv(t, nil)
	s := newSess("outage", operator1)
	sub := e.commitOne(s, "PKG-1")
	e.chain.blockLag = time.Minute
	e.chain.judge(t, e.reg, e.buf, sub, protocol.CodeTimeOutOfBounds)
	again := e.chain.next(t)
	if b := again.batch.Bundles[0]; b.Session != s.id || b.Attempt != 1 || again.hash == sub.hash {
		t.Fatalf("resubmission: session %s attempt %d, same bytes %v", b.Session, b.Attempt, again.hash == sub.hash)
	}
	e.chain.mu.Lock()
	retries := e.chain.retries
	e.chain.mu.Unlock()
	if retries != 1 {
		t.Errorf("%d submissions marked as retries, want 1", retries)
	}
	e.chain.blockLag = 0
	e.chain.judge(t, e.reg, e.buf, again, protocol.CodeOK)
	if f := e.waitFinal(s.id); f.Status != StatusCommitted {
		t.Errorf("final %+v, want committed", f)
	}
}

// TestMaxSessionAge: L1 takes no op older than 24 hours, so a session kept
// alive longer would get receipts for ops L1 refuses. An open session past
// max_session_age takes nothing but an abort, and housekeeping ends it.
func TestMaxSessionAge(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxSessionAge = time.Hour; c.SessionTTL = 15 * time.Minute })
	s := newSess("long", operator1)
	s.exp = e.clock.Now().Add(3 * time.Hour).UnixMilli()
	e.start(s, "PKG-1")
	for range 6 { // active every 10 minutes: never idle long enough to expire
		e.clock.Advance(10 * time.Minute)
		e.scan(s, "PKG-1")
	}
	e.clock.Advance(time.Minute)
	rep := e.do(s, http.MethodPost, pkgPath("PKG-1", "scan"), `{}`)
	wantRefused(t, "a step past max_session_age", rep, s, s.seq, http.StatusConflict, "FAILED_PRECONDITION")
	if !strings.Contains(string(rep.Resp.Body), "max_session_age") {
		t.Errorf("refusal does not name the limit: %s", rep.Resp.Body)
	}
	wantRefused(t, "a commit past max_session_age", e.do(s, http.MethodPost, service.CommitPath(s.id), `{}`), s, s.seq, http.StatusConflict, "FAILED_PRECONDITION")
	e.abort(s)

	other := newSess("long-2", operator2)
	other.exp = s.exp
	e.start(other, "PKG-2")
	e.clock.Advance(61 * time.Minute)
	e.buf.housekeep()
	if f := e.waitFinal(other.id); f.Status != StatusAborted || f.Code != "EXPIRED" {
		t.Errorf("a session past max_session_age after housekeeping: %+v, want aborted EXPIRED", f)
	}
}

// TestRetainBytes: final sessions stay in memory for Retain, but only while
// their answers fit RetainBytes: the oldest are forgotten first, so a busy
// actor cannot fill a node's memory with finished sessions.
func TestRetainBytes(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.RetainBytes = 150 << 10; c.ActorRate = -1 })
	var ids []string
	for i := range 5 {
		s := e.startNew(fmt.Sprintf("r-%d", i), operator1, "")
		e.must(s, http.StatusOK, http.MethodPost, "/v1/test/echo/50000", `{}`)
		e.abort(s)
		ids = append(ids, s.id)
	}
	e.buf.housekeep()
	for i, id := range ids {
		_, held := e.buf.Lookup(id, "")
		if want := i >= 2; held != want {
			t.Errorf("session %s held %v, want %v (the newest three fit 150 KiB)", id, held, want)
		}
	}
	e.clock.Advance(11 * time.Minute) // past the default Retain
	e.buf.housekeep()
	for _, id := range ids {
		if _, held := e.buf.Lookup(id, ""); held {
			t.Errorf("session %s held past Retain", id)
		}
	}
}

// TestSplitThenTransient: a refused batch is split and each of its
// sessions goes again alone; a transient failure of one of them, while
// another session waits in the queue, loses none and sends none twice.
func TestSplitThenTransient(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.BatchMax = 3; c.BatchInterval = time.Hour })
	fourthQueued := make(chan struct{})
	e.chain.setFail(func(n int, b *protocol.Batch) error {
		switch {
		case len(b.Bundles) > 1:
			<-fourthQueued
			return rejectedErr{code: uint32(protocol.CodeMalformed), log: "refused as a whole"}
		case b.Bundles[0].Session == "s1" && b.Bundles[0].Attempt == 0:
			return errUnreachable
		}
		return nil
	})
	e.lead()
	for _, id := range []string{"s1", "s2", "s3", "s4"} {
		s := e.startNew(id, operator1, "")
		e.commit(s)
	}
	close(fourthQueued)
	sent := map[string]int{}
	var subs []submission
	for len(subs) < 4 {
		sub := e.chain.next(t)
		for _, b := range sub.batch.Bundles {
			sent[b.Session]++
		}
		subs = append(subs, sub)
	}
	e.chain.none(t, 300*time.Millisecond)
	if want := map[string]int{"s1": 1, "s2": 1, "s3": 1, "s4": 1}; fmt.Sprint(sent) != fmt.Sprint(want) {
		t.Fatalf("sent %v, want each session once", sent)
	}
	for _, sub := range subs {
		codes := make([]protocol.Code, len(sub.batch.Bundles))
		e.chain.judge(t, e.reg, e.buf, sub, codes...)
	}
	for _, id := range []string{"s1", "s2", "s3", "s4"} {
		if f := e.waitFinal(id); f.Status != StatusCommitted {
			t.Errorf("%s: %+v", id, f)
		}
	}
}

// TestAlreadyCommittedAhead: a validator ahead of the node's follower
// refuses a resubmitted session as ALREADY_COMMITTED before the follower
// holds its record. The session is not ended then (it was applied, but the
// node cannot check it yet): it is asked about again, and once the
// follower holds the record it ends committed.
func TestAlreadyCommittedAhead(t *testing.T) {
	e := newEnv(t, nil)
	s := newSess("ahead", operator1)
	e.start(s, "PKG-1")
	var mu sync.Mutex
	var seen []protocol.Bundle
	e.chain.setFail(func(n int, b *protocol.Batch) error {
		mu.Lock()
		seen = append(seen, b.Bundles[0])
		mu.Unlock()
		return rejectedErr{code: uint32(protocol.CodeAlreadyCommitted), log: "every bundle of the batch is already committed"}
	})
	e.commit(s)
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		mu.Lock()
		n := len(seen)
		mu.Unlock()
		if n >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("not asked again")
		}
	}
	if got := e.status(s.id); got != StatusCommitting {
		t.Fatalf("while the follower holds no record: %s, want committing", got)
	}
	mu.Lock()
	e.chain.putJSON(service.SessionKey(operator1.ID, s.id), recordOf(&seen[0], 9, "AB"))
	mu.Unlock()
	if f := e.waitFinal(s.id); f.Status != StatusCommitted || f.Height != 9 {
		t.Errorf("final %+v, want committed at 9", f)
	}
}
