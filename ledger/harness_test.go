package ledger_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	abci "github.com/cometbft/cometbft/abci/types"

	"github.com/duet-bft/duet/apps/supplychain"
	"github.com/duet-bft/duet/buffer"
	"github.com/duet-bft/duet/ledger"
	"github.com/duet-bft/duet/protocol"
	"github.com/duet-bft/duet/service"
)

// t0 is the genesis time; every block is a second after the one before.
var t0 = time.UnixMilli(1_700_000_000_000).UTC()

type actor struct {
	id, role string
	key      ed25519.PrivateKey
}

// newActor derives the actor's key from its id, so every run uses the same
// keys.
func newActor(id, role string) actor {
	seed := sha256.Sum256([]byte("duet-ledger-test/" + id))
	return actor{id: id, role: role, key: ed25519.NewKeyFromSeed(seed[:])}
}

func (a actor) record() service.Actor {
	return service.Actor{ID: a.id, Role: a.role, Org: "org-" + a.id, PublicKey: a.key.Public().(ed25519.PublicKey)}
}

var (
	admin    = newActor("ADM-1", service.RoleAdmin)
	sup1     = newActor("SUP-1", supplychain.RoleSupplier)
	sup2     = newActor("SUP-2", supplychain.RoleSupplier)
	op1      = newActor("OP-1", supplychain.RoleOperator)
	op2      = newActor("OP-2", supplychain.RoleOperator)
	courier1 = newActor("CR-1", supplychain.RoleCourier)
	node1    = newActor("L2-1", service.RoleL2)
	node2    = newActor("L2-2", service.RoleL2)

	// Not in the genesis: signs like a node but is not registered.
	stranger = newActor("L2-9", service.RoleL2)
)

var genesisActors = []actor{admin, sup1, sup2, op1, op2, courier1, node1, node2}

// genesis returns the app state of the test chain: the genesis actors
// (plus extra), courier CR-1 (an actor) and courier CR-2 (no actor).
func genesis(extra ...actor) []byte {
	var actors []service.Actor
	for _, a := range append(append([]actor(nil), genesisActors...), extra...) {
		actors = append(actors, a.record())
	}
	return supplychain.App.Genesis(actors, service.MustJSON(supplychain.Genesis{Couriers: []supplychain.Courier{
		{ID: "CR-1", Name: "Kurir Cepat", ActorID: "CR-1"},
		{ID: "CR-2", Name: "Kurir Lambat"},
	}}))
}

// harness drives one ledger.App through its ABCI methods, as CometBFT
// would: InitChain, then FinalizeBlock + Commit per height.
type harness struct {
	t         testing.TB
	dir       string
	app       *ledger.App
	reg       *service.Registry // the L2 side's registry
	height    int64             // last finalized height
	blockTime time.Time         // time of the last finalized block
	clock     int64             // Unix ms of the last op time handed out
}

var ctx = context.Background()

// newHarness starts a chain in a fresh directory: InitChain with the
// genesis, then an empty block 1 so the genesis is committed state.
func newHarness(t testing.TB, extra ...actor) *harness {
	t.Helper()
	h := &harness{t: t, dir: t.TempDir(), reg: supplychain.New(), blockTime: t0, clock: t0.UnixMilli()}
	h.open()
	if _, err := h.app.InitChain(ctx, &abci.RequestInitChain{Time: t0, ChainId: "duet-test",
		AppStateBytes: genesis(extra...), InitialHeight: 1}); err != nil {
		t.Fatalf("InitChain: %v", err)
	}
	h.block()
	return h
}

// open (re)opens the App on h.dir.
func (h *harness) open() {
	h.t.Helper()
	app, err := ledger.New(ledger.DefaultConfig(h.dir), supplychain.App)
	if err != nil {
		h.t.Fatalf("ledger.New: %v", err)
	}
	h.app = app
	h.t.Cleanup(func() {
		if h.app == app {
			app.Close()
		}
	})
}

// close closes the App, as a process exit would.
func (h *harness) close() {
	h.t.Helper()
	if err := h.app.Close(); err != nil {
		h.t.Fatalf("Close: %v", err)
	}
	h.app = nil
}

// now hands out the next op time: 1 ms after the last one, never before
// the last block.
func (h *harness) now() int64 {
	h.clock++
	return h.clock
}

// nextBlockTime is a second after the last block, and never before an op
// time already handed out.
func (h *harness) nextBlockTime() time.Time {
	bt := h.blockTime.Add(time.Second)
	if c := time.UnixMilli(h.clock).UTC(); c.After(bt) {
		bt = c
	}
	return bt
}

// finalize runs FinalizeBlock at the next height.
func (h *harness) finalize(bt time.Time, txs ...[]byte) *abci.ResponseFinalizeBlock {
	h.t.Helper()
	res, err := h.app.FinalizeBlock(ctx, &abci.RequestFinalizeBlock{Height: h.height + 1, Time: bt, Txs: txs})
	if err != nil {
		h.t.Fatalf("FinalizeBlock %d: %v", h.height+1, err)
	}
	if got, want := len(res.TxResults), len(txs); got != want {
		h.t.Fatalf("FinalizeBlock %d: got %d tx results, want %d", h.height+1, got, want)
	}
	h.height++
	h.blockTime = bt
	h.clock = max(h.clock, bt.UnixMilli())
	return res
}

// commit runs Commit and checks the committed view moved to the height.
func (h *harness) commit() {
	h.t.Helper()
	if _, err := h.app.Commit(ctx, &abci.RequestCommit{}); err != nil {
		h.t.Fatalf("Commit %d: %v", h.height, err)
	}
	if _, got := h.app.Committed(); got != h.height {
		h.t.Fatalf("got committed height %d after Commit, want %d", got, h.height)
	}
}

// block finalizes and commits the next block with txs.
func (h *harness) block(txs ...[]byte) *abci.ResponseFinalizeBlock {
	h.t.Helper()
	return h.blockAt(h.nextBlockTime(), txs...)
}

func (h *harness) blockAt(bt time.Time, txs ...[]byte) *abci.ResponseFinalizeBlock {
	h.t.Helper()
	res := h.finalize(bt, txs...)
	h.commit()
	if got := h.info().LastBlockAppHash; !bytes.Equal(got, res.AppHash) {
		h.t.Fatalf("height %d: got Info app hash %X, want FinalizeBlock's %X", h.height, got, res.AppHash)
	}
	return res
}

// submit commits one block holding one tx with bundles, and returns their
// outcomes.
func (h *harness) submit(bundles ...protocol.Bundle) []protocol.Outcome {
	h.t.Helper()
	res := h.block(batch(bundles...))
	return outcomes(h.t, res.TxResults[0])
}

func (h *harness) info() *abci.ResponseInfo {
	h.t.Helper()
	res, err := h.app.Info(ctx, &abci.RequestInfo{})
	if err != nil {
		h.t.Fatalf("Info: %v", err)
	}
	return res
}

func (h *harness) appHash() []byte { return h.info().LastBlockAppHash }

func (h *harness) query(path string, data []byte, prove bool) *abci.ResponseQuery {
	h.t.Helper()
	res, err := h.app.Query(ctx, &abci.RequestQuery{Path: path, Data: data, Prove: prove})
	if err != nil {
		h.t.Fatalf("Query %s: %v", path, err)
	}
	return res
}

// pkg returns the committed package id, or ok=false if there is none.
func (h *harness) pkg(id string) (p supplychain.Package, ok bool) {
	h.t.Helper()
	res := h.query("/app"+supplychain.PathPackages+"/"+id, nil, false)
	if res.Code == http.StatusNotFound {
		return p, false
	}
	if res.Code != 0 {
		h.t.Fatalf("query package %s: got code %d %s", id, res.Code, res.Value)
	}
	var body struct{ Package supplychain.Package }
	if err := json.Unmarshal(res.Value, &body); err != nil {
		h.t.Fatalf("query package %s: %v", id, err)
	}
	return body.Package, true
}

// stage returns the committed stage of package id, "" if there is none.
// history returns a package's committed history, through its query.
func (h *harness) history(id string) []supplychain.Event {
	h.t.Helper()
	res := h.query("/app/v1/packages/"+id+"/history", nil, false)
	var out struct{ History []supplychain.Event }
	if res.Code != 0 || json.Unmarshal(res.Value, &out) != nil {
		h.t.Fatalf("history of %s: code %d %s", id, res.Code, res.Value)
	}
	return out.History
}

func (h *harness) stage(id string) string {
	h.t.Helper()
	p, _ := h.pkg(id)
	return p.Stage
}

func (h *harness) checkTx(tx []byte) *abci.ResponseCheckTx {
	h.t.Helper()
	res, err := h.app.CheckTx(ctx, &abci.RequestCheckTx{Tx: tx, Type: abci.CheckTxType_New})
	if err != nil {
		h.t.Fatalf("CheckTx: %v", err)
	}
	return res
}

func batch(bundles ...protocol.Bundle) []byte {
	return protocol.EncodeBatch(&protocol.Batch{Bundles: bundles})
}

// outcomes decodes a tx result, which must have code OK.
func outcomes(t testing.TB, r *abci.ExecTxResult) []protocol.Outcome {
	t.Helper()
	if r.Code != 0 {
		t.Fatalf("got tx result code %d (%s), want 0", r.Code, r.Log)
	}
	outs, err := protocol.DecodeOutcomes(r.Data)
	if err != nil {
		t.Fatalf("DecodeOutcomes: %v", err)
	}
	return outs
}

func codes(outs []protocol.Outcome) []protocol.Code {
	cs := make([]protocol.Code, len(outs))
	for i := range outs {
		cs[i] = outs[i].Code
	}
	return cs
}

// session is an L2 session (buffer.Session) on the committed state of the
// harness's App, whose ops its actor signs.
type session struct {
	h *harness
	s *buffer.Session
	a actor
}

func (h *harness) session(id string, a actor) *session {
	st, _ := h.app.Committed()
	return &session{h: h, s: buffer.NewSession(id, a.id, st), a: a}
}

// opLifetime is how long after its time each test op expires.
const opLifetime = 10 * 60 * 1000

// do signs the next op and steps it at the harness clock.
func (s *session) do(method, path, body string) service.Response {
	return s.doAt(s.h.now(), method, path, body)
}

func (s *session) doAt(ms int64, method, path, body string) service.Response {
	s.h.t.Helper()
	return s.doExp(ms, ms+opLifetime, method, path, body)
}

// doExp signs the next op with expiry exp and steps it at ms.
func (s *session) doExp(ms, exp int64, method, path, body string) service.Response {
	s.h.t.Helper()
	sig := ed25519.Sign(s.a.key, protocol.OpBytes(s.s.ID, s.s.Seq(), s.s.Prev(), method, path, []byte(body), exp))
	resp, _, err := s.s.Step(s.h.reg, s.s.Seq(), protocol.Op{Method: method, Path: path, Body: []byte(body), Signature: sig, Time: ms, Expires: exp})
	if err != nil {
		s.h.t.Fatalf("step %s %s: %v", method, path, err)
	}
	return resp
}

// must is do that requires status want.
func (s *session) must(want int, method, path, body string) service.Response {
	s.h.t.Helper()
	resp := s.do(method, path, body)
	if resp.Status != want {
		s.h.t.Fatalf("session %s: %s %s: got %d %s, want %d", s.s.ID, method, path, resp.Status, resp.Body, want)
	}
	return resp
}

func (s *session) start(pkg string) {
	s.h.t.Helper()
	s.must(http.StatusCreated, http.MethodPost, service.PathSessions, `{"package_id":"`+pkg+`"}`)
}

func (s *session) step(pkg, step, body string) {
	s.h.t.Helper()
	s.must(http.StatusOK, http.MethodPost, supplychain.PathPackages+"/"+pkg+"/"+step, body)
}

func (s *session) commit() {
	s.h.t.Helper()
	s.must(http.StatusAccepted, http.MethodPost, service.CommitPath(s.s.ID), `{}`)
}

func (s *session) bundle(node actor) protocol.Bundle { return s.s.Bundle(node.id, node.key, 0) }

// Fixtures.

var defaultItems = []supplychain.Item{
	{SKU: "SKU-2", Name: "Gadget", Qty: 1},
	{SKU: "SKU-1", Name: "Widget", Qty: 3},
}

const (
	defaultDest = "DC Jakarta"
	scanBody    = `{}`
	validateOK  = `{"observed_items":[{"sku":"SKU-2","qty":1},{"sku":"SKU-1","qty":3}]}`
	validateBad = `{"observed_items":[{"sku":"SKU-2","qty":2}]}`
	qcPass      = `{"passed":true,"notes":"seal intact","checks":{"seal":"intact","weight_g":1200}}`
	qcFail      = `{"passed":false,"notes":"crushed corner","checks":{"box":"damaged"}}`
	labelCR1    = `{"courier_id":"CR-1"}`
)

// createBody is a POST /v1/packages body whose manifest sup signs.
func createBody(sup actor, id, dest string, items []supplychain.Item) string {
	sig := ed25519.Sign(sup.key, supplychain.ManifestBytes(id, sup.id, dest, items))
	return string(service.MustJSON(map[string]any{"id": id, "destination": dest, "items": items,
		"manifest_signature": base64.StdEncoding.EncodeToString(sig)}))
}

// createSession is a direct-mode session id: one op at seq 0 by sup that
// creates package pkg.
func (h *harness) createSession(id string, sup actor, pkg string) *session {
	h.t.Helper()
	s := h.session(id, sup)
	s.must(http.StatusCreated, http.MethodPost, supplychain.PathPackages, createBody(sup, pkg, defaultDest, defaultItems))
	return s
}

// create returns the direct-mode bundle (session "new-<pkg>", node1) that
// creates package pkg.
func (h *harness) create(sup actor, pkg string) protocol.Bundle {
	h.t.Helper()
	return h.createSession("new-"+pkg, sup, pkg).bundle(node1)
}

// created commits package id (created by SUP-1) and checks its outcome.
func (h *harness) created(ids ...string) {
	h.t.Helper()
	var bs []protocol.Bundle
	for _, id := range ids {
		bs = append(bs, h.create(sup1, id))
	}
	for i, o := range h.submit(bs...) {
		if o.Code != protocol.CodeOK {
			h.t.Fatalf("create %s: got %v, want OK", ids[i], o.Code)
		}
	}
}

// process is an operator session that takes package pkg from created to
// labeled: start, scan, validate, qc, label, commit (6 ops).
func (h *harness) process(op actor, id, pkg string) *session {
	h.t.Helper()
	s := h.session(id, op)
	s.start(pkg)
	s.step(pkg, "scan", scanBody)
	s.step(pkg, "validate", validateOK)
	s.step(pkg, "qc", qcPass)
	s.step(pkg, "label", labelCR1)
	s.commit()
	return s
}

// clone returns a deep copy of b, for a test to tamper with.
func clone(b protocol.Bundle) protocol.Bundle {
	c := b
	c.Ops = make([]protocol.Op, len(b.Ops))
	for i, op := range b.Ops {
		op.Body = bytes.Clone(op.Body)
		op.Signature = bytes.Clone(op.Signature)
		c.Ops[i] = op
	}
	c.Reads = append([]protocol.Read(nil), b.Reads...)
	c.Signature = bytes.Clone(b.Signature)
	return c
}

// tamper returns a copy of b changed by f and re-signed by node, as a
// Byzantine L2 node would submit it.
func tamper(b protocol.Bundle, node actor, f func(b *protocol.Bundle)) protocol.Bundle {
	c := clone(b)
	f(&c)
	c.Sign(node.key)
	return c
}

// lastOpHash returns the hash of b's last op: the prev hash of an op one
// would append.
func lastOpHash(b *protocol.Bundle) protocol.Hash {
	prev := protocol.ZeroHash
	for i := range b.Ops {
		prev = protocol.OpHash(b.OpSigningBytes(i, prev))
	}
	return prev
}

// appendOp appends an op signed by a to b, with claimed result, and
// re-signs b by node. It builds what buffer.Session would refuse to keep.
func appendOp(b protocol.Bundle, a, node actor, method, path, body string, ms int64, result protocol.Hash) protocol.Bundle {
	msg := protocol.OpBytes(b.Session, uint64(len(b.Ops)), lastOpHash(&b), method, path, []byte(body), ms+opLifetime)
	b.Ops = append(append([]protocol.Op(nil), b.Ops...), protocol.Op{Method: method, Path: path, Body: []byte(body),
		Signature: ed25519.Sign(a.key, msg), Time: ms, Expires: ms + opLifetime, Result: result})
	b.Sign(node.key)
	return b
}

// kvDigest is sha256 over sorted key/value pairs, each length-prefixed.
func kvDigest(kvs []service.KV) []byte {
	d := sha256.New()
	for _, kv := range kvs {
		d.Write(binary.AppendUvarint(nil, uint64(len(kv.Key))))
		d.Write([]byte(kv.Key))
		d.Write(binary.AppendUvarint(nil, uint64(len(kv.Value))))
		d.Write(kv.Value)
	}
	return d.Sum(nil)
}
