package gateway_test

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	abci "github.com/cometbft/cometbft/abci/types"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/duet-bft/duet/apps/supplychain"
	"github.com/duet-bft/duet/buffer"
	"github.com/duet-bft/duet/duettest"
	"github.com/duet-bft/duet/gateway"
	"github.com/duet-bft/duet/protocol"
	"github.com/duet-bft/duet/service"
	"github.com/duet-bft/duet/service/servicetest"
)

type actor = servicetest.Actor

// The genesis actors of every env besides the L2 node (duettest.NodeID),
// with the keys the Net registers for them.
var (
	supplier  = actor{ID: "supplier-1", Role: supplychain.RoleSupplier, Key: servicetest.Key("supplier-1")}
	operator1 = actor{ID: "operator-1", Role: supplychain.RoleOperator, Key: servicetest.Key("operator-1")}
	operator2 = actor{ID: "operator-2", Role: supplychain.RoleOperator, Key: servicetest.Key("operator-2")}
	courier   = actor{ID: "courier-1", Role: supplychain.RoleCourier, Key: servicetest.Key("courier-1")}
)

var testItems = []supplychain.Item{{SKU: "SKU-1", Name: "Widget", Qty: 3}, {SKU: "SKU-2", Name: "Gadget", Qty: 1}}

func manifestSig(id string) []byte {
	return ed25519.Sign(supplier.Key, supplychain.ManifestBytes(id, supplier.ID, "DC Jakarta", testItems))
}

// panicLog records the gateway's "panic serving request" log lines.
type panicLog struct {
	mu     sync.Mutex
	panics []string
}

func (p *panicLog) Enabled(context.Context, slog.Level) bool { return true }
func (p *panicLog) Handle(_ context.Context, r slog.Record) error {
	if strings.Contains(r.Message, "panic") {
		var b strings.Builder
		b.WriteString(r.Message)
		r.Attrs(func(a slog.Attr) bool { b.WriteString(" " + a.String()); return true })
		p.mu.Lock()
		p.panics = append(p.panics, b.String())
		p.mu.Unlock()
	}
	return nil
}
func (p *panicLog) WithAttrs([]slog.Attr) slog.Handler { return p }
func (p *panicLog) WithGroup(string) slog.Handler      { return p }

func (p *panicLog) take() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := p.panics
	p.panics = nil
	return out
}

// env is an L2 node of the supply chain (the real buffer behind the real
// gateway) on a real L1 ledger, joined in one process by duettest. PKG-1
// exists on L1, created by supplier-1; from then on blocks are manual: L1
// commits what the node submits only when the test calls n.Block.
type env struct {
	t   testing.TB
	n   *duettest.Net
	h   http.Handler
	log *panicLog
}

func newEnv(t testing.TB, directTimeout time.Duration) *env {
	t.Helper()
	return newEnvWith(t, directTimeout, nil)
}

// newEnvWith is newEnv with the buffer's config adjusted.
func newEnvWith(t testing.TB, directTimeout time.Duration, adjust func(*buffer.Config)) *env {
	t.Helper()
	e := &env{t: t, log: &panicLog{}}
	// Wired as an L2 node wires them: the metrics observe the buffer.
	preg := prometheus.NewRegistry()
	metrics, err := gateway.NewMetrics(preg)
	if err != nil {
		t.Fatal(err)
	}
	e.n = duettest.New(t, duettest.Config{App: supplychain.App,
		Actors: map[string]string{supplier.ID: supplier.Role, operator1.ID: operator1.Role, operator2.ID: operator2.Role, courier.ID: courier.Role},
		Buffer: func(c *buffer.Config) {
			c.Observer = metrics
			if adjust != nil {
				adjust(c)
			}
		},
		Gateway: func(c *gateway.Config) {
			c.DirectTimeout, c.Logger = directTimeout, slog.New(e.log)
			c.Metrics, c.Gatherer = metrics, preg
		}})
	e.h = e.n.Handler()
	e.createPKG1()
	e.n.SetManual(true)
	return e
}

// createPKG1 creates PKG-1 as supplier-1 in direct mode, while blocks are
// automatic. The op goes to the buffer rather than through the gateway,
// so that the gateway's step metrics start at zero.
func (e *env) createPKG1() {
	e.t.Helper()
	s := &sess{id: "create-PKG-1", who: supplier}
	body := createBody("PKG-1")
	sig := s.sign(http.MethodPost, supplychain.PathPackages, body)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rep := e.n.Buffer.Do(ctx, &buffer.Input{Session: s.id, Seq: 0, Actor: supplier.ID, Method: http.MethodPost,
		Path: supplychain.PathPackages, Body: []byte(body), Signature: sig, Expires: s.exp})
	if rep.Resp.Status != http.StatusCreated || rep.Final == nil || rep.Final.Status != buffer.StatusCommitted {
		e.t.Fatalf("create PKG-1: got %d %s, final %+v; want 201 committed by L1", rep.Resp.Status, rep.Resp.Body, rep.Final)
	}
}

// createBody is supplier-1's request to create package id.
func createBody(id string) string {
	return string(service.MustJSON(map[string]any{"id": id, "destination": "DC Jakarta", "items": testItems,
		"manifest_signature": manifestSig(id)}))
}

// next waits (5 s at most) until the node has submitted a batch to L1,
// which waits in the mempool for n.Block, and returns its hash.
func (e *env) next(t *testing.T) string {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		if txs := e.n.Mempool(); len(txs) > 0 {
			return duettest.TxHash(txs[0])
		}
		if time.Now().After(deadline) {
			t.Fatal("no batch submitted within 5s")
		}
	}
}

// snapshot renders L1's committed state (its height and app hash) and
// what waits in the mempool to be committed, for comparison.
func (e *env) snapshot() string {
	info, err := e.n.Ledger.Info(context.Background(), &abci.RequestInfo{})
	if err != nil {
		e.t.Fatal(err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "height %d, app hash %X; mempool:", e.n.Height(), info.LastBlockAppHash)
	for _, tx := range e.n.Mempool() {
		b.WriteString(" " + duettest.TxHash(tx))
	}
	return b.String()
}

// serve runs one request through the handler.
func (e *env) serve(req *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	if p := e.log.take(); len(p) > 0 {
		e.t.Errorf("%s %s: handler panicked: %v", req.Method, req.URL, p)
	}
	return rec
}

func (e *env) get(target string) *httptest.ResponseRecorder {
	return e.serve(httptest.NewRequest(http.MethodGet, target, nil))
}

// sess is the client side of a session.
type sess struct {
	id   string
	who  actor
	seq  uint64
	prev protocol.Hash
	exp  int64 // expiry of the last request signed
}

// sign signs the session's next op as the SDK does, expiring in 10
// minutes (s.exp).
func (s *sess) sign(method, path, body string) []byte {
	s.exp = time.Now().Add(10 * time.Minute).UnixMilli()
	return ed25519.Sign(s.who.Key, protocol.OpBytes(s.id, s.seq, s.prev, method, path, []byte(body), s.exp))
}

// request is the session's next op, signed, as an HTTP request.
func (s *sess) request(method, path, body string) *http.Request {
	sig := s.sign(method, path, body)
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(gateway.HeaderActor, s.who.ID)
	req.Header.Set(gateway.HeaderSession, s.id)
	req.Header.Set(gateway.HeaderSeq, strconv.FormatUint(s.seq, 10))
	req.Header.Set(gateway.HeaderExpires, strconv.FormatInt(s.exp, 10))
	req.Header.Set(gateway.HeaderSignature, base64.StdEncoding.EncodeToString(sig))
	return req
}

// op sends the next op; a 2xx answer advances the session.
func (e *env) op(s *sess, method, path, body string) *httptest.ResponseRecorder {
	req := s.request(method, path, body)
	rec := e.serve(req)
	if rec.Code/100 == 2 {
		s.prev = protocol.OpHash(protocol.OpBytes(s.id, s.seq, s.prev, method, path, []byte(body), s.exp))
		s.seq++
	}
	return rec
}

func (e *env) must(s *sess, want int, method, path, body string) *httptest.ResponseRecorder {
	e.t.Helper()
	rec := e.op(s, method, path, body)
	if rec.Code != want {
		e.t.Fatalf("%s %s: got %d %s, want %d", method, path, rec.Code, rec.Body, want)
	}
	return rec
}

// wantError checks a JSON error answer.
func wantError(t testing.TB, rec *httptest.ResponseRecorder, status int, code string) {
	t.Helper()
	if rec.Code != status {
		t.Errorf("status: got %d, want %d (body %s)", rec.Code, status, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type: got %q, want application/json", ct)
	}
	var eb service.ErrorBody
	if err := json.Unmarshal(rec.Body.Bytes(), &eb); err != nil {
		t.Fatalf("error body %q: %v", rec.Body, err)
	}
	if eb.Error.Code != code || eb.Error.Message == "" {
		t.Errorf("error: got %q %q, want code %s with a message", eb.Error.Code, eb.Error.Message, code)
	}
	if got := errorCode(rec.Body.Bytes()); got != code {
		t.Errorf("ErrorCode: got %q, want %q", got, code)
	}
}

// readAll reads a response body.
func readAll(t testing.TB, r io.Reader) string {
	t.Helper()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// errorCode extracts the code of a JSON error body ("" if it is not one).
func errorCode(body []byte) string {
	var e service.ErrorBody
	if json.Unmarshal(body, &e) != nil {
		return ""
	}
	return e.Error.Code
}
