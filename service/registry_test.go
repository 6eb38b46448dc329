package service

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/duet-bft/duet/protocol"
)

// testKey returns a fixed Ed25519 key: the seed is 32 copies of b.
func testKey(b byte) ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{b}, ed25519.SeedSize))
}

func pubKey(k ed25519.PrivateKey) []byte { return []byte(k.Public().(ed25519.PublicKey)) }

var (
	adminKey   = testKey(10)
	aliceKey   = testKey(11) // operator
	carolKey   = testKey(12) // courier
	daveKey    = testKey(13) // not registered in the base store
	malloryKey = testKey(14) // never registered
)

// testStore holds three actors and one widget.
func testStore() *memStore {
	st := newMemStore()
	for _, a := range []struct {
		actor   Actor
		version uint64
	}{
		{Actor{ID: "admin", Role: RoleAdmin, Org: "duet", PublicKey: pubKey(adminKey)}, 1},
		{Actor{ID: "alice", Role: "operator", Org: "acme", PublicKey: pubKey(aliceKey)}, 2},
		{Actor{ID: "carol", Role: "courier", Org: "fast", PublicKey: pubKey(carolKey)}, 3},
	} {
		st.m[ActorKey(a.actor.ID)] = memEntry{value: MustJSON(a.actor), version: a.version}
	}
	st.set("widget/w1", "old", 4)
	st.set("other", "O", 5)
	st.fail["boom"] = true
	return st
}

// testRegistry is the framework plus a small application.
func testRegistry() *Registry {
	r := NewRegistry()
	r.Handle(http.MethodPost, "/v1/widgets", []string{"operator", "supplier"}, func(tx *Tx, ctx *Context, req *Request) Response {
		var w struct {
			ID string `json:"id"`
		}
		if err := DecodeJSON(req.Body, &w); err != nil || !protocol.ValidID(w.ID) {
			return Error(http.StatusBadRequest, "MALFORMED", "bad widget")
		}
		tx.Put("widget/"+w.ID, req.Body)
		return JSON(http.StatusCreated, w)
	})
	r.Handle(http.MethodGet, "/v1/widgets/{id}", nil, func(tx *Tx, ctx *Context, req *Request) Response {
		v, ok := tx.Get("widget/" + req.Param("id"))
		if !ok {
			return Error(http.StatusNotFound, "NOT_FOUND", "no widget")
		}
		tx.Put("widget/"+req.Param("id"), []byte("query writes are discarded"))
		return Response{Status: http.StatusOK, Body: v}
	})
	// fail reads and writes, then fails.
	r.Handle(http.MethodPost, "/v1/widgets/{id}/fail", nil, func(tx *Tx, ctx *Context, req *Request) Response {
		tx.Get("widget/" + req.Param("id"))
		tx.Get("other")
		tx.Put("widget/"+req.Param("id"), []byte("failed"))
		return Error(http.StatusConflict, "FAILED_PRECONDITION", "nope")
	})
	// reserved writes a good key, then a reserved one, and claims success.
	r.Handle(http.MethodPost, "/v1/reserved", nil, func(tx *Tx, ctx *Context, req *Request) Response {
		tx.Get("other")
		tx.Put("ok", []byte("1"))
		tx.Put("ledger/sessions/x", []byte("1"))
		return JSON(http.StatusOK, map[string]bool{"ok": true})
	})
	// storeerr reads a key the store cannot serve, and claims success.
	r.Handle(http.MethodPost, "/v1/storeerr", nil, func(tx *Tx, ctx *Context, req *Request) Response {
		tx.Get("boom")
		tx.Put("ok", []byte("1"))
		return JSON(http.StatusOK, map[string]bool{"ok": true})
	})
	// append appends "x" to a key.
	r.Handle(http.MethodPost, "/v1/append/{key}", nil, func(tx *Tx, ctx *Context, req *Request) Response {
		k := req.Param("key")
		v, _ := tx.Get(k)
		tx.Put(k, append(append([]byte(nil), v...), 'x'))
		return JSON(http.StatusOK, map[string]string{"was": string(v)})
	})
	r.Handle(http.MethodGet, "/v1/bad", nil, func(tx *Tx, ctx *Context, req *Request) Response {
		tx.Put("ledger/x", nil)
		return JSON(http.StatusOK, nil)
	})
	return r
}

const (
	testSession = "s-1"
	testTime    = int64(1_700_000_000_000)
)

// signOp returns an op of testSession signed by key.
func signOp(key ed25519.PrivateKey, actor string, seq uint64, method, path string, body []byte) *Op {
	return signOpIn(key, actor, testSession, seq, method, path, body)
}

func signOpIn(key ed25519.PrivateKey, actor, session string, seq uint64, method, path string, body []byte) *Op {
	var prev protocol.Hash
	if seq > 0 {
		prev[0] = byte(seq) // Apply does not check the chain; any prev will do
	}
	op := &Op{Session: session, Seq: seq, Actor: actor, Method: method, Path: path, Body: body, Prev: prev, Time: testTime}
	op.Signature = ed25519.Sign(key, op.Bytes())
	return op
}

func actorJSON(id, role, org string, key []byte) []byte {
	return MustJSON(Actor{ID: id, Role: role, Org: org, PublicKey: key})
}

// errorCode returns the code of an error body, or "".
func errorCode(body []byte) string {
	var e ErrorBody
	if json.Unmarshal(body, &e) != nil {
		return ""
	}
	return e.Error.Code
}

func TestApply(t *testing.T) {
	b64 := base64.StdEncoding.EncodeToString
	tests := []struct {
		name       string
		op         *Op
		wantStatus int
		wantCode   string // error code, for failures
		wantBody   string // exact body, if set
		wantReads  []protocol.Read
		wantWrites []KV
	}{
		// Authentication.
		{name: "unknown actor", op: signOp(malloryKey, "mallory", 1, "POST", "/v1/widgets", []byte(`{"id":"w2"}`)),
			wantStatus: 401, wantCode: "UNAUTHENTICATED"},
		{name: "invalid actor id", op: signOp(aliceKey, "al ice", 1, "POST", "/v1/widgets", []byte(`{"id":"w2"}`)),
			wantStatus: 401, wantCode: "UNAUTHENTICATED"},
		{name: "signed by another actor's key", op: signOp(carolKey, "alice", 1, "POST", "/v1/widgets", []byte(`{"id":"w2"}`)),
			wantStatus: 401, wantCode: "UNAUTHENTICATED"},
		{name: "signed bytes altered", op: func() *Op {
			op := signOp(aliceKey, "alice", 1, "POST", "/v1/widgets", []byte(`{"id":"w2"}`))
			op.Body = []byte(`{"id":"w3"}`) // signed for w2
			return op
		}(), wantStatus: 401, wantCode: "UNAUTHENTICATED"},
		{name: "signature bit flipped", op: func() *Op {
			op := signOp(aliceKey, "alice", 1, "POST", "/v1/widgets", []byte(`{"id":"w2"}`))
			op.Signature[0] ^= 1
			return op
		}(), wantStatus: 401, wantCode: "UNAUTHENTICATED"},
		{name: "empty signature", op: func() *Op {
			op := signOp(aliceKey, "alice", 1, "POST", "/v1/widgets", []byte(`{"id":"w2"}`))
			op.Signature = nil
			return op
		}(), wantStatus: 401, wantCode: "UNAUTHENTICATED"},
		{name: "actor not registered yet", op: signOp(daveKey, "dave", 1, "POST", "/v1/widgets", []byte(`{"id":"w2"}`)),
			wantStatus: 401, wantCode: "UNAUTHENTICATED"},

		// Routing and roles.
		{name: "role allowed", op: signOp(aliceKey, "alice", 1, "POST", "/v1/widgets", []byte(`{"id":"w2"}`)),
			wantStatus: 201, wantBody: `{"id":"w2"}`,
			wantReads:  []protocol.Read{{Key: "actor/alice", Version: 2}},
			wantWrites: []KV{{Key: "widget/w2", Value: []byte(`{"id":"w2"}`)}}},
		{name: "role denied", op: signOp(carolKey, "carol", 1, "POST", "/v1/widgets", []byte(`{"id":"w2"}`)),
			wantStatus: 403, wantCode: "PERMISSION_DENIED"},
		{name: "admin is not every role", op: signOp(adminKey, "admin", 1, "POST", "/v1/widgets", []byte(`{"id":"w2"}`)),
			wantStatus: 403, wantCode: "PERMISSION_DENIED"},
		{name: "GET route via Apply", op: signOp(aliceKey, "alice", 1, "GET", "/v1/widgets/w1", nil),
			wantStatus: 405, wantCode: "METHOD_NOT_ALLOWED"},
		{name: "POST on a GET-only path", op: signOp(aliceKey, "alice", 1, "POST", "/v1/widgets/w1", nil),
			wantStatus: 405, wantCode: "METHOD_NOT_ALLOWED"},
		{name: "PUT on sessions", op: signOp(aliceKey, "alice", 1, "PUT", "/v1/sessions", nil),
			wantStatus: 405, wantCode: "METHOD_NOT_ALLOWED"},
		{name: "unknown path", op: signOp(aliceKey, "alice", 1, "POST", "/v1/gadgets", nil),
			wantStatus: 404, wantCode: "NOT_FOUND"},
		{name: "empty path parameter", op: signOp(aliceKey, "alice", 1, "POST", "/v1/widgets//fail", nil),
			wantStatus: 404, wantCode: "NOT_FOUND"},

		// Session start.
		{name: "session start", op: signOp(aliceKey, "alice", 0, "POST", "/v1/sessions", nil),
			wantStatus: 201,
			wantBody:   `{"session":{"id":"s-1","actor":"alice","status":"open","seq":0,"time":1700000000000}}`,
			wantReads:  []protocol.Read{{Key: "actor/alice", Version: 2}}},
		{name: "session start with body", op: signOp(carolKey, "carol", 0, "POST", "/v1/sessions", []byte(` {"b":1, "a":[2, 3]} `)),
			wantStatus: 201,
			wantBody:   `{"session":{"id":"s-1","actor":"carol","status":"open","seq":0,"time":1700000000000,"start":{"a":[2,3],"b":1}}}`,
			wantReads:  []protocol.Read{{Key: "actor/carol", Version: 3}}},
		{name: "session start with array body", op: signOp(aliceKey, "alice", 0, "POST", "/v1/sessions", []byte(`[1]`)),
			wantStatus: 400, wantCode: "MALFORMED"},
		{name: "session start with trailing data", op: signOp(aliceKey, "alice", 0, "POST", "/v1/sessions", []byte(`{} {}`)),
			wantStatus: 400, wantCode: "MALFORMED"},
		{name: "session start at seq 1", op: signOp(aliceKey, "alice", 1, "POST", "/v1/sessions", nil),
			wantStatus: 409, wantCode: "FAILED_PRECONDITION"},

		// Commit and abort.
		{name: "commit", op: signOp(aliceKey, "alice", 3, "POST", CommitPath(testSession), nil),
			wantStatus: 202,
			wantBody:   `{"session":{"id":"s-1","actor":"alice","status":"committing","seq":3,"time":1700000000000}}`,
			wantReads:  []protocol.Read{{Key: "actor/alice", Version: 2}}},
		{name: "commit of another session", op: signOp(aliceKey, "alice", 3, "POST", CommitPath("s-2"), nil),
			wantStatus: 400, wantCode: "INVALID_ARGUMENT"},
		{name: "commit at seq 0", op: signOp(aliceKey, "alice", 0, "POST", CommitPath(testSession), nil),
			wantStatus: 409, wantCode: "FAILED_PRECONDITION"},
		{name: "abort", op: signOp(carolKey, "carol", 2, "DELETE", AbortPath(testSession), nil),
			wantStatus: 200,
			wantBody:   `{"session":{"id":"s-1","actor":"carol","status":"aborted","seq":2,"time":1700000000000}}`,
			wantReads:  []protocol.Read{{Key: "actor/carol", Version: 3}}},
		{name: "abort of another session", op: signOp(carolKey, "carol", 2, "DELETE", AbortPath("s-2"), nil),
			wantStatus: 400, wantCode: "INVALID_ARGUMENT"},
		{name: "abort at seq 0", op: signOp(carolKey, "carol", 0, "DELETE", AbortPath(testSession), nil),
			wantStatus: 409, wantCode: "FAILED_PRECONDITION"},

		// The actor registry.
		{name: "admin creates actor", op: signOp(adminKey, "admin", 1, "POST", PathActors, actorJSON("dave", "supplier", "dave's", pubKey(daveKey))),
			wantStatus: 201,
			wantBody:   `{"actor":{"id":"dave","role":"supplier","org":"dave's","public_key":"` + b64(pubKey(daveKey)) + `"}}`,
			wantReads:  []protocol.Read{{Key: "actor/admin", Version: 1}, {Key: "actor/dave", Version: 0}},
			wantWrites: []KV{{Key: "actor/dave", Value: actorJSON("dave", "supplier", "dave's", pubKey(daveKey))}}},
		{name: "non-admin creates actor", op: signOp(aliceKey, "alice", 1, "POST", PathActors, actorJSON("dave", "supplier", "x", pubKey(daveKey))),
			wantStatus: 403, wantCode: "PERMISSION_DENIED"},
		{name: "duplicate actor", op: signOp(adminKey, "admin", 1, "POST", PathActors, actorJSON("alice", "supplier", "x", pubKey(daveKey))),
			wantStatus: 409, wantCode: "CONFLICT"},
		{name: "public key too short", op: signOp(adminKey, "admin", 1, "POST", PathActors, actorJSON("dave", "supplier", "x", pubKey(daveKey)[:31])),
			wantStatus: 400, wantCode: "INVALID_ARGUMENT"},
		{name: "public key missing", op: signOp(adminKey, "admin", 1, "POST", PathActors, []byte(`{"id":"dave","role":"supplier","org":"x"}`)),
			wantStatus: 400, wantCode: "INVALID_ARGUMENT"},
		{name: "public key not base64", op: signOp(adminKey, "admin", 1, "POST", PathActors, []byte(`{"id":"dave","role":"supplier","org":"x","public_key":"!!"}`)),
			wantStatus: 400, wantCode: "MALFORMED"},
		{name: "actor with bad id", op: signOp(adminKey, "admin", 1, "POST", PathActors, actorJSON("da ve", "supplier", "x", pubKey(daveKey))),
			wantStatus: 400, wantCode: "INVALID_ARGUMENT"},
		{name: "actor with bad role", op: signOp(adminKey, "admin", 1, "POST", PathActors, actorJSON("dave", "", "x", pubKey(daveKey))),
			wantStatus: 400, wantCode: "INVALID_ARGUMENT"},
		{name: "actor with unknown field", op: signOp(adminKey, "admin", 1, "POST", PathActors, []byte(`{"id":"dave","role":"supplier","org":"x","admin":true}`)),
			wantStatus: 400, wantCode: "MALFORMED"},

		// The op-level journal.
		{name: "failed handler", op: signOp(aliceKey, "alice", 1, "POST", "/v1/widgets/w1/fail", nil),
			wantStatus: 409, wantCode: "FAILED_PRECONDITION"},
		{name: "write to reserved key space", op: signOp(aliceKey, "alice", 1, "POST", "/v1/reserved", nil),
			wantStatus: 500, wantCode: "INTERNAL"},
	}
	r := testRegistry()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tx := NewTx(testStore())
			resp := must(t)(r.Apply(tx, tt.op))
			if resp.Status != tt.wantStatus {
				t.Errorf("status = %d, want %d (body %s)", resp.Status, tt.wantStatus, resp.Body)
			}
			if tt.wantCode != "" {
				if got := errorCode(resp.Body); got != tt.wantCode {
					t.Errorf("error code = %q, want %q (body %s)", got, tt.wantCode, resp.Body)
				}
			}
			if tt.wantBody != "" && string(resp.Body) != tt.wantBody {
				t.Errorf("body:\ngot  %s\nwant %s", resp.Body, tt.wantBody)
			}
			if resp.OK() != (tt.wantStatus/100 == 2) {
				t.Errorf("OK() = %v for status %d", resp.OK(), resp.Status)
			}
			want := tt.wantReads
			if want == nil {
				want = []protocol.Read{}
			}
			checkReads(t, tx, want)
			checkWrites(t, tx, tt.wantWrites)
			if tx.err != nil || tx.opReads != nil || tx.opWrites != nil {
				t.Errorf("op journal left behind: err %v, %d reads, %d writes", tx.err, len(tx.opReads), len(tx.opWrites))
			}
		})
	}
}

func TestApplySession(t *testing.T) {
	// One session of several ops on one Tx: failed ops leave no trace in the
	// read or write set, and later ops see the kept writes.
	st := testStore()
	r := testRegistry()
	tx := NewTx(st)
	steps := []struct {
		op         *Op
		wantStatus int
		wantBody   string
	}{
		{op: signOp(adminKey, "admin", 0, "POST", PathSessions, nil), wantStatus: 201},
		{op: signOp(adminKey, "admin", 1, "POST", "/v1/widgets/w1/fail", nil), wantStatus: 409},
		{op: signOp(adminKey, "admin", 2, "POST", "/v1/reserved", nil), wantStatus: 500},
		{op: signOp(adminKey, "admin", 3, "POST", "/v1/append/tally", nil), wantStatus: 200, wantBody: `{"was":""}`},
		{op: signOp(adminKey, "admin", 4, "POST", PathActors, actorJSON("dave", "operator", "d", pubKey(daveKey))), wantStatus: 201},
		{op: signOp(adminKey, "admin", 5, "POST", PathActors, actorJSON("dave", "operator", "d", pubKey(daveKey))), wantStatus: 409},
		// Dave, registered by this session, can act in it.
		{op: signOp(daveKey, "dave", 6, "POST", "/v1/widgets", []byte(`{"id":"w9"}`)), wantStatus: 201},
		{op: signOp(adminKey, "admin", 7, "POST", "/v1/append/counter", nil), wantStatus: 200, wantBody: `{"was":""}`},
		{op: signOp(adminKey, "admin", 8, "POST", "/v1/append/counter", nil), wantStatus: 200, wantBody: `{"was":"x"}`},
		{op: signOp(adminKey, "admin", 9, "POST", CommitPath(testSession), nil), wantStatus: 202},
	}
	for i, s := range steps {
		resp := must(t)(r.Apply(tx, s.op))
		if resp.Status != s.wantStatus {
			t.Errorf("step %d (%s %s): status = %d, want %d (body %s)", i, s.op.Method, s.op.Path, resp.Status, s.wantStatus, resp.Body)
		}
		if s.wantBody != "" && string(resp.Body) != s.wantBody {
			t.Errorf("step %d (%s %s): body = %s, want %s", i, s.op.Method, s.op.Path, resp.Body, s.wantBody)
		}
	}
	checkReads(t, tx, []protocol.Read{
		{Key: "actor/admin", Version: 1},
		{Key: "actor/dave", Version: 0},
		{Key: "counter", Version: 0},
		{Key: "tally", Version: 0},
	})
	checkWrites(t, tx, []KV{
		{Key: "actor/dave", Value: actorJSON("dave", "operator", "d", pubKey(daveKey))},
		{Key: "counter", Value: []byte("xx")},
		{Key: "tally", Value: []byte("x")},
		{Key: "widget/w9", Value: []byte(`{"id":"w9"}`)},
	})
}

func TestApplyFailedOpReadsDoNotEnterReadSet(t *testing.T) {
	st := testStore()
	r := testRegistry()
	tx := NewTx(st)
	if got := must(t)(r.Apply(tx, signOp(aliceKey, "alice", 1, "POST", "/v1/widgets/w1/fail", nil))).Status; got != 409 {
		t.Fatalf("fail op: status = %d, want 409", got)
	}
	// The failed op read "other" at version 5. The committed state moves
	// on; a later op reads "other" anew and the read set names only what
	// that op saw.
	st.set("other", "O2", 8)
	resp := must(t)(r.Apply(tx, signOp(aliceKey, "alice", 2, "POST", "/v1/append/other", nil)))
	if resp.Status != 200 || string(resp.Body) != `{"was":"O2"}` {
		t.Fatalf("append: got %d %s, want 200 {\"was\":\"O2\"}", resp.Status, resp.Body)
	}
	checkReads(t, tx, []protocol.Read{{Key: "actor/alice", Version: 2}, {Key: "other", Version: 8}})
	checkWrites(t, tx, []KV{{Key: "other", Value: []byte("O2x")}})
}

func TestMatch(t *testing.T) {
	r := testRegistry()
	tests := []struct {
		method, path string
		wantPattern  string // "" for no route
		wantParams   []string
		wantFound    bool
	}{
		{"POST", "/v1/sessions", "/v1/sessions", nil, true},
		{"POST", "/v1/sessions/abc/commit", "/v1/sessions/{id}/commit", []string{"id", "abc"}, true},
		{"DELETE", "/v1/sessions/abc", "/v1/sessions/{id}", []string{"id", "abc"}, true},
		{"GET", "/v1/widgets/w1", "/v1/widgets/{id}", []string{"id", "w1"}, true},
		{"POST", "/v1/widgets/w.1/fail", "/v1/widgets/{id}/fail", []string{"id", "w.1"}, true},
		{"POST", "/v1/actors", "/v1/actors", nil, true},
		// The path exists, the method does not: 405.
		{"GET", "/v1/sessions", "", nil, true},
		{"GET", "/v1/sessions/abc/commit", "", nil, true},
		{"POST", "/v1/sessions/abc", "", nil, true},
		{"POST", "/v1/widgets/w1", "", nil, true},
		{"post", "/v1/sessions", "", nil, true},
		// No route has the path: 404.
		{"POST", "/v1/gadgets", "", nil, false},
		{"POST", "/v1/sessions/", "", nil, false},
		{"POST", "/v1/sessions//commit", "", nil, false},
		{"POST", "/v1/sessions/a/b/commit", "", nil, false},
		{"POST", "/v1/sessions/abc/commit/", "", nil, false},
		{"POST", "/v1/sessions/abc/COMMIT", "", nil, false},
		{"POST", "v1/sessions", "", nil, false},
		{"POST", "", "", nil, false},
		{"POST", "/", "", nil, false},
	}
	for _, tt := range tests {
		rt, params, found := r.Match(tt.method, tt.path)
		gotPattern := ""
		if rt != nil {
			gotPattern = rt.Pattern
			if rt.Method != tt.method {
				t.Errorf("Match(%s %q): route method = %s, want %s", tt.method, tt.path, rt.Method, tt.method)
			}
		}
		if gotPattern != tt.wantPattern || !reflect.DeepEqual(params, tt.wantParams) || found != tt.wantFound {
			t.Errorf("Match(%s %q) = %q, %q, %v; want %q, %q, %v",
				tt.method, tt.path, gotPattern, params, found, tt.wantPattern, tt.wantParams, tt.wantFound)
		}
	}
}

func TestRequestParam(t *testing.T) {
	req := &Request{params: []string{"id", "p1", "step", "scan"}}
	tests := []struct{ name, want string }{
		{"id", "p1"},
		{"step", "scan"},
		{"p1", ""},
		{"missing", ""},
		{"", ""},
	}
	for _, tt := range tests {
		if got := req.Param(tt.name); got != tt.want {
			t.Errorf("Param(%q) = %q, want %q", tt.name, got, tt.want)
		}
	}
	if got := (&Request{}).Param("id"); got != "" {
		t.Errorf("Param on a request without params = %q, want empty", got)
	}
}

func TestHandlePanics(t *testing.T) {
	nop := func(tx *Tx, ctx *Context, req *Request) Response { return Response{Status: 200} }
	tests := []struct {
		name         string
		method, path string
		wantPanic    string
	}{
		{"framework route", "POST", "/v1/sessions", "framework's namespace"},
		{"under the session routes", "POST", "/v1/sessions/{id}/archive", "framework's namespace"},
		{"the sessions path, other method", "GET", "/v1/sessions", "framework's namespace"},
		{"under the actor routes", "GET", "/v1/actors/{id}", "framework's namespace"},
		{"duplicate app route", "GET", "/v1/widgets/{id}", "duplicate route"},
		{"no leading slash", "POST", "v1/things", "must start with /"},
		{"empty pattern", "POST", "", "must start with /"},
		{"a name that only starts like a framework path", "POST", "/v1/sessions-archive", ""},
		{"new route", "POST", "/v1/things/{id}", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := testRegistry()
			n := len(r.Routes())
			var got string
			func() {
				defer func() {
					if p := recover(); p != nil {
						got, _ = p.(string)
						if got == "" {
							got = "non-string panic"
						}
					}
				}()
				r.Handle(tt.method, tt.path, nil, nop)
			}()
			switch {
			case tt.wantPanic == "" && got != "":
				t.Errorf("Handle(%s %q) panicked: %s", tt.method, tt.path, got)
			case tt.wantPanic != "" && !strings.Contains(got, tt.wantPanic):
				t.Errorf("Handle(%s %q) panic = %q, want one containing %q", tt.method, tt.path, got, tt.wantPanic)
			}
			wantN := n
			if tt.wantPanic == "" {
				wantN++
			}
			if got := len(r.Routes()); got != wantN {
				t.Errorf("routes after Handle = %d, want %d", got, wantN)
			}
		})
	}
}

func TestFrameworkRoutes(t *testing.T) {
	var got []string
	for _, rt := range NewRegistry().Routes() {
		got = append(got, rt.Method+" "+rt.Pattern+" "+strings.Join(rt.Roles, ","))
	}
	want := []string{
		"POST /v1/sessions ",
		"POST /v1/sessions/{id}/commit ",
		"DELETE /v1/sessions/{id} ",
		"POST /v1/actors admin",
		"POST /v1/actors/{id}/key admin",
		"DELETE /v1/actors/{id} admin",
		"GET /v1/actors/{id} ",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("framework routes = %q, want %q", got, want)
	}
	if got, want := CommitPath("s-1"), "/v1/sessions/s-1/commit"; got != want {
		t.Errorf("CommitPath = %q, want %q", got, want)
	}
	if got, want := AbortPath("s-1"), "/v1/sessions/s-1"; got != want {
		t.Errorf("AbortPath = %q, want %q", got, want)
	}
}

func TestQuery(t *testing.T) {
	r := testRegistry()
	st := testStore()
	tests := []struct {
		path       string
		wantStatus int
		wantBody   string
	}{
		{"/v1/widgets/w1", 200, "old"},
		{"/v1/widgets/w2", 404, `{"error":{"code":"NOT_FOUND","message":"no widget"}}`},
		{"/v1/gadgets", 404, `{"error":{"code":"NOT_FOUND","message":"no route GET /v1/gadgets"}}`},
		{"/v1/sessions", 404, `{"error":{"code":"NOT_FOUND","message":"no route GET /v1/sessions"}}`},
		{"/v1/bad", 500, ""},
	}
	for _, tt := range tests {
		resp := must(t)(r.Query(st, tt.path))
		if resp.Status != tt.wantStatus {
			t.Errorf("Query(%q) status = %d, want %d (body %s)", tt.path, resp.Status, tt.wantStatus, resp.Body)
		}
		if tt.wantBody != "" && string(resp.Body) != tt.wantBody {
			t.Errorf("Query(%q) body = %s, want %s", tt.path, resp.Body, tt.wantBody)
		}
	}
	// The query's write went nowhere.
	if v, _, _ := st.Get("widget/w1"); string(v) != "old" {
		t.Errorf("store widget/w1 after a query = %q, want %q", v, "old")
	}
}

func TestResponse(t *testing.T) {
	tests := []struct {
		status int
		want   bool
	}{{199, false}, {200, true}, {201, true}, {202, true}, {299, true}, {300, false}, {404, false}, {500, false}, {0, false}}
	for _, tt := range tests {
		if got := (Response{Status: tt.status}).OK(); got != tt.want {
			t.Errorf("Response{Status: %d}.OK() = %v, want %v", tt.status, got, tt.want)
		}
	}
	r := Response{Status: 201, Body: []byte(`{"a":1}`)}
	if got, want := r.Hash(), protocol.ResultHash(201, []byte(`{"a":1}`)); got != want {
		t.Errorf("Response.Hash = %s, want %s", got, want)
	}
	if got, want := string(Error(409, "CONFLICT", `say "hi"`).Body), `{"error":{"code":"CONFLICT","message":"say \"hi\""}}`; got != want {
		t.Errorf("Error body = %s, want %s", got, want)
	}
}

// must fails the test on a store error of Apply or Query:
// must(t)(r.Apply(tx, op)) is the response.
func must(t testing.TB) func(Response, error) Response {
	return func(resp Response, err error) Response {
		t.Helper()
		if err != nil {
			t.Fatalf("store error: %v", err)
		}
		return resp
	}
}
