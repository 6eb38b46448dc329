package gateway_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/duet-bft/duet/apps/supplychain"
	"github.com/duet-bft/duet/buffer"
	"github.com/duet-bft/duet/duettest"
	"github.com/duet-bft/duet/gateway"
	"github.com/duet-bft/duet/protocol"
	"github.com/duet-bft/duet/service"
	"github.com/duet-bft/duet/service/servicetest"
)

// stubChain is an L1 that is ready at height 1 with nothing committed.
type stubChain struct{}

func (stubChain) Committed() (service.Store, int64) { return servicetest.Store{}, 1 }
func (stubChain) Ready() bool                       { return true }

func TestNewRequiresConfig(t *testing.T) {
	e := newEnv(t, time.Second)
	buf, app, reg := e.n.Buffer, supplychain.App, supplychain.App.Registry
	tests := []struct {
		name string
		cfg  gateway.Config
	}{
		{"empty", gateway.Config{}},
		{"no buffer", gateway.Config{App: app, Registry: reg, Chain: stubChain{}}},
		{"no app", gateway.Config{Buffer: buf, Registry: reg, Chain: stubChain{}}},
		{"no registry", gateway.Config{Buffer: buf, App: app, Chain: stubChain{}}},
		{"no chain", gateway.Config{Buffer: buf, App: app, Registry: reg}},
	}
	for _, tt := range tests {
		if _, err := gateway.New(tt.cfg); err == nil {
			t.Errorf("%s: got nil error", tt.name)
		}
	}
	if _, err := gateway.New(gateway.Config{Buffer: buf, App: app, Registry: reg, Chain: stubChain{}}); err != nil {
		t.Errorf("complete config: %v", err)
	}
}

// TestErrors: every refused request gets a JSON error with a fitting
// status and changes nothing.
func TestErrors(t *testing.T) {
	e := newEnv(t, time.Second)
	signed := func(mod func(r *http.Request)) *http.Request {
		s := &sess{id: "err-1", who: operator1}
		r := s.request(http.MethodPost, service.PathSessions, `{"package_id":"PKG-1"}`)
		if mod != nil {
			mod(r)
		}
		return r
	}
	set := func(h, v string) func(r *http.Request) { return func(r *http.Request) { r.Header.Set(h, v) } }
	del := func(h string) func(r *http.Request) { return func(r *http.Request) { r.Header.Del(h) } }
	big := bytes.Repeat([]byte("x"), protocol.MaxBody+1)
	tests := []struct {
		name       string
		req        *http.Request
		wantStatus int
		wantCode   string
	}{
		{"no headers", httptest.NewRequest(http.MethodPost, service.PathSessions, strings.NewReader(`{}`)), http.StatusUnauthorized, "UNAUTHENTICATED"},
		{"no actor", signed(del(gateway.HeaderActor)), http.StatusUnauthorized, "UNAUTHENTICATED"},
		{"no session", signed(del(gateway.HeaderSession)), http.StatusUnauthorized, "UNAUTHENTICATED"},
		{"no seq", signed(del(gateway.HeaderSeq)), http.StatusUnauthorized, "UNAUTHENTICATED"},
		{"no signature", signed(del(gateway.HeaderSignature)), http.StatusUnauthorized, "UNAUTHENTICATED"},
		{"no expiry", signed(del(gateway.HeaderExpires)), http.StatusUnauthorized, "UNAUTHENTICATED"},
		{"expiry not a number", signed(set(gateway.HeaderExpires, "soon")), http.StatusBadRequest, "MALFORMED"},
		{"expiry with a leading zero", signed(set(gateway.HeaderExpires, "01")), http.StatusBadRequest, "MALFORMED"},
		{"expiry other than signed", signed(set(gateway.HeaderExpires, strconv.FormatInt(time.Now().Add(time.Hour).UnixMilli(), 10))), http.StatusUnauthorized, "UNAUTHENTICATED"},
		{"expired", func() *http.Request {
			s := &sess{id: "err-1", who: operator1}
			exp := time.Now().Add(-time.Second).UnixMilli()
			r := s.request(http.MethodPost, service.PathSessions, `{}`)
			r.Header.Set(gateway.HeaderExpires, strconv.FormatInt(exp, 10))
			r.Header.Set(gateway.HeaderSignature, base64.StdEncoding.EncodeToString(ed25519.Sign(operator1.Key,
				protocol.OpBytes("err-1", 0, protocol.ZeroHash, http.MethodPost, service.PathSessions, []byte(`{}`), exp))))
			return r
		}(), http.StatusBadRequest, "EXPIRED"},
		{"bad actor id", signed(set(gateway.HeaderActor, "operator 1")), http.StatusUnauthorized, "UNAUTHENTICATED"},
		{"unknown actor", signed(set(gateway.HeaderActor, "operator-9")), http.StatusUnauthorized, "UNAUTHENTICATED"},
		{"bad session id", signed(set(gateway.HeaderSession, "a/b")), http.StatusBadRequest, "INVALID_ARGUMENT"},
		{"long session id", signed(set(gateway.HeaderSession, strings.Repeat("s", 65))), http.StatusBadRequest, "INVALID_ARGUMENT"},
		{"seq not a number", signed(set(gateway.HeaderSeq, "one")), http.StatusBadRequest, "MALFORMED"},
		{"negative seq", signed(set(gateway.HeaderSeq, "-1")), http.StatusBadRequest, "MALFORMED"},
		{"seq with a sign", signed(set(gateway.HeaderSeq, "+0")), http.StatusBadRequest, "MALFORMED"},
		{"seq with a leading zero", signed(set(gateway.HeaderSeq, "01")), http.StatusBadRequest, "MALFORMED"},
		{"seq beyond 32 bits", signed(set(gateway.HeaderSeq, "4294967296")), http.StatusBadRequest, "MALFORMED"},
		{"seq with space", signed(set(gateway.HeaderSeq, "0 ")), http.StatusBadRequest, "MALFORMED"},
		{"signature not base64", signed(set(gateway.HeaderSignature, "!!not base64!!")), http.StatusUnauthorized, "UNAUTHENTICATED"},
		{"signature url base64", signed(set(gateway.HeaderSignature, base64.URLEncoding.EncodeToString(bytes.Repeat([]byte{0xfb}, 64)))), http.StatusUnauthorized, "UNAUTHENTICATED"},
		{"signature too short", signed(set(gateway.HeaderSignature, base64.StdEncoding.EncodeToString(make([]byte, 63)))), http.StatusUnauthorized, "UNAUTHENTICATED"},
		{"signature of other bytes", signed(set(gateway.HeaderSignature, base64.StdEncoding.EncodeToString(make([]byte, 64)))), http.StatusUnauthorized, "UNAUTHENTICATED"},
		{"signed by another actor", signed(set(gateway.HeaderActor, operator2.ID)), http.StatusUnauthorized, "UNAUTHENTICATED"},
		{"body too large", func() *http.Request {
			r := httptest.NewRequest(http.MethodPost, service.PathSessions, bytes.NewReader(big))
			r.Header = (&sess{id: "err-1", who: operator1}).request(http.MethodPost, service.PathSessions, string(big)).Header
			return r
		}(), http.StatusRequestEntityTooLarge, "TOO_LARGE"},
		{"method not allowed", httptest.NewRequest(http.MethodOptions, service.PathSessions, nil), http.StatusMethodNotAllowed, "METHOD_NOT_ALLOWED"},
		{"GET unknown route", httptest.NewRequest(http.MethodGet, "/v1/nothing/here", nil), http.StatusNotFound, "NOT_FOUND"},
		{"GET a path with no route", httptest.NewRequest(http.MethodGet, "/v1/nothing", nil), http.StatusNotFound, "NOT_FOUND"},
		{"GET unknown package", httptest.NewRequest(http.MethodGet, "/v1/packages/PKG-404", nil), http.StatusNotFound, "NOT_FOUND"},
		{"GET bad package id", httptest.NewRequest(http.MethodGet, "/v1/packages/a%20b", nil), http.StatusBadRequest, "INVALID_ARGUMENT"},
		{"GET bogus view", httptest.NewRequest(http.MethodGet, "/v1/packages/PKG-1?view=bogus", nil), http.StatusBadRequest, "INVALID_ARGUMENT"},
		{"GET unknown session", httptest.NewRequest(http.MethodGet, "/v1/sessions/nobody", nil), http.StatusNotFound, "NOT_FOUND"},
		{"events of an unknown session", httptest.NewRequest(http.MethodGet, "/v1/sessions/nobody/events", nil), http.StatusNotFound, "NOT_FOUND"},
		{"POST to a query route", (&sess{id: "q", who: operator1}).request(http.MethodPost, "/v1/packages/PKG-1", `{}`), http.StatusMethodNotAllowed, "METHOD_NOT_ALLOWED"},
		{"commit of an unknown session", (&sess{id: "nobody", who: operator1}).request(http.MethodPost, service.CommitPath("nobody"), `{}`), http.StatusNotFound, "NOT_FOUND"},
		{"unknown route", (&sess{id: "x", who: operator1}).request(http.MethodPost, "/v1/nothing", `{}`), http.StatusNotFound, "NOT_FOUND"},
		{"seq gap", (&sess{id: "gap", who: operator1, seq: 3}).request(http.MethodPost, service.PathSessions, `{}`), http.StatusConflict, "FAILED_PRECONDITION"},
		{"role", (&sess{id: "r", who: courier}).request(http.MethodPost, "/v1/packages/PKG-1/scan", `{}`), http.StatusForbidden, "PERMISSION_DENIED"},
		{"GET with an empty segment", httptest.NewRequest(http.MethodGet, "//v1/packages/PKG-1", nil), http.StatusBadRequest, "INVALID_ARGUMENT"},
		{"GET with a dot-dot segment", httptest.NewRequest(http.MethodGet, "/v1/sessions/../healthz", nil), http.StatusBadRequest, "INVALID_ARGUMENT"},
		{"signed op with a dot segment", (&sess{id: "dot", who: operator1}).request(http.MethodPost, "/v1/./sessions", `{}`), http.StatusBadRequest, "INVALID_ARGUMENT"},
		{"empty path", func() *http.Request {
			r := httptest.NewRequest(http.MethodGet, "/healthz", nil)
			r.URL.Path = ""
			return r
		}(), http.StatusBadRequest, "INVALID_ARGUMENT"},
		{"malformed body", (&sess{id: "m", who: operator1}).request(http.MethodPost, service.PathSessions, `{"package_id":`), http.StatusBadRequest, "MALFORMED"},
	}
	before := e.snapshot()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := e.serve(tt.req)
			wantError(t, rec, tt.wantStatus, tt.wantCode)
			if rec.Header().Get(gateway.HeaderReceipt) != "" {
				t.Error("refused request has a receipt")
			}
		})
	}
	if got := e.snapshot(); got != before {
		t.Errorf("L1 changed: got %s, want %s", got, before)
	}
	for _, id := range []string{"err-1", "q", "nobody", "x", "gap", "r", "m", "dot"} {
		if v, ok := e.n.Buffer.Lookup(id, ""); ok {
			t.Errorf("refused request left session %s: %+v", id, v)
		}
	}
}

// TestCanonicalPaths: paths ServeMux would redirect are refused; a
// trailing slash is not a redirect and is routed as is.
func TestCanonicalPaths(t *testing.T) {
	e := newEnv(t, time.Second)
	tests := []struct {
		target string
		want   int
	}{
		{"/healthz", http.StatusOK},
		{"/v1/packages/PKG-1", http.StatusOK},
		{"/v1/packages/PKG-1/", http.StatusNotFound},
		{"/v1/packages/PKG-1/.", http.StatusBadRequest},
		{"/v1//packages/PKG-1", http.StatusBadRequest},
		{"/healthz/..", http.StatusBadRequest},
		{"/v1/packages/a%2Fb", http.StatusNotFound},
	}
	for _, tt := range tests {
		rec := e.get(tt.target)
		if rec.Code != tt.want || rec.Header().Get("Content-Type") != "application/json" {
			t.Errorf("GET %s: got %d %q, want %d JSON", tt.target, rec.Code, rec.Header().Get("Content-Type"), tt.want)
		}
	}
}

func TestHealth(t *testing.T) {
	e := newEnv(t, time.Second)
	rec := e.get("/healthz")
	if rec.Code != http.StatusOK || !json.Valid(rec.Body.Bytes()) {
		t.Errorf("/healthz: got %d %s, want 200 JSON", rec.Code, rec.Body)
	}
	tests := []struct {
		ready bool
		want  int
	}{
		{false, http.StatusServiceUnavailable},
		{true, http.StatusOK},
	}
	for _, tt := range tests {
		e.n.SetReady(tt.ready)
		rec := e.get("/readyz")
		if rec.Code != tt.want {
			t.Errorf("/readyz ready %v: got %d, want %d", tt.ready, rec.Code, tt.want)
		}
		if tt.want != http.StatusOK {
			wantError(t, rec, tt.want, "UNAVAILABLE")
			continue
		}
		var out struct {
			Status string `json:"status"`
			Height int64  `json:"height"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || out.Status != "ready" || out.Height != e.n.Height() {
			t.Errorf("/readyz body: got %s, want height %d", rec.Body, e.n.Height())
		}
	}
}

func TestMetrics(t *testing.T) {
	e := newEnv(t, time.Second)
	if body := e.get("/metrics").Body.String(); strings.Contains(body, "duet_l2_step_seconds_count") {
		t.Error("step histogram has samples before any request")
	}
	s := &sess{id: "m-1", who: operator1}
	e.must(s, http.StatusCreated, http.MethodPost, service.PathSessions, `{}`)
	e.must(s, http.StatusAccepted, http.MethodPost, service.CommitPath(s.id), `{}`)
	e.op(&sess{id: "m-2", who: operator1, seq: 1}, http.MethodPost, service.PathSessions, `{}`)
	e.next(t)
	rec := e.get("/metrics")
	if rec.Code != http.StatusOK {
		t.Fatalf("/metrics: got %d", rec.Code)
	}
	for _, want := range []string{
		"# TYPE duet_l2_step_seconds histogram",
		`duet_l2_step_seconds_count{kind="step",status="2xx"} 2`,
		`duet_l2_step_seconds_count{kind="step",status="4xx"} 1`,
		"duet_wal_fsync_records_count ",
		"duet_l1_batch_bundles_count 2", // PKG-1's creation, then m-1
		"duet_l1_queue_bundles 0",
	} {
		if !strings.Contains(rec.Body.String(), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if strings.Contains(rec.Body.String(), "duet_wal_fsync_records_count 0") {
		t.Error("no fsync observed")
	}
}

func TestOpenAPI(t *testing.T) {
	e := newEnv(t, time.Second)
	rec := e.get("/v1/openapi.json")
	var doc map[string]any
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/json" {
		t.Errorf("/v1/openapi.json: got %d %s", rec.Code, rec.Header().Get("Content-Type"))
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil {
		t.Fatalf("/v1/openapi.json is not JSON: %v", err)
	}
	if v, _ := doc["openapi"].(string); !strings.HasPrefix(v, "3.") {
		t.Errorf("openapi version: got %v", doc["openapi"])
	}
	want, err := gateway.OpenAPI(supplychain.App)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(rec.Body.Bytes(), want) {
		t.Error("served document differs from gateway.OpenAPI(supplychain.App)")
	}
}

func TestNode(t *testing.T) {
	e := newEnv(t, time.Second)
	var out struct {
		ID        string `json:"id"`
		PublicKey []byte `json:"public_key"`
	}
	rec := e.get("/v1/node")
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || out.ID != duettest.NodeID || !bytes.Equal(out.PublicKey, e.n.Node.Public()) {
		t.Errorf("/v1/node: got %s", rec.Body)
	}
}

// decodeReceipt decodes the Duet-Receipt header of an answer and verifies
// its signature with the node key.
func (e *env) decodeReceipt(t *testing.T, rec *httptest.ResponseRecorder) gateway.Receipt {
	t.Helper()
	h := rec.Header().Get(gateway.HeaderReceipt)
	if h == "" {
		t.Fatal("no Duet-Receipt header")
	}
	raw, err := base64.StdEncoding.DecodeString(h)
	if err != nil {
		t.Fatalf("Duet-Receipt is not standard base64: %v", err)
	}
	var rc gateway.Receipt
	if err := json.Unmarshal(raw, &rc); err != nil {
		t.Fatalf("Duet-Receipt is not JSON: %v", err)
	}
	if !rc.Verify(e.n.Node.Public(), rc.Signature) {
		t.Error("receipt signature does not verify with the node key")
	}
	return rc
}

// TestSessionOverHTTP: a session's ops get receipts that match the op and
// the answer; GET shows the session and both views of the package.
// TestOverloaded: a node that sheds new sessions answers 429 OVERLOADED as
// JSON with Retry-After, and no receipt.
func TestOverloaded(t *testing.T) {
	e := newEnvWith(t, time.Second, func(c *buffer.Config) { c.MaxOpen = 1 })
	e.must(&sess{id: "first", who: operator1}, http.StatusCreated, http.MethodPost, service.PathSessions, `{}`)
	rec := e.op(&sess{id: "second", who: operator2}, http.MethodPost, service.PathSessions, `{}`)
	wantError(t, rec, http.StatusTooManyRequests, "OVERLOADED")
	if got := rec.Header().Get("Retry-After"); got != "1" {
		t.Errorf("Retry-After: got %q, want 1", got)
	}
	if got := rec.Header().Get(gateway.HeaderReceipt); got != "" {
		t.Errorf("a refused op got a receipt: %s", got)
	}
}

func TestSessionOverHTTP(t *testing.T) {
	e := newEnv(t, time.Second)
	s := &sess{id: "wf-1", who: operator1}
	steps := []struct {
		method, path, body string
		want               int
	}{
		{http.MethodPost, service.PathSessions, `{"package_id":"PKG-1"}`, http.StatusCreated},
		{http.MethodPost, "/v1/packages/PKG-1/scan", `{}`, http.StatusOK},
		{http.MethodPost, "/v1/packages/PKG-1/validate", `{"observed_items":[{"sku":"SKU-1","qty":3},{"sku":"SKU-2","qty":1}]}`, http.StatusOK},
	}
	for i, st := range steps {
		prev := s.prev
		rec := e.must(s, st.want, st.method, st.path, st.body)
		opHash := protocol.OpHash(protocol.OpBytes(s.id, uint64(i), prev, st.method, st.path, []byte(st.body), s.exp))
		if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
			t.Errorf("op %d: Content-Type %q", i, ct)
		}
		rc := e.decodeReceipt(t, rec)
		if rc.Node != duettest.NodeID || rc.Session != s.id || rc.Seq != uint64(i) || rc.Op != opHash ||
			rc.Result != protocol.ResultHash(rec.Code, rec.Body.Bytes()) {
			t.Errorf("op %d: receipt %+v does not match the op and its answer", i, rc.Receipt)
		}
	}
	// Another session of the node cannot touch the package.
	other := &sess{id: "other", who: operator2}
	e.must(other, http.StatusCreated, http.MethodPost, service.PathSessions, `{}`)
	rec := e.op(other, http.MethodPost, "/v1/packages/PKG-1/scan", `{}`)
	wantError(t, rec, http.StatusConflict, "CONFLICT")
	var held service.ErrorBody
	if err := json.Unmarshal(rec.Body.Bytes(), &held); err != nil || held.Error.Holder == nil ||
		held.Error.Holder.Session != "wf-1" || held.Error.Holder.Actor != operator1.ID || held.Error.Holder.Key != "pkg/PKG-1" ||
		held.Error.Holder.Since == 0 || !strings.Contains(held.Error.Message, "wf-1 of operator-1") {
		t.Errorf("reservation error does not name the holder: %s", rec.Body)
	}

	rec = e.get("/v1/sessions/wf-1")
	var got struct {
		Session protocol.SessionView `json:"session"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil || rec.Code != http.StatusOK {
		t.Fatalf("GET session: %d %s", rec.Code, rec.Body)
	}
	if v := got.Session; v.ID != "wf-1" || v.Actor != operator1.ID || v.Status != buffer.StatusOpen || len(v.Ops) != 3 || v.Final != nil {
		t.Errorf("GET session: %+v", v)
	}

	e.must(s, http.StatusAccepted, http.MethodPost, service.CommitPath(s.id), `{}`)
	e.next(t)
	for view, want := range map[string]string{"": supplychain.StageValidated, "?view=l2": supplychain.StageValidated, "?view=committed": supplychain.StageCreated} {
		rec := e.get("/v1/packages/PKG-1" + view)
		var p struct {
			Package supplychain.Package `json:"package"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil || p.Package.Stage != want {
			t.Errorf("GET package%s: got %d %s, want stage %s", view, rec.Code, rec.Body, want)
		}
	}
	h := e.n.Block()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		if v, _ := e.n.Buffer.Lookup("wf-1", ""); v.Final != nil {
			if v.Final.Status != buffer.StatusCommitted || v.Final.Height != h {
				t.Fatalf("final: %+v", v.Final)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("not final")
		}
	}
	rec = e.get("/v1/packages/PKG-1/history?view=committed")
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"session":"wf-1"`) {
		t.Errorf("committed history: %d %s", rec.Code, rec.Body)
	}
}

// TestEventsSSE follows a session's event stream: the past events first,
// then live ones, the final event last, then the stream ends.
func TestEventsSSE(t *testing.T) {
	e := newEnv(t, time.Second)
	srv := httptest.NewServer(e.h)
	defer srv.Close()
	s := &sess{id: "wf-1", who: operator1}
	e.must(s, http.StatusCreated, http.MethodPost, service.PathSessions, `{"package_id":"PKG-1"}`)
	e.must(s, http.StatusOK, http.MethodPost, "/v1/packages/PKG-1/scan", `{}`)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/v1/sessions/wf-1/events", nil)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("events: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	events := make(chan protocol.Event, 16)
	go func() {
		defer close(events)
		sc := bufio.NewScanner(resp.Body)
		var name string
		for sc.Scan() {
			line := sc.Text()
			if v, ok := strings.CutPrefix(line, "event: "); ok {
				name = v
			} else if v, ok := strings.CutPrefix(line, "data: "); ok {
				var ev protocol.Event
				if err := json.Unmarshal([]byte(v), &ev); err != nil || ev.Type != name {
					t.Errorf("event %q data %s: %v", name, v, err)
				}
				events <- ev
			}
		}
	}()
	var got []string
	recv := func(n int) {
		t.Helper()
		for range n {
			select {
			case ev, ok := <-events:
				if !ok {
					t.Fatalf("stream ended after %v", got)
				}
				got = append(got, ev.Type+":"+ev.Status)
			case <-time.After(5 * time.Second):
				t.Fatalf("no event after %v", got)
			}
		}
	}
	recv(2) // the past: start and scan
	e.must(s, http.StatusAccepted, http.MethodPost, service.CommitPath(s.id), `{}`)
	recv(2) // commit op and status
	e.next(t)
	h := e.n.Block()
	recv(1)
	want := "op:open op:open op:open status:committing final:committed"
	if strings.Join(got, " ") != want {
		t.Errorf("events: got %v, want %s", got, want)
	}
	select {
	case ev, ok := <-events:
		if ok {
			t.Errorf("event after the final one: %+v", ev)
		}
	case <-time.After(5 * time.Second):
		t.Error("stream not closed after the final event")
	}

	// A final session's stream holds everything and ends at once.
	rec := e.get("/v1/sessions/wf-1/events")
	body := rec.Body.String()
	if rec.Code != http.StatusOK || strings.Count(body, "event: ") != 5 || !strings.Contains(body, `"height":`+strconv.FormatInt(h, 10)) {
		t.Errorf("events of a final session: %d %s", rec.Code, body)
	}
}

// TestEventsEndOnStop: closing Config.Done (the node stopping) ends an
// open session's event stream, so http.Server.Shutdown need not wait for
// it until its deadline.
func TestEventsEndOnStop(t *testing.T) {
	done := make(chan struct{})
	e := &env{t: t, log: &panicLog{}}
	e.n = duettest.New(t, duettest.Config{App: supplychain.App, Actors: map[string]string{operator1.ID: operator1.Role},
		Gateway: func(c *gateway.Config) { c.Done, c.Logger = done, slog.New(e.log) }})
	e.h = e.n.Handler()
	s := &sess{id: "open-1", who: operator1}
	e.must(s, http.StatusCreated, http.MethodPost, service.PathSessions, `{}`)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.n.Server.URL+"/v1/sessions/open-1/events", nil)
	resp, err := e.n.Server.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	r := bufio.NewReader(resp.Body)
	if line, err := r.ReadString('\n'); err != nil || line != "event: op\n" {
		t.Fatalf("first line of the stream: %q, %v; want the start op's event", line, err)
	}
	ended := make(chan error, 1)
	go func() { _, err := io.Copy(io.Discard, r); ended <- err }()
	select {
	case err := <-ended:
		t.Fatalf("stream ended before Done was closed: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(done)
	select {
	case err := <-ended:
		if err != nil {
			t.Errorf("stream after Done: %v, want a clean end", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("stream still open 5 s after Done was closed")
	}
}

// TestDirectOverHTTP: a direct-mode op is answered after L1 with the L1
// references, 409 with L1's code when rejected, 503 when L1 is too slow.
func TestDirectOverHTTP(t *testing.T) {
	t.Run("committed", func(t *testing.T) {
		e := newEnv(t, 5*time.Second)
		done := make(chan *httptest.ResponseRecorder, 1)
		go func() {
			done <- e.op(&sess{id: "create-PKG-9", who: supplier}, http.MethodPost, supplychain.PathPackages, createBody("PKG-9"))
		}()
		hash := e.next(t)
		h := e.n.Block()
		rec := <-done
		if rec.Code != http.StatusCreated || rec.Header().Get(gateway.HeaderL1Height) != strconv.FormatInt(h, 10) ||
			rec.Header().Get(gateway.HeaderL1Tx) != hash {
			t.Errorf("direct: got %d %s, L1 %s %s; want 201 at %d %s", rec.Code, rec.Body,
				rec.Header().Get(gateway.HeaderL1Height), rec.Header().Get(gateway.HeaderL1Tx), h, hash)
		}
		e.decodeReceipt(t, rec)
		if got := e.get("/metrics").Body.String(); !strings.Contains(got, `duet_l2_step_seconds_count{kind="direct",status="2xx"} 1`) {
			t.Error("direct op not counted as kind direct")
		}
	})
	t.Run("rejected", func(t *testing.T) {
		// While the node's create of PKG-9 waits in the mempool, another
		// session of the supplier (a bundle L1 is handed directly) creates
		// PKG-9 first. The node's bundle read pkg/PKG-9 when it did not
		// exist: L1 answers CONFLICT; re-executed on the new state, the op
		// answers otherwise (the package exists), so the node rejects it.
		e := newEnv(t, 5*time.Second)
		done := make(chan *httptest.ResponseRecorder, 1)
		go func() {
			done <- e.op(&sess{id: "create-PKG-9", who: supplier}, http.MethodPost, supplychain.PathPackages, createBody("PKG-9"))
		}()
		e.next(t)
		st, _ := e.n.Ledger.Committed()
		rival := buffer.NewSession("rival-PKG-9", supplier.ID, st)
		now := time.Now().UnixMilli()
		exp := now + 10*60*1000
		body := []byte(createBody("PKG-9"))
		sig := ed25519.Sign(supplier.Key, protocol.OpBytes(rival.ID, 0, rival.Prev(), http.MethodPost, supplychain.PathPackages, body, exp))
		resp, _, err := rival.Step(e.n.Ledger.Registry(), 0, protocol.Op{Method: http.MethodPost, Path: supplychain.PathPackages,
			Body: body, Signature: sig, Time: now, Expires: exp})
		if err != nil || resp.Status != http.StatusCreated {
			t.Fatalf("rival create: got %d %s, %v; want 201", resp.Status, resp.Body, err)
		}
		b := rival.Bundle(duettest.NodeID, e.n.Node.Key, 0)
		outs, err := e.n.Judge(protocol.EncodeBatch(&protocol.Batch{Bundles: []protocol.Bundle{b}}))
		if err != nil || len(outs) != 1 || outs[0].Code != protocol.CodeOK {
			t.Fatalf("rival create on L1: got %+v, %v; want OK", outs, err)
		}
		e.n.Block()
		rec := <-done
		wantError(t, rec, http.StatusConflict, "CONFLICT")
		if rec.Header().Get(gateway.HeaderL1Height) != "" || rec.Header().Get(gateway.HeaderL1Tx) != "" {
			t.Error("rejected direct op has L1 references")
		}
		if rec := e.get("/v1/packages/PKG-9/history?view=committed"); !strings.Contains(rec.Body.String(), `"session":"rival-PKG-9"`) ||
			strings.Contains(rec.Body.String(), `"session":"create-PKG-9"`) {
			t.Errorf("committed history of PKG-9: %s; want the rival's create alone", rec.Body)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		e := newEnv(t, 50*time.Millisecond)
		rec := e.op(&sess{id: "create-PKG-9", who: supplier}, http.MethodPost, supplychain.PathPackages, createBody("PKG-9"))
		wantError(t, rec, http.StatusServiceUnavailable, "UNAVAILABLE")
		rec = e.get("/v1/sessions/create-PKG-9")
		if !strings.Contains(rec.Body.String(), `"status":"committing"`) {
			t.Errorf("session after the timeout: %s", rec.Body)
		}
	})
}

// TestQueryDoesNotWrite: queries answer JSON and never write.
func TestQueryDoesNotWrite(t *testing.T) {
	e := newEnv(t, time.Second)
	before := e.snapshot()
	for _, target := range []string{"/v1/packages/PKG-1", "/v1/packages/PKG-1/history", "/v1/couriers/courier-1", "/v1/couriers/nobody?view=committed"} {
		rec := e.get(target)
		if !json.Valid(rec.Body.Bytes()) || rec.Header().Get("Content-Type") != "application/json" {
			t.Errorf("GET %s: %d %s", target, rec.Code, rec.Body)
		}
	}
	if got := e.snapshot(); got != before {
		t.Errorf("queries changed L1: got %s, want %s", got, before)
	}
}

// TestConsoleFiles: the console is served at / and /console/..., every
// response under a policy that lets the page reach nothing but this node;
// nothing outside the embedded files is served.
func TestConsoleFiles(t *testing.T) {
	e := newEnv(t, time.Second)
	for _, tt := range []struct {
		target, ctype string
		want          int
	}{
		{"/", "text/html; charset=utf-8", http.StatusOK},
		{"/console/duet.js", "text/javascript; charset=utf-8", http.StatusOK},
		{"/console/shell.js", "text/javascript; charset=utf-8", http.StatusOK},
		{"/console/style.css", "text/css; charset=utf-8", http.StatusOK},
		{"/console/nothing.js", "", http.StatusNotFound},
		{"/console/../gateway.go", "", http.StatusBadRequest}, // not canonical: refused before routing
		{"/console/app/../duet.js", "", http.StatusBadRequest},
	} {
		rec := e.get(tt.target)
		if rec.Code != tt.want {
			t.Errorf("GET %s: got %d, want %d", tt.target, rec.Code, tt.want)
			continue
		}
		if tt.want != http.StatusOK {
			continue
		}
		if got := rec.Header().Get("Content-Type"); got != tt.ctype {
			t.Errorf("GET %s: Content-Type %q, want %q", tt.target, got, tt.ctype)
		}
		if csp := rec.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "connect-src 'self'") || !strings.Contains(csp, "default-src 'none'") {
			t.Errorf("GET %s: Content-Security-Policy %q", tt.target, csp)
		}
	}
	// The page loads only what the node serves.
	page := e.get("/").Body.String()
	for _, ref := range []string{"http://", "https://", "//cdn"} {
		if strings.Contains(page, ref) {
			t.Errorf("the page refers to %s", ref)
		}
	}
}

// TestNetworkAndEvidence: /v1/network reports L1 and this node, with the
// steps it answered; /v1/evidence lists L1's evidence (none here).
func TestNetworkAndEvidence(t *testing.T) {
	e := newEnv(t, time.Second)
	s := &sess{id: "n-1", who: operator1}
	e.must(s, http.StatusCreated, http.MethodPost, service.PathSessions, `{}`)
	rec := e.get("/v1/network")
	var v gateway.NetworkView
	if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil || rec.Code != http.StatusOK {
		t.Fatalf("/v1/network: %d %s", rec.Code, rec.Body)
	}
	if v.Node != e.n.Node.ID || v.App.Name != supplychain.App.Name || v.Height != e.n.Height() || v.ChainID != "duettest" || len(v.Steps) != 1 || v.Steps[0].MS <= 0 {
		t.Errorf("/v1/network: %+v", v)
	}
	rec = e.get("/v1/evidence")
	if rec.Code != http.StatusOK || strings.TrimSpace(rec.Body.String()) != "[]" {
		t.Errorf("/v1/evidence: %d %s, want 200 []", rec.Code, rec.Body)
	}
	rec = e.get("/v1/actors/" + operator1.ID)
	var a struct{ Actor service.Actor }
	if err := json.Unmarshal(rec.Body.Bytes(), &a); err != nil || a.Actor.Role != operator1.Role || !bytes.Equal(a.Actor.PublicKey, operator1.Public()) {
		t.Errorf("/v1/actors/%s: %d %s", operator1.ID, rec.Code, rec.Body)
	}
}
