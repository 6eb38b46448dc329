package ledger_test

import (
	"bytes"
	"crypto/ed25519"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	abci "github.com/cometbft/cometbft/abci/types"

	"github.com/duet-bft/duet/apps/supplychain"
	"github.com/duet-bft/duet/ledger"
	"github.com/duet-bft/duet/protocol"
	"github.com/duet-bft/duet/service"
)

// TestExpiry: L1 applies a session only in a block no later than the expiry
// its actor signed on the last op. A direct-mode op that an L2 node
// answered as failed, or never answered, and kept to submit later once it
// would succeed, is refused after its expiry: the reproduced attack held a
// 409'd create back and had it applied later.
func TestExpiry(t *testing.T) {
	for _, tc := range []struct {
		name string
		exp  time.Duration // expiry of the last op, relative to the block time
		want protocol.Code
	}{
		{"expires after the block", time.Second, protocol.CodeOK},
		{"expires at the block time", 0, protocol.CodeOK},
		{"expired before the block", -time.Millisecond, protocol.CodeExpired},
		{"expired long before", -time.Hour, protocol.CodeExpired},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			bt := h.blockTime.Add(2 * time.Hour)
			s := h.session("new-PKG-1", sup1)
			at := bt.Add(-90 * time.Minute).UnixMilli()
			s.doExp(at, bt.Add(tc.exp).UnixMilli(), http.MethodPost, supplychain.PathPackages, createBody(sup1, "PKG-1", defaultDest, defaultItems))
			before := h.appHash()
			res := h.blockAt(bt, batch(s.bundle(node1)))
			if got := codes(outcomes(t, res.TxResults[0])); !reflect.DeepEqual(got, []protocol.Code{tc.want}) {
				t.Fatalf("got %v, want [%v]", got, tc.want)
			}
			if changed := !bytes.Equal(res.AppHash, before); changed != (tc.want == protocol.CodeOK) {
				t.Errorf("app hash changed %v, want %v", changed, tc.want == protocol.CodeOK)
			}
		})
	}

	t.Run("only the last op's expiry counts", func(t *testing.T) {
		h := newHarness(t)
		h.created("PKG-1")
		bt := h.blockTime.Add(time.Hour)
		s := h.session("S-1", op1)
		early := bt.Add(-30 * time.Minute).UnixMilli()
		s.doExp(early, early+1000, http.MethodPost, service.PathSessions, `{"package_id":"PKG-1"}`)
		s.doExp(early+500, early+1000, http.MethodPost, "/v1/packages/PKG-1/scan", scanBody)
		s.doExp(early+900, bt.UnixMilli(), http.MethodPost, service.CommitPath("S-1"), `{}`)
		if got := codes(outcomes(t, h.blockAt(bt, batch(s.bundle(node1))).TxResults[0])); !reflect.DeepEqual(got, []protocol.Code{protocol.CodeOK}) {
			t.Fatalf("got %v, want [OK]", got)
		}
	})

	t.Run("CheckTx refuses what expired before the last block", func(t *testing.T) {
		h := newHarness(t)
		s := h.session("new-PKG-1", sup1)
		now := h.blockTime.UnixMilli()
		s.doExp(now, now+500, http.MethodPost, supplychain.PathPackages, createBody(sup1, "PKG-1", defaultDest, defaultItems))
		tx := batch(s.bundle(node1))
		if res := h.checkTx(tx); res.Code != 0 {
			t.Fatalf("CheckTx before expiry: code %d (%s)", res.Code, res.Log)
		}
		h.blockAt(h.blockTime.Add(time.Second))
		if res := h.checkTx(tx); res.Code != uint32(protocol.CodeExpired) {
			t.Fatalf("CheckTx after expiry: code %d (%s), want EXPIRED", res.Code, res.Log)
		}
	})
}

// TestFailedOpRefused: an L2 node keeps only ops that succeeded, so a
// bundle holding an op whose result is a failure, even one that matches
// re-execution, is an op its actor was told had failed. L1 refuses it and
// records nothing (on main it was accepted and its session id burned).
func TestFailedOpRefused(t *testing.T) {
	h := newHarness(t)
	h.created("PKG-1")
	s := h.session("new-PKG-1", sup1)
	resp := s.do(http.MethodPost, supplychain.PathPackages, createBody(sup1, "PKG-1", defaultDest, defaultItems))
	if resp.Status != http.StatusConflict {
		t.Fatalf("second create: got %d %s, want 409", resp.Status, resp.Body)
	}
	// What buffer.Session refuses to keep, a Byzantine node builds.
	b := appendOp(protocol.Bundle{Session: "dup-PKG-1", Actor: sup1.id, Node: node1.id}, sup1, node1,
		http.MethodPost, supplychain.PathPackages, createBody(sup1, "PKG-1", defaultDest, defaultItems), h.now(),
		protocol.ResultHash(resp.Status, resp.Body))
	before := h.appHash()
	res := h.block(batch(b))
	if got := codes(outcomes(t, res.TxResults[0])); !reflect.DeepEqual(got, []protocol.Code{protocol.CodeInvalidSession}) {
		t.Fatalf("got %v, want [INVALID_SESSION]", got)
	}
	if !bytes.Equal(res.AppHash, before) {
		t.Error("app hash changed")
	}
	if _, ok := h.sessionRecord(sup1.id, "dup-PKG-1"); ok {
		t.Error("a session record was written for a refused bundle")
	}
	if got := h.evidence("/evidence"); len(got) != 0 {
		t.Errorf("evidence %+v; the results matched, no one lied about them", got)
	}
}

// TestSessionsKeyedByActor: a session id belongs to its actor. Another
// actor using the same id neither blocks it nor is blocked by it (an L2
// node could squat a victim's id with another actor's session, and L1
// then called the victim's session ALREADY_COMMITTED).
func TestSessionsKeyedByActor(t *testing.T) {
	h := newHarness(t)
	h.created("PKG-1", "PKG-2")
	squat := h.session("S-1", op2)
	squat.start("PKG-2")
	squat.commit()
	victim := h.process(op1, "S-1", "PKG-1")
	got := codes(h.submit(squat.bundle(node2), victim.bundle(node1)))
	if want := []protocol.Code{protocol.CodeOK, protocol.CodeOK}; !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for _, a := range []actor{op1, op2} {
		rec, ok := h.sessionRecord(a.id, "S-1")
		if !ok || rec.Actor != a.id {
			t.Errorf("record of %s's S-1: %+v %v", a.id, rec, ok)
		}
	}
	if got := h.stage("PKG-1"); got != supplychain.StageLabeled {
		t.Errorf("victim's package at stage %q, want labeled", got)
	}
	// The same actor's id is still once only.
	if got := codes(h.submit(victim.bundle(node2))); !reflect.DeepEqual(got, []protocol.Code{protocol.CodeAlreadyCommitted}) {
		t.Errorf("resubmission: %v, want ALREADY_COMMITTED", got)
	}
}

// TestCheckTxRefusesReplays: anyone could fill blocks for free by
// re-batching committed bundles in new orders; CheckTx refuses a batch
// whose every bundle is already committed (and refused hashes stay refused:
// mempool.keep-invalid-txs-in-cache, set by chain.Tune).
func TestCheckTxRefusesReplays(t *testing.T) {
	h := newHarness(t)
	h.created("PKG-1", "PKG-2")
	a := h.process(op1, "S-A", "PKG-1").bundle(node1)
	b := h.process(op2, "S-B", "PKG-2").bundle(node1)
	h.submit(a, b)
	if res := h.checkTx(batch(b, a)); res.Code != uint32(protocol.CodeAlreadyCommitted) {
		t.Errorf("replayed batch: code %d (%s), want ALREADY_COMMITTED", res.Code, res.Log)
	}
	h.created("PKG-3")
	c := h.process(op1, "S-C", "PKG-3").bundle(node1)
	if res := h.checkTx(batch(b, c, a)); res.Code != 0 {
		t.Errorf("a batch with one new bundle: code %d (%s), want 0", res.Code, res.Log)
	}
}

// TestCheckTxNodeFirst: CheckTx checks the bundle's node, registered and
// signing, before any actor signature, so unauthenticated junk costs one
// signature check per transaction (BenchmarkCheckTxForged measures it).
func TestCheckTxNodeFirst(t *testing.T) {
	h := newHarness(t, stranger)
	h.created("PKG-1")
	good := h.process(op1, "S-1", "PKG-1").bundle(node1)
	bad := tamper(good, stranger, func(b *protocol.Bundle) { b.Node = "L2-404" })
	forged := clone(good)
	forged.Signature = bytes.Repeat([]byte{1}, ed25519.SignatureSize)
	notL2 := tamper(good, stranger, func(b *protocol.Bundle) { b.Node = op2.id })
	// Bundle 0 is signed by its node but carries a bad actor signature:
	// every node check of the batch comes before any actor signature, so
	// the refusal names bundle 1's node.
	badActor := tamper(good, node1, func(b *protocol.Bundle) {
		b.Ops[1].Signature = bytes.Repeat([]byte{2}, ed25519.SignatureSize)
	})
	for _, tc := range []struct {
		name string
		b    protocol.Bundle
		code protocol.Code
		log  string
	}{
		{"unknown node", bad, protocol.CodeUnauthenticated, "unknown"},
		{"bad node signature", forged, protocol.CodeUnauthenticated, "bad node signature"},
		{"not an L2 node", notL2, protocol.CodePermissionDenied, "role"},
	} {
		res := h.checkTx(batch(badActor, tc.b))
		if res.Code != uint32(tc.code) || !strings.Contains(res.Log, tc.log) || !strings.Contains(res.Log, "bundle 1") {
			t.Errorf("%s: code %d (%s), want %v naming bundle 1 and %q", tc.name, res.Code, res.Log, tc.code, tc.log)
		}
	}
}

func TestSigCacheHoldsLargestBatch(t *testing.T) {
	if got, want := ledger.DefaultConfig("x").SigCache, 2*protocol.MaxBatchSigs; got < want {
		t.Errorf("SigCache %d, want at least %d (two of the largest batches)", got, want)
	}
	op := protocol.Op{Method: "PUT", Path: "/", Signature: make([]byte, ed25519.SignatureSize)}
	if got := protocol.OpSize(&op); got != protocol.MinOpSize {
		t.Errorf("smallest op encodes to %d bytes, MinOpSize says %d", got, protocol.MinOpSize)
	}
}

// BenchmarkCheckTxForged is CheckTx on the largest batch that no
// registered node signed: one bundle of protocol.MaxOps ops whose node
// signature does not verify (cf. ~270 ms for 742 KB of junk when every
// actor signature was checked first).
func BenchmarkCheckTxForged(b *testing.B) {
	h := newHarness(b)
	bu := protocol.Bundle{Session: "junk", Actor: op1.id, Node: node1.id}
	for i := range protocol.MaxOps {
		body := bytes.Repeat([]byte{'x'}, protocol.MaxBundleBytes/protocol.MaxOps-200)
		bu = appendOp(bu, op1, node1, http.MethodPost, "/v1/packages/PKG-1/scan", string(body), h.now()+int64(i), protocol.Hash{})
	}
	var batchB protocol.Batch
	for range protocol.MaxBatchBytes / protocol.MaxBundleBytes {
		c := clone(bu)
		c.Signature = bytes.Repeat([]byte{7}, ed25519.SignatureSize)
		batchB.Bundles = append(batchB.Bundles, c)
	}
	tx := protocol.EncodeBatch(&batchB)
	b.SetBytes(int64(len(tx)))
	b.ResetTimer()
	for range b.N {
		if res := h.checkTx(tx); res.Code != uint32(protocol.CodeUnauthenticated) {
			b.Fatalf("code %d (%s)", res.Code, res.Log)
		}
	}
}

// TestQueryPanicOnValidator: a read handler that panics answers its ABCI
// query with 500; it cannot crash the validator, which goes on making
// blocks.
func TestQueryPanicOnValidator(t *testing.T) {
	reg := supplychain.New()
	reg.Handle(http.MethodGet, "/v1/boom", nil, func(tx *service.Tx, ctx *service.Context, req *service.Request) service.Response {
		panic("a bad read handler")
	})
	app, err := ledger.New(ledger.DefaultConfig(t.TempDir()), &service.App{Name: "boom", Version: "1", Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	res, err := app.Query(ctx, &abci.RequestQuery{Path: "/app/v1/boom"})
	if err != nil || res.Code != http.StatusInternalServerError || !strings.Contains(string(res.Value), "INTERNAL") {
		t.Fatalf("query of a panicking handler: %+v, %v; want code 500 with an INTERNAL error", res, err)
	}
	if _, err := app.FinalizeBlock(ctx, &abci.RequestFinalizeBlock{Height: 1, Time: t0}); err != nil {
		t.Fatalf("the validator after the panic: %v", err)
	}
}
