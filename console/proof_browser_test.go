package console_test

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/duet-bft/duet/apps/supplychain"
	"github.com/duet-bft/duet/chain"
	"github.com/duet-bft/duet/client"
	"github.com/duet-bft/duet/l2"
	"github.com/duet-bft/duet/localnet"
	"github.com/duet-bft/duet/proof"
	"github.com/duet-bft/duet/protocol"
)

// realNet generates a network of four validators and one L2 node and runs
// it in this process on real CometBFT: session proofs need real blocks and
// commits. It returns the L2 node's URL and the network.
func realNet(t *testing.T) (string, *localnet.Network) {
	t.Helper()
	base, err := localnet.FreeBasePort(5)
	if err != nil {
		t.Fatal(err)
	}
	httpAddr := fmt.Sprintf("127.0.0.1:%d", base+200)
	nw, err := localnet.LoadOrGenerate(localnet.Spec{Dir: t.TempDir(), Validators: 4, L2: 1, BasePort: base, HTTP: httpAddr, App: supplychain.App})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range nw.Validators {
		n, err := chain.Start(chain.Config{Home: v.Home, App: supplychain.App, LogOutput: discard{}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Stop() })
	}
	devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { devnull.Close() })
	n, err := l2.Start(l2.Config{Home: nw.L2[0].Home, App: supplychain.App, ChainLogs: devnull})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Stop() })
	url := "http://" + n.Addr
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		var net struct{ Height int64 }
		if client.New(url).Get(ctx, "/v1/network", &net) == nil && net.Height >= 2 {
			return url, nw
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("the network did not start in a minute")
	return "", nil
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

func actorOf(t *testing.T, nw *localnet.Network, id string) localnet.Actor {
	for _, a := range nw.Actors {
		if a.ID == id {
			return a
		}
	}
	t.Fatalf("no actor %s", id)
	return localnet.Actor{}
}

// TestConsoleProof: the operator's page shows the completion certificate,
// QR code and text, once the labelling session is final; the auditor's page
// checks session proofs and the certificate in the browser, with the
// WebAssembly build of the Go verifier, against a validator set trusted on
// first use (with a warning) or pasted; and it passes and fails the same
// proofs and receipts as the Go verifier: a valid one, one tampered with in
// several places, one checked against another validator set, a receipt
// that contradicts L1.
func TestConsoleProof(t *testing.T) {
	url, nw := realNet(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sup, op := actorOf(t, nw, "supplier-1"), actorOf(t, nw, "operator-1")
	c := client.New(url)
	if _, err := supplychain.CreatePackage(ctx, c, client.Signer{ID: sup.ID, Key: sup.Key()}, "create-PKG-W",
		supplychain.NewPackage{ID: "PKG-W", Destination: "DC Jakarta", Items: []supplychain.Item{{SKU: "SKU-1", Name: "Widget", Qty: 3}}}); err != nil {
		t.Fatal(err)
	}

	// The operator labels and commits in the browser; the certificate
	// follows.
	b := newBrowser(t, url)
	p := b.page("operator")
	p.signInSeed(op.ID, base64.StdEncoding.EncodeToString(op.PrivateKey))
	p.waitText(tid("whoami"), op.ID)
	p.startSession("PKG-W")
	p.waitStep("start")
	for _, step := range []string{"scan", "validate", "qc-pass", "label"} {
		p.click(step)
		p.waitStep(strings.TrimSuffix(step, "-pass"))
	}
	session := p.sessionOf()
	p.click("commit")
	p.waitText(tid("session-status"), "committed")
	cert := p.waitText(tid("certificate-text"), "^duet-cert/v1\n")
	if !strings.Contains(cert, "session "+op.ID+"/"+session+"\n") || !strings.Contains(cert, "key pkg/PKG-W\n") {
		p.fatalf("certificate:\n%s", cert)
	}
	p.do("the QR code loads", chromedp.Poll[chromedp.Void](fmt.Sprintf(`document.querySelector(%s).naturalWidth > 0`, js(tid("certificate-qr"))),
		chromedp.WithPollingTimeout(waitTimeout)))

	// The auditor: first use pins the node's hash, with a warning; each
	// session's proof and the certificate check out in the browser.
	a := b.page("auditor")
	a.navigate("/#/auditor")
	a.waitText(tid("trust-warning"), "Trusted on first use")
	genesis, err := os.ReadFile(filepath.Join(nw.Validators[0].Home, "config", "genesis.json"))
	if err != nil {
		t.Fatal(err)
	}
	trust, err := proof.TrustGenesis(genesis)
	if err != nil {
		t.Fatal(err)
	}
	if got := a.waitText(tid("trusted-hash"), "^[0-9a-f]{64}$"); got != hex.EncodeToString(trust.ValidatorsHash) {
		a.fatalf("trusted on first use: %s, want the genesis set's %x", got, trust.ValidatorsHash)
	}
	a.typeInto("package-search", "PKG-W"+kb.Enter)
	a.waitCount(tid("history")+" "+tid("history-entry"), 5)
	a.do("check the operator session's proof", chromedp.Click(chromedp.CSS(tid("check-proof")+"[data-session="+js(session)+"]")))
	a.waitPresent(tid("proof-result") + "[data-valid=true]")
	shown := a.waitText(tid("proof-result"), "checked in this browser in")
	t.Logf("auditor page: %s", shown)
	if n := evaluate[int](a, fmt.Sprintf("document.querySelectorAll(%s).length", js(tid("proof-checks")+" li"))); n != 12 {
		a.fatalf("%d checks shown, want 12", n)
	}
	a.click("check-certificate")
	a.waitPresent(tid("certificate-result") + "[data-valid=true]")

	// Certificates, pasted: the one the node gave, and one edited, judged
	// as the Go verifier judges them.
	g0, err := os.ReadFile(filepath.Join(nw.Validators[0].Home, "config", "genesis.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, cert string }{
		{"the certificate", cert},
		{"an edited certificate", strings.Replace(cert, "key pkg/PKG-W", "key pkg/PKG-X", 1)},
		{"a certificate naming another proof", cert[:strings.LastIndex(cert, "proof ")] + "proof " + strings.Repeat("0", 64) + "\n"},
	} {
		want := "valid"
		if _, _, err := client.VerifyCertificate(ctx, g0, []byte(tc.cert), c); err != nil {
			var ce *proof.CheckError
			if !errors.As(err, &ce) {
				t.Fatalf("%s: %v", tc.name, err)
			}
			want = ce.Check
		}
		if got := pasteCertificate(a, tc.cert); got != want {
			a.fatalf("%s: the browser says %q, Go says %q", tc.name, got, want)
		}
		t.Logf("%s: %s", tc.name, want)
	}

	// The same cases as the Go verifier, pasted.
	full, err := c.Proof(ctx, proof.Request{Actor: op.ID, Session: session})
	if err != nil {
		t.Fatal(err)
	}
	node := actorOf(t, nw, nw.L2[0].ID)
	cases := []struct {
		name, doc, receipt string
	}{
		{"the full proof", string(full), ""},
		{"an op's result hash changed", tamper(t, full, func(p *proof.Proof) { p.Ops[2].ResultHash[0] ^= 1 }), ""},
		{"a byte of the header", tamper(t, full, func(p *proof.Proof) { p.Block.Header[40] ^= 1 }), ""},
		{"a byte of an ICS23 proof", tamper(t, full, func(p *proof.Proof) { p.StateAfter[1].Proof[30] ^= 1 }), ""},
		{"a commit signature", tamper(t, full, func(p *proof.Proof) { p.LightBlock.SignedHeader[len(p.LightBlock.SignedHeader)-5] ^= 1 }), ""},
		{"a receipt's signature", tamper(t, full, func(p *proof.Proof) { p.Receipts[1].Signature[3] ^= 1 }), ""},
		{"a byte of the document", strings.Replace(string(full), `"format": "duet/proof/v1"`, `"format":  "duet/proof/v1"`, 1), ""},
		{"a kept receipt", string(full), receiptJSON(t, full, 3, node, nil)},
		{"a contradicting receipt", string(full), receiptJSON(t, full, 3, node, func(r *protocol.Receipt) { r.Result = protocol.ResultHash(200, []byte(`{}`)) })},
	}
	for _, tc := range cases {
		want, wantPromise := goVerdict(trust, tc.doc, tc.receipt)
		got, gotPromise := pasteAndCheck(a, tc.doc, tc.receipt)
		if got != want || gotPromise != wantPromise {
			a.fatalf("%s: the browser says %q (%q), Go says %q (%q)", tc.name, got, gotPromise, want, wantPromise)
		}
		t.Logf("%s: %s %s", tc.name, got, gotPromise)
	}
	if want, _ := goVerdict(trust, string(full), ""); want != "valid" {
		t.Fatalf("Go: the full proof is %s", want)
	}

	// Another network's validator set, pasted: the valid proof fails, as
	// it does in Go.
	other := strings.Repeat("ab", 32)
	a.typeInto("trust-hash", other)
	a.click("trust-pin")
	a.waitText(tid("trusted-hash"), other)
	otherTrust := proof.Trust{ChainID: trust.ChainID, ValidatorsHash: []byte(strings.Repeat("\xab", 32))}
	want, _ := goVerdict(otherTrust, string(full), "")
	if got, _ := pasteAndCheck(a, string(full), ""); got != want || want == "valid" {
		a.fatalf("against another validator set: the browser says %q, Go says %q", got, want)
	}

	// The proofs of networks of 4 and of 16 validators (proof/testdata),
	// each against its own genesis set, pinned: how long the browser takes.
	for _, n := range []string{"4", "16"} {
		dir := filepath.Join("..", "proof", "testdata", n)
		g, err1 := os.ReadFile(filepath.Join(dir, "genesis.json"))
		doc, err2 := os.ReadFile(filepath.Join(dir, "proof.json"))
		if err1 != nil || err2 != nil {
			t.Fatal(err1, err2)
		}
		ft, err := proof.TrustGenesis(g)
		if err != nil {
			t.Fatal(err)
		}
		a.typeInto("trust-hash", hex.EncodeToString(ft.ValidatorsHash))
		a.click("trust-pin")
		a.waitText(tid("trusted-hash"), hex.EncodeToString(ft.ValidatorsHash))
		if got, _ := pasteAndCheck(a, string(doc), ""); got != "valid" {
			a.fatalf("the %s-validator proof: %s", n, got)
		}
		t.Logf("%s validators, %d bytes: %s", n, len(doc), a.waitText(tid("proof-result")+" .muted", "checked in this browser"))
	}
}

// tamper changes a proof and re-encodes it canonically.
func tamper(t *testing.T, raw []byte, f func(*proof.Proof)) string {
	p, err := proof.Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	f(p)
	doc, err := proof.Encode(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(doc)
}

// receiptJSON is the node's receipt of op seq of the proof's session,
// changed by edit and signed again with the node's key.
func receiptJSON(t *testing.T, raw []byte, seq int, node localnet.Actor, edit func(*protocol.Receipt)) string {
	p, err := proof.Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	rc := p.Receipts[seq]
	if edit != nil {
		edit(&rc.Receipt)
		rc.Signature = ed25519.Sign(node.Key(), rc.Receipt.Bytes())
	}
	b, _ := json.Marshal(rc)
	return string(b)
}

// pasteCertificate pastes a certificate into the auditor page and returns
// what the page says: "valid" or the failed check.
func pasteCertificate(p *page, cert string) string {
	p.t.Helper()
	p.do("paste", chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`document.querySelector(%s).value = %s`, js(tid("proof-input")), js(cert))),
		chromedp.Evaluate[chromedp.Void](`document.querySelectorAll("[data-testid=certificate-result]").forEach((e) => e.remove())`))
	p.click("check-pasted")
	p.waitPresent(tid("certificate-result"))
	res := evaluate[map[string]string](p, `(() => { const r = document.querySelector("[data-testid=certificate-result]");
		return {valid: r.dataset.valid, failed: r.dataset.failed}; })()`)
	if res["valid"] == "true" {
		return "valid"
	}
	return res["failed"]
}

// goVerdict is what the Go verifier says: "valid" or the failed check, and
// the promise's words.
func goVerdict(trust proof.Trust, doc, receipt string) (string, string) {
	if receipt == "" {
		r, _ := proof.Verify(trust, []byte(doc))
		if r.Valid {
			return "valid", ""
		}
		return r.Failed, ""
	}
	var rc proof.Receipt
	json.Unmarshal([]byte(receipt), &rc)
	r, pr, _ := proof.VerifyReceipt(trust, []byte(doc), rc)
	switch {
	case !r.Valid:
		return r.Failed, ""
	case pr == nil:
		return "valid", "receipt refused"
	case pr.Broken:
		return "valid", "broken"
	case pr.Kept:
		return "valid", "kept"
	}
	return "valid", "not attributable"
}

// pasteAndCheck pastes a proof (and a receipt) into the auditor page and
// returns what the page says: "valid" or the failed check, and the
// promise's first word.
func pasteAndCheck(p *page, doc, receipt string) (string, string) {
	p.t.Helper()
	set := func(testid, v string) chromedp.Action[chromedp.Void] {
		return chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`document.querySelector(%s).value = %s`, js(tid(testid)), js(v)))
	}
	p.do("paste", set("proof-input", doc), set("receipt-input", receipt),
		chromedp.Evaluate[chromedp.Void](`document.querySelectorAll("[data-testid=proof-result]").forEach((e) => e.remove())`))
	p.click("check-pasted")
	p.waitPresent(tid("proof-result"))
	res := evaluate[map[string]string](p, `(() => { const r = [...document.querySelectorAll("[data-testid=proof-result]")].pop();
		const pr = r.querySelector("[data-testid=promise]");
		return {valid: r.dataset.valid, failed: r.dataset.failed, promise: pr ? pr.textContent : ""}; })()`)
	verdict := res["failed"]
	if res["valid"] == "true" {
		verdict = "valid"
	}
	promise := ""
	switch {
	case strings.HasPrefix(res["promise"], "Broken promise"):
		promise = "broken"
	case strings.HasPrefix(res["promise"], "Promise kept"):
		promise = "kept"
	case strings.HasPrefix(res["promise"], "Not attributable"):
		promise = "not attributable"
	}
	return verdict, promise
}
