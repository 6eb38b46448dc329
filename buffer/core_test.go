package buffer

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/duet-bft/duet/apps/supplychain"
	"github.com/duet-bft/duet/protocol"
	"github.com/duet-bft/duet/service"
	"github.com/duet-bft/duet/service/servicetest"
)

// The core alone: no WAL, no L1, no goroutines, no sleeps. Time is a
// value the test moves; what the core wants done comes back in its Ready.

type coreEnv struct {
	t   *testing.T
	c   *core
	st  servicetest.Store
	now time.Time
}

func newCoreEnv(t *testing.T, adjust func(*Config)) *coreEnv {
	t.Helper()
	e := &coreEnv{t: t, st: servicetest.Store{}, now: time.UnixMilli(1_750_000_000_000)}
	for _, a := range allActors {
		e.st[service.ActorKey(a.ID)] = servicetest.Entry{Value: service.MustJSON(service.Actor{ID: a.ID, Role: a.Role, Org: "org", PublicKey: a.Public()}), Version: 1}
	}
	for _, id := range []string{"PKG-1", "PKG-2"} {
		e.st[supplychain.PackageKey(id)] = servicetest.Entry{Value: service.MustJSON(packageRecord(id)), Version: 1}
		e.st[supplychain.HistoryKey(id, 0)] = servicetest.Entry{Value: service.MustJSON([]supplychain.Event{{Step: supplychain.StepCreate, Actor: supplier.ID, Session: "c", Time: 1}}), Version: 1}
	}
	cfg := Config{Node: node.ID, Key: node.Key, Registry: testRegistry(), WALPath: "unused", ActorRate: -1}
	if adjust != nil {
		adjust(&cfg)
	}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	e.c = newCore(cfg, func() service.Store { return e.st })
	return e
}

// op is one op in flight through the core, split as the driver splits it.
type op struct {
	e     *coreEnv
	in    *Input
	s     *state
	fresh bool
	t     int64
}

// admit and claim an op (signed by the test session); nil and the reply
// if the core refuses it.
func (e *coreEnv) begin(s *sess, method, path, body string) (*op, *Reply) {
	in := s.next(method, path, body)
	st, fresh, rep := e.c.admit(in, e.now, e.st)
	if rep != nil {
		return nil, rep
	}
	t, rep, retry := e.c.claim(st, fresh, in, e.now)
	if retry {
		e.t.Fatalf("claim of %s seq %d: retry", in.Session, in.Seq)
	}
	if rep != nil {
		return nil, rep
	}
	return &op{e: e, in: in, s: st, fresh: fresh, t: t}, nil
}

// exec runs the op's handler on its session, as the driver does outside
// the core, and gives the outcome to the core. rec is the WAL record of a
// kept op.
func (o *op) exec() (rec []byte, resp service.Response, rep *Reply) { return o.execAround(nil) }

// execAround is exec that runs meanwhile (after the op's handler, just
// before its session keeps it) as another goroutine could.
func (o *op) execAround(meanwhile func()) (rec []byte, resp service.Response, rep *Reply) {
	kind := service.Classify(o.in.Session, o.in.Seq, o.in.Method, o.in.Path)
	o.s.check = func(tx *service.Tx, resp service.Response, size int) error {
		if meanwhile != nil {
			meanwhile()
		}
		return o.e.c.reserveOp(o.s, o.fresh, kind, tx.OpKeys(), tx.OpReadKeys(), size, o.e.now)
	}
	resp, h, err := o.s.Step(o.e.c.cfg.Registry, o.in.Seq, protocol.Op{Method: o.in.Method, Path: o.in.Path, Body: o.in.Body,
		Signature: o.in.Signature, Time: o.t, Expires: o.in.Expires})
	o.s.check = nil
	rec, rep = o.e.c.applied(o.s, o.fresh, o.in, o.t, resp, h, err, o.e.now)
	return rec, resp, rep
}

// do runs one op through the core and makes it durable; a kept op
// advances the test session.
func (e *coreEnv) do(s *sess, method, path, body string) *Reply {
	e.t.Helper()
	o, rep := e.begin(s, method, path, body)
	if rep != nil {
		return rep
	}
	rec, resp, rep := o.exec()
	if rep != nil {
		return rep
	}
	if len(rec) == 0 {
		e.t.Fatal("a kept op without a WAL record")
	}
	e.c.durable(o.s, service.Classify(o.in.Session, o.in.Seq, o.in.Method, o.in.Path), nil, e.now)
	s.advance(o.in)
	return &Reply{Resp: resp}
}

func (e *coreEnv) must(s *sess, want int, method, path, body string) {
	e.t.Helper()
	if rep := e.do(s, method, path, body); rep.Resp.Status != want {
		e.t.Fatalf("%s %s: got %d %s, want %d", method, path, rep.Resp.Status, rep.Resp.Body, want)
	}
}

// judge takes the next batch, names it, and commits a block with code for
// every bundle; it returns the batch's bundles.
func (e *coreEnv) judge(code protocol.Code) []protocol.Bundle {
	e.t.Helper()
	batch, bundles, key := e.c.take(e.now)
	if len(batch) == 0 {
		e.t.Fatal("nothing to take")
	}
	hash := strings.Repeat("AB", 32)
	if !e.c.sent(key, hash) {
		e.t.Fatal("sent: batch not in flight")
	}
	res := protocol.TxResult{Hash: hash}
	for _, b := range bundles {
		res.Outcomes = append(res.Outcomes, protocol.Outcome{Session: b.Session, Code: code})
		res.Reasons = append(res.Reasons, "test verdict")
	}
	e.c.block(protocol.Block{Height: 2, Time: e.now.UnixMilli(), Txs: []protocol.TxResult{res}}, e.st, e.now)
	return bundles
}

func events(rd Ready, id string) []string {
	var out []string
	for _, e := range rd.Events {
		if e.s.ID == id {
			out = append(out, e.ev.Type+":"+e.ev.Status)
		}
	}
	return out
}

// TestCoreWorkflow: a session's ops come back as WAL records and events;
// its commit queues it once durable; a batch taken is in flight; L1's OK
// ends it, with the exact time from commit to verdict as its finality.
func TestCoreWorkflow(t *testing.T) {
	e := newCoreEnv(t, nil)
	s := newSess("wf-1", operator1)
	e.must(s, http.StatusCreated, http.MethodPost, service.PathSessions, `{"package_id":"PKG-1"}`)
	e.must(s, http.StatusOK, http.MethodPost, pkgPath("PKG-1", "scan"), `{}`)
	rd := e.c.ready()
	if got := events(rd, "wf-1"); strings.Join(got, " ") != "op:open op:open" || rd.Kick {
		t.Fatalf("after two steps: events %v, kick %v", got, rd.Kick)
	}
	if h, _ := e.c.holder(supplychain.PackageKey("PKG-1")); h == nil || h.Session != "wf-1" || h.Actor != operator1.ID || h.Since != e.now.UnixMilli() {
		t.Fatalf("PKG-1 held by %+v, want wf-1 of operator-1 since the start", h)
	}
	e.must(s, http.StatusAccepted, http.MethodPost, service.CommitPath("wf-1"), `{}`)
	if rd := e.c.ready(); !rd.Kick || len(e.c.queue) != 1 {
		t.Fatalf("after the commit: kick %v, queue %d", rd.Kick, len(e.c.queue))
	}
	if e.c.lag(e.now.Add(70*time.Millisecond)) != 70*time.Millisecond {
		t.Errorf("lag: %s, want 70ms", e.c.lag(e.now.Add(70*time.Millisecond)))
	}
	e.now = e.now.Add(70 * time.Millisecond)
	bundles := e.judge(protocol.CodeOK)
	if len(bundles) != 1 || len(bundles[0].Ops) != 3 || bundles[0].Attempt != 0 {
		t.Fatalf("bundles: %d, %d ops", len(bundles), len(bundles[0].Ops))
	}
	rd = e.c.ready()
	if got := events(rd, "wf-1"); len(got) != 1 || got[0] != "final:committed" {
		t.Fatalf("verdict events: %v", got)
	}
	if len(rd.Finality) != 1 || rd.Finality[0] != 70*time.Millisecond {
		t.Errorf("finality: %v, want [70ms]", rd.Finality)
	}
	if len(rd.Records) != 1 || !strings.Contains(string(rd.Records[0]), `"k":"end"`) {
		t.Errorf("end records: %q", rd.Records)
	}
	if _, held := e.c.holder(supplychain.PackageKey("PKG-1")); held {
		t.Error("PKG-1 still held after the session ended")
	}
	if u := e.c.actors[operator1.ID]; u.open != 0 || u.reserved != 0 || u.bytes != 0 {
		t.Errorf("operator's use after the end: %+v", u)
	}
}

// TestCoreTime: every rule that depends on time sees only the times it is
// given: the session TTL, resubmission, the lag that sheds new sessions,
// and L1's block time against a commit's expiry.
func TestCoreTime(t *testing.T) {
	e := newCoreEnv(t, func(c *Config) {
		c.SessionTTL = time.Minute
		c.ResubmitAfter = 10 * time.Second
		c.MaxLag = 2 * time.Second
	})
	idle := newSess("idle", operator1)
	e.must(idle, http.StatusCreated, http.MethodPost, service.PathSessions, `{}`)
	e.now = e.now.Add(time.Minute)
	e.c.tick(e.now)
	if idle := e.c.sessions["idle"]; idle.final != nil {
		t.Fatal("expired at exactly its TTL")
	}
	e.now = e.now.Add(time.Millisecond)
	e.c.tick(e.now)
	if f := e.c.sessions["idle"].final; f == nil || f.Code != "EXPIRED" {
		t.Fatalf("idle past its TTL: %+v", f)
	}

	s := newSess("wf", operator1)
	e.must(s, http.StatusCreated, http.MethodPost, service.PathSessions, `{}`)
	e.must(s, http.StatusAccepted, http.MethodPost, service.CommitPath("wf"), `{}`)
	_, _, key := e.c.take(e.now)
	e.c.sent(key, "H1")
	// L1 is behind: a new session is shed past MaxLag, not before.
	e.now = e.now.Add(2 * time.Second)
	if _, rep := e.begin(newSess("new-1", operator2), http.MethodPost, service.PathSessions, `{}`); rep != nil {
		t.Fatalf("at the lag limit: %d %s", rep.Resp.Status, rep.Resp.Body)
	}
	e.c.release(e.c.sessions["new-1"], true, e.now)
	e.now = e.now.Add(time.Millisecond)
	if _, rep := e.begin(newSess("new-2", operator2), http.MethodPost, service.PathSessions, `{}`); rep == nil || errorCode(rep.Resp) != "OVERLOADED" {
		t.Fatalf("past the lag limit: %+v", rep)
	}
	// No verdict within ResubmitAfter (10 s after the take): the bundle
	// goes again, as new bytes.
	e.now = e.now.Add(8*time.Second - time.Millisecond)
	e.c.tick(e.now)
	if len(e.c.queue) != 0 {
		t.Fatal("resubmitted before ResubmitAfter")
	}
	e.now = e.now.Add(2 * time.Millisecond)
	e.c.tick(e.now)
	if _, bundles, _ := e.c.take(e.now); len(bundles) != 1 || bundles[0].Attempt != 1 {
		t.Fatalf("after ResubmitAfter: %+v", bundles)
	}
	// A block past the commit's expiry rejects it (L1 never will apply it).
	e.c.block(protocol.Block{Height: 3, Time: testExpiry + 1}, e.st, e.now)
	if f := e.c.sessions["wf"].final; f == nil || f.Code != protocol.CodeExpired.String() {
		t.Fatalf("after a block past its expiry: %+v", f)
	}
}

// TestCoreInterleaved: two ops execute at once, outside the core, both
// writing one key. The core serialises only their keeping: the first to
// be kept takes the key, the second is refused as if it had run after.
func TestCoreInterleaved(t *testing.T) {
	e := newCoreEnv(t, nil)
	a, b := newSess("a", operator1), newSess("b", operator2)
	e.must(a, http.StatusCreated, http.MethodPost, service.PathSessions, `{}`)
	e.must(b, http.StatusCreated, http.MethodPost, service.PathSessions, `{}`)
	oa, rep := e.begin(a, http.MethodPost, "/v1/test/put/k", `{}`)
	if rep != nil {
		t.Fatal(rep.Resp.Body)
	}
	ob, rep := e.begin(b, http.MethodPost, "/v1/test/put/k", `{}`)
	if rep != nil {
		t.Fatal(rep.Resp.Body)
	}
	if !oa.s.busy || !ob.s.busy {
		t.Fatal("claimed sessions are not busy")
	}
	// Housekeeping leaves a busy session alone, however idle it looks.
	e.c.tick(e.now.Add(time.Hour))
	if oa.s.final != nil {
		t.Fatal("tick ended a session whose op is executing")
	}
	if _, resp, rep := ob.exec(); rep != nil || !resp.OK() {
		t.Fatalf("b's put: %+v %+v", rep, resp)
	}
	_, resp, rep := oa.exec()
	if rep == nil || resp.Status != http.StatusConflict || !strings.Contains(string(resp.Body), "held by session b") {
		t.Fatalf("a's put after b kept k: %d %s", resp.Status, resp.Body)
	}
	if oa.s.busy || ob.s.busy {
		t.Error("sessions still busy after their ops")
	}
	if a.seq != 1 || oa.s.Seq() != 1 {
		t.Errorf("a refused op advanced the session: seq %d", oa.s.Seq())
	}
}

// TestCoreWriteSkew: two ops execute at once, each reading the key the
// other writes. The one kept second read a key the first took meanwhile:
// it is refused, as it would have been had it run after, instead of both
// being kept on reads L1 would find stale.
func TestCoreWriteSkew(t *testing.T) {
	e := newCoreEnv(t, nil)
	a, b := newSess("a", operator1), newSess("b", operator2)
	e.must(a, http.StatusCreated, http.MethodPost, service.PathSessions, `{}`)
	e.must(b, http.StatusCreated, http.MethodPost, service.PathSessions, `{}`)
	oa, _ := e.begin(a, http.MethodPost, "/v1/test/copy/k1/k2", `{}`)
	ob, _ := e.begin(b, http.MethodPost, "/v1/test/copy/k2/k1", `{}`)
	var bResp service.Response
	_, aResp, _ := oa.execAround(func() {
		// a has read k1 and is about to be kept; b runs whole meanwhile:
		// k2 is still free when b reads it.
		_, bResp, _ = ob.exec()
	})
	if !bResp.OK() {
		t.Fatalf("b: %d %s", bResp.Status, bResp.Body)
	}
	if aResp.Status != http.StatusConflict || !strings.Contains(string(aResp.Body), "test/k1 is held by session b of operator-2") {
		t.Fatalf("a, kept after b took the key it read: %d %s, want 409 naming b", aResp.Status, aResp.Body)
	}
	if h, held := e.c.holder("test/k2"); held {
		t.Errorf("test/k2 held by %+v after a was refused", h)
	}
}

// TestCorePendingStart: a session is registered while its first op
// executes, so a second op for the id waits for it; if the first op
// fails, the id is free again.
func TestCorePendingStart(t *testing.T) {
	e := newCoreEnv(t, nil)
	s := newSess("p", operator1)
	first := s.next(http.MethodPost, service.PathSessions, `{"package_id":"NOPE"}`)
	st, fresh, rep := e.c.admit(first, e.now, e.st)
	if rep != nil || !fresh || !st.pending {
		t.Fatalf("admit: %+v %v", rep, fresh)
	}
	if e.c.session("p") != nil {
		t.Fatal("a pending session is visible")
	}
	again, fresh2, rep := e.c.admit(s.next(http.MethodPost, service.PathSessions, `{}`), e.now, e.st)
	if rep != nil || fresh2 || again != st {
		t.Fatalf("second admit of a pending id: %+v, fresh %v", rep, fresh2)
	}
	e.c.claim(st, true, first, e.now)
	o := &op{e: e, in: first, s: st, fresh: true, t: e.now.UnixMilli()}
	if _, resp, _ := o.exec(); resp.Status != http.StatusNotFound {
		t.Fatalf("start on a missing package: %d", resp.Status)
	}
	if _, _, retry := e.c.claim(again, false, first, e.now); !retry {
		t.Fatal("the waiting op was not told to admit again")
	}
	e.must(s, http.StatusCreated, http.MethodPost, service.PathSessions, `{}`)
	if u := e.c.actors[operator1.ID]; u.open != 1 || e.c.open != 1 {
		t.Errorf("open sessions: actor %d, node %d; want 1", u.open, e.c.open)
	}
}

// TestCoreDurableFailure: a record the WAL could not make durable ends its
// session; if a later op of the session is executing at that moment, the
// session ends when that op is done, and takes no more.
func TestCoreDurableFailure(t *testing.T) {
	e := newCoreEnv(t, nil)
	s := newSess("d", operator1)
	e.must(s, http.StatusCreated, http.MethodPost, service.PathSessions, `{}`)
	o1, _ := e.begin(s, http.MethodPost, "/v1/test/put/x", `{}`)
	if _, _, rep := o1.exec(); rep != nil {
		t.Fatal(rep.Resp.Body)
	}
	s.advance(o1.in)
	o2, rep := e.begin(s, http.MethodPost, "/v1/test/put/y", `{}`)
	if rep != nil {
		t.Fatal(rep.Resp.Body)
	}
	e.c.durable(o1.s, service.KindStep, errors.New("disk full"), e.now)
	if o1.s.final != nil {
		t.Fatal("ended while an op of it executes")
	}
	o2.exec()
	if f := o1.s.final; f == nil || f.Code != "UNAVAILABLE" {
		t.Fatalf("after its executing op: %+v", f)
	}
	if _, held := e.c.holder("test/x"); held {
		t.Error("keys still held")
	}

	// The same when the executing op is refused before it runs (a bad
	// signature, the rate): the session ends as it lets go.
	s2 := newSess("d2", operator1)
	e.must(s2, http.StatusCreated, http.MethodPost, service.PathSessions, `{}`)
	o3, _ := e.begin(s2, http.MethodPost, "/v1/test/put/z", `{}`)
	e.c.durable(o3.s, service.KindStart, errors.New("disk full"), e.now)
	e.c.release(o3.s, false, e.now)
	if f := o3.s.final; f == nil || f.Code != "UNAVAILABLE" || e.c.open != 0 {
		t.Fatalf("after a refused op let go: final %+v, open %d", f, e.c.open)
	}
}

// TestPipelinedOps: ops of one session that arrive together (a client
// that does not wait for each answer) never run at once: each is either
// kept in its turn or refused as out of order (409), the session's ops
// stay in seq order, and other sessions go on beside them. Run with -race.
func TestPipelinedOps(t *testing.T) {
	e := newEnv(t, nil)
	s := newSess("pipe", operator1)
	e.start(s, "PKG-1")
	other := newSess("other", operator2)
	e.start(other, "PKG-2")
	var ins []*Input
	for _, st := range [][3]string{
		{http.MethodPost, pkgPath("PKG-1", "scan"), `{}`},
		{http.MethodPost, pkgPath("PKG-1", "validate"), validateBody},
		{http.MethodPost, pkgPath("PKG-1", "qc"), qcBody},
		{http.MethodPost, pkgPath("PKG-1", "label"), labelBody},
	} {
		in := s.next(st[0], st[1], st[2])
		ins = append(ins, in)
		s.advance(in)
	}
	kept := 1 // the start
	for round := 0; kept < 5; round++ {
		if round == 50 {
			t.Fatalf("after 50 rounds, %d ops kept", kept)
		}
		reps := make(chan *Reply, len(ins))
		for _, in := range ins[kept-1:] {
			go func() { reps <- e.buf.Do(context.Background(), in) }()
		}
		otherRep := make(chan *Reply, 1)
		if round < 1 {
			go func() { otherRep <- e.do(other, http.MethodPost, pkgPath("PKG-2", "scan"), `{}`) }()
		} else {
			otherRep <- &Reply{Resp: service.Response{Status: http.StatusOK}}
		}
		for range ins[kept-1:] {
			rep := <-reps
			switch {
			case rep.Resp.OK():
				kept++
			case rep.Resp.Status != http.StatusConflict || errorCode(rep.Resp) != "FAILED_PRECONDITION":
				t.Fatalf("a pipelined op: %d %s", rep.Resp.Status, rep.Resp.Body)
			}
		}
		if rep := <-otherRep; !rep.Resp.OK() {
			t.Errorf("another session's op: %d %s", rep.Resp.Status, rep.Resp.Body)
		}
	}
	v, _ := e.buf.Lookup("pipe", "")
	if len(v.Ops) != 5 {
		t.Fatalf("ops kept: %d, want 5", len(v.Ops))
	}
	for i, op := range v.Ops {
		if op.Seq != uint64(i) {
			t.Errorf("op %d has seq %d", i, op.Seq)
		}
	}
}
