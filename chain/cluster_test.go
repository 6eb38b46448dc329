package chain_test

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	abci "github.com/cometbft/cometbft/abci/types"
	"strings"
	"sync"
	"testing"
	"time"

	abcitypes "github.com/cometbft/cometbft/abci/types"
	rpchttp "github.com/cometbft/cometbft/rpc/client/http"

	"github.com/duet-bft/duet/apps/supplychain"
	"github.com/duet-bft/duet/buffer"
	"github.com/duet-bft/duet/chain"
	"github.com/duet-bft/duet/localnet"
	"github.com/duet-bft/duet/protocol"
	"github.com/duet-bft/duet/service"
)

// freeBasePort finds a free port range for n nodes.
func freeBasePort(t *testing.T, n int) int {
	t.Helper()
	base, err := localnet.FreeBasePort(n)
	if err != nil {
		t.Fatal(err)
	}
	return base
}

type cluster struct {
	t     *testing.T
	net   *localnet.Network
	nodes []*chain.Node // validators then the L2 follower
	app   *service.App
	log   *testWriter
}

func startCluster(t *testing.T, validators int) *cluster {
	t.Helper()
	dir := t.TempDir()
	n, err := localnet.LoadOrGenerate(localnet.Spec{Dir: dir, Validators: validators, L2: 1,
		BasePort: freeBasePort(t, validators+1), App: supplychain.App})
	if err != nil {
		t.Fatal(err)
	}
	c := &cluster{t: t, net: n, app: supplychain.App, log: &testWriter{t: t}}
	c.startAll()
	t.Cleanup(func() {
		c.stopAll()
		c.log.close()
	})
	return c
}

func (c *cluster) homes() []string {
	var hs []string
	for _, v := range c.net.Validators {
		hs = append(hs, v.Home)
	}
	return append(hs, c.net.L2[0].Home)
}

func (c *cluster) startAll() {
	c.t.Helper()
	c.nodes = nil
	for _, h := range c.homes() {
		n, err := chain.Start(chain.Config{Home: h, App: c.app, LogOutput: c.log})
		if err != nil {
			c.t.Fatal(err)
		}
		c.nodes = append(c.nodes, n)
	}
	c.waitHeight(1)
}

func (c *cluster) stopAll() {
	for _, n := range c.nodes {
		n.Stop()
	}
	c.nodes = nil
}

// testWriter logs CometBFT's lines to the test, until close: a node's
// goroutines may still log a moment after it stopped, and a test may not
// log once it has completed.
type testWriter struct {
	t      *testing.T
	mu     sync.Mutex
	closed bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.closed {
		w.t.Logf("%s", strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func (w *testWriter) close() {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
}

func (c *cluster) actor(id string) localnet.Actor {
	for _, a := range c.net.Actors {
		if a.ID == id {
			return a
		}
	}
	c.t.Fatalf("no actor %s", id)
	return localnet.Actor{}
}

// l2 is the follower node: its committed state is what an L2 node executes on.
func (c *cluster) l2() *chain.Node { return c.nodes[len(c.nodes)-1] }

func (c *cluster) waitHeight(h int64) {
	c.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for _, n := range c.nodes {
		for {
			if _, got := n.App.Committed(); got >= h {
				break
			}
			if time.Now().After(deadline) {
				c.t.Fatalf("node %s did not reach height %d", n.Config.Moniker, h)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

type step struct{ method, path, body string }

// session executes steps as an L2 node would (on the follower's committed
// state) and returns the signed bundle.
func (c *cluster) session(actorID, id string, steps ...step) protocol.Bundle {
	c.t.Helper()
	a := c.actor(actorID)
	st, _ := c.l2().App.Committed()
	s := buffer.NewSession(id, a.ID, st)
	for _, sp := range steps {
		seq := s.Seq()
		now := time.Now().UnixMilli()
		exp := now + 10*60*1000
		sig := ed25519.Sign(a.Key(), protocol.OpBytes(id, seq, s.Prev(), sp.method, sp.path, []byte(sp.body), exp))
		resp, _, err := s.Step(c.app.Registry, seq, protocol.Op{Method: sp.method, Path: sp.path, Body: []byte(sp.body),
			Signature: sig, Time: now, Expires: exp})
		if err != nil || !resp.OK() {
			c.t.Fatalf("session %s: %s %s: %d %s (%v)", id, sp.method, sp.path, resp.Status, resp.Body, err)
		}
	}
	node := c.actor("l2-0")
	return s.Bundle(node.ID, node.Key(), 0)
}

// submit broadcasts a batch through validator i and waits for its block;
// it returns the outcomes and the height.
func (c *cluster) submit(i int, bundles ...protocol.Bundle) ([]protocol.Outcome, int64) {
	c.t.Helper()
	tx := protocol.EncodeBatch(&protocol.Batch{Bundles: bundles})
	cli, err := rpchttp.New(c.net.Validators[i].RPC, "/websocket")
	if err != nil {
		c.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// A node that has just started refuses transactions while it catches up.
	res, err := cli.BroadcastTxSync(ctx, tx)
	for err != nil && strings.Contains(err.Error(), "catching up") && ctx.Err() == nil {
		time.Sleep(50 * time.Millisecond)
		res, err = cli.BroadcastTxSync(ctx, tx)
	}
	if err != nil {
		c.t.Fatal(err)
	}
	if res.Code != 0 {
		c.t.Fatalf("CheckTx rejected: code %d %s", res.Code, res.Log)
	}
	hash := sha256.Sum256(tx)
	for {
		r, err := cli.Tx(ctx, hash[:], false)
		if err == nil {
			outs, err := protocol.DecodeOutcomes(r.TxResult.Data)
			if err != nil {
				c.t.Fatal(err)
			}
			return outs, r.Height
		}
		if ctx.Err() != nil {
			c.t.Fatalf("tx not committed: %v", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// broadcast sends a batch through validator i and returns CheckTx's code.
func (c *cluster) broadcast(i int, bundles ...protocol.Bundle) protocol.Code {
	c.t.Helper()
	cli, err := rpchttp.New(c.net.Validators[i].RPC, "/websocket")
	if err != nil {
		c.t.Fatal(err)
	}
	res, err := cli.BroadcastTxSync(context.Background(), protocol.EncodeBatch(&protocol.Batch{Bundles: bundles}))
	if err != nil {
		c.t.Fatal(err)
	}
	return protocol.Code(res.Code)
}

func (c *cluster) query(i int, path string) (uint32, []byte) {
	c.t.Helper()
	res, err := c.nodes[i].App.Query(context.Background(), &abciQuery{Path: path})
	if err != nil {
		c.t.Fatal(err)
	}
	return res.Code, res.Value
}

// appHashes returns every node's committed height and app hash.
func (c *cluster) appHashes() (heights []int64, hashes []string) {
	for _, n := range c.nodes {
		// Through CometBFT's own connection, which holds the app's lock
		// (Info is not safe beside a Commit).
		info, err := n.CometBFT.ProxyApp().Query().Info(context.Background(), &abci.RequestInfo{})
		if err != nil {
			c.t.Fatal(err)
		}
		heights = append(heights, info.LastBlockHeight)
		hashes = append(hashes, fmt.Sprintf("%X", info.LastBlockAppHash))
	}
	return
}

// converge waits until all nodes report the same height and app hash.
func (c *cluster) converge() (int64, string) {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		hs, as := c.appHashes()
		same := true
		for i := range hs {
			same = same && hs[i] == hs[0] && as[i] == as[0]
		}
		if same {
			return hs[0], as[0]
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("nodes did not converge: heights %v app hashes %v", hs, as)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func createPackage(c *cluster, supplierID, pkg string) step {
	sup := c.actor(supplierID)
	items := []supplychain.Item{{SKU: "SKU-1", Name: "Widget", Qty: 3}, {SKU: "SKU-2", Name: "Gadget", Qty: 1}}
	sig := ed25519.Sign(sup.Key(), supplychain.ManifestBytes(pkg, sup.ID, "DC Jakarta", items))
	body, _ := json.Marshal(map[string]any{"id": pkg, "destination": "DC Jakarta", "items": items,
		"manifest_signature": base64.StdEncoding.EncodeToString(sig)})
	return step{"POST", "/v1/packages", string(body)}
}

func workflow(sid, pkg, courier string) []step {
	return []step{
		{"POST", "/v1/sessions", `{"package_id":"` + pkg + `"}`},
		{"POST", "/v1/packages/" + pkg + "/scan", `{}`},
		{"POST", "/v1/packages/" + pkg + "/validate", `{"observed_items":[{"sku":"SKU-1","qty":3},{"sku":"SKU-2","qty":1}]}`},
		{"POST", "/v1/packages/" + pkg + "/qc", `{"passed":true,"notes":"ok","checks":{"seal":"intact"}}`},
		{"POST", "/v1/packages/" + pkg + "/label", `{"courier_id":"` + courier + `"}`},
		{"POST", "/v1/sessions/" + sid + "/commit", `{}`},
	}
}

func wantCodes(t *testing.T, outs []protocol.Outcome, want ...protocol.Code) {
	t.Helper()
	if len(outs) != len(want) {
		t.Fatalf("got %d outcomes, want %d", len(outs), len(want))
	}
	for i := range want {
		if outs[i].Code != want[i] {
			t.Errorf("bundle %d (%s): got %v, want %v", i, outs[i].Session, outs[i].Code, want[i])
		}
	}
}

func TestCluster(t *testing.T) {
	c := startCluster(t, 4)

	// A valid bundle commits on all four validators (and the follower)
	// with one app hash.
	outs, _ := c.submit(0, c.session("supplier-1", "create-PKG-1", createPackage(c, "supplier-1", "PKG-1")))
	wantCodes(t, outs, protocol.CodeOK)
	c.waitHeight(c.heightOf(0))
	good := c.session("operator-1", "op-s1", workflow("op-s1", "PKG-1", "courier-1")...)
	outs, h := c.submit(1, good)
	wantCodes(t, outs, protocol.CodeOK)
	c.waitHeight(h)
	for i := range c.nodes {
		code, body := c.query(i, "/app/v1/packages/PKG-1")
		if code != 0 || !strings.Contains(string(body), `"stage":"labeled"`) {
			t.Errorf("node %d: package PKG-1: code %d body %s", i, code, body)
		}
		if code, _ := c.query(i, "/session/operator-1/op-s1"); code != 0 {
			t.Errorf("node %d: session op-s1 not recorded (code %d)", i, code)
		}
	}
	c.converge()

	// A batch that only replays committed sessions does not even enter the
	// mempool (anyone could fill blocks with them for free); replayed with
	// a new session, it is ALREADY_COMMITTED and changes nothing.
	_, before := c.converge()
	if code := c.broadcast(2, good, good); code != protocol.CodeAlreadyCommitted {
		t.Errorf("replayed batch: CheckTx code %v, want ALREADY_COMMITTED", code)
	}
	if _, after := c.converge(); after != before {
		t.Errorf("replay changed the app hash: %s -> %s", before, after)
	}
	outs, _ = c.submit(2, good, c.session("supplier-1", "create-PKG-R", createPackage(c, "supplier-1", "PKG-R")))
	wantCodes(t, outs, protocol.CodeAlreadyCommitted, protocol.CodeOK)
	// The same new session twice in one batch is applied once.
	twice := c.session("supplier-1", "create-PKG-T", createPackage(c, "supplier-1", "PKG-T"))
	outs, _ = c.submit(3, twice, twice)
	wantCodes(t, outs, protocol.CodeOK, protocol.CodeAlreadyCommitted)

	// A falsified result is rejected with evidence on every node.
	outs, _ = c.submit(0, c.session("supplier-2", "create-PKG-2", createPackage(c, "supplier-2", "PKG-2")))
	wantCodes(t, outs, protocol.CodeOK)
	c.waitHeight(c.heightOf(0))
	lie := c.session("operator-1", "op-lie", workflow("op-lie", "PKG-2", "courier-1")...)
	lie.Ops[2].Result = protocol.ResultHash(200, []byte(`{"signature_valid":true,"contents_match":false,"discrepancies":[]}`))
	lie.Sign(c.actor("l2-0").Key())
	outs, h = c.submit(3, lie)
	wantCodes(t, outs, protocol.CodeResultMismatch)
	c.waitHeight(h)
	for i := range c.nodes {
		_, ev := c.query(i, "/evidence/l2-0")
		var list []map[string]any
		if err := json.Unmarshal(ev, &list); err != nil || len(list) != 1 || list[0]["session"] != "op-lie" || list[0]["seq"] != float64(2) {
			t.Errorf("node %d: evidence %s (%v)", i, ev, err)
		}
		if _, body := c.query(i, "/app/v1/packages/PKG-2"); !strings.Contains(string(body), `"stage":"created"`) {
			t.Errorf("node %d: rejected session changed PKG-2: %s", i, body)
		}
	}

	// Two sessions built on the same state race for PKG-2: the first
	// commits, the second is a CONFLICT.
	s1 := c.session("operator-1", "race-1", workflow("race-1", "PKG-2", "courier-1")...)
	s2 := c.session("operator-2", "race-2", workflow("race-2", "PKG-2", "courier-2")...)
	outs, _ = c.submit(1, s1)
	wantCodes(t, outs, protocol.CodeOK)
	outs, h = c.submit(2, s2)
	wantCodes(t, outs, protocol.CodeConflict)
	c.waitHeight(h)
	if _, body := c.query(0, "/app/v1/packages/PKG-2"); !strings.Contains(string(body), `"courier_id":"courier-1"`) {
		t.Errorf("PKG-2 should carry the winner's label: %s", body)
	}

	// A forged actor signature never enters a block: CheckTx refuses it.
	forged := c.session("supplier-1", "forged", createPackage(c, "supplier-1", "PKG-X"))
	forged.Ops[0].Signature[0] ^= 0xff
	forged.Sign(c.actor("l2-0").Key())
	cli, _ := rpchttp.New(c.net.Validators[0].RPC, "/websocket")
	res, err := cli.BroadcastTxSync(context.Background(), protocol.EncodeBatch(&protocol.Batch{Bundles: []protocol.Bundle{forged}}))
	if err != nil {
		t.Fatal(err)
	}
	if protocol.Code(res.Code) != protocol.CodeUnauthenticated {
		t.Errorf("forged op: CheckTx code %d (%s), want UNAUTHENTICATED", res.Code, res.Log)
	}

	// The follower's own mempool refuses the same forged op, and passes a
	// valid batch on to the validators by gossip.
	// A refused transaction stays refused (the mempool caches its hash),
	// and sending it again is still answered as refused, not as pending,
	// through the follower's mempool and through a validator's RPC alike.
	forgedTx := protocol.EncodeBatch(&protocol.Batch{Bundles: []protocol.Bundle{forged}})
	sub, err := chain.NewSubmitter([]string{c.net.Validators[0].RPC})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		var rej *chain.RejectedError
		err = c.l2().SubmitLocal(context.Background(), forgedTx)
		if !errors.As(err, &rej) || protocol.Code(rej.Code) != protocol.CodeUnauthenticated {
			t.Errorf("forged op through the follower's mempool, try %d: got %v, want a RejectedError with UNAUTHENTICATED", i, err)
		}
		err = sub.Submit(context.Background(), forgedTx)
		if !errors.As(err, &rej) || protocol.Code(rej.Code) != protocol.CodeUnauthenticated {
			t.Errorf("forged op through a validator's RPC, try %d: got %v, want a RejectedError with UNAUTHENTICATED", i, err)
		}
	}
	// A transaction larger than any node takes is refused for good, typed.
	var rej *chain.RejectedError
	huge := make([]byte, protocol.MaxBatchBytes+1)
	if err := c.l2().SubmitLocal(context.Background(), huge); !errors.As(err, &rej) {
		t.Errorf("a transaction over the limit through the mempool: got %v, want a RejectedError", err)
	}
	if err := sub.Submit(context.Background(), huge); !errors.As(err, &rej) {
		t.Errorf("a transaction over the limit through RPC: got %v, want a RejectedError", err)
	}
	local := c.session("supplier-1", "create-PKG-L", createPackage(c, "supplier-1", "PKG-L"))
	if err := c.l2().SubmitLocal(context.Background(), protocol.EncodeBatch(&protocol.Batch{Bundles: []protocol.Bundle{local}})); err != nil {
		t.Fatalf("SubmitLocal: %v", err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if code, _ := c.query(0, "/session/supplier-1/create-PKG-L"); code == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a batch submitted through the follower's mempool was not committed by validator 0 in 30s")
		}
	}

	// Stop and restart every node: same height, same app hash, same state.
	h1, app1 := c.converge()
	_, pkgBefore := c.query(0, "/app/v1/packages/PKG-1")
	c.stopAll()
	c.startAll()
	h2, app2 := c.converge()
	if h2 < h1 || (h2 == h1 && app2 != app1) {
		t.Errorf("after restart: height %d app hash %s, before %d %s", h2, app2, h1, app1)
	}
	if app2 != app1 {
		t.Errorf("app hash changed across restart: %s -> %s", app1, app2)
	}
	if _, pkgAfter := c.query(0, "/app/v1/packages/PKG-1"); string(pkgAfter) != string(pkgBefore) {
		t.Errorf("PKG-1 changed across restart:\n%s\n%s", pkgBefore, pkgAfter)
	}
	// And the restarted network still commits.
	outs, _ = c.submit(0, c.session("supplier-1", "create-PKG-3", createPackage(c, "supplier-1", "PKG-3")))
	wantCodes(t, outs, protocol.CodeOK)
}

func (c *cluster) heightOf(i int) int64 {
	_, h := c.nodes[i].App.Committed()
	return h
}

type abciQuery = abcitypes.RequestQuery
