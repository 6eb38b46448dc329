package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/duet-bft/duet/apps/supplychain"
	"github.com/duet-bft/duet/client"
	"github.com/duet-bft/duet/localnet"
	"github.com/duet-bft/duet/protocol"
)

// network is a `duet up` run by a test.
type network struct {
	t    *testing.T
	home string
	cmd  *exec.Cmd
	localnet.Network
}

// startNetwork runs duet up (with the extra flags, e.g. --app) and waits
// for cluster.json.
func startNetwork(t *testing.T, validators, l2 int, extra ...string) *network {
	t.Helper()
	home := filepath.Join(t.TempDir(), "net")
	base := freeBasePort(t, validators+l2)
	httpAddr := fmt.Sprintf("127.0.0.1:%d", base+200)
	cmd := exec.Command(bin, append([]string{"up", "--home", home, "--base-port", fmt.Sprint(base), "--http", httpAddr,
		"--validators", fmt.Sprint(validators), "--l2", fmt.Sprint(l2)}, extra...)...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	n := &network{t: t, home: home, cmd: cmd}
	t.Cleanup(func() {
		stopProcess(cmd, 30*time.Second)
		if t.Failed() {
			for _, id := range []string{"l2-0", "l2-1"} {
				if raw, err := os.ReadFile(filepath.Join(home, id, "node.log")); err == nil {
					t.Logf("%s log:\n%s", id, lastLines(string(raw), 40))
				}
			}
		}
	})
	n.Network = waitCluster(t, home)
	return n
}

// stopProcess stops a started command gracefully (SIGTERM), killing it if
// it has not exited within timeout, and waits for it.
func stopProcess(cmd *exec.Cmd, timeout time.Duration) {
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(timeout):
		cmd.Process.Kill()
		<-done
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func (n *network) signer(id string) client.Signer {
	for _, a := range n.Actors {
		if a.ID == id {
			return client.Signer{ID: a.ID, Key: a.Key()}
		}
	}
	n.t.Fatalf("no actor %s", id)
	return client.Signer{}
}

func (n *network) client(i int) *client.Client {
	c := client.New("http://" + n.L2[i].HTTP)
	for _, a := range n.Actors {
		if a.ID == n.L2[i].ID {
			c.NodeKey = ed25519.PublicKey(a.PublicKey)
		}
	}
	return c
}

func items() []supplychain.Item {
	return []supplychain.Item{{SKU: "SKU-1", Name: "Widget", Qty: 3}, {SKU: "SKU-2", Name: "Gadget", Qty: 1}}
}

func observed() []supplychain.ObservedItem {
	return []supplychain.ObservedItem{{SKU: "SKU-1", Qty: 3}, {SKU: "SKU-2", Qty: 1}}
}

func must(t *testing.T, what string, _ *client.Result, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// pkgAt returns a package's state on a validator (the L1 view), via ABCI query.
func (n *network) pkgAt(v int, id string) map[string]any {
	n.t.Helper()
	url := fmt.Sprintf("%s/abci_query?path=%%22/app/v1/packages/%s%%22", n.Validators[v].RPC, id)
	var res struct {
		Result struct {
			Response struct {
				Code  uint32 `json:"code"`
				Value []byte `json:"value"`
			} `json:"response"`
		} `json:"result"`
	}
	getJSON(n.t, url, &res)
	var p struct {
		Package map[string]any `json:"package"`
	}
	json.Unmarshal(res.Result.Response.Value, &p)
	return p.Package
}

func TestL2(t *testing.T) {
	n := startNetwork(t, 4, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c0, c1 := n.client(0), n.client(1)
	sup, op1, op2 := n.signer("supplier-1"), n.signer("operator-1"), n.signer("operator-2")

	// Direct mode: the answer comes after L1 finality, with its height.
	res, err := supplychain.CreatePackage(ctx, c0, sup, "create-PKG-1", supplychain.NewPackage{ID: "PKG-1", Destination: "DC Jakarta", Items: items()})
	must(t, "create PKG-1", res, err)
	if res.Status != http.StatusCreated || res.Height < 1 || len(res.TxHash) != 64 {
		t.Fatalf("direct create: status %d height %d tx %q", res.Status, res.Height, res.TxHash)
	}

	// The paper's workflow, one session, every step answered by L2 with a
	// verified receipt, then committed on every validator.
	s := supplychain.NewSession(c0, op1, "wf-1")
	if err := s.Start(ctx, map[string]string{"package_id": "PKG-1"}); err != nil {
		t.Fatal(err)
	}
	must(t, "scan", nil, second(s.Scan(ctx, "PKG-1")))
	var v supplychain.Validation
	must(t, "validate", nil, second(s.Validate(ctx, "PKG-1", observed(), &v)))
	if !v.SignatureValid || !v.ContentsMatch {
		t.Fatalf("validation %+v", v)
	}

	// While wf-1 holds PKG-1, a second session on this node gets 409 at once.
	other := supplychain.NewSession(c0, op2, "wf-other")
	if err := other.Start(ctx, nil); err != nil {
		t.Fatal(err)
	}
	_, err = other.Scan(ctx, "PKG-1")
	wantErr(t, "scan of a reserved package", err, http.StatusConflict, "CONFLICT", "wf-1")

	// Bad requests: a clear JSON error, no state change, the session's seq intact.
	before := n.waitStage(0, "PKG-1", "created") // v0 may apply the create a moment after the L2 follower
	badRequests(t, n, s.Session)
	must(t, "qc", nil, second(s.QC(ctx, "PKG-1", true, "ok", map[string]any{"seal": "intact"})))
	var label supplychain.Label
	must(t, "label", nil, second(s.Label(ctx, "PKG-1", "courier-1", &label)))
	if !strings.HasPrefix(label.TrackingNumber, "TRK-") {
		t.Errorf("tracking number %q", label.TrackingNumber)
	}
	if after := n.pkgAt(0, "PKG-1"); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("L1 state changed before commit:\n%v\n%v", before, after)
	}
	if err := s.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	final, err := c0.Wait(ctx, "wf-1")
	if err != nil || final.Status != protocol.StatusCommitted || final.Height < 1 {
		t.Fatalf("wf-1 final %+v, %v", final, err)
	}
	for i := range n.Validators {
		if p := n.waitStage(i, "PKG-1", "labeled"); p["stage"] != "labeled" {
			t.Errorf("validator %d: PKG-1 stage %v", i, p["stage"])
		}
	}
	// Its history carries the L1 reference of each step's session.
	var hist struct {
		History []struct {
			Step string `json:"step"`
			L1   *struct {
				Height int64  `json:"height"`
				TxHash string `json:"tx_hash"`
			} `json:"l1"`
		} `json:"history"`
	}
	if err := c0.Get(ctx, "/v1/packages/PKG-1/history?view=committed", &hist); err != nil {
		t.Fatal(err)
	}
	if len(hist.History) != 5 || hist.History[4].Step != "label" || hist.History[4].L1 == nil ||
		hist.History[4].L1.Height != final.Height || hist.History[4].L1.TxHash != final.TxHash {
		t.Errorf("history %+v, want 5 steps, the label at height %d tx %s", hist, final.Height, final.TxHash)
	}
	// Once wf-1 is final its reservation is gone.
	must(t, "abort other", nil, other.Abort(ctx))

	// Two L2 nodes race for one package: exactly one session commits, the
	// other is rejected as CONFLICT.
	res, err = supplychain.CreatePackage(ctx, c1, sup, "create-PKG-R", supplychain.NewPackage{ID: "PKG-R", Destination: "DC Surabaya", Items: items()})
	must(t, "create PKG-R", res, err)
	waitVisible(t, c0, "PKG-R") // l2-0's follower learns the block a moment after l2-1's
	racers := []supplychain.Session{supplychain.NewSession(c0, op1, "race-a"), supplychain.NewSession(c1, op2, "race-b")}
	for _, r := range racers {
		if err := r.Start(ctx, nil); err != nil {
			t.Fatal(err)
		}
		must(t, "race scan", nil, second(r.Scan(ctx, "PKG-R")))
		must(t, "race validate", nil, second(r.Validate(ctx, "PKG-R", observed(), nil)))
		must(t, "race qc", nil, second(r.QC(ctx, "PKG-R", true, "", nil)))
		must(t, "race label", nil, second(r.Label(ctx, "PKG-R", "courier-2", nil)))
	}
	for _, r := range racers {
		if err := r.Commit(ctx); err != nil {
			t.Fatal(err)
		}
	}
	fa, erra := c0.Wait(ctx, "race-a")
	fb, errb := c1.Wait(ctx, "race-b")
	if erra != nil || errb != nil {
		t.Fatal(erra, errb)
	}
	committed := 0
	for _, f := range []*protocol.Final{fa, fb} {
		switch {
		case f.Status == protocol.StatusCommitted:
			committed++
		case f.Status != protocol.StatusRejected || f.Code != "CONFLICT":
			t.Errorf("racer ended %+v, want committed or rejected CONFLICT", f)
		}
	}
	if committed != 1 {
		t.Errorf("%d racers committed, want exactly 1 (%+v, %+v)", committed, fa, fb)
	}

	// kill -9 of the L2 process mid-session: nothing acknowledged is lost,
	// and the session commits once.
	res, err = supplychain.CreatePackage(ctx, c0, sup, "create-PKG-K", supplychain.NewPackage{ID: "PKG-K", Destination: "DC Jakarta", Items: items()})
	must(t, "create PKG-K", res, err)
	k := supplychain.NewSession(c0, op1, "wf-kill")
	if err := k.Start(ctx, nil); err != nil {
		t.Fatal(err)
	}
	must(t, "scan", nil, second(k.Scan(ctx, "PKG-K")))
	must(t, "validate", nil, second(k.Validate(ctx, "PKG-K", observed(), nil)))
	oldPID := n.L2[0].PID
	if err := syscall.Kill(oldPID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitRestart(t, n, 0, oldPID)
	view, err := c0.Session(ctx, "wf-kill", "")
	if err != nil || view.Status != protocol.StatusOpen || len(view.Ops) != 3 {
		t.Fatalf("after kill -9: session %+v, %v; want open with 3 ops", view, err)
	}
	must(t, "qc after restart", nil, second(k.QC(ctx, "PKG-K", true, "", nil)))
	must(t, "label after restart", nil, second(k.Label(ctx, "PKG-K", "courier-1", nil)))
	if err := k.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	final, err = c0.Wait(ctx, "wf-kill")
	if err != nil || final.Status != protocol.StatusCommitted {
		t.Fatalf("wf-kill final %+v, %v", final, err)
	}
	if p := n.waitStage(1, "PKG-K", "labeled"); p["stage"] != "labeled" || p["history_len"] != float64(5) {
		t.Errorf("PKG-K on L1: %v", p)
	}
}

func second(_ *client.Result, err error) error { return err }

func wantErr(t *testing.T, what string, err error, status int, code, contains string) {
	t.Helper()
	var e *client.Error
	if !errors.As(err, &e) {
		t.Fatalf("%s: got %v, want a %d %s error", what, err, status, code)
	}
	if e.Status != status || e.Code != code || !strings.Contains(e.Message, contains) {
		t.Errorf("%s: got %d %s %q, want %d %s containing %q", what, e.Status, e.Code, e.Message, status, code, contains)
	}
}

// badRequests sends malformed, unsigned, forged, misordered and oversized
// requests for session s and checks each answer; none may advance s.
func badRequests(t *testing.T, n *network, s *client.Session) {
	t.Helper()
	base := "http://" + n.L2[0].HTTP
	op1 := n.signer("operator-1")
	seq := s.Seq()
	path := "/v1/packages/PKG-1/qc"
	send := func(method, path string, body []byte, hdr map[string]string) (int, string) {
		req, _ := http.NewRequest(method, base+path, bytes.NewReader(body))
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		var e struct {
			Error struct{ Code string } `json:"error"`
		}
		if err := json.Unmarshal(raw, &e); err != nil {
			t.Errorf("%s %s: non-JSON answer %d %q", method, path, resp.StatusCode, raw)
		}
		if resp.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%s %s: content type %q", method, path, resp.Header.Get("Content-Type"))
		}
		return resp.StatusCode, e.Error.Code
	}
	signed := func(actor client.Signer, session string, seq uint64, prev protocol.Hash, method, path string, body []byte) map[string]string {
		exp := time.Now().Add(time.Minute).UnixMilli()
		sig := ed25519.Sign(actor.Key, protocol.OpBytes(session, seq, prev, method, path, body, exp))
		return map[string]string{"Duet-Actor": actor.ID, "Duet-Session": session, "Duet-Seq": fmt.Sprint(seq),
			"Duet-Expires": fmt.Sprint(exp), "Duet-Signature": base64.StdEncoding.EncodeToString(sig)}
	}
	qc := []byte(`{"passed":true,"notes":"","checks":{}}`)
	var zero protocol.Hash // wrong prev: the real one is the hash of op seq-1
	cases := []struct {
		name   string
		method string
		path   string
		body   []byte
		hdr    map[string]string
		status int
		code   string
	}{
		{"unsigned", "POST", path, qc, nil, 401, "UNAUTHENTICATED"},
		{"bad signature (wrong prev hash)", "POST", path, qc, signed(op1, s.ID, seq, zero, "POST", path, qc), 401, "UNAUTHENTICATED"},
		{"signature of another body", "POST", path, qc, signed(op1, s.ID, seq, zero, "POST", path, []byte(`{}`)), 401, "UNAUTHENTICATED"},
		{"seq gap", "POST", path, qc, signed(op1, s.ID, seq+1, zero, "POST", path, qc), 409, "FAILED_PRECONDITION"},
		{"seq replay", "POST", path, qc, signed(op1, s.ID, seq-1, zero, "POST", path, qc), 409, "FAILED_PRECONDITION"},
		{"wrong role", "POST", "/v1/packages", qc, signed(n.signer("auditor-1"), "audit-1", 0, zero, "POST", "/v1/packages", qc), 403, "PERMISSION_DENIED"},
		{"another actor's session", "POST", path, qc, signed(n.signer("operator-2"), s.ID, seq, zero, "POST", path, qc), 409, "CONFLICT"},
		{"malformed seq", "POST", path, qc, map[string]string{"Duet-Actor": op1.ID, "Duet-Session": s.ID, "Duet-Seq": "x", "Duet-Expires": "1", "Duet-Signature": "AA=="}, 400, "MALFORMED"},
		{"no expiry", "POST", path, qc, map[string]string{"Duet-Actor": op1.ID, "Duet-Session": s.ID, "Duet-Seq": "1", "Duet-Signature": "AA=="}, 401, "UNAUTHENTICATED"},
		{"oversized body", "POST", path, bytes.Repeat([]byte("a"), 70<<10), signed(op1, s.ID, seq, zero, "POST", path, qc), 413, "TOO_LARGE"},
		{"unknown package (direct)", "POST", "/v1/packages/NOPE/scan", []byte(`{}`), signed(op1, "direct-nope", 0, zero, "POST", "/v1/packages/NOPE/scan", []byte(`{}`)), 404, "NOT_FOUND"},
		{"unknown route", "GET", "/v1/nothing", nil, nil, 404, "NOT_FOUND"},
		{"unknown session", "GET", "/v1/sessions/nope", nil, nil, 404, "NOT_FOUND"},
		{"package not found", "GET", "/v1/packages/NOPE", nil, nil, 404, "NOT_FOUND"},
	}
	for _, c := range cases {
		status, code := send(c.method, c.path, c.body, c.hdr)
		if status != c.status || code != c.code {
			t.Errorf("%s: got %d %s, want %d %s", c.name, status, code, c.status, c.code)
		}
	}
	// Malformed JSON, correctly signed for the right seq: 400, and the
	// session does not advance (the op is not kept).
	ctx := context.Background()
	_, err := s.Do(ctx, "POST", path, []byte(`{"passed":`), nil)
	wantErr(t, "malformed JSON", err, 400, "MALFORMED", "")
	if s.Seq() != seq {
		t.Fatalf("a rejected op advanced the session: seq %d, want %d", s.Seq(), seq)
	}
}

// waitRestart waits until the supervisor has restarted L2 node i and it is ready.
func waitRestart(t *testing.T, n *network, i, oldPID int) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		var now localnet.Network
		raw, err := os.ReadFile(filepath.Join(n.home, localnet.ClusterFile))
		if err == nil && json.Unmarshal(raw, &now) == nil && now.L2[i].PID != oldPID {
			resp, err := http.Get("http://" + n.L2[i].HTTP + "/readyz")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					n.L2[i].PID = now.L2[i].PID
					return
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("L2 node was not restarted")
}

// waitVisible waits until a node's committed view holds a package.
func waitVisible(t *testing.T, c *client.Client, pkg string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for c.Get(context.Background(), "/v1/packages/"+pkg+"?view=committed", nil) != nil {
		if time.Now().After(deadline) {
			t.Fatalf("%s never became visible on %s", pkg, c.BaseURL)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestL2Quorum: with f = 1 of 4 validators stopped, sessions still finalise
// (and the L2 node fails over from the validator it submits to first); with
// 2 of 4 stopped, L2 keeps answering every step, the commit waits in the
// queue, and it drains once quorum returns. Validators are paused with
// SIGSTOP, so the supervisor does not restart them and their connections
// hang rather than fail.
func TestL2Quorum(t *testing.T) {
	n := startNetwork(t, 4, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c := n.client(0)
	sup, op := n.signer("supplier-1"), n.signer("operator-1")
	paused := map[int]bool{}
	pause := func(i int) {
		if err := syscall.Kill(n.Validators[i].PID, syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		paused[i] = true
	}
	resume := func(i int) {
		syscall.Kill(n.Validators[i].PID, syscall.SIGCONT)
		delete(paused, i)
	}
	t.Cleanup(func() {
		for i := range paused {
			resume(i)
		}
	})
	workflow := func(sid, pkg string) *client.Session {
		t.Helper()
		s := supplychain.NewSession(c, op, sid)
		if err := s.Start(ctx, nil); err != nil {
			t.Fatal(err)
		}
		must(t, "scan", nil, second(s.Scan(ctx, pkg)))
		must(t, "validate", nil, second(s.Validate(ctx, pkg, observed(), nil)))
		must(t, "qc", nil, second(s.QC(ctx, pkg, true, "", nil)))
		must(t, "label", nil, second(s.Label(ctx, pkg, "courier-1", nil)))
		if err := s.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		return s.Session
	}
	for _, pkg := range []string{"PKG-F", "PKG-Q"} {
		res, err := supplychain.CreatePackage(ctx, c, sup, "create-"+pkg, supplychain.NewPackage{ID: pkg, Destination: "DC Jakarta", Items: items()})
		must(t, "create "+pkg, res, err)
	}

	// f = 1: v0, the first validator the L2 node submits to, is down.
	pause(0)
	workflow("wf-f", "PKG-F")
	if f, err := c.Wait(ctx, "wf-f"); err != nil || f.Status != protocol.StatusCommitted {
		t.Fatalf("with 1 of 4 validators stopped: final %+v, %v; want committed", f, err)
	}

	// 2 of 4 down: no quorum. Every step is still answered at once.
	pause(1)
	start := time.Now()
	workflow("wf-q", "PKG-Q")
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("without quorum the L2 steps took %s", d)
	}
	time.Sleep(2 * time.Second)
	if v, err := c.Session(ctx, "wf-q", ""); err != nil || v.Status != protocol.StatusCommitting {
		t.Fatalf("without quorum: session %+v, %v; want committing", v, err)
	}
	// Once the commit has waited over 2 s (max_lag), the node sheds new
	// sessions rather than let finality fall further behind.
	var shed error
	for i := 0; shed == nil && i < 50; i++ {
		if shed = c.NewSession(op, fmt.Sprintf("wf-shed-%d", i)).Start(ctx, nil); shed == nil {
			time.Sleep(200 * time.Millisecond)
		}
	}
	var ce *client.Error
	if !errors.As(shed, &ce) || ce.Status != http.StatusTooManyRequests || ce.Code != "OVERLOADED" {
		t.Fatalf("new session without quorum: got %v, want 429 OVERLOADED", shed)
	}
	// Quorum returns: the queue drains and the session commits once.
	resume(0)
	resume(1)
	f, err := c.Wait(ctx, "wf-q")
	if err != nil || f.Status != protocol.StatusCommitted {
		t.Fatalf("after quorum returned: final %+v, %v; want committed", f, err)
	}
	if err := c.NewSession(op, "wf-after").Start(ctx, nil); err != nil {
		t.Errorf("new session once L1 caught up: %v", err)
	}
	if p := n.waitStage(2, "PKG-Q", "labeled"); p["stage"] != "labeled" {
		t.Errorf("PKG-Q on L1: stage %v", p["stage"])
	}
}

// waitStage polls validator v's committed state (a block's height shows in
// /status a moment before the application has committed it) until the
// package reaches stage, for up to 30 s, and returns the package.
func (n *network) waitStage(v int, pkg, stage string) map[string]any {
	deadline := time.Now().Add(30 * time.Second)
	for {
		p := n.pkgAt(v, pkg)
		if p["stage"] == stage || time.Now().After(deadline) {
			return p
		}
		time.Sleep(10 * time.Millisecond)
	}
}
