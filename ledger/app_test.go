package ledger_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	abci "github.com/cometbft/cometbft/abci/types"
	ics23 "github.com/cosmos/ics23/go"

	"github.com/duet-bft/duet/apps/supplychain"
	"github.com/duet-bft/duet/ledger"
	"github.com/duet-bft/duet/protocol"
	"github.com/duet-bft/duet/service"
)

func txHash(tx []byte) string {
	sum := sha256.Sum256(tx)
	return strings.ToUpper(hex.EncodeToString(sum[:]))
}

func (h *harness) sessionRecord(actor, id string) (ledger.SessionRecord, bool) {
	h.t.Helper()
	res := h.query("/session/"+actor+"/"+id, nil, false)
	if res.Code == 404 {
		return ledger.SessionRecord{}, false
	}
	if res.Code != 0 {
		h.t.Fatalf("query session %s: got code %d (%s)", id, res.Code, res.Log)
	}
	var rec ledger.SessionRecord
	if err := json.Unmarshal(res.Value, &rec); err != nil {
		h.t.Fatalf("query session %s: %v", id, err)
	}
	return rec, true
}

func (h *harness) evidence(path string) []ledger.Evidence {
	h.t.Helper()
	res := h.query(path, nil, false)
	if res.Code != 0 {
		h.t.Fatalf("query %s: got code %d (%s)", path, res.Code, res.Log)
	}
	var evs []ledger.Evidence
	if err := json.Unmarshal(res.Value, &evs); err != nil {
		h.t.Fatalf("query %s: %v", path, err)
	}
	return evs
}

func TestHappyPath(t *testing.T) {
	h := newHarness(t)

	create := h.create(sup1, "PKG-1")
	outs := h.submit(create)
	if got, want := outs, []protocol.Outcome{{Session: "new-PKG-1", Code: protocol.CodeOK,
		Results: protocol.ResultsDigest(create.ClaimedResults())}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("create: got outcomes %+v, want %+v", got, want)
	}
	createdAt := h.height
	if got, want := h.stage("PKG-1"), supplychain.StageCreated; got != want {
		t.Fatalf("got stage %q after create, want %q", got, want)
	}

	b := h.process(op1, "S-1", "PKG-1").bundle(node1)
	if got, want := len(b.Ops), 6; got != want {
		t.Fatalf("got %d ops in the bundle, want %d", got, want)
	}
	tx := batch(b)
	if res := h.checkTx(tx); res.Code != 0 {
		t.Fatalf("CheckTx: got code %d (%s), want 0", res.Code, res.Log)
	}
	res := h.block(tx)
	outs = outcomes(t, res.TxResults[0])
	digest := protocol.ResultsDigest(b.ClaimedResults())
	if got, want := outs, []protocol.Outcome{{Session: "S-1", Code: protocol.CodeOK, Results: digest}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("session: got outcomes %+v, want %+v", got, want)
	}
	ev := res.TxResults[0].Events
	if len(ev) != 1 || ev[0].Type != "bundle" || len(ev[0].Attributes) < 3 ||
		ev[0].Attributes[0].Value != "S-1" || ev[0].Attributes[1].Value != "L2-1" || ev[0].Attributes[2].Value != "OK" {
		t.Fatalf("got events %+v, want one bundle event for S-1 from L2-1 with code OK", ev)
	}

	p, ok := h.pkg("PKG-1")
	if !ok {
		t.Fatal("package PKG-1 not found after the session")
	}
	if p.Stage != supplychain.StageLabeled {
		t.Fatalf("got stage %q, want %q", p.Stage, supplychain.StageLabeled)
	}
	if want := (&supplychain.Label{TrackingNumber: supplychain.TrackingNumber("OP-1", "S-1", 4), CourierID: "CR-1", Destination: defaultDest}); !reflect.DeepEqual(p.Label, want) {
		t.Fatalf("got label %+v, want %+v", p.Label, want)
	}
	var steps []string
	for _, e := range h.history("PKG-1") {
		steps = append(steps, e.Step+"@"+e.Session)
	}
	if got, want := strings.Join(steps, " "), "create@new-PKG-1 scan@S-1 validate@S-1 qc@S-1 label@S-1"; got != want {
		t.Fatalf("got history %s, want %s", got, want)
	}

	rec, ok := h.sessionRecord("OP-1", "S-1")
	if !ok {
		t.Fatal("/session/S-1: not found")
	}
	want := ledger.SessionRecord{Session: "S-1", Actor: "OP-1", Node: "L2-1", Height: h.height, TxHash: txHash(tx),
		Ops: 6, LastOp: lastOpHash(&b).String(), Results: digest.String(),
		Writes: []string{"pkg/PKG-1", "pkg/PKG-1/history/0000000001"}}
	if fmt.Sprint(rec) != fmt.Sprint(want) {
		t.Fatalf("got session record %+v, want %+v", rec, want)
	}
	if rec, _ := h.sessionRecord("SUP-1", "new-PKG-1"); rec.Height != createdAt {
		t.Fatalf("got create session height %d, want %d", rec.Height, createdAt)
	}
	if _, ok := h.sessionRecord("OP-1", "S-404"); ok {
		t.Fatal("/session/S-404: found, want 404")
	}

	// /store with a proof that a client checks against the app hash alone.
	root := h.appHash()
	key := []byte(supplychain.PackageKey("PKG-1"))
	q := h.query("/store", key, true)
	if q.Code != 0 {
		t.Fatalf("/store: got code %d (%s), want 0", q.Code, q.Log)
	}
	if got, want := q.Height, h.height; got != want {
		t.Fatalf("/store: got height %d, want %d", got, want)
	}
	if got, want := q.Info, strconv.FormatInt(h.height, 10); got != want {
		t.Fatalf("/store: got version %s, want %s (the height that wrote it)", got, want)
	}
	var stored supplychain.Package
	if err := json.Unmarshal(q.Value, &stored); err != nil || !reflect.DeepEqual(stored, p) {
		t.Fatalf("/store: got %s (%v), want the package the app route returns", q.Value, err)
	}
	if q.ProofOps == nil || len(q.ProofOps.Ops) != 1 || q.ProofOps.Ops[0].Type != ledger.ProofOpType || !bytes.Equal(q.ProofOps.Ops[0].Key, key) {
		t.Fatalf("/store: got proof ops %+v, want one %s op for %s", q.ProofOps, ledger.ProofOpType, key)
	}
	var proof ics23.CommitmentProof
	if err := proof.Unmarshal(q.ProofOps.Ops[0].Data); err != nil {
		t.Fatalf("/store: proof: %v", err)
	}
	ver, _ := strconv.ParseUint(q.Info, 10, 64)
	if !ics23.VerifyMembership(ics23.IavlSpec, root, &proof, key, ledger.EncodeValue(ver, q.Value)) {
		t.Fatal("/store: membership proof does not verify against the app hash")
	}
	if ics23.VerifyMembership(ics23.IavlSpec, root, &proof, key, ledger.EncodeValue(ver, []byte(`{}`))) {
		t.Fatal("/store: membership proof verifies for another value")
	}

	absent := []byte(supplychain.PackageKey("PKG-404"))
	q = h.query("/store", absent, true)
	if q.Code != 404 || q.Value != nil {
		t.Fatalf("/store absent key: got code %d value %q, want 404 and no value", q.Code, q.Value)
	}
	if q.ProofOps == nil || len(q.ProofOps.Ops) != 1 {
		t.Fatalf("/store absent key: got proof ops %+v, want one", q.ProofOps)
	}
	proof = ics23.CommitmentProof{}
	if err := proof.Unmarshal(q.ProofOps.Ops[0].Data); err != nil {
		t.Fatalf("/store absent key: proof: %v", err)
	}
	if !ics23.VerifyNonMembership(ics23.IavlSpec, root, &proof, absent) {
		t.Fatal("/store absent key: non-membership proof does not verify against the app hash")
	}
}

func TestResultMismatch(t *testing.T) {
	for _, seq := range []int{0, 3, 5} { // start, qc, commit
		t.Run(fmt.Sprintf("op %d", seq), func(t *testing.T) {
			h := newHarness(t)
			h.created("PKG-1")
			before, _ := h.pkg("PKG-1")
			good := h.process(op1, "S-1", "PKG-1").bundle(node1)
			bad := tamper(good, node1, func(b *protocol.Bundle) { b.Ops[seq].Result[0] ^= 0xff })

			tx := batch(bad)
			if res := h.checkTx(tx); res.Code != 0 {
				t.Fatalf("CheckTx: got code %d (%s), want 0 (results are judged on execution)", res.Code, res.Log)
			}
			res := h.block(tx)
			outs := outcomes(t, res.TxResults[0])
			if got, want := outs, []protocol.Outcome{{Session: "S-1", Code: protocol.CodeResultMismatch,
				Results: protocol.ResultsDigest(good.ClaimedResults())}}; !reflect.DeepEqual(got, want) {
				t.Fatalf("got outcomes %+v, want %+v", got, want)
			}
			if got, _ := h.pkg("PKG-1"); !reflect.DeepEqual(got, before) {
				t.Fatalf("got package %+v after a rejected session, want %+v", got, before)
			}
			if _, ok := h.sessionRecord("OP-1", "S-1"); ok {
				t.Fatal("/session/S-1: found after RESULT_MISMATCH, want 404")
			}
			want := []ledger.Evidence{{Node: "L2-1", Actor: "OP-1", Session: "S-1", Height: h.height, TxHash: txHash(tx), Seq: seq,
				Claimed: bad.Ops[seq].Result.String(), Actual: good.Ops[seq].Result.String()}}
			if got := h.evidence("/evidence"); !reflect.DeepEqual(got, want) {
				t.Fatalf("/evidence: got %+v, want %+v", got, want)
			}
			if got := h.evidence("/evidence/L2-1"); !reflect.DeepEqual(got, want) {
				t.Fatalf("/evidence/L2-1: got %+v, want %+v", got, want)
			}
			if got := h.evidence("/evidence/L2-2"); len(got) != 0 {
				t.Fatalf("/evidence/L2-2: got %+v, want none", got)
			}
			// Anyone may resubmit the signed lie; it is rejected again but
			// the evidence is not duplicated.
			if got := codes(h.submit(bad, bad)); !reflect.DeepEqual(got, []protocol.Code{protocol.CodeResultMismatch, protocol.CodeResultMismatch}) {
				t.Fatalf("resubmitted lie: got %v, want two RESULT_MISMATCH", got)
			}
			if got := h.evidence("/evidence"); !reflect.DeepEqual(got, want) {
				t.Fatalf("/evidence after resubmission: got %+v, want %+v", got, want)
			}

			// The honest bundle of the same session still commits.
			if got := codes(h.submit(good)); !reflect.DeepEqual(got, []protocol.Code{protocol.CodeOK}) {
				t.Fatalf("honest bundle after the falsified one: got %v, want [OK]", got)
			}
			if got, want := h.stage("PKG-1"), supplychain.StageLabeled; got != want {
				t.Fatalf("got stage %q, want %q", got, want)
			}
			if got := h.evidence("/evidence"); len(got) != 1 {
				t.Fatalf("/evidence: got %d records, want 1", len(got))
			}
		})
	}
}

// TestEvidenceByNode checks that /evidence/<node> lists that node's
// evidence only, also when another node's id starts with it.
func TestEvidenceByNode(t *testing.T) {
	node10 := newActor("L2-10", service.RoleL2)
	h := newHarness(t, node10)
	h.created("PKG-1", "PKG-2")
	lie := func(b *protocol.Bundle) { b.Ops[1].Result[0] ^= 1 }
	b1 := tamper(h.process(op1, "S-1", "PKG-1").bundle(node1), node1, lie)
	b10 := tamper(h.process(op2, "S-10", "PKG-2").bundle(node10), node10, lie)
	if got, want := codes(h.submit(b1, b10)), []protocol.Code{protocol.CodeResultMismatch, protocol.CodeResultMismatch}; !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for _, tc := range []struct {
		path string
		want []string
	}{
		{"/evidence", []string{"L2-1/S-1", "L2-10/S-10"}},
		{"/evidence/L2-1", []string{"L2-1/S-1"}},
		{"/evidence/L2-10", []string{"L2-10/S-10"}},
		{"/evidence/L2-2", nil},
	} {
		var got []string
		for _, e := range h.evidence(tc.path) {
			got = append(got, e.Node+"/"+e.Session)
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.path, got, tc.want)
		}
	}
}

func TestConflict(t *testing.T) {
	for _, tc := range []struct {
		name   string
		nodeB  actor
		layout func(a, b []byte) [][][]byte // blocks of txs
	}{
		{"one tx, two nodes", node2, func(a, b []byte) [][][]byte { return nil }},
		{"one tx, one node", node1, func(a, b []byte) [][][]byte { return nil }},
		{"one block, two txs", node2, func(a, b []byte) [][][]byte { return [][][]byte{{a, b}} }},
		{"consecutive blocks", node2, func(a, b []byte) [][][]byte { return [][][]byte{{a}, {b}} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.created("PKG-1")
			a := h.process(op1, "S-A", "PKG-1").bundle(node1)
			// B saw the same committed state and only scans.
			sb := h.session("S-B", op2)
			sb.start("PKG-1")
			sb.step("PKG-1", "scan", scanBody)
			sb.commit()
			b := sb.bundle(tc.nodeB)

			var got []protocol.Code
			if blocks := tc.layout(batch(a), batch(b)); blocks == nil {
				got = codes(h.submit(a, b))
			} else {
				for _, txs := range blocks {
					for _, r := range h.block(txs...).TxResults {
						got = append(got, codes(outcomes(t, r))...)
					}
				}
			}
			if want := []protocol.Code{protocol.CodeOK, protocol.CodeConflict}; !reflect.DeepEqual(got, want) {
				t.Fatalf("got %v, want %v", got, want)
			}
			p, _ := h.pkg("PKG-1")
			if p.Stage != supplychain.StageLabeled {
				t.Fatalf("got stage %q, want %q", p.Stage, supplychain.StageLabeled)
			}
			for _, e := range h.history("PKG-1")[1:] {
				if e.Session != "S-A" || e.Actor != "OP-1" {
					t.Fatalf("got history event %+v, want only session S-A by OP-1", e)
				}
			}
			if _, ok := h.sessionRecord("OP-1", "S-B"); ok {
				t.Fatal("/session/S-B: found after CONFLICT, want 404")
			}
			if got := h.evidence("/evidence"); len(got) != 0 {
				t.Fatalf("/evidence: got %+v after a conflict, want none (no one lied)", got)
			}
		})
	}

	t.Run("two creates of one package", func(t *testing.T) {
		h := newHarness(t)
		a := h.createSession("new-a", sup1, "PKG-1").bundle(node1)
		b := h.createSession("new-b", sup2, "PKG-1").bundle(node2)
		if got, want := codes(h.submit(a, b)), []protocol.Code{protocol.CodeOK, protocol.CodeConflict}; !reflect.DeepEqual(got, want) {
			t.Fatalf("got %v, want %v", got, want)
		}
		if p, _ := h.pkg("PKG-1"); p.Supplier != "SUP-1" {
			t.Fatalf("got supplier %q, want SUP-1", p.Supplier)
		}
	})
}

func TestAlreadyCommitted(t *testing.T) {
	h := newHarness(t)
	create := h.create(sup1, "PKG-1")
	h.created("PKG-2")
	if got := codes(h.submit(create)); !reflect.DeepEqual(got, []protocol.Code{protocol.CodeOK}) {
		t.Fatalf("create: got %v, want [OK]", got)
	}
	a := h.process(op1, "S-1", "PKG-1").bundle(node1)
	txA := batch(a)
	if got := codes(outcomes(t, h.block(txA).TxResults[0])); !reflect.DeepEqual(got, []protocol.Code{protocol.CodeOK}) {
		t.Fatalf("first submission: got %v, want [OK]", got)
	}
	for _, tc := range []struct {
		name string
		tx   []byte
	}{
		{"same tx", txA},
		{"new batch", batch(clone(a))},
		{"new batch, twice", batch(a, a)},
		{"re-signed by another node", batch(tamper(a, node2, func(b *protocol.Bundle) { b.Node = node2.id }))},
		{"direct-mode create", batch(create)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := h.appHash()
			res := h.block(tc.tx)
			for i, o := range outcomes(t, res.TxResults[0]) {
				if o.Code != protocol.CodeAlreadyCommitted {
					t.Fatalf("bundle %d: got %v, want ALREADY_COMMITTED", i, o.Code)
				}
			}
			if !bytes.Equal(res.AppHash, before) {
				t.Fatalf("got app hash %X, want it unchanged %X", res.AppHash, before)
			}
		})
	}
	if rec, _ := h.sessionRecord("OP-1", "S-1"); rec.TxHash != txHash(txA) {
		t.Fatalf("got session record %+v, want the first submission's tx %s", rec, txHash(txA))
	}

	t.Run("twice in one batch", func(t *testing.T) {
		b := h.process(op1, "S-2", "PKG-2").bundle(node1)
		got := codes(h.submit(b, b))
		if want := []protocol.Code{protocol.CodeOK, protocol.CodeAlreadyCommitted}; !reflect.DeepEqual(got, want) {
			t.Fatalf("got %v, want %v", got, want)
		}
		if n := len(h.history("PKG-2")); n != 5 {
			t.Fatalf("got %d history events, want 5 (applied once)", n)
		}
	})
}

func TestUnauthenticated(t *testing.T) {
	flip := func(b []byte) { b[0] ^= 1 }
	for _, tc := range []struct {
		name   string
		signer actor // re-signs the tampered bundle
		tamper func(b *protocol.Bundle)
		want   protocol.Code
	}{
		{"forged actor signature", node1, func(b *protocol.Bundle) { flip(b.Ops[2].Signature) }, protocol.CodeUnauthenticated},
		{"forged start signature", node1, func(b *protocol.Bundle) { flip(b.Ops[0].Signature) }, protocol.CodeUnauthenticated},
		{"forged commit signature", node1, func(b *protocol.Bundle) { flip(b.Ops[5].Signature) }, protocol.CodeUnauthenticated},
		{"changed body", node1, func(b *protocol.Bundle) { b.Ops[4].Body = []byte(`{"courier_id":"CR-2"}`) }, protocol.CodeUnauthenticated},
		{"reordered ops", node1, func(b *protocol.Bundle) {
			// Swap validate and qc but keep the times in order, so only
			// the op chain can tell.
			b.Ops[2], b.Ops[3] = b.Ops[3], b.Ops[2]
			b.Ops[2].Time, b.Ops[3].Time = b.Ops[3].Time, b.Ops[2].Time
		}, protocol.CodeUnauthenticated},
		{"dropped op", node1, func(b *protocol.Bundle) { b.Ops = append(b.Ops[:3], b.Ops[4:]...) }, protocol.CodeUnauthenticated},
		{"replayed in another session", node1, func(b *protocol.Bundle) {
			b.Session = "S-2"
			b.Ops[5].Path = service.CommitPath("S-2")
		}, protocol.CodeUnauthenticated},
		{"another actor", node1, func(b *protocol.Bundle) { b.Actor = op2.id }, protocol.CodeUnauthenticated},
		{"unknown actor", node1, func(b *protocol.Bundle) { b.Actor = "OP-9" }, protocol.CodeUnauthenticated},
		{"bad node signature", node1, nil, protocol.CodeUnauthenticated},
		{"signed by another node", node1, func(b *protocol.Bundle) { b.Node = node2.id }, protocol.CodeUnauthenticated},
		{"unknown node", stranger, func(b *protocol.Bundle) { b.Node = stranger.id }, protocol.CodeUnauthenticated},
		{"node is not l2", op2, func(b *protocol.Bundle) { b.Node = op2.id }, protocol.CodePermissionDenied},
		{"node is an admin", admin, func(b *protocol.Bundle) { b.Node = admin.id }, protocol.CodePermissionDenied},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.created("PKG-1")
			good := h.process(op1, "S-1", "PKG-1").bundle(node1)
			var b protocol.Bundle
			if tc.tamper == nil {
				b = clone(good)
				flip(b.Signature)
			} else {
				b = tamper(good, tc.signer, tc.tamper)
			}
			tx := batch(b)
			if res := h.checkTx(tx); res.Code != uint32(tc.want) {
				t.Fatalf("CheckTx: got code %d (%s), want %d (%v)", res.Code, res.Log, tc.want, tc.want)
			}
			before := h.appHash()
			res := h.block(tx)
			outs := outcomes(t, res.TxResults[0])
			if got := codes(outs); !reflect.DeepEqual(got, []protocol.Code{tc.want}) {
				t.Fatalf("FinalizeBlock: got %v, want [%v]", got, tc.want)
			}
			if outs[0].Results != (protocol.Hash{}) {
				t.Fatalf("got results %v, want zero (not re-executed to the end)", outs[0].Results)
			}
			if !bytes.Equal(res.AppHash, before) {
				t.Fatalf("got app hash %X, want it unchanged %X", res.AppHash, before)
			}
			if got, want := h.stage("PKG-1"), supplychain.StageCreated; got != want {
				t.Fatalf("got stage %q, want %q", got, want)
			}
			if got := h.evidence("/evidence"); len(got) != 0 {
				t.Fatalf("/evidence: got %+v, want none", got)
			}
		})
	}
}

func TestInvalidSession(t *testing.T) {
	const pkg = "PKG-1"
	var zero protocol.Hash
	for _, tc := range []struct {
		name  string
		build func(h *harness) protocol.Bundle
	}{
		{"no start", func(h *harness) protocol.Bundle {
			s := h.session("S-1", op1)
			s.step(pkg, "scan", scanBody)
			s.step(pkg, "validate", validateOK)
			s.commit()
			return s.bundle(node1)
		}},
		{"no commit", func(h *harness) protocol.Bundle {
			s := h.session("S-1", op1)
			s.start(pkg)
			s.step(pkg, "scan", scanBody)
			s.step(pkg, "validate", validateOK)
			return s.bundle(node1)
		}},
		{"start only", func(h *harness) protocol.Bundle {
			s := h.session("S-1", op1)
			s.start(pkg)
			return s.bundle(node1)
		}},
		{"ends in abort", func(h *harness) protocol.Bundle {
			s := h.session("S-1", op1)
			s.start(pkg)
			s.step(pkg, "scan", scanBody)
			s.must(http.StatusOK, http.MethodDelete, service.AbortPath("S-1"), `{}`)
			return s.bundle(node1)
		}},
		{"abort inside", func(h *harness) protocol.Bundle {
			s := h.session("S-1", op1)
			s.start(pkg)
			s.step(pkg, "scan", scanBody)
			s.must(http.StatusOK, http.MethodDelete, service.AbortPath("S-1"), `{}`)
			s.commit()
			return s.bundle(node1)
		}},
		{"second start inside", func(h *harness) protocol.Bundle {
			s := h.session("S-1", op1)
			s.start(pkg)
			s.step(pkg, "scan", scanBody)
			b := appendOp(s.bundle(node1), op1, node1, http.MethodPost, service.PathSessions, `{}`, h.now(), zero)
			return appendOp(b, op1, node1, http.MethodPost, service.CommitPath("S-1"), `{}`, h.now(), zero)
		}},
		{"commit of another session", func(h *harness) protocol.Bundle {
			s := h.session("S-1", op1)
			s.start(pkg)
			s.step(pkg, "scan", scanBody)
			return appendOp(s.bundle(node1), op1, node1, http.MethodPost, service.CommitPath("S-2"), `{}`, h.now(), zero)
		}},
		{"commit only", func(h *harness) protocol.Bundle {
			b := protocol.Bundle{Session: "S-1", Actor: op1.id, Node: node1.id}
			return appendOp(b, op1, node1, http.MethodPost, service.CommitPath("S-1"), `{}`, h.now(), zero)
		}},
		{"abort only", func(h *harness) protocol.Bundle {
			b := protocol.Bundle{Session: "S-1", Actor: op1.id, Node: node1.id}
			return appendOp(b, op1, node1, http.MethodDelete, service.AbortPath("S-1"), `{}`, h.now(), zero)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.created(pkg)
			tx := batch(tc.build(h))
			if res := h.checkTx(tx); res.Code != 0 {
				t.Fatalf("CheckTx: got code %d (%s), want 0 (every signature is valid)", res.Code, res.Log)
			}
			before := h.appHash()
			res := h.block(tx)
			if got := codes(outcomes(t, res.TxResults[0])); !reflect.DeepEqual(got, []protocol.Code{protocol.CodeInvalidSession}) {
				t.Fatalf("got %v, want [INVALID_SESSION]", got)
			}
			if !bytes.Equal(res.AppHash, before) {
				t.Fatalf("got app hash %X, want it unchanged %X", res.AppHash, before)
			}
			if got, want := h.stage(pkg), supplychain.StageCreated; got != want {
				t.Fatalf("got stage %q, want %q", got, want)
			}
		})
	}
}

func TestTimeBounds(t *testing.T) {
	const (
		skew = 30 * time.Second
		age  = 24 * time.Hour
	)
	ms := func(d time.Duration) int64 { return d.Milliseconds() }
	for _, tc := range []struct {
		name  string
		times []int64 // op times relative to the block time, ms; one op is a direct-mode create
		want  protocol.Code
	}{
		{"at block time", []int64{0}, protocol.CodeOK},
		{"at the future limit", []int64{ms(skew)}, protocol.CodeOK},
		{"past the future limit", []int64{ms(skew) + 1}, protocol.CodeTimeOutOfBounds},
		{"far future", []int64{ms(365 * age)}, protocol.CodeTimeOutOfBounds},
		{"at the age limit", []int64{-ms(age)}, protocol.CodeOK},
		{"too old", []int64{-ms(age) - 1}, protocol.CodeTimeOutOfBounds},
		{"session, equal times", []int64{-5, -5, -5, -5}, protocol.CodeOK},
		{"session, increasing", []int64{-ms(age), -1000, 0, ms(skew)}, protocol.CodeOK},
		{"session, decreasing", []int64{-5, -3, -4, -2}, protocol.CodeTimeOutOfBounds},
		{"session, commit before start", []int64{-5, -4, -3, -6}, protocol.CodeTimeOutOfBounds},
		{"session, one op in the future", []int64{-5, ms(skew) + 1, ms(skew) + 2, ms(skew) + 3}, protocol.CodeTimeOutOfBounds},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.created("PKG-1")
			bt := h.blockTime.Add(time.Hour)
			at := func(i int) int64 { return bt.UnixMilli() + tc.times[i] }
			exp := bt.UnixMilli() + ms(365*age) // expiry is TestExpiry's
			var b protocol.Bundle
			if len(tc.times) == 1 {
				s := h.session("new-PKG-2", sup1)
				s.doExp(at(0), exp, http.MethodPost, supplychain.PathPackages, createBody(sup1, "PKG-2", defaultDest, defaultItems))
				b = s.bundle(node1)
			} else {
				s := h.session("S-1", op1)
				s.doExp(at(0), exp, http.MethodPost, service.PathSessions, `{}`)
				s.doExp(at(1), exp, http.MethodPost, "/v1/packages/PKG-1/scan", scanBody)
				s.doExp(at(2), exp, http.MethodPost, "/v1/packages/PKG-1/validate", validateOK)
				s.doExp(at(3), exp, http.MethodPost, service.CommitPath("S-1"), `{}`)
				b = s.bundle(node1)
			}
			if got, want := len(b.Ops), len(tc.times); got != want {
				t.Fatalf("got %d ops in the bundle, want %d", got, want)
			}
			before := h.appHash()
			res := h.blockAt(bt, batch(b))
			if got := codes(outcomes(t, res.TxResults[0])); !reflect.DeepEqual(got, []protocol.Code{tc.want}) {
				t.Fatalf("got %v, want [%v]", got, tc.want)
			}
			if changed := !bytes.Equal(res.AppHash, before); changed != (tc.want == protocol.CodeOK) {
				t.Fatalf("got app hash changed %v, want %v", changed, tc.want == protocol.CodeOK)
			}
		})
	}
}

func TestMalformed(t *testing.T) {
	h := newHarness(t)
	valid := batch(h.create(sup1, "PKG-1"))
	nonMinimal := append([]byte{valid[0], 0x81, 0x00}, valid[2:]...)
	badID := h.create(sup1, "PKG-2")
	badID.Session = ""
	for _, tc := range []struct {
		name string
		tx   []byte
	}{
		{"nil", nil},
		{"empty", []byte{}},
		{"garbage", []byte("hello, ledger")},
		{"tag only", valid[:1]},
		{"wrong tag", append([]byte{0xD2}, valid[1:]...)},
		{"empty batch", []byte{valid[0], 0x00}},
		{"truncated", valid[:len(valid)-1]},
		{"trailing byte", append(bytes.Clone(valid), 0)},
		{"non-minimal varint", nonMinimal},
		{"invalid bundle", batch(badID)},
		{"bundle count too large", []byte{valid[0], 0xff, 0xff, 0x03}},
		{"too large", append(bytes.Clone(valid), make([]byte, protocol.MaxBatchBytes)...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if res := h.checkTx(tc.tx); res.Code != uint32(protocol.CodeMalformed) {
				t.Fatalf("CheckTx: got code %d (%s), want %d", res.Code, res.Log, protocol.CodeMalformed)
			}
			before := h.appHash()
			res := h.block(tc.tx)
			r := res.TxResults[0]
			if r.Code != uint32(protocol.CodeMalformed) || r.Data != nil {
				t.Fatalf("got code %d data %x, want code %d and no data", r.Code, r.Data, protocol.CodeMalformed)
			}
			if !bytes.Equal(res.AppHash, before) {
				t.Fatalf("got app hash %X, want it unchanged %X", res.AppHash, before)
			}
		})
	}

	// Malformed txs around a valid one in one block do not touch it.
	res := h.block([]byte("junk"), valid, valid[:3])
	if got := []uint32{res.TxResults[0].Code, res.TxResults[1].Code, res.TxResults[2].Code}; !reflect.DeepEqual(got, []uint32{1, 0, 1}) {
		t.Fatalf("got tx codes %v, want [1 0 1]", got)
	}
	if got := codes(outcomes(t, res.TxResults[1])); !reflect.DeepEqual(got, []protocol.Code{protocol.CodeOK}) {
		t.Fatalf("got %v, want [OK]", got)
	}
}

func TestMixedBatch(t *testing.T) {
	h := newHarness(t)
	h.created("PKG-1", "PKG-3")
	okSession := h.process(op1, "S-1", "PKG-1").bundle(node1)
	forged := tamper(h.create(sup1, "PKG-2"), node1, func(b *protocol.Bundle) { b.Ops[0].Signature[5] ^= 1 })
	lie := tamper(h.process(op2, "S-3", "PKG-3").bundle(node2), node2, func(b *protocol.Bundle) { b.Ops[2].Result[0] ^= 1 })
	okCreate := h.create(sup2, "PKG-4")
	stale := h.process(op2, "S-1b", "PKG-1").bundle(node2)

	tx := batch(okSession, forged, lie, okCreate, stale, okSession)
	if res := h.checkTx(tx); res.Code != uint32(protocol.CodeUnauthenticated) {
		t.Fatalf("CheckTx: got code %d (%s), want %d: a batch with a forged op is not admitted", res.Code, res.Log, protocol.CodeUnauthenticated)
	}
	outs := outcomes(t, h.block(tx).TxResults[0])
	type verdict struct {
		Session string
		Code    protocol.Code
	}
	var got []verdict
	for _, o := range outs {
		got = append(got, verdict{o.Session, o.Code})
	}
	want := []verdict{
		{"S-1", protocol.CodeOK},
		{"new-PKG-2", protocol.CodeUnauthenticated},
		{"S-3", protocol.CodeResultMismatch},
		{"new-PKG-4", protocol.CodeOK},
		{"S-1b", protocol.CodeConflict},
		{"S-1", protocol.CodeAlreadyCommitted},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for pkg, want := range map[string]string{
		"PKG-1": supplychain.StageLabeled,
		"PKG-2": "",
		"PKG-3": supplychain.StageCreated,
		"PKG-4": supplychain.StageCreated,
	} {
		if got := h.stage(pkg); got != want {
			t.Errorf("%s: got stage %q, want %q", pkg, got, want)
		}
	}
	if got := h.evidence("/evidence/L2-2"); len(got) != 1 || got[0].Session != "S-3" || got[0].Seq != 2 {
		t.Fatalf("/evidence/L2-2: got %+v, want one record for S-3 op 2", got)
	}
}

// twin drives two Apps with the same blocks.
type twin struct {
	t    *testing.T
	a, b *harness
}

func (w *twin) block(txs ...[]byte) *abci.ResponseFinalizeBlock {
	w.t.Helper()
	bt := w.a.nextBlockTime()
	ra := w.a.blockAt(bt, txs...)
	rb := w.b.blockAt(bt, txs...)
	if !bytes.Equal(ra.AppHash, rb.AppHash) {
		w.t.Fatalf("height %d: got app hashes %X and %X, want equal", w.a.height, ra.AppHash, rb.AppHash)
	}
	for i := range ra.TxResults {
		x, y := ra.TxResults[i], rb.TxResults[i]
		if x.Code != y.Code || !bytes.Equal(x.Data, y.Data) {
			w.t.Fatalf("height %d tx %d: got results %d %x and %d %x, want equal", w.a.height, i, x.Code, x.Data, y.Code, y.Data)
		}
	}
	return ra
}

func TestDeterminismAndRestart(t *testing.T) {
	w := &twin{t: t, a: newHarness(t), b: newHarness(t)}
	a := w.a
	var heights []int64
	var verdicts []protocol.Code
	a.app.OnBlock(func(b ledger.Block) {
		heights = append(heights, b.Height)
		for _, tx := range b.Txs {
			verdicts = append(verdicts, codes(tx.Outcomes)...)
		}
	})

	w.block(batch(a.create(sup1, "PKG-1")), batch(a.create(sup2, "PKG-2")))
	w.block(batch(a.process(op1, "S-1", "PKG-1").bundle(node1)), batch(a.process(op2, "S-1b", "PKG-1").bundle(node2)))
	w.block(batch(tamper(a.process(op1, "S-2", "PKG-2").bundle(node1), node1, func(b *protocol.Bundle) { b.Ops[1].Result[3] ^= 1 })))

	last := a.appHash()
	for _, txs := range [][][]byte{nil, {[]byte("junk")}} {
		if res := w.block(txs...); !bytes.Equal(res.AppHash, last) {
			t.Fatalf("block with %d junk txs: got app hash %X, want it unchanged %X", len(txs), res.AppHash, last)
		}
	}
	if got, want := heights, []int64{2, 3, 4, 5, 6}; !reflect.DeepEqual(got, want) {
		t.Fatalf("OnBlock: got heights %v, want %v", got, want)
	}
	if got, want := verdicts, []protocol.Code{protocol.CodeOK, protocol.CodeOK, protocol.CodeOK, protocol.CodeConflict, protocol.CodeResultMismatch}; !reflect.DeepEqual(got, want) {
		t.Fatalf("OnBlock: got verdicts %v, want %v", got, want)
	}

	// Restart: same height and app hash, same state.
	info := a.info()
	pkg1, _ := a.pkg("PKG-1")
	a.close()
	a.open()
	if got := a.info(); got.LastBlockHeight != info.LastBlockHeight || !bytes.Equal(got.LastBlockAppHash, info.LastBlockAppHash) {
		t.Fatalf("after reopen: got Info height %d hash %X, want %d %X", got.LastBlockHeight, got.LastBlockAppHash, info.LastBlockHeight, info.LastBlockAppHash)
	}
	if st, h := a.app.Committed(); h != info.LastBlockHeight || st == nil {
		t.Fatalf("after reopen: got committed height %d, want %d", h, info.LastBlockHeight)
	}
	if got, _ := a.pkg("PKG-1"); !reflect.DeepEqual(got, pkg1) {
		t.Fatalf("after reopen: got package %+v, want %+v", got, pkg1)
	}
	if got := a.evidence("/evidence"); len(got) != 1 {
		t.Fatalf("after reopen: got %d evidence records, want 1", len(got))
	}
	okS2 := batch(a.process(op1, "S-2", "PKG-2").bundle(node1))
	w.block(okS2)

	// Crash after FinalizeBlock, before Commit: the block is replayed.
	info = a.info()
	replay := batch(a.create(sup1, "PKG-3"))
	bt := a.nextBlockTime()
	a.finalize(bt, replay)
	a.close()
	a.open()
	if got := a.info(); got.LastBlockHeight != info.LastBlockHeight || !bytes.Equal(got.LastBlockAppHash, info.LastBlockAppHash) {
		t.Fatalf("after a crash before Commit: got Info height %d hash %X, want %d %X", got.LastBlockHeight, got.LastBlockAppHash, info.LastBlockHeight, info.LastBlockAppHash)
	}
	a.height = info.LastBlockHeight
	if _, ok := a.pkg("PKG-3"); ok {
		t.Fatal("after a crash before Commit: PKG-3 exists, want it gone with the uncommitted block")
	}
	ra := a.blockAt(bt, replay)
	rb := w.b.blockAt(bt, replay)
	if !bytes.Equal(ra.AppHash, rb.AppHash) {
		t.Fatalf("replayed block: got app hashes %X and %X, want equal", ra.AppHash, rb.AppHash)
	}
	if got := codes(outcomes(t, ra.TxResults[0])); !reflect.DeepEqual(got, []protocol.Code{protocol.CodeOK}) {
		t.Fatalf("replayed block: got %v, want [OK]", got)
	}
	ka, err := a.app.CommittedKVs("")
	if err != nil {
		t.Fatal(err)
	}
	kb, err := w.b.app.CommittedKVs("")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(ka, kb) {
		t.Fatalf("got different committed states: %d and %d keys", len(ka), len(kb))
	}
}

func TestConfig(t *testing.T) {
	def := ledger.DefaultConfig("/tmp/x")
	if def.MaxFutureSkew != 30*time.Second || def.MaxOpAge != 24*time.Hour || def.CacheSize != 100000 || def.Dir != "/tmp/x" {
		t.Fatalf("got DefaultConfig %+v, want 30s skew, 24h age, 100000 nodes", def)
	}
	for _, tc := range []struct {
		name   string
		change func(c *ledger.Config)
		ok     bool // Validate
		newOK  bool // New, which fills the zero fields first
	}{
		{"default", func(c *ledger.Config) {}, true, true},
		{"no dir", func(c *ledger.Config) { c.Dir = "" }, false, false},
		{"zero skew", func(c *ledger.Config) { c.MaxFutureSkew = 0 }, false, true},
		{"negative age", func(c *ledger.Config) { c.MaxOpAge = -time.Second }, false, false},
		{"negative cache", func(c *ledger.Config) { c.CacheSize = -1 }, false, false},
		{"zero cache", func(c *ledger.Config) { c.CacheSize = 0 }, true, true},
	} {
		c := ledger.DefaultConfig(t.TempDir())
		tc.change(&c)
		if err := c.Validate(); (err == nil) != tc.ok {
			t.Errorf("%s: got Validate() = %v, want ok %v", tc.name, err, tc.ok)
		}
		app, err := ledger.New(c, supplychain.App)
		if err == nil {
			app.Close()
		}
		if (err == nil) != tc.newOK {
			t.Errorf("%s: got New() = %v, want ok %v", tc.name, err, tc.newOK)
		}
	}
}

func TestInitChain(t *testing.T) {
	// state is an app state naming the supply chain, with more fields.
	state := func(more string) []byte {
		return []byte(`{"app_name":"supplychain","app_version":"` + supplychain.App.Version + `"` + more + `}`)
	}
	dup := supplychain.App.Genesis([]service.Actor{admin.record(), admin.record()}, nil)
	for _, tc := range []struct {
		name    string
		req     *abci.RequestInitChain
		wantErr bool
	}{
		{"genesis", &abci.RequestInitChain{AppStateBytes: genesis(), InitialHeight: 1}, false},
		{"no actors", &abci.RequestInitChain{AppStateBytes: state("")}, false},
		{"empty app state", &abci.RequestInitChain{}, true},
		{"no app name", &abci.RequestInitChain{AppStateBytes: []byte(`{"actors":[]}`)}, true},
		{"another app", &abci.RequestInitChain{AppStateBytes: []byte(`{"app_name":"other","app_version":"` + supplychain.App.Version + `"}`)}, true},
		{"another version", &abci.RequestInitChain{AppStateBytes: []byte(`{"app_name":"supplychain","app_version":"0.0.1"}`)}, true},
		{"initial height 2", &abci.RequestInitChain{AppStateBytes: genesis(), InitialHeight: 2}, true},
		{"not JSON", &abci.RequestInitChain{AppStateBytes: []byte("{")}, true},
		{"unknown field", &abci.RequestInitChain{AppStateBytes: state(`,"actors":[],"extra":1`)}, true},
		{"duplicate actor", &abci.RequestInitChain{AppStateBytes: dup}, true},
		{"courier of unknown actor", &abci.RequestInitChain{AppStateBytes: state(`,"app":{"couriers":[{"id":"CR-9","name":"x","actor_id":"NOPE"}]}`)}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			app, err := ledger.New(ledger.DefaultConfig(t.TempDir()), supplychain.App)
			if err != nil {
				t.Fatal(err)
			}
			defer app.Close()
			res, err := app.InitChain(ctx, tc.req)
			if (err != nil) != tc.wantErr {
				t.Fatalf("got error %v, want error %v", err, tc.wantErr)
			}
			if err == nil && len(res.AppHash) != 32 {
				t.Fatalf("got app hash %X, want 32 bytes", res.AppHash)
			}
		})
	}

	// The genesis app hash is the same on every node and is the app hash
	// of an empty block 1.
	h1, h2 := newHarness(t), newHarness(t)
	if !bytes.Equal(h1.appHash(), h2.appHash()) {
		t.Fatalf("got genesis app hashes %X and %X, want equal", h1.appHash(), h2.appHash())
	}
	app, err := ledger.New(ledger.DefaultConfig(t.TempDir()), supplychain.App)
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	res, err := app.InitChain(ctx, &abci.RequestInitChain{AppStateBytes: genesis(), InitialHeight: 1})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(res.AppHash, h1.appHash()) {
		t.Fatalf("got InitChain app hash %X, want block 1's %X", res.AppHash, h1.appHash())
	}
}

// TestAppIdentity: abci_info names the app; state written by one app (or
// one version of it) cannot be opened by another.
func TestAppIdentity(t *testing.T) {
	h := newHarness(t)
	info, err := h.app.Info(ctx, &abci.RequestInfo{})
	if err != nil || info.Data != "supplychain" || info.Version != supplychain.App.Version {
		t.Fatalf("Info: data %q version %q (%v), want supplychain %s", info.Data, info.Version, err, supplychain.App.Version)
	}
	h.close()
	for _, other := range []*service.App{
		{Name: "notary", Version: supplychain.App.Version, Registry: service.NewRegistry()},
		{Name: "supplychain", Version: "9.9.9", Registry: supplychain.New()},
	} {
		app, err := ledger.New(ledger.DefaultConfig(h.dir), other)
		if err == nil {
			app.Close()
			t.Fatalf("%s opened the state of supplychain %s", other, supplychain.App.Version)
		}
		if !strings.Contains(err.Error(), "supplychain") || !strings.Contains(err.Error(), supplychain.App.Version) {
			t.Errorf("%s: the error does not say which app the state is for: %v", other, err)
		}
	}
	h.open() // the right app still opens it
}

func TestProposals(t *testing.T) {
	h := newHarness(t)
	txs := [][]byte{make([]byte, 40), make([]byte, 50), make([]byte, 10)}
	for _, tc := range []struct {
		max  int64
		want int
	}{{100, 3}, {90, 2}, {89, 1}, {39, 0}} {
		res, err := h.app.PrepareProposal(ctx, &abci.RequestPrepareProposal{Txs: txs, MaxTxBytes: tc.max})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Txs) != tc.want {
			t.Errorf("MaxTxBytes %d: got %d txs, want %d", tc.max, len(res.Txs), tc.want)
		}
	}
	res, err := h.app.ProcessProposal(ctx, &abci.RequestProcessProposal{Txs: [][]byte{[]byte("junk")}})
	if err != nil || res.Status != abci.ResponseProcessProposal_ACCEPT {
		t.Fatalf("ProcessProposal: got %v %v, want ACCEPT", res, err)
	}
}

func TestQuery(t *testing.T) {
	h := newHarness(t)
	h.created("PKG-1")
	for _, tc := range []struct {
		path  string
		data  string
		prove bool
		code  uint32
	}{
		{"/nope", "", false, 400},
		{"", "", false, 400},
		{"/session/", "", false, 404},
		{"/session/SUP-1/new-PKG-1", "", false, 0},
		{"/session/OP-1/new-PKG-1", "", false, 404},
		{"/store", "", false, 404},
		{"/store", "", true, 404},
		{"/store", "actor/OP-1", true, 0},
		{"/store", "ledger/session/SUP-1/new-PKG-1", false, 0},
		{"/app/v1/packages/PKG-1", "", false, 0},
		{"/app/v1/packages/PKG-1/history", "", false, 0},
		{"/app/v1/packages/NOPE", "", false, 404},
		{"/app/v1/packages/bad%20id", "", false, 400},
		{"/app/v1/couriers/CR-2", "", false, 0},
		{"/app/nope", "", false, 404},
		{"/evidence", "", false, 0},
		{"/evidence/", "", false, 0},
	} {
		res := h.query(tc.path, []byte(tc.data), tc.prove)
		if res.Code != tc.code {
			t.Errorf("Query %q %q: got code %d (%s), want %d", tc.path, tc.data, res.Code, res.Log, tc.code)
		}
		if res.Height != h.height {
			t.Errorf("Query %q: got height %d, want %d", tc.path, res.Height, h.height)
		}
	}
}
