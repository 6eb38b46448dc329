package gateway_test

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/duet-bft/duet/apps/supplychain"
	"github.com/duet-bft/duet/buffer"
	"github.com/duet-bft/duet/gateway"
	"github.com/duet-bft/duet/protocol"
	"github.com/duet-bft/duet/service"
	"github.com/duet-bft/duet/service/servicetest"
)

// fakeChain is L1 as the gateway and the buffer see it: a committed store
// in memory, readiness, and a Submit that records decoded batches.
type fakeChain struct {
	subs chan submission

	mu     sync.Mutex
	kv     map[string]entry
	height int64
	ready  bool
}

type entry struct {
	value   []byte
	version uint64
}

type submission struct {
	hash  string
	batch *protocol.Batch
}

type chainStore struct{ c *fakeChain }

func (s chainStore) Get(key string) ([]byte, uint64, error) {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	e := s.c.kv[key]
	return e.value, e.version, nil
}

func (c *fakeChain) Committed() (service.Store, int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return chainStore{c}, c.height
}

func (c *fakeChain) Ready() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ready
}

func (c *fakeChain) setReady(ready bool, height int64) {
	c.mu.Lock()
	c.ready, c.height = ready, height
	c.mu.Unlock()
}

func (c *fakeChain) Submit(ctx context.Context, tx []byte, retry bool) error {
	b, err := protocol.DecodeBatch(tx)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(tx)
	select {
	case c.subs <- submission{hash: strings.ToUpper(hex.EncodeToString(sum[:])), batch: b}:
	default: // nobody judges (the fuzz target): L1 never answers
	}
	return nil
}

func (c *fakeChain) putJSON(key string, v any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.height++
	c.kv[key] = entry{service.MustJSON(v), uint64(c.height)}
}

// snapshot renders the committed state for comparison.
func (c *fakeChain) snapshot() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(c.kv)) {
		e := c.kv[k]
		b.WriteString(k + "@" + strconv.FormatUint(e.version, 10) + "=" + string(e.value) + "\n")
	}
	return b.String()
}

func (c *fakeChain) entries() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.kv)
}

func (c *fakeChain) next(t *testing.T) submission {
	t.Helper()
	select {
	case s := <-c.subs:
		return s
	case <-time.After(5 * time.Second):
		t.Fatal("no batch submitted within 5s")
		return submission{}
	}
}

// judge commits a block with verdict code on every bundle of sub; an OK
// bundle is re-executed on the committed state and its writes applied.
func (c *fakeChain) judge(t *testing.T, reg *service.Registry, buf *buffer.Buffer, sub submission, code protocol.Code) int64 {
	t.Helper()
	var writes []service.KV
	res := protocol.TxResult{Hash: sub.hash}
	for _, b := range sub.batch.Bundles {
		reason := ""
		if code == protocol.CodeOK {
			s := buffer.NewSession(b.Session, b.Actor, chainStore{c})
			for i, op := range b.Ops {
				resp, _, _ := s.Step(reg, uint64(i), op)
				if resp.Hash() != op.Result {
					t.Fatalf("bundle %s op %d: re-execution differs from the claimed result", b.Session, i)
				}
			}
			writes = append(writes, s.Tx().Writes()...)
		} else {
			reason = "test verdict " + code.String()
		}
		res.Outcomes = append(res.Outcomes, protocol.Outcome{Session: b.Session, Code: code})
		res.Reasons = append(res.Reasons, reason)
	}
	c.mu.Lock()
	c.height++
	h := c.height
	for _, kv := range writes {
		c.kv[kv.Key] = entry{kv.Value, uint64(h)}
	}
	if code == protocol.CodeOK {
		for _, b := range sub.batch.Bundles {
			c.kv[service.SessionKey(b.Actor, b.Session)] = entry{service.MustJSON(service.SessionRecord{Session: b.Session,
				Actor: b.Actor, Node: b.Node, Height: h, TxHash: sub.hash, Ops: len(b.Ops)}), uint64(h)}
		}
	}
	c.mu.Unlock()
	buf.OnBlock(protocol.Block{Height: h, Txs: []protocol.TxResult{res}})
	return h
}

type actor = servicetest.Actor

var (
	supplier  = servicetest.NewActor("supplier-1", supplychain.RoleSupplier, 2)
	operator1 = servicetest.NewActor("operator-1", supplychain.RoleOperator, 3)
	operator2 = servicetest.NewActor("operator-2", supplychain.RoleOperator, 4)
	courier   = servicetest.NewActor("courier-1", supplychain.RoleCourier, 5)
	node      = servicetest.NewActor("l2-0", service.RoleL2, 6)
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

// env is a gateway over a real buffer on a fake chain.
type env struct {
	t     testing.TB
	chain *fakeChain
	reg   *service.Registry
	buf   *buffer.Buffer
	h     http.Handler
	log   *panicLog
}

func newEnv(t testing.TB, directTimeout time.Duration) *env {
	t.Helper()
	return newEnvWith(t, directTimeout, nil)
}

// newEnvWith is newEnv with the buffer's config adjusted.
func newEnvWith(t testing.TB, directTimeout time.Duration, adjust func(*buffer.Config)) *env {
	t.Helper()
	e := &env{t: t, chain: &fakeChain{subs: make(chan submission, 64), kv: map[string]entry{}, ready: true}, reg: supplychain.New(), log: &panicLog{}}
	for _, a := range []actor{supplier, operator1, operator2, courier, node} {
		e.chain.putJSON(service.ActorKey(a.ID), service.Actor{ID: a.ID, Role: a.Role, Org: "org-" + a.ID, PublicKey: a.Public()})
	}
	e.chain.putJSON(supplychain.CourierKey("courier-1"), supplychain.Courier{ID: "courier-1", Name: "Courier One", ActorID: courier.ID})
	e.chain.putJSON(supplychain.PackageKey("PKG-1"), supplychain.Package{ID: "PKG-1", Supplier: supplier.ID,
		Destination: "DC Jakarta", Items: testItems, ManifestSignature: manifestSig("PKG-1"), CreatedAt: 1,
		Stage: supplychain.StageCreated, HistoryLen: 1, HistoryChunks: 1})
	e.chain.putJSON(supplychain.HistoryKey("PKG-1", 0), []supplychain.Event{{Step: supplychain.StepCreate, Actor: supplier.ID, Session: "c", Time: 1}})
	// Wired as an L2 node wires them: the metrics observe the buffer.
	preg := prometheus.NewRegistry()
	metrics, err := gateway.NewMetrics(preg)
	if err != nil {
		t.Fatal(err)
	}
	bc := buffer.Config{Node: node.ID, Key: node.Key, Registry: e.reg,
		WALPath: filepath.Join(t.TempDir(), "wal.log"), BatchInterval: time.Millisecond, Observer: metrics}
	if adjust != nil {
		adjust(&bc)
	}
	buf, err := buffer.Open(bc, e.chain)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { buf.Close() })
	e.buf = buf
	e.h, err = gateway.New(gateway.Config{Buffer: buf, App: supplychain.App, Registry: e.reg, Chain: e.chain, Node: node.ID,
		NodeKey: node.Public(), DirectTimeout: directTimeout, Metrics: metrics, Gatherer: preg, Logger: slog.New(e.log)})
	if err != nil {
		t.Fatal(err)
	}
	return e
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

// request signs the session's next op as the SDK does, expiring in 10
// minutes.
func (s *sess) request(method, path, body string) *http.Request {
	s.exp = time.Now().Add(10 * time.Minute).UnixMilli()
	signed := protocol.OpBytes(s.id, s.seq, s.prev, method, path, []byte(body), s.exp)
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(gateway.HeaderActor, s.who.ID)
	req.Header.Set(gateway.HeaderSession, s.id)
	req.Header.Set(gateway.HeaderSeq, strconv.FormatUint(s.seq, 10))
	req.Header.Set(gateway.HeaderExpires, strconv.FormatInt(s.exp, 10))
	req.Header.Set(gateway.HeaderSignature, base64.StdEncoding.EncodeToString(ed25519.Sign(s.who.Key, signed)))
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
