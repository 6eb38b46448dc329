package ledger_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/duet-bft/duet/apps/supplychain"
	"github.com/duet-bft/duet/buffer"
	"github.com/duet-bft/duet/protocol"
	"github.com/duet-bft/duet/service"
	"github.com/duet-bft/duet/service/servicetest"
)

var seedFlag = flag.Uint64("seed", 0, "seed of TestEquivalence; 0 runs fixed seeds and one from the clock")

// kvs returns the entries of m whose keys do not start with exclude, sorted.
func kvs(m servicetest.Store, exclude string) []service.KV {
	var out []service.KV
	for k, e := range m {
		if !strings.HasPrefix(k, exclude) {
			out = append(out, service.KV{Key: k, Value: e.Value})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// planOp is one signed op as the client sent it; failed ops are kept here
// (and sent again on the ledger side) but never enter a bundle.
type planOp struct {
	method, path, body string
	sig                []byte
	time, expires      int64
}

// plan is one session of the workflow, with what the direct run gave.
type plan struct {
	id     string
	who    actor
	node   actor
	pkg    string
	ops    []planOp
	resps  []service.Response // direct results, one per op
	after  []service.KV       // direct state (ledger/ excluded) after the session
	digest []byte             // kvDigest(after)
}

// direct runs a random supply-chain workload sequentially: each session is
// a buffer.Session on a servicetest.Store, and its writes are applied as soon as it
// commits.
type direct struct {
	t     *testing.T
	rng   *rand.Rand
	reg   *service.Registry
	st    servicetest.Store
	ver   uint64
	clock int64
	plans []*plan
	cur   *plan
	sess  *buffer.Session
}

func (d *direct) begin(id string, who, node actor, pkg string) {
	d.cur = &plan{id: id, who: who, node: node, pkg: pkg}
	d.sess = buffer.NewSession(id, who.id, d.st)
}

// op signs and runs the next op of the current session.
func (d *direct) op(method, path, body string) service.Response {
	d.t.Helper()
	d.clock += 1 + d.rng.Int64N(500)
	s := d.sess
	exp := d.clock + opLifetime
	sig := ed25519.Sign(d.cur.who.key, protocol.OpBytes(s.ID, s.Seq(), s.Prev(), method, path, []byte(body), exp))
	resp, _, err := s.Step(d.reg, s.Seq(), protocol.Op{Method: method, Path: path, Body: []byte(body), Signature: sig, Time: d.clock, Expires: exp})
	if err != nil {
		d.t.Fatalf("session %s: %v", s.ID, err)
	}
	d.cur.ops = append(d.cur.ops, planOp{method, path, body, sig, d.clock, exp})
	d.cur.resps = append(d.cur.resps, resp)
	return resp
}

// must is op that requires a status class: ok or not.
func (d *direct) must(ok bool, method, path, body string) service.Response {
	d.t.Helper()
	resp := d.op(method, path, body)
	if resp.OK() != ok {
		d.t.Fatalf("session %s: %s %s %s: got %d %s, want success %v", d.cur.id, method, path, body, resp.Status, resp.Body, ok)
	}
	return resp
}

// end commits the current session: its writes go to the store at once.
func (d *direct) end() {
	d.ver++
	d.st.Apply(d.sess.Tx().Writes(), d.ver)
	d.cur.after = kvs(d.st, service.ReservedPrefix)
	d.cur.digest = kvDigest(d.cur.after)
	d.plans = append(d.plans, d.cur)
	d.cur, d.sess = nil, nil
}

func terminal(stage string) bool {
	switch stage {
	case supplychain.StageLabeled, supplychain.StageValidationFailed, supplychain.StageQCFailed:
		return true
	}
	return false
}

func observedBody(items []supplychain.Item) string {
	obs := make([]supplychain.ObservedItem, len(items))
	for i, it := range items {
		obs[i] = supplychain.ObservedItem{SKU: it.SKU, Qty: it.Qty}
	}
	return string(service.MustJSON(map[string]any{"observed_items": obs}))
}

// workload generates and runs, directly, a random sequence of supply-chain
// sessions over several packages: creates in direct mode, operator sessions
// that take a package one to four steps further, random QC verdicts and
// validation mismatches, and now and then an op that fails and is left out
// of the bundle.
func (d *direct) workload() {
	d.t.Helper()
	pick := func(as ...actor) actor { return as[d.rng.IntN(len(as))] }
	n := 6 + d.rng.IntN(8)
	var pkgs []string
	stage := map[string]string{}
	items := map[string][]supplychain.Item{}
	for i := range n {
		pkgs = append(pkgs, fmt.Sprintf("PKG-%d", i))
	}
	for round := 0; round < 200; round++ {
		var active []string
		for _, p := range pkgs {
			if !terminal(stage[p]) {
				active = append(active, p)
			}
		}
		if len(active) == 0 {
			break
		}
		pkg := active[d.rng.IntN(len(active))]
		if stage[pkg] == "" {
			var its []supplychain.Item
			for k := range 1 + d.rng.IntN(3) {
				its = append(its, supplychain.Item{SKU: fmt.Sprintf("SKU-%d", 3-k), Name: fmt.Sprintf("Item %d", k), Qty: 1 + d.rng.Int64N(5)})
			}
			sup := pick(sup1, sup2)
			d.begin("C-"+pkg, sup, pick(node1, node2), pkg)
			d.must(true, http.MethodPost, supplychain.PathPackages, createBody(sup, pkg, fmt.Sprintf("DC %d", d.rng.IntN(3)), its))
			d.end()
			stage[pkg], items[pkg] = supplychain.StageCreated, its
			continue
		}

		id := fmt.Sprintf("S-%d", len(d.plans))
		d.begin(id, pick(op1, op2), pick(node1, node2), pkg)
		d.must(true, http.MethodPost, service.PathSessions, `{"package_id":"`+pkg+`"}`)
		base := supplychain.PathPackages + "/" + pkg + "/"
		st := stage[pkg]
		for k := 1 + d.rng.IntN(4); k > 0 && !terminal(st); k-- {
			if d.rng.IntN(6) == 0 {
				noise := [][2]string{
					{"qc", `{"notes":"no verdict"}`},
					{"scan", `not json`},
					{"label", `{"courier_id":"CR-404"}`},
					{"ship", `{}`},
				}[d.rng.IntN(4)]
				d.must(false, http.MethodPost, base+noise[0], noise[1])
			}
			switch st {
			case supplychain.StageCreated:
				d.must(true, http.MethodPost, base+"scan", scanBody)
				st = supplychain.StageScanned
			case supplychain.StageScanned:
				if d.rng.IntN(5) == 0 {
					d.must(true, http.MethodPost, base+"scan", scanBody)
					continue
				}
				obs := append([]supplychain.Item(nil), items[pkg]...)
				if d.rng.IntN(4) == 0 { // a count that does not match
					obs[d.rng.IntN(len(obs))].Qty += 1 + d.rng.Int64N(2)
				}
				var v supplychain.Validation
				if err := json.Unmarshal(d.must(true, http.MethodPost, base+"validate", observedBody(obs)).Body, &v); err != nil {
					d.t.Fatalf("validate: %v", err)
				}
				st = supplychain.StageValidationFailed
				if v.SignatureValid && v.ContentsMatch {
					st = supplychain.StageValidated
				}
			case supplychain.StageValidated:
				if d.rng.IntN(4) == 0 {
					d.must(true, http.MethodPost, base+"qc", qcFail)
					st = supplychain.StageQCFailed
				} else {
					d.must(true, http.MethodPost, base+"qc", qcPass)
					st = supplychain.StageQCPassed
				}
			case supplychain.StageQCPassed:
				d.must(true, http.MethodPost, base+"label", fmt.Sprintf(`{"courier_id":"CR-%d"}`, 1+d.rng.IntN(2)))
				st = supplychain.StageLabeled
			}
		}
		d.must(true, http.MethodPost, service.CommitPath(id), `{}`)
		d.end()
		stage[pkg] = st
	}
}

// TestEquivalence runs one seeded workload directly (each session applied
// at once to an in-memory store) and through the ledger (the same signed
// ops stepped by buffer.Session on the ledger's committed state, bundled,
// several per block, FinalizeBlock + Commit), and requires the same result
// for every op, OK for every bundle and the same application state (every
// key outside ledger/) after every block.
func TestEquivalence(t *testing.T) {
	seeds := []uint64{1, 2, 3, 4, uint64(time.Now().UnixNano())}
	if *seedFlag != 0 {
		seeds = []uint64{*seedFlag}
	}
	for _, seed := range seeds {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			t.Cleanup(func() {
				if t.Failed() {
					t.Logf("seed %d: rerun with go test ./ledger/ -run TestEquivalence -seed %d", seed, seed)
				}
			})
			equivalence(t, seed)
		})
	}
}

func equivalence(t *testing.T, seed uint64) {
	h := newHarness(t)
	rng := rand.New(rand.NewPCG(seed, 0x6475657421))
	d := &direct{t: t, rng: rng, reg: supplychain.New(), st: servicetest.Store{}, clock: h.clock}
	tx := service.NewTx(d.st)
	if err := supplychain.App.InitGenesis(tx, genesis()); err != nil {
		t.Fatalf("seed %d: InitGenesis: %v", seed, err)
	}
	d.st.Apply(tx.Writes(), 0)
	compareState(t, seed, h, kvs(d.st, service.ReservedPrefix), "genesis")
	d.workload()

	var blocks, bundles int
	for i := 0; i < len(d.plans); {
		// A block holds up to five sessions of distinct packages, so
		// none of them saw a state another one in the block changes.
		size := 1 + rng.IntN(5)
		touched := map[string]bool{}
		var blk []*plan
		for i < len(d.plans) && len(blk) < size && !touched[d.plans[i].pkg] {
			touched[d.plans[i].pkg] = true
			blk = append(blk, d.plans[i])
			i++
		}
		st, _ := h.app.Committed()
		var bs []protocol.Bundle
		bt := h.blockTime.Add(time.Millisecond)
		for _, p := range blk {
			s := buffer.NewSession(p.id, p.who.id, st)
			for k, op := range p.ops {
				resp, _, err := s.Step(h.reg, s.Seq(), protocol.Op{Method: op.method, Path: op.path, Body: []byte(op.body),
					Signature: op.sig, Time: op.time, Expires: op.expires})
				if err != nil {
					t.Fatalf("seed %d: session %s op %d: %v", seed, p.id, k, err)
				}
				if want := p.resps[k]; resp.Status != want.Status || !bytes.Equal(resp.Body, want.Body) {
					t.Fatalf("seed %d: session %s: %s %s: got %d %s on the ledger's state, want %d %s as applied directly",
						seed, p.id, op.method, op.path, resp.Status, resp.Body, want.Status, want.Body)
				}
				if ot := time.UnixMilli(op.time).UTC(); ot.After(bt) {
					bt = ot
				}
			}
			bs = append(bs, s.Bundle(p.node.id, p.node.key, 0))
		}
		// One to three transactions per block.
		var txs [][]byte
		for rest := bs; len(rest) > 0; {
			n := 1 + rng.IntN(len(rest))
			if len(txs) == 2 {
				n = len(rest)
			}
			txs = append(txs, batch(rest[:n]...))
			rest = rest[n:]
		}
		res := h.blockAt(bt, txs...)
		k := 0
		for _, r := range res.TxResults {
			for _, o := range outcomes(t, r) {
				if o.Session != blk[k].id || o.Code != protocol.CodeOK {
					t.Fatalf("seed %d: height %d: got %s %v, want %s OK", seed, h.height, o.Session, o.Code, blk[k].id)
				}
				k++
			}
		}
		if k != len(blk) {
			t.Fatalf("seed %d: height %d: got %d outcomes, want %d", seed, h.height, k, len(blk))
		}
		compareState(t, seed, h, blk[len(blk)-1].after, fmt.Sprintf("height %d", h.height))
		blocks++
		bundles += len(blk)
	}

	all, err := h.app.CommittedKVs("")
	if err != nil {
		t.Fatal(err)
	}
	records := 0
	for _, kv := range all {
		switch {
		case strings.HasPrefix(kv.Key, "ledger/session/"):
			records++
		case kv.Key == service.ReservedPrefix+"app":
			// which app the state is for, written at genesis
		case strings.HasPrefix(kv.Key, service.ReservedPrefix):
			t.Fatalf("seed %d: got ledger record %s, want only session records and the app's", seed, kv.Key)
		}
	}
	if records != len(d.plans) {
		t.Fatalf("seed %d: got %d session records, want %d", seed, records, len(d.plans))
	}
	t.Logf("seed %d: %d sessions (%d ops) in %d blocks, state digest %x", seed, bundles, countOps(d.plans), blocks, d.plans[len(d.plans)-1].digest)
}

func countOps(ps []*plan) int {
	n := 0
	for _, p := range ps {
		n += len(p.ops)
	}
	return n
}

// compareState requires the ledger's committed application state (keys
// outside ledger/) to equal want, by digest; on a difference it names the
// first key that differs.
func compareState(t *testing.T, seed uint64, h *harness, want []service.KV, when string) {
	t.Helper()
	got, err := h.app.CommittedKVs(service.ReservedPrefix)
	if err != nil {
		t.Fatalf("seed %d: %s: %v", seed, when, err)
	}
	if bytes.Equal(kvDigest(got), kvDigest(want)) {
		return
	}
	for i := 0; i < max(len(got), len(want)); i++ {
		switch {
		case i >= len(got):
			t.Fatalf("seed %d: %s: ledger lacks %s", seed, when, want[i].Key)
		case i >= len(want):
			t.Fatalf("seed %d: %s: ledger has extra %s", seed, when, got[i].Key)
		case got[i].Key != want[i].Key || !bytes.Equal(got[i].Value, want[i].Value):
			t.Fatalf("seed %d: %s: got %s = %s on the ledger, want %s = %s", seed, when, got[i].Key, got[i].Value, want[i].Key, want[i].Value)
		}
	}
	t.Fatalf("seed %d: %s: digests differ", seed, when)
}
