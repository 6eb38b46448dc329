package service

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/duet-bft/duet/protocol"
)

// TestClassify is the one definition of what an op is to its session. An
// app route that merely starts like the session routes is an ordinary op:
// L1 once called /v1/sessions-archive session control while L2 did not, and
// an honest L2 signed a receipt for a session L1 then refused.
func TestClassify(t *testing.T) {
	tests := []struct {
		seq          uint64
		method, path string
		want         OpKind
	}{
		{0, "POST", "/v1/sessions", KindStart},
		{0, "PUT", "/v1/sessions", KindInvalid},
		{0, "POST", "/v1/packages", KindDirect},
		{0, "POST", "/v1/sessions-archive", KindDirect},
		{0, "POST", "/v1/sessions/s-1/commit", KindInvalid},
		{0, "DELETE", "/v1/sessions/s-1", KindInvalid},
		{3, "POST", "/v1/packages/p/scan", KindStep},
		{3, "POST", "/v1/sessions-archive", KindStep},
		{3, "POST", "/v1/sessions/s-1/commit", KindCommit},
		{3, "DELETE", "/v1/sessions/s-1", KindAbort},
		{3, "POST", "/v1/sessions/s-2/commit", KindInvalid},
		{3, "DELETE", "/v1/sessions/s-2", KindInvalid},
		{3, "POST", "/v1/sessions", KindInvalid},
		{3, "POST", "/v1/sessions/s-1", KindInvalid},
		{3, "PUT", "/v1/sessions/s-1/commit", KindInvalid},
	}
	for _, tt := range tests {
		if got := Classify("s-1", tt.seq, tt.method, tt.path); got != tt.want {
			t.Errorf("Classify(s-1, %d, %s %s) = %d, want %d", tt.seq, tt.method, tt.path, got, tt.want)
		}
	}
}

// TestWeakKeysRefused reproduces an admin registering an operator whose key
// is 32 zero bytes: with ZIP-215 rules anyone can sign for it. Every
// small-order or non-canonical key is refused, in genesis and by the
// registry and rotation routes.
func TestWeakKeysRefused(t *testing.T) {
	r := NewRegistry()
	st := testStore()
	zero := make([]byte, 32)
	identity, _ := hex.DecodeString("0100000000000000000000000000000000000000000000000000000000000000")
	nonCanonical, _ := hex.DecodeString("eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f")
	for _, key := range [][]byte{zero, identity, nonCanonical} {
		body := actorJSON("weak", "operator", "acme", key)
		resp := must(t)(r.Apply(NewTx(st), signOpIn(adminKey, "admin", "s-w", 0, http.MethodPost, PathActors, body)))
		if resp.Status != http.StatusBadRequest || !strings.Contains(string(resp.Body), "public_key") {
			t.Errorf("register key %x: got %d %s, want 400 naming public_key", key, resp.Status, resp.Body)
		}
		if err := r.InitGenesis(NewTx(newMemStore()), []byte(genesisJSON(body))); err == nil {
			t.Errorf("genesis with key %x: accepted", key)
		}
		rot := fmt.Sprintf(`{"public_key":%q}`, base64.StdEncoding.EncodeToString(key))
		resp = must(t)(r.Apply(NewTx(st), signOpIn(adminKey, "admin", "s-w", 0, http.MethodPost, PathActors+"/alice/key", []byte(rot))))
		if resp.Status != http.StatusBadRequest {
			t.Errorf("rotate to key %x: got %d %s, want 400", key, resp.Status, resp.Body)
		}
	}
	// What the weak key would allow: a constant signature verifies.
	forged := append(append([]byte(nil), identity...), make([]byte, 32)...)
	if !protocol.Verify(zero, []byte("anything"), forged) {
		t.Fatal("the constant signature no longer verifies for the zero key; the test shows nothing")
	}
}

// TestRotateAndRevoke: an admin rotates and revokes actor keys with signed
// ops; the old key, and a revoked actor, can sign nothing more.
func TestRotateAndRevoke(t *testing.T) {
	r := testRegistry()
	st := testStore()
	apply := func(op *Op) Response {
		tx := NewTx(st)
		resp := must(t)(r.Apply(tx, op))
		for _, kv := range tx.Writes() {
			st.set(kv.Key, string(kv.Value), 9)
		}
		return resp
	}
	widget := func(key []byte, id string) *Op {
		return signOpIn(key, "alice", "s-"+id, 0, http.MethodPost, "/v1/widgets", []byte(`{"id":"`+id+`"}`))
	}
	if resp := apply(widget(aliceKey, "w-a")); resp.Status != http.StatusCreated {
		t.Fatalf("alice before rotation: %d %s", resp.Status, resp.Body)
	}
	rot := []byte(fmt.Sprintf(`{"public_key":%q}`, base64.StdEncoding.EncodeToString(pubKey(daveKey))))
	if resp := apply(signOpIn(aliceKey, "alice", "s-r", 0, http.MethodPost, PathActors+"/alice/key", rot)); resp.Status != http.StatusForbidden {
		t.Errorf("an operator rotates a key: %d %s, want 403", resp.Status, resp.Body)
	}
	if resp := apply(signOpIn(adminKey, "admin", "s-r", 0, http.MethodPost, PathActors+"/admin/key", rot)); resp.Status != http.StatusConflict {
		t.Errorf("an admin rotates its own key: %d %s, want 409", resp.Status, resp.Body)
	}
	if resp := apply(signOpIn(adminKey, "admin", "s-r", 0, http.MethodPost, PathActors+"/nobody/key", rot)); resp.Status != http.StatusNotFound {
		t.Errorf("rotate an unknown actor: %d %s, want 404", resp.Status, resp.Body)
	}
	if resp := apply(signOpIn(adminKey, "admin", "s-r", 0, http.MethodPost, PathActors+"/alice/key", rot)); resp.Status != http.StatusOK {
		t.Fatalf("rotate alice: %d %s", resp.Status, resp.Body)
	}
	if resp := apply(widget(aliceKey, "w-b")); resp.Status != http.StatusUnauthorized {
		t.Errorf("alice's old key after rotation: %d %s, want 401", resp.Status, resp.Body)
	}
	if resp := apply(widget(daveKey, "w-c")); resp.Status != http.StatusCreated {
		t.Errorf("alice's new key: %d %s, want 201", resp.Status, resp.Body)
	}
	if resp := apply(signOpIn(adminKey, "admin", "s-v", 0, http.MethodDelete, PathActors+"/alice", []byte(`{"x":1}`))); resp.Status != http.StatusBadRequest {
		t.Errorf("revoke with a body: %d %s, want 400", resp.Status, resp.Body)
	}
	if resp := apply(signOpIn(adminKey, "admin", "s-v", 0, http.MethodDelete, PathActors+"/alice", nil)); resp.Status != http.StatusOK {
		t.Fatalf("revoke alice: %d %s", resp.Status, resp.Body)
	}
	resp := apply(widget(daveKey, "w-d"))
	if resp.Status != http.StatusUnauthorized || !strings.Contains(string(resp.Body), "revoked") {
		t.Errorf("a revoked actor signs: %d %s, want 401 saying revoked", resp.Status, resp.Body)
	}
	if resp := apply(signOpIn(adminKey, "admin", "s-v", 0, http.MethodDelete, PathActors+"/alice", nil)); resp.Status != http.StatusConflict {
		t.Errorf("revoke twice: %d %s, want 409", resp.Status, resp.Body)
	}
	if resp := apply(signOpIn(adminKey, "admin", "s-r", 0, http.MethodPost, PathActors+"/alice/key", rot)); resp.Status != http.StatusConflict {
		t.Errorf("rotate a revoked actor: %d %s, want 409", resp.Status, resp.Body)
	}
	if a, ok := LoadActor(NewTx(st), "alice"); ok {
		t.Errorf("LoadActor(revoked alice) = %+v, true; want not found", a)
	}
	if resp := apply(signOpIn(adminKey, "admin", "s-n", 0, http.MethodPost, PathActors, []byte(`{"id":"eve","role":"operator","org":"x","public_key":"`+
		base64.StdEncoding.EncodeToString(pubKey(malloryKey))+`","revoked":true}`))); resp.Status != http.StatusBadRequest {
		t.Errorf("register a revoked actor: %d %s, want 400", resp.Status, resp.Body)
	}
}

// TestControlBody: a commit or abort carries no body but {} (an L2 node
// keeps room for exactly that in every session).
func TestControlBody(t *testing.T) {
	r := NewRegistry()
	for _, tt := range []struct {
		body string
		want int
	}{{"", http.StatusAccepted}, {"{}", http.StatusAccepted}, {"{ }", http.StatusBadRequest}, {strings.Repeat("x", 1000), http.StatusBadRequest}} {
		resp := must(t)(r.Apply(NewTx(testStore()), signOp(aliceKey, "alice", 2, http.MethodPost, CommitPath(testSession), []byte(tt.body))))
		if resp.Status != tt.want {
			t.Errorf("commit with body %.20q: %d %s, want %d", tt.body, resp.Status, resp.Body, tt.want)
		}
	}
}

// TestTxLimits: a session can read at most protocol.MaxReads keys and
// MaxTxBytes of keys and values; the op that goes over gets 413 and leaves
// nothing behind. A key that cannot exist is not recorded at all.
func TestTxLimits(t *testing.T) {
	r := NewRegistry()
	r.Handle(http.MethodPost, "/v1/read/{n}", nil, func(tx *Tx, ctx *Context, req *Request) Response {
		var n int
		fmt.Sscan(req.Param("n"), &n)
		for i := range n {
			tx.Get(fmt.Sprintf("k/%d/%d", ctx.Seq, i))
		}
		return JSON(http.StatusOK, n)
	})
	r.Handle(http.MethodPost, "/v1/write/{n}", nil, func(tx *Tx, ctx *Context, req *Request) Response {
		var n int
		fmt.Sscan(req.Param("n"), &n)
		tx.Put(fmt.Sprintf("w/%d", ctx.Seq), make([]byte, n))
		return JSON(http.StatusOK, n)
	})
	st := testStore()
	tx := NewTx(st)
	do := func(seq uint64, path string) Response {
		return must(t)(r.Apply(tx, signOp(aliceKey, "alice", seq, http.MethodPost, path, nil)))
	}
	if resp := do(1, fmt.Sprintf("/v1/read/%d", protocol.MaxReads-10)); resp.Status != http.StatusOK {
		t.Fatalf("reads within the limit: %d %s", resp.Status, resp.Body)
	}
	before, _ := tx.ReadSetSize()
	if resp := do(2, "/v1/read/20"); resp.Status != http.StatusRequestEntityTooLarge || errorCode(resp.Body) != "TOO_LARGE" {
		t.Errorf("reads over the limit: %d %s, want 413 TOO_LARGE", resp.Status, resp.Body)
	}
	if after, _ := tx.ReadSetSize(); after != before {
		t.Errorf("read set %d after a refused op, want %d", after, before)
	}
	tx = NewTx(st)
	if resp := do(1, fmt.Sprintf("/v1/write/%d", MaxTxBytes/2)); resp.Status != http.StatusOK {
		t.Fatalf("a write within the limit: %d %s", resp.Status, resp.Body)
	}
	if resp := do(2, fmt.Sprintf("/v1/write/%d", MaxTxBytes/2)); resp.Status != http.StatusRequestEntityTooLarge {
		t.Errorf("a write over the limit: %d %s, want 413", resp.Status, resp.Body)
	}
	if got := len(tx.Writes()); got != 1 {
		t.Errorf("%d writes after a refused op, want 1", got)
	}
	// Keys that cannot exist are not found and not recorded.
	tx = NewTx(st)
	for _, k := range []string{"", strings.Repeat("k", protocol.MaxKeyLen+1)} {
		if _, ok := tx.Get(k); ok {
			t.Errorf("Get(%.10q) found something", k)
		}
	}
	tx.keep()
	if n, _ := tx.ReadSetSize(); n != 0 {
		t.Errorf("read set of %d after impossible keys, want 0", n)
	}
	// A caller's limit refuses with 413, or with its own status.
	tx = NewTx(st)
	tx.Limit(func(tx *Tx, resp Response) error { return errors.New("too big for this node") })
	if resp := do(1, "/v1/write/1"); resp.Status != http.StatusRequestEntityTooLarge || !strings.Contains(string(resp.Body), "too big for this node") {
		t.Errorf("caller limit: %d %s, want 413 with its message", resp.Status, resp.Body)
	}
	tx.Limit(func(tx *Tx, resp Response) error {
		return Refuse(http.StatusTooManyRequests, "QUOTA_EXCEEDED", "over quota")
	})
	if resp := do(1, "/v1/write/1"); resp.Status != http.StatusTooManyRequests || errorCode(resp.Body) != "QUOTA_EXCEEDED" {
		t.Errorf("caller refusal: %d %s, want 429 QUOTA_EXCEEDED", resp.Status, resp.Body)
	}
	if got := len(tx.Writes()); got != 0 {
		t.Errorf("%d writes after refused ops, want 0", got)
	}
}

// TestQueryRecovers: a read handler that panics answers 500; it cannot take
// down a validator through ABCI Query. And a zero Registry does not panic.
func TestQueryRecovers(t *testing.T) {
	r := NewRegistry()
	r.Handle(http.MethodGet, "/v1/panic", nil, func(tx *Tx, ctx *Context, req *Request) Response { panic("boom") })
	if resp := must(t)(r.Query(testStore(), "/v1/panic")); resp.Status != http.StatusInternalServerError {
		t.Errorf("panicking query: %d %s, want 500", resp.Status, resp.Body)
	}
	var zero Registry
	if resp := must(t)(zero.Apply(NewTx(testStore()), signOp(aliceKey, "alice", 0, http.MethodPost, "/v1/x", nil))); resp.Status != http.StatusNotFound {
		t.Errorf("zero registry: %d %s, want 404", resp.Status, resp.Body)
	}
}

// TestLargeGenesis: the genesis is not a session; a consortium may start
// with more actors than one session could read or write.
func TestLargeGenesis(t *testing.T) {
	var actors [][]byte
	for i := range protocol.MaxReads + 10 {
		actors = append(actors, actorJSON(fmt.Sprintf("op-%d", i), "operator", "acme", pubKey(aliceKey)))
	}
	tx := NewTx(newMemStore())
	if err := NewRegistry().InitGenesis(tx, []byte(genesisJSON(actors...))); err != nil {
		t.Fatalf("InitGenesis of %d actors: %v", len(actors), err)
	}
	if got := len(tx.Writes()); got != len(actors) {
		t.Errorf("%d actors written, want %d", got, len(actors))
	}
	// A session on the same Tx type is bounded again.
	if _, ok := tx.Get("x"); ok || tx.genesis {
		t.Error("the genesis flag outlived InitGenesis")
	}
}
