package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/duet-bft/duet/apps/supplychain"
	"github.com/duet-bft/duet/client"
	"github.com/duet-bft/duet/proof"
	"github.com/duet-bft/duet/protocol"
)

// TestProof: a committed session's proof verifies, with the SDK and with
// `duet verify`; tampering with any field of it, or checking it against
// another network's genesis, fails; the package's certificate verifies
// through either L2 node and fails through a node that serves another
// proof; a receipt that contradicts L1, or a RESULT_MISMATCH, is a broken
// promise by the node.
func TestProof(t *testing.T) {
	n := startNetwork(t, 4, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	c0, c1 := n.client(0), n.client(1)
	sup, op1 := n.signer("supplier-1"), n.signer("operator-1")
	dir := t.TempDir()
	genesisPath := filepath.Join(n.Validators[0].Home, "config", "genesis.json")
	genesis, err := os.ReadFile(genesisPath)
	if err != nil {
		t.Fatal(err)
	}

	res, err := supplychain.CreatePackage(ctx, c0, sup, "create-PKG-P", supplychain.NewPackage{ID: "PKG-P", Destination: "DC Jakarta", Items: items()})
	must(t, "create", res, err)
	s := supplychain.NewSession(c0, op1, "wf-p")
	if err := s.Start(ctx, map[string]string{"package_id": "PKG-P"}); err != nil {
		t.Fatal(err)
	}
	var receipts []*client.Receipt
	keep := func(what string) func(*client.Result, error) {
		return func(r *client.Result, err error) {
			t.Helper()
			must(t, what, r, err)
			if r.Receipt == nil {
				t.Fatalf("%s: no receipt", what)
			}
			receipts = append(receipts, r.Receipt)
		}
	}
	keep("scan")(s.Scan(ctx, "PKG-P"))
	keep("validate")(s.Validate(ctx, "PKG-P", observed(), nil))
	keep("qc")(s.QC(ctx, "PKG-P", true, "ok", nil))
	var label supplychain.Label
	keep("label")(s.Label(ctx, "PKG-P", "courier-1", &label))
	if err := s.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if f, err := s.Wait(ctx); err != nil || f.Status != protocol.StatusCommitted {
		t.Fatalf("wf-p: %+v %v", f, err)
	}

	// The executing node's proof: answers and receipts included.
	raw, err := c0.Proof(ctx, proof.Request{Actor: op1.ID, Session: "wf-p"})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := client.VerifyProof(genesis, raw)
	if err != nil {
		t.Fatalf("the proof does not verify: %v\n%s", err, raw)
	}
	if rep.Session != "wf-p" || rep.Outcome != "OK" || rep.Ops != 6 || !rep.Answers || rep.Receipts != 6 ||
		!strings.Contains(strings.Join(rep.Writes, " "), supplychain.PackageKey("PKG-P")) || rep.Signed == "" {
		t.Errorf("report %+v", rep)
	}
	t.Logf("proof: %d bytes; %s", len(raw), rep.Summary())
	proofPath := filepath.Join(dir, "proof.json")
	os.WriteFile(proofPath, raw, 0o644)

	// duet verify: a file, stdin, --json.
	if out, code := duet(t, nil, "verify", "--genesis", genesisPath, proofPath); code != 0 || !strings.HasPrefix(out, "valid: session wf-p") {
		t.Errorf("duet verify: exit %d: %s", code, out)
	}
	if out, code := duet(t, raw, "verify", "--genesis", genesisPath, "--json", "-"); code != 0 || !strings.Contains(out, `"valid": true`) {
		t.Errorf("duet verify --json -: exit %d: %s", code, out)
	}

	// Every field, tampered with in turn, fails the check; so does any
	// byte of the document.
	trust, err := proof.TrustGenesis(genesis)
	if err != nil {
		t.Fatal(err)
	}
	tamperEveryField(t, trust, raw)
	tamperBytes(t, trust, raw, 400)
	bad := append([]byte(nil), raw...)
	bad[len(bad)/2] ^= 1
	os.WriteFile(filepath.Join(dir, "bad.json"), bad, 0o644)
	if out, code := duet(t, nil, "verify", "--genesis", genesisPath, filepath.Join(dir, "bad.json")); code != 1 || !strings.HasPrefix(out, "INVALID: ") {
		t.Errorf("duet verify of a tampered proof: exit %d: %s", code, out)
	}

	// Another network's genesis: another validator set, or another chain.
	for what, edit := range map[string]func(map[string]any){
		"another validator set": func(g map[string]any) {
			v := g["validators"].([]any)[0].(map[string]any)
			v["pub_key"].(map[string]any)["value"] = "Ej5/a3E1dFhXc1Z2b2l0RDNpR0VEd0s5OTlpcVhSbmI="
			delete(v, "address")
		},
		"another chain": func(g map[string]any) { g["chain_id"] = "duet-other" },
	} {
		var g map[string]any
		json.Unmarshal(genesis, &g)
		edit(g)
		other, _ := json.Marshal(g)
		if _, err := client.VerifyProof(other, raw); err == nil {
			t.Errorf("%s: the proof verifies", what)
		} else {
			t.Logf("%s: %v", what, err)
		}
	}

	// The certificate of the package: small, a QR code too, and checked
	// through either node, which build the same canonical proof.
	cert, err := c0.GetRaw(ctx, "/v1/packages/PKG-P/certificate")
	if err != nil {
		t.Fatal(err)
	}
	if len(cert) > 300 || !bytes.HasPrefix(cert, []byte(proof.CertFormat+"\n")) {
		t.Errorf("certificate of %d bytes:\n%s", len(cert), cert)
	}
	t.Logf("certificate (%d bytes):\n%s", len(cert), cert)
	img, err := c0.GetRaw(ctx, "/v1/packages/PKG-P/certificate?format=png")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := png.Decode(bytes.NewReader(img)); err != nil {
		t.Errorf("certificate QR: %v", err)
	}
	certPath := filepath.Join(dir, "cert.txt")
	os.WriteFile(certPath, cert, 0o644)
	for i, c := range []*client.Client{c0, c1} {
		if out, code := duet(t, nil, "verify", "--genesis", genesisPath, "--node", c.BaseURL, certPath); code != 0 || !strings.HasPrefix(out, "certificate valid: pkg/PKG-P") {
			t.Errorf("certificate through node %d: exit %d: %s", i, code, out)
		}
	}
	// A node that serves another proof (here, the full one, with answers
	// and receipts) fails, as does an edited certificate.
	liar := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(raw)
	}))
	defer liar.Close()
	if out, code := duet(t, nil, "verify", "--genesis", genesisPath, "--node", liar.URL, certPath); code != 1 || !strings.Contains(out, "proof_hash") {
		t.Errorf("certificate through a node that serves another proof: exit %d: %s", code, out)
	}
	edited := bytes.Replace(cert, []byte("key pkg/PKG-P"), []byte("key pkg/PKG-Q"), 1)
	if _, _, err := client.VerifyCertificate(ctx, genesis, edited, c0); err == nil {
		t.Error("an edited certificate verifies")
	}

	// Receipts: one kept; one the node signed for a result L1 never
	// committed is a broken promise.
	rcPath := filepath.Join(dir, "receipt.json")
	rc, _ := json.Marshal(receipts[3])
	os.WriteFile(rcPath, rc, 0o644)
	if out, code := duet(t, nil, "verify", "--genesis", genesisPath, "--receipt", rcPath, proofPath); code != 0 || !strings.Contains(out, "promise kept by node l2-0") {
		t.Errorf("a kept receipt: exit %d: %s", code, out)
	}
	byz := newByzantine(t, n)
	forged := *receipts[3]
	forged.Result = protocol.ResultHash(http.StatusOK, []byte(`{"label":"another"}`))
	forged.Signature = forged.Receipt.Sign(byz.node.Key())
	rc, _ = json.Marshal(forged)
	os.WriteFile(rcPath, rc, 0o644)
	if out, code := duet(t, nil, "verify", "--genesis", genesisPath, "--receipt", rcPath, proofPath); code != 3 || !strings.Contains(out, "broken promise by node l2-0") {
		t.Errorf("a contradicting receipt: exit %d: %s", code, out)
	}

	// The same signed op run at another time (an actor may send it again
	// after an abort) is not the node's fault, whatever its result.
	replayed := *receipts[3]
	replayed.Time++
	replayed.Result = forged.Result
	replayed.Signature = replayed.Receipt.Sign(byz.node.Key())
	rc, _ = json.Marshal(replayed)
	os.WriteFile(rcPath, rc, 0o644)
	if out, code := duet(t, nil, "verify", "--genesis", genesisPath, "--receipt", rcPath, proofPath); code != 4 || !strings.Contains(out, "not attributable") {
		t.Errorf("a receipt of the same op at another time: exit %d: %s", code, out)
	}

	// RESULT_MISMATCH: the node claimed a result L1's re-execution
	// contradicts. Any node proves it from L1's transaction index.
	signed := signedCreate(sup, supplychain.NewPackage{ID: "PKG-LIE", Destination: "x", Items: items()})
	payload, _ := json.Marshal(signed)
	lie, _ := byz.session(sup, "lie-1", time.Now().Add(time.Hour), op{http.MethodPost, supplychain.PathPackages, string(payload)})
	if len(lie.Ops) != 1 {
		t.Fatalf("the lie's bundle has %d ops", len(lie.Ops))
	}
	lie.Ops[0].Result = protocol.ResultHash(http.StatusCreated, []byte(`{"lie":true}`))
	lie.Sign(byz.node.Key())
	if code, outs := byz.submit(lie); code != 0 || len(outs) != 1 || outs[0].Code != protocol.CodeResultMismatch {
		t.Fatalf("the lie: CheckTx %v, verdicts %+v", code, outs)
	}
	// The other L2 node's follower indexes the block a moment after the
	// validator that answered the broadcast.
	var lieProof []byte
	for i := 0; ; i++ {
		if lieProof, err = c1.Proof(ctx, proof.Request{Actor: sup.ID, Session: "lie-1"}); err == nil {
			break
		} else if i == 100 || !strings.Contains(err.Error(), "NOT_FOUND") {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	lieRep, err := client.VerifyProof(genesis, lieProof)
	if err != nil || lieRep.Outcome != "RESULT_MISMATCH" || lieRep.Evidence == nil {
		t.Fatalf("the lie's proof: %+v %v", lieRep, err)
	}
	var lieOp protocol.Hash
	for c := range lie.Chain() {
		lieOp = c.Hash
	}
	lr := client.Receipt{Receipt: protocol.Receipt{Node: byz.node.ID, Actor: sup.ID, Session: "lie-1", Seq: 0, Kind: "direct", Op: lieOp, Result: lie.Ops[0].Result, Time: lie.Ops[0].Time, Expires: lie.Ops[0].Expires}}
	lr.Signature = lr.Receipt.Sign(byz.node.Key())
	rc, _ = json.Marshal(lr)
	os.WriteFile(rcPath, rc, 0o644)
	os.WriteFile(proofPath, lieProof, 0o644)
	if out, code := duet(t, nil, "verify", "--genesis", genesisPath, "--receipt", rcPath, proofPath); code != 3 ||
		!strings.Contains(out, "broken promise by node l2-0") || !strings.Contains(out, "RESULT_MISMATCH") {
		t.Errorf("a RESULT_MISMATCH receipt: exit %d: %s", code, out)
	}

	// Receipts for ops that never reached L1: a proof of absence (any
	// node gives one) shows the promise broken once the deadline passed,
	// and not yet before.
	if _, err := c0.Proof(ctx, proof.Request{Actor: op1.ID, Session: "never-1"}); err == nil || !strings.Contains(err.Error(), "absent=1") {
		t.Errorf("the proof of a session L1 never saw: %v, want 404 naming absent=1", err)
	}
	absent, err := c1.Proof(ctx, proof.Request{Actor: op1.ID, Session: "never-1", Absent: true, Node: byz.node.ID})
	if err != nil {
		t.Fatal(err)
	}
	absRep, err := client.VerifyProof(genesis, absent)
	if err != nil || absRep.Outcome != proof.Absent {
		t.Fatalf("the proof of absence: %+v %v", absRep, err)
	}
	tamperEveryField(t, trust, absent)
	for _, tc := range []struct {
		kind          string
		age, lifetime time.Duration // of the op: how long ago the node took it, and for how long it could reach L1
		code          int
		want          string
	}{
		{"commit", time.Hour, 10 * time.Minute, 3, "broken promise by node l2-0"},
		{"commit", time.Minute, 10 * time.Minute, 4, "the node has until"},
		{"step", time.Hour, 10 * time.Minute, 4, "only a commit's receipt"},
		{"commit", time.Hour, time.Second, 4, "less than the 1m0s a node answers for"},
	} {
		at := time.Now().Add(-tc.age)
		r := client.Receipt{Receipt: protocol.Receipt{Node: byz.node.ID, Actor: op1.ID, Session: "never-1", Seq: 1, Kind: tc.kind,
			Op: protocol.ResultHash(1, nil), Result: protocol.ResultHash(200, nil), Time: at.UnixMilli(), Expires: at.Add(tc.lifetime).UnixMilli()}}
		r.Signature = r.Receipt.Sign(byz.node.Key())
		rc, _ = json.Marshal(r)
		os.WriteFile(rcPath, rc, 0o644)
		if out, code := duet(t, nil, "verify", "--genesis", genesisPath, "--node", c0.BaseURL, "--receipt", rcPath); code != tc.code || !strings.Contains(out, tc.want) {
			t.Errorf("a %s receipt %s old (lifetime %s) for an op never on L1: exit %d: %s", tc.kind, tc.age, tc.lifetime, code, out)
		} else {
			t.Logf("a %s receipt %s old (lifetime %s) for an op never on L1: %s", tc.kind, tc.age, tc.lifetime, strings.TrimSpace(out))
		}
	}
}

// duet runs the binary with stdin and returns its stdout and exit code.
func duet(t *testing.T, stdin []byte, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Stdin = bytes.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if err != nil && cmd.ProcessState == nil {
		t.Fatal(err)
	}
	if errOut.Len() > 0 {
		t.Logf("duet %s: stderr: %s", args[0], errOut.String())
	}
	return out.String(), cmd.ProcessState.ExitCode()
}

// tamperEveryField changes each field of the proof in turn (every element
// of every list, several bytes of every binary field, and a list shortened
// or lengthened), re-encodes it canonically, and requires that the check
// fails.
func tamperEveryField(t *testing.T, trust proof.Trust, raw []byte) {
	t.Helper()
	root, err := proof.Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	tried := 0
	// at finds the value at steps (struct field or list index) in p.
	at := func(p *proof.Proof, steps []int) reflect.Value {
		v := reflect.ValueOf(p).Elem()
		for _, i := range steps {
			if v.Kind() == reflect.Struct {
				v = v.Field(i)
			} else {
				v = v.Index(i)
			}
		}
		return v
	}
	try := func(name string, steps []int, set func(reflect.Value)) {
		p, _ := proof.Decode(raw)
		set(at(p, steps))
		doc, err := proof.Encode(p)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Equal(doc, raw) {
			t.Fatalf("%s: the mutation changed nothing", name)
		}
		tried++
		if r, err := proof.Verify(trust, doc); err == nil {
			t.Errorf("%s tampered with: the proof still verifies (%s)", name, r.Summary())
		}
	}
	var walk func(name string, steps []int)
	walk = func(name string, steps []int) {
		v := at(root, steps)
		sub := func(i int) []int { return append(append([]int(nil), steps...), i) }
		switch v.Kind() {
		case reflect.Struct:
			for i := range v.NumField() {
				f := v.Type().Field(i)
				if f.IsExported() {
					walk(name+"."+f.Name, sub(i))
				}
			}
		case reflect.Slice:
			if v.Type().Elem().Kind() == reflect.Uint8 {
				var positions []int
				if v.Len() <= 96 {
					for i := range v.Len() {
						positions = append(positions, i)
					}
				} else {
					positions = []int{0, v.Len() / 3, v.Len() / 2, 2 * v.Len() / 3, v.Len() - 1}
				}
				if v.Len() == 0 {
					try(name+" (given a byte)", steps, func(x reflect.Value) { x.SetBytes([]byte{1}) })
				}
				for _, i := range positions {
					try(fmt.Sprintf("%s[byte %d]", name, i), steps, func(x reflect.Value) {
						b := append([]byte(nil), x.Bytes()...)
						b[i] ^= 0x01
						x.SetBytes(b)
					})
				}
				return
			}
			for i := range v.Len() {
				walk(fmt.Sprintf("%s[%d]", name, i), sub(i))
			}
			try(name+" (one more or one fewer)", steps, func(x reflect.Value) {
				if x.Len() > 0 {
					x.Set(x.Slice(0, x.Len()-1))
				} else {
					x.Set(reflect.Append(x, reflect.New(x.Type().Elem()).Elem()))
				}
			})
		case reflect.Array: // protocol.Hash
			try(name, steps, func(x reflect.Value) { x.Index(5).SetUint(x.Index(5).Uint() ^ 1) })
		case reflect.String:
			try(name, steps, func(x reflect.Value) { x.SetString(x.String() + "x") })
		case reflect.Int, reflect.Int64:
			try(name, steps, func(x reflect.Value) { x.SetInt(x.Int() + 1) })
		case reflect.Uint32, reflect.Uint64:
			try(name, steps, func(x reflect.Value) { x.SetUint(x.Uint() + 1) })
		default:
			t.Fatalf("%s: kind %s is not tampered with", name, v.Kind())
		}
	}
	walk("proof", nil)
	t.Logf("tampered with %d fields and bytes of fields, each in turn: every one fails", tried)
}

// tamperBytes flips n bytes of the document at spread positions.
func tamperBytes(t *testing.T, trust proof.Trust, raw []byte, n int) {
	t.Helper()
	step := max(1, len(raw)/n)
	for i := 0; i < len(raw); i += step {
		doc := append([]byte(nil), raw...)
		doc[i] ^= 0x01
		if _, err := proof.Verify(trust, doc); err == nil {
			t.Errorf("byte %d flipped: the proof still verifies", i)
		}
	}
}
