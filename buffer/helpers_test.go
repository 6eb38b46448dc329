package buffer

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/duet-bft/duet/apps/supplychain"
	"github.com/duet-bft/duet/protocol"
	"github.com/duet-bft/duet/service"
	"github.com/duet-bft/duet/service/servicetest"
)

// The fake L1 of these tests: a committed store in memory, a Submit that
// records each decoded batch (or fails on demand), and verdicts the test
// chooses and hands to Buffer.OnBlock.

type entry struct {
	value   []byte
	version uint64
}

type submission struct {
	tx    []byte
	hash  string // upper-case hex sha256 of tx, as CometBFT names it
	batch *protocol.Batch
}

type fakeChain struct {
	t    *testing.T
	subs chan submission

	mu     sync.Mutex
	kv     map[string]entry
	height int64
	calls  int
	// fail, if set, decides the outcome of Submit call n (1-based); a
	// failed call is not recorded as a submission.
	fail func(n int, b *protocol.Batch) error
	// now is the time of the blocks judge makes; blockLag puts them that
	// much earlier (as after an L1 outage).
	now      func() time.Time
	blockLag time.Duration
	retries  int // Submit calls with retry set
}

func newFakeChain(t *testing.T) *fakeChain {
	return &fakeChain{t: t, subs: make(chan submission, 64), kv: map[string]entry{}, height: 1}
}

type chainStore struct{ c *fakeChain }

func (s chainStore) Get(key string) ([]byte, uint64, error) {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	e, ok := s.c.kv[key]
	if !ok {
		return nil, 0, nil
	}
	return e.value, e.version, nil
}

func (c *fakeChain) Committed() (service.Store, int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return chainStore{c}, c.height
}

func (c *fakeChain) Submit(ctx context.Context, tx []byte, retry bool) error {
	b, err := protocol.DecodeBatch(tx)
	if err != nil {
		c.t.Errorf("buffer submitted an undecodable batch: %v", err)
		return err
	}
	c.mu.Lock()
	c.calls++
	if retry {
		c.retries++
	}
	n, fail := c.calls, c.fail
	c.mu.Unlock()
	if fail != nil {
		if err := fail(n, b); err != nil {
			return err
		}
	}
	sum := sha256.Sum256(tx)
	c.subs <- submission{tx: tx, hash: strings.ToUpper(hex.EncodeToString(sum[:])), batch: b}
	return nil
}

func (c *fakeChain) setFail(f func(n int, b *protocol.Batch) error) {
	c.mu.Lock()
	c.fail = f
	c.mu.Unlock()
}

// put writes key at the next height, as a block of another node would.
func (c *fakeChain) put(key string, value []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.height++
	c.kv[key] = entry{value, uint64(c.height)}
}

func (c *fakeChain) putJSON(key string, v any) { c.put(key, service.MustJSON(v)) }

func (c *fakeChain) get(key string) (entry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.kv[key]
	return e, ok
}

// snapshot copies the committed state.
func (c *fakeChain) snapshot() map[string]entry {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]entry, len(c.kv))
	for k, e := range c.kv {
		out[k] = entry{bytes.Clone(e.value), e.version}
	}
	return out
}

// next returns the next submission, failing the test after a timeout.
func (c *fakeChain) next(t *testing.T) submission {
	t.Helper()
	select {
	case s := <-c.subs:
		return s
	case <-time.After(5 * time.Second):
		t.Fatal("no batch submitted within 5s")
		return submission{}
	}
}

// none checks that nothing is submitted for d.
func (c *fakeChain) none(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case s := <-c.subs:
		t.Fatalf("unexpected submission of %d bundles (session %s)", len(s.batch.Bundles), s.batch.Bundles[0].Session)
	case <-time.After(d):
	}
}

// reexecute runs a bundle's ops on the committed state as L1 would and
// returns the session's writes; it fails the test if a claimed result
// differs.
func (c *fakeChain) reexecute(t *testing.T, reg *service.Registry, b *protocol.Bundle) []service.KV {
	t.Helper()
	s := NewSession(b.Session, b.Actor, chainStore{c})
	for i, op := range b.Ops {
		resp, _, err := s.Step(reg, uint64(i), op)
		if err != nil {
			t.Fatal(err)
		}
		if resp.Hash() != op.Result {
			t.Fatalf("bundle %s op %d: L1 re-execution gives %d %s, a different result than claimed", b.Session, i, resp.Status, resp.Body)
		}
	}
	return s.Tx().Writes()
}

// judge commits a block with the given verdict for each bundle of sub: an
// OK bundle's writes (re-executed) and its session record are applied at
// the new height. It returns the block's height.
func (c *fakeChain) judge(t *testing.T, reg *service.Registry, buf *Buffer, sub submission, codes ...protocol.Code) int64 {
	t.Helper()
	if len(codes) != len(sub.batch.Bundles) {
		t.Fatalf("judge: %d codes for %d bundles", len(codes), len(sub.batch.Bundles))
	}
	var writes [][]service.KV
	for i := range sub.batch.Bundles {
		var w []service.KV
		if codes[i] == protocol.CodeOK {
			w = c.reexecute(t, reg, &sub.batch.Bundles[i])
		}
		writes = append(writes, w)
	}
	c.mu.Lock()
	c.height++
	h := c.height
	res := protocol.TxResult{Hash: sub.hash}
	for i, b := range sub.batch.Bundles {
		reason := ""
		if codes[i] == protocol.CodeOK {
			for _, kv := range writes[i] {
				c.kv[kv.Key] = entry{kv.Value, uint64(h)}
			}
			c.kv[service.SessionKey(b.Actor, b.Session)] = entry{service.MustJSON(recordOf(&b, h, sub.hash)), uint64(h)}
		} else {
			reason = fmt.Sprintf("test verdict %s", codes[i])
		}
		res.Outcomes = append(res.Outcomes, protocol.Outcome{Session: b.Session, Code: codes[i]})
		res.Reasons = append(res.Reasons, reason)
	}
	c.mu.Unlock()
	bt := int64(0)
	if c.now != nil {
		bt = c.now().Add(-c.blockLag).UnixMilli()
	}
	buf.OnBlock(protocol.Block{Height: h, Time: bt, Txs: []protocol.TxResult{res}})
	return h
}

// recordOf is L1's record of bundle b applied at height h by tx.
func recordOf(b *protocol.Bundle, h int64, tx string) service.SessionRecord {
	return service.SessionRecord{Session: b.Session, Actor: b.Actor, Node: b.Node, Height: h, TxHash: tx, Ops: len(b.Ops),
		LastOp: b.LastOpHash().String(), Results: protocol.ResultsDigest(b.ClaimedResults()).String()}
}

// rejectedErr is a CheckTx refusal.
type rejectedErr struct {
	code uint32
	log  string
}

func (e rejectedErr) Error() string              { return fmt.Sprintf("checktx: code %d: %s", e.code, e.log) }
func (e rejectedErr) Rejected() (uint32, string) { return e.code, e.log }

var errUnreachable = errors.New("fake: L1 unreachable")

// clock is a fake Config.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.UnixMilli(1_750_000_000_000)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type actor = servicetest.Actor

var (
	admin     = servicetest.NewActor("admin-1", service.RoleAdmin, 1)
	supplier  = servicetest.NewActor("supplier-1", supplychain.RoleSupplier, 2)
	operator1 = servicetest.NewActor("operator-1", supplychain.RoleOperator, 3)
	operator2 = servicetest.NewActor("operator-2", supplychain.RoleOperator, 4)
	courier   = servicetest.NewActor("courier-1", supplychain.RoleCourier, 5)
	node      = servicetest.NewActor("l2-0", service.RoleL2, 6)
	auditor   = servicetest.NewActor("auditor-1", supplychain.RoleAuditor, 7)
	allActors = []actor{admin, supplier, operator1, operator2, courier, node, auditor}
)

var testItems = []supplychain.Item{{SKU: "SKU-1", Name: "Widget", Qty: 3}, {SKU: "SKU-2", Name: "Gadget", Qty: 1}}

// packageRecord is a package as a supplier's committed create leaves it.
// pkgChanges returns PKG-1 changed on L1 in two ways: moved on to labeled
// (its next steps give other results), and rewritten with one more history
// entry (a new version, the same results).
func pkgChanges() (moved, touched supplychain.Package) {
	moved, touched = packageRecord("PKG-1"), packageRecord("PKG-1")
	moved.Stage = supplychain.StageLabeled
	touched.HistoryLen++
	return moved, touched
}

// stoppedMidSession is a node stopped while session wf-1 (start and scan
// on PKG-1) was open.
func stoppedMidSession(t *testing.T) (*env, *sess) {
	t.Helper()
	e := newEnv(t, nil)
	s := newSess("wf-1", operator1)
	e.start(s, "PKG-1")
	e.scan(s, "PKG-1")
	e.close()
	return e, s
}

func packageRecord(id string) supplychain.Package {
	return supplychain.Package{ID: id, Supplier: supplier.ID, Destination: "DC Jakarta", Items: testItems,
		ManifestSignature: ed25519.Sign(supplier.Key, supplychain.ManifestBytes(id, supplier.ID, "DC Jakarta", testItems)),
		CreatedAt:         1, Stage: supplychain.StageCreated,
		HistoryLen: 1}
}

// seed writes the actors, a courier and packages PKG-1 and PKG-2.
func (c *fakeChain) seed() {
	for _, a := range allActors {
		c.putJSON(service.ActorKey(a.ID), service.Actor{ID: a.ID, Role: a.Role, Org: "org-" + a.ID, PublicKey: a.Public()})
	}
	c.putJSON(supplychain.CourierKey("courier-1"), supplychain.Courier{ID: "courier-1", Name: "Courier One", ActorID: courier.ID})
	for _, id := range []string{"PKG-1", "PKG-2"} {
		c.putJSON(supplychain.PackageKey(id), packageRecord(id))
	}
}

// testRegistry is the supply chain plus routes for limit tests:
// POST /v1/test/blob takes any body and answers {"ok":true};
// POST /v1/test/echo/{n} answers n bytes of JSON;
// POST /v1/test/put/{key} writes test/<key> without reading it;
// POST /v1/test/copy/{from}/{to} reads test/<from> and writes it to test/<to>.
func testRegistry() *service.Registry {
	r := supplychain.New()
	r.Handle(http.MethodPost, "/v1/test/blob", nil, func(tx *service.Tx, ctx *service.Context, req *service.Request) service.Response {
		return service.JSON(http.StatusOK, map[string]bool{"ok": true})
	})
	r.Handle(http.MethodPost, "/v1/test/echo/{n}", nil, func(tx *service.Tx, ctx *service.Context, req *service.Request) service.Response {
		n, _ := strconv.Atoi(req.Param("n"))
		return service.JSON(http.StatusOK, strings.Repeat("e", max(0, n-2)))
	})
	r.Handle(http.MethodPost, "/v1/test/put/{key}", nil, func(tx *service.Tx, ctx *service.Context, req *service.Request) service.Response {
		tx.Put("test/"+req.Param("key"), []byte("1"))
		return service.JSON(http.StatusOK, map[string]bool{"ok": true})
	})
	r.Handle(http.MethodPost, "/v1/test/copy/{from}/{to}", nil, func(tx *service.Tx, ctx *service.Context, req *service.Request) service.Response {
		v, _ := tx.Get("test/" + req.Param("from"))
		tx.Put("test/"+req.Param("to"), v)
		return service.JSON(http.StatusOK, map[string]bool{"ok": true})
	})
	return r
}

// env is a Buffer on a fake chain.
type env struct {
	t     *testing.T
	chain *fakeChain
	clock *clock
	reg   *service.Registry
	cfg   Config
	buf   *Buffer
}

// newEnv opens a Buffer; adjust changes the config before Open.
func newEnv(t *testing.T, adjust func(*Config)) *env {
	t.Helper()
	e := &env{t: t, chain: newFakeChain(t), clock: newClock(), reg: testRegistry()}
	e.chain.seed()
	e.chain.now = e.clock.Now
	e.cfg = Config{Node: node.ID, Key: node.Key, Registry: e.reg, WALPath: filepath.Join(t.TempDir(), "wal.log"),
		BatchInterval: time.Millisecond, ResubmitAfter: time.Hour, Now: e.clock.Now}
	if adjust != nil {
		adjust(&e.cfg)
	}
	e.open()
	return e
}

func (e *env) open() {
	e.t.Helper()
	b, err := Open(e.cfg, e.chain)
	if err != nil {
		e.t.Fatalf("Open: %v", err)
	}
	e.buf = b
	e.t.Cleanup(func() {
		if e.buf == b {
			b.Close()
		}
	})
}

// close closes the buffer (as a stop of the node would).
func (e *env) close() {
	e.t.Helper()
	if err := e.buf.Close(); err != nil {
		e.t.Fatalf("Close: %v", err)
	}
	e.buf = nil
}

// reopen closes the buffer and opens a new one on the same WAL.
func (e *env) reopen() {
	e.t.Helper()
	e.close()
	e.open()
}

// sess is the client side of a session: it signs each op over the chain
// of the ops the node kept.
type sess struct {
	id   string
	who  actor
	seq  uint64
	prev protocol.Hash
	exp  int64 // expiry of the ops it signs
}

// testExpiry is the expiry test ops sign by default: 23 hours after the
// test clock starts, within the node's 24h MaxOpLifetime.
const testExpiry = 1_750_000_000_000 + 23*3600*1000

func newSess(id string, who actor) *sess { return &sess{id: id, who: who, exp: testExpiry} }

// input signs op seq with prev (not necessarily the session's own).
func (s *sess) input(seq uint64, prev protocol.Hash, method, path, body string) *Input {
	sig := ed25519.Sign(s.who.Key, protocol.OpBytes(s.id, seq, prev, method, path, []byte(body), s.exp))
	return &Input{Session: s.id, Seq: seq, Actor: s.who.ID, Method: method, Path: path, Body: []byte(body), Signature: sig, Expires: s.exp}
}

// next signs the session's next op.
func (s *sess) next(method, path, body string) *Input {
	return s.input(s.seq, s.prev, method, path, body)
}

// advance moves the session past in.
func (s *sess) advance(in *Input) {
	s.prev = protocol.OpHash(protocol.OpBytes(in.Session, in.Seq, s.prev, in.Method, in.Path, in.Body, in.Expires))
	s.seq++
}

// do sends the next op with ctx; a 2xx answer advances the session.
func (e *env) doCtx(ctx context.Context, s *sess, method, path, body string) *Reply {
	in := s.next(method, path, body)
	rep := e.buf.Do(ctx, in)
	if rep.Resp.OK() {
		s.advance(in)
	}
	return rep
}

func (e *env) do(s *sess, method, path, body string) *Reply {
	return e.doCtx(context.Background(), s, method, path, body)
}

// must is do that requires the status want.
func (e *env) must(s *sess, want int, method, path, body string) *Reply {
	e.t.Helper()
	rep := e.do(s, method, path, body)
	if rep.Resp.Status != want {
		e.t.Fatalf("%s %s %s (session %s seq %d): got %d %s, want %d", method, path, body, s.id, s.seq, rep.Resp.Status, rep.Resp.Body, want)
	}
	return rep
}

const (
	validateBody = `{"observed_items":[{"sku":"SKU-1","qty":3},{"sku":"SKU-2","qty":1}]}`
	qcBody       = `{"passed":true,"notes":"ok","checks":{"seal":"intact"}}`
	labelBody    = `{"courier_id":"courier-1"}`
)

func pkgPath(id, step string) string { return supplychain.PathPackages + "/" + id + "/" + step }

// start opens s, claiming pkg unless it is "".
func (e *env) start(s *sess, pkg string) *Reply {
	e.t.Helper()
	body := `{}`
	if pkg != "" {
		body = `{"package_id":"` + pkg + `"}`
	}
	return e.must(s, http.StatusCreated, http.MethodPost, service.PathSessions, body)
}

func (e *env) scan(s *sess, pkg string) *Reply {
	e.t.Helper()
	return e.must(s, http.StatusOK, http.MethodPost, pkgPath(pkg, "scan"), `{}`)
}

func (e *env) commit(s *sess) *Reply {
	e.t.Helper()
	return e.must(s, http.StatusAccepted, http.MethodPost, service.CommitPath(s.id), `{}`)
}

func (e *env) abort(s *sess) *Reply {
	e.t.Helper()
	return e.must(s, http.StatusOK, http.MethodDelete, service.AbortPath(s.id), `{}`)
}

// workflow runs start, scan, validate, qc and label on pkg.
func (e *env) workflow(s *sess, pkg string) []*Reply {
	e.t.Helper()
	return []*Reply{
		e.start(s, pkg),
		e.scan(s, pkg),
		e.must(s, http.StatusOK, http.MethodPost, pkgPath(pkg, "validate"), validateBody),
		e.must(s, http.StatusOK, http.MethodPost, pkgPath(pkg, "qc"), qcBody),
		e.must(s, http.StatusOK, http.MethodPost, pkgPath(pkg, "label"), labelBody),
	}
}

// waitFinal waits for a session to end and returns how.
func (e *env) waitFinal(id string) *Final {
	e.t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		_, ch, cancel, ok := e.buf.Subscribe(id)
		if !ok {
			e.t.Fatalf("session %s unknown", id)
		}
		for open := true; open; {
			select {
			case _, open = <-ch:
			case <-deadline:
				cancel()
				v, _ := e.buf.Lookup(id, "")
				e.t.Fatalf("session %s not final within 5s: %s", id, v.Status)
			}
		}
		cancel()
		if v, _ := e.buf.Lookup(id, ""); v.Final != nil {
			return v.Final
		}
	}
}

// status returns a session's status as Lookup reports it.
func (e *env) status(id string) string {
	v, ok := e.buf.Lookup(id, "")
	if !ok {
		return "unknown"
	}
	return v.Status
}

// errorCode returns the error code of a JSON error body.
func errorCode(resp service.Response) string {
	var eb service.ErrorBody
	if err := service.DecodeJSON(resp.Body, &eb); err != nil {
		return ""
	}
	return eb.Error.Code
}

// stage returns a package's stage in st.
func stage(t *testing.T, st service.Store, id string) string {
	t.Helper()
	resp, err := supplychain.New().Query(st, supplychain.PathPackages+"/"+id)
	if err != nil {
		t.Fatal(err)
	}
	var out struct {
		Package supplychain.Package `json:"package"`
	}
	if err := service.DecodeJSON(resp.Body, &out); err != nil {
		t.Fatalf("package %s: %d %s", id, resp.Status, resp.Body)
	}
	return out.Package.Stage
}
