package duettest_test

import (
	"context"
	"crypto/ed25519"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/duet-bft/duet/buffer"
	"github.com/duet-bft/duet/duettest"
	"github.com/duet-bft/duet/protocol"
	"github.com/duet-bft/duet/service"
	"github.com/duet-bft/duet/service/servicetest"
)

var classifySeed = flag.Uint64("classify-seed", 1, "seed of TestSessionRulesAgree")

// probeApp answers 2xx on routes around the framework's namespace: the
// application routes a real app could register next to it, among them
// /v1/sessions-archive, which an L2 node once answered as a step while
// L1 rejected its session.
func probeApp() *service.App {
	reg := service.NewRegistry()
	ok := func(tx *service.Tx, ctx *service.Context, req *service.Request) service.Response {
		tx.Put("probe/"+ctx.Session+"/"+req.Path, []byte(`1`))
		return service.JSON(http.StatusOK, map[string]bool{"ok": true})
	}
	for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		reg.Handle(m, "/v1/probe/{x}", nil, ok)
	}
	reg.Handle(http.MethodPost, "/v1/probe", nil, ok)
	reg.Handle(http.MethodPost, "/v1/sessions-archive", nil, ok)
	reg.Handle(http.MethodDelete, "/v1/sessions-archive/{x}", nil, ok)
	reg.Handle(http.MethodPost, "/v1/sessionsX", nil, ok)
	reg.Handle(http.MethodPost, "/v1/actorsX/{x}", nil, ok)
	return &service.App{Name: "probe", Version: "1", Registry: reg}
}

// paths are templates: {id} is the session's id, {other} another one.
var paths = []string{
	"/v1/sessions", "/v1/sessions/", "/v1/sessions/{id}", "/v1/sessions/{id}/", "/v1/sessions/{id}/commit",
	"/v1/sessions/{other}/commit", "/v1/sessions/{other}", "/v1/sessions/{id}/commit/x", "/v1/sessions/{id}/abort",
	"/v1/sessions//commit", "/v1/sessions-archive", "/v1/sessions-archive/{id}", "/v1/sessionsX", "/v1/actors",
	"/v1/actors/x", "/v1/actorsX/y", "/v1/probe/a", "/v1/probe/b", "/v1/probe", "/v1/nope", "/v1//probe/a", "/",
}

var methods = []string{http.MethodPost, http.MethodPost, http.MethodPost, http.MethodDelete, http.MethodPut, http.MethodPatch}

type genOp struct{ method, path string }

// genSession is a session of 1-5 ops: usually a start, ops, a commit;
// often not.
func genSession(r *rand.Rand) []genOp {
	n := 1 + r.IntN(5)
	ops := make([]genOp, n)
	for i := range ops {
		ops[i] = genOp{methods[r.IntN(len(methods))], paths[r.IntN(len(paths))]}
	}
	if r.IntN(10) < 6 {
		ops[0] = genOp{http.MethodPost, service.PathSessions}
	}
	if n > 1 && r.IntN(10) < 6 {
		ops[n-1] = genOp{http.MethodPost, "/v1/sessions/{id}/commit"}
	}
	return ops
}

func (o genOp) at(id string) string {
	return strings.NewReplacer("{id}", id, "{other}", "someone-else").Replace(o.path)
}

// TestSessionRulesAgree drives generated sessions (paths in and around
// the framework's session namespace, at every position) through both
// layers and requires the same answer: an L2 node answers every op of a
// session with success and commits it exactly when L1 applies the same
// ops as a bundle. The L2 side runs the ops one by one through the real
// buffer; the L1 side gets the bundle an L2 node would build from them
// (with a failing op included, as a byzantine node could send it) and
// judges it with the real ledger.
func TestSessionRulesAgree(t *testing.T) {
	n := duettest.New(t, duettest.Config{App: probeApp(), Actors: map[string]string{"alice": "player"},
		Buffer: func(c *buffer.Config) { c.ActorRate = -1; c.MaxOpenPerActor = 1000 }})
	r := rand.New(rand.NewPCG(*classifySeed, 0))
	alice := servicetest.Actor{ID: "alice", Role: "player", Key: servicetest.Key("alice")}
	// Every path with every method at every place in a session: alone
	// (direct mode), between a start and a commit, last, after a commit;
	// then random sessions.
	start, commit := genOp{http.MethodPost, service.PathSessions}, genOp{http.MethodPost, "/v1/sessions/{id}/commit"}
	var all [][]genOp
	for _, p := range paths {
		for _, m := range []string{http.MethodPost, http.MethodDelete, http.MethodPut, http.MethodPatch} {
			x := genOp{m, p}
			all = append(all, []genOp{x}, []genOp{start, x, commit}, []genOp{start, x}, []genOp{start, commit, x})
		}
	}
	for range 300 {
		all = append(all, genSession(r))
	}
	committed := 0
	for k, ops := range all {
		id := fmt.Sprintf("s%d", k)
		l2 := runL2(t, n, alice, id, ops)
		l1 := runL1(t, n, alice, id+"b", ops)
		var desc []string
		for _, o := range ops {
			desc = append(desc, o.method+" "+o.path)
		}
		if l2 != l1 {
			t.Errorf("session %d [%s]: the L2 node took it: %v; L1 applies it: %v (rerun with -classify-seed %d)",
				k, strings.Join(desc, ", "), l2, l1, *classifySeed)
		}
		if l1 {
			committed++
		}
	}
	t.Logf("%d sessions, %d committed by both layers", len(all), committed)
	if committed < len(all)/20 {
		t.Errorf("only %d of %d sessions committed: the generator tests little", committed, len(all))
	}
}

// runL2 sends the ops to the L2 node and reports whether it took the
// session: answered every op with success, the last being its commit (or
// the one op of a direct-mode session). A session it took must then be
// committed by L1: the node promised it with its receipts.
func runL2(t *testing.T, n *duettest.Net, a servicetest.Actor, id string, ops []genOp) bool {
	t.Helper()
	ctx := context.Background()
	var prev protocol.Hash
	seq := uint64(0)
	exp := time.Now().Add(10 * time.Minute).UnixMilli()
	for _, o := range ops {
		path := o.at(id)
		sig := ed25519.Sign(a.Key, protocol.OpBytes(id, seq, prev, o.method, path, []byte(`{}`), exp))
		rep := n.Buffer.Do(ctx, &buffer.Input{Session: id, Seq: seq, Actor: a.ID, Method: o.method, Path: path,
			Body: []byte(`{}`), Signature: sig, Expires: exp})
		if !rep.Resp.OK() {
			break
		}
		if rep.Receipt == nil {
			t.Fatalf("session %s: %s %s answered %d without a receipt", id, o.method, path, rep.Resp.Status)
		}
		prev = protocol.OpHash(protocol.OpBytes(id, seq, prev, o.method, path, []byte(`{}`), exp))
		seq++
	}
	v, _ := n.Buffer.Lookup(id, "")
	switch {
	case v.Status == buffer.StatusOpen:
		// Leave nothing open: abort what the generator left unfinished.
		path := service.AbortPath(id)
		sig := ed25519.Sign(a.Key, protocol.OpBytes(id, seq, prev, http.MethodDelete, path, []byte(`{}`), exp))
		if rep := n.Buffer.Do(ctx, &buffer.Input{Session: id, Seq: seq, Actor: a.ID, Method: http.MethodDelete, Path: path,
			Body: []byte(`{}`), Signature: sig, Expires: exp}); rep.Resp.Status != http.StatusOK {
			t.Fatalf("session %s: abort: %d %s", id, rep.Resp.Status, rep.Resp.Body)
		}
		return false
	case int(seq) < len(ops) || v.Status == buffer.StatusAborted:
		return false
	}
	if f := n.Wait(id, a.ID); f.Status != protocol.StatusCommitted {
		t.Errorf("session %s: the L2 node took every op, and L1 did not commit it: %+v", id, f)
	}
	return true
}

// runL1 builds the bundle of the ops as an L2 node would (each op executed
// by the shared apply path on the committed state, up to and including
// the first that fails) and reports whether L1 applies it.
func runL1(t *testing.T, n *duettest.Net, a servicetest.Actor, id string, ops []genOp) bool {
	t.Helper()
	st, _ := n.Ledger.Committed()
	s := buffer.NewSession(id, a.ID, st)
	now := time.Now().UnixMilli()
	exp := now + 10*60*1000
	var failed *protocol.Op
	for i, o := range ops {
		path := o.at(id)
		sig := ed25519.Sign(a.Key, protocol.OpBytes(id, uint64(i), s.Prev(), o.method, path, []byte(`{}`), exp))
		op := protocol.Op{Method: o.method, Path: path, Body: []byte(`{}`), Signature: sig, Time: now, Expires: exp}
		resp, _, err := s.Step(n.Ledger.Registry(), uint64(i), op)
		if err != nil {
			t.Fatal(err)
		}
		if !resp.OK() {
			op.Result = resp.Hash()
			failed = &op
			break
		}
	}
	b := s.Bundle(duettest.NodeID, n.Node.Key, 0)
	if failed != nil {
		b.Ops = append(b.Ops, *failed)
		b.Sign(n.Node.Key)
	}
	if len(b.Ops) == 0 {
		return false
	}
	outs, err := n.Judge(protocol.EncodeBatch(&protocol.Batch{Bundles: []protocol.Bundle{b}}))
	if err != nil {
		return false // CheckTx refused it
	}
	return outs[0].Code == protocol.CodeOK
}
