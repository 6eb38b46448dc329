package service

import (
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/duet-bft/duet/protocol"
)

func genesisJSON(actors ...[]byte) string {
	var parts []string
	for _, a := range actors {
		parts = append(parts, string(a))
	}
	return `{"actors":[` + strings.Join(parts, ",") + `]}`
}

func TestInitGenesis(t *testing.T) {
	admin := actorJSON("admin", RoleAdmin, "duet", pubKey(adminKey))
	alice := actorJSON("alice", "operator", "acme", pubKey(aliceKey))
	node := actorJSON("node-1", RoleL2, "duet", pubKey(carolKey))
	tests := []struct {
		name       string
		base       func(st *memStore)
		raw        string
		wantErr    string // substring; "" for success
		wantWrites []KV
	}{
		{name: "actors", raw: genesisJSON(admin, alice, node),
			wantWrites: []KV{{Key: "actor/admin", Value: admin}, {Key: "actor/alice", Value: alice}, {Key: "actor/node-1", Value: node}}},
		{name: "empty", raw: ""},
		{name: "whitespace", raw: " \n\t"},
		{name: "empty object", raw: "{}"},
		{name: "no actors", raw: `{"actors":[]}`},
		{name: "duplicate in genesis", raw: genesisJSON(admin, alice, admin), wantErr: `genesis actor "admin": duplicate`},
		{name: "duplicate of stored actor", raw: genesisJSON(alice),
			base:    func(st *memStore) { st.set("actor/alice", string(alice), 1) },
			wantErr: `genesis actor "alice": duplicate`},
		{name: "bad id", raw: genesisJSON(actorJSON("a b", "operator", "x", pubKey(aliceKey))), wantErr: "genesis actor"},
		{name: "empty id", raw: genesisJSON(actorJSON("", "operator", "x", pubKey(aliceKey))), wantErr: "genesis actor"},
		{name: "bad role", raw: genesisJSON(actorJSON("a", "op/erator", "x", pubKey(aliceKey))), wantErr: "role"},
		{name: "empty org", raw: genesisJSON(actorJSON("a", "operator", "", pubKey(aliceKey))), wantErr: "org"},
		{name: "org too long", raw: genesisJSON(actorJSON("a", "operator", strings.Repeat("o", 129), pubKey(aliceKey))), wantErr: "org"},
		{name: "short key", raw: genesisJSON(actorJSON("a", "operator", "x", pubKey(aliceKey)[:16])), wantErr: "public_key"},
		{name: "long key", raw: genesisJSON(actorJSON("a", "operator", "x", append(pubKey(aliceKey), 0))), wantErr: "public_key"},
		{name: "no key", raw: `{"actors":[{"id":"a","role":"operator","org":"x"}]}`, wantErr: "public_key"},
		{name: "unknown top-level field", raw: `{"actors":[],"validators":[]}`, wantErr: "unknown field"},
		{name: "unknown actor field", raw: `{"actors":[{"id":"a","role":"operator","org":"x","pubkey":""}]}`, wantErr: "unknown field"},
		{name: "trailing data", raw: genesisJSON(admin) + `{}`, wantErr: "trailing"},
		{name: "not an object", raw: `[]`, wantErr: "genesis app_state"},
		{name: "app without loader", raw: `{"actors":[],"app":{"anything":1}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := newMemStore()
			if tt.base != nil {
				tt.base(st)
			}
			tx := NewTx(st)
			err := NewRegistry().InitGenesis(tx, json.RawMessage(tt.raw))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("InitGenesis = %v, want nil", err)
				}
				checkWrites(t, tx, tt.wantWrites)
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("InitGenesis = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestInitGenesisLoadsActors(t *testing.T) {
	// Actors from genesis can sign ops straight away.
	tx := NewTx(newMemStore())
	r := testRegistry()
	raw := genesisJSON(actorJSON("admin", RoleAdmin, "duet", pubKey(adminKey)), actorJSON("alice", "operator", "acme", pubKey(aliceKey)))
	if err := r.InitGenesis(tx, json.RawMessage(raw)); err != nil {
		t.Fatalf("InitGenesis: %v", err)
	}
	a, ok := LoadActor(tx, "alice")
	if want := (Actor{ID: "alice", Role: "operator", Org: "acme", PublicKey: pubKey(aliceKey)}); !ok || !reflect.DeepEqual(a, want) {
		t.Errorf("LoadActor(alice) = %+v, %v; want %+v, true", a, ok, want)
	}
	if got := must(t)(r.Apply(tx, signOp(aliceKey, "alice", 1, "POST", "/v1/widgets", []byte(`{"id":"w1"}`)))).Status; got != 201 {
		t.Errorf("Apply by a genesis actor: status = %d, want 201", got)
	}
	if _, ok := LoadActor(tx, "nobody"); ok {
		t.Error("LoadActor(nobody) found an actor")
	}
	if _, ok := LoadActor(tx, "bad id"); ok {
		t.Error("LoadActor(bad id) found an actor")
	}
}

func TestInitGenesisApp(t *testing.T) {
	errApp := errors.New("app: bad genesis")
	tests := []struct {
		name       string
		raw        string
		loader     GenesisFunc
		wantApp    string // what the loader must receive; "" if it must not run
		wantErr    error
		wantAnyErr bool
		wantWrites []KV
	}{
		{name: "loader runs", raw: `{"app":{"widgets":["w1"]}}`, wantApp: `{"widgets":["w1"]}`,
			loader:     func(tx *Tx, app json.RawMessage) error { tx.Put("widgets", app); return nil },
			wantWrites: []KV{{Key: "widgets", Value: []byte(`{"widgets":["w1"]}`)}}},
		{name: "no app", raw: `{"actors":[]}`,
			loader: func(tx *Tx, app json.RawMessage) error { return errApp }},
		{name: "loader error", raw: `{"app":{}}`, wantApp: `{}`, wantErr: errApp,
			loader: func(tx *Tx, app json.RawMessage) error { return errApp }},
		{name: "loader writes reserved key", raw: `{"app":1}`, wantApp: `1`, wantErr: ErrReserved,
			loader: func(tx *Tx, app json.RawMessage) error { tx.Put("ledger/x", app); return nil }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var gotApp string
			r := NewRegistry()
			r.Genesis(func(tx *Tx, app json.RawMessage) error {
				gotApp = string(app)
				return tt.loader(tx, app)
			})
			tx := NewTx(newMemStore())
			err := r.InitGenesis(tx, json.RawMessage(tt.raw))
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Errorf("InitGenesis = %v, want %v", err, tt.wantErr)
			}
			if gotApp != tt.wantApp {
				t.Errorf("loader got app %q, want %q", gotApp, tt.wantApp)
			}
			if err == nil {
				checkWrites(t, tx, tt.wantWrites)
			}
		})
	}
}

func TestActorValidate(t *testing.T) {
	good := Actor{ID: "a", Role: "r", Org: "o", PublicKey: pubKey(aliceKey)}
	tests := []struct {
		name    string
		mutate  func(a *Actor)
		wantErr bool
	}{
		{"valid", func(a *Actor) {}, false},
		{"org of 128 bytes", func(a *Actor) { a.Org = strings.Repeat("o", 128) }, false},
		{"bad id", func(a *Actor) { a.ID = "a:b" }, true},
		{"bad role", func(a *Actor) { a.Role = strings.Repeat("r", protocol.MaxIDLen+1) }, true},
		{"empty org", func(a *Actor) { a.Org = "" }, true},
		{"org of 129 bytes", func(a *Actor) { a.Org = strings.Repeat("o", 129) }, true},
		{"nil key", func(a *Actor) { a.PublicKey = nil }, true},
	}
	for _, tt := range tests {
		a := good
		tt.mutate(&a)
		if err := a.Validate(); (err != nil) != tt.wantErr {
			t.Errorf("%s: Validate = %v, want error %v", tt.name, err, tt.wantErr)
		}
	}
	a := good
	a.ID = ""
	if err := a.Validate(); !errors.Is(err, protocol.ErrBadID) {
		t.Errorf("Validate with empty id = %v, want ErrBadID", err)
	}
}

func TestDecodeJSON(t *testing.T) {
	type T struct {
		A int    `json:"a"`
		B string `json:"b,omitempty"`
	}
	tests := []struct {
		in      string
		want    T
		wantErr string
	}{
		{in: `{"a":1}`, want: T{A: 1}},
		{in: ` {"a":1,"b":"x"} `, want: T{A: 1, B: "x"}},
		{in: "{\"a\":1}\n", want: T{A: 1}},
		{in: `{}`, want: T{}},
		{in: `{"a":1,"c":2}`, wantErr: "unknown field"},
		{in: `{"A":1,"c":2}`, wantErr: "unknown field"},
		{in: `{"a":1}{"a":2}`, wantErr: "trailing data"},
		{in: `{"a":1} {}`, wantErr: "trailing data"},
		{in: `{"a":1}x`, wantErr: "trailing data"},
		{in: `{"a":1}]`, wantErr: "trailing data"},
		{in: `{"a":1} 2`, wantErr: "trailing data"},
		{in: ``, wantErr: "invalid JSON"},
		{in: `{"a":`, wantErr: "invalid JSON"},
		{in: `{"a":"1"}`, wantErr: "invalid JSON"},
		{in: `[1]`, wantErr: "invalid JSON"},
	}
	for _, tt := range tests {
		var got T
		err := DecodeJSON([]byte(tt.in), &got)
		if tt.wantErr == "" {
			if err != nil || got != tt.want {
				t.Errorf("DecodeJSON(%q) = %+v, %v; want %+v, nil", tt.in, got, err, tt.want)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("DecodeJSON(%q) error = %v, want one containing %q", tt.in, err, tt.wantErr)
		}
	}
}

// TestGetActor: an actor's record is public, revoked ones too.
func TestGetActor(t *testing.T) {
	st := newMemStore()
	st.set(ActorKey("op-1"), string(MustJSON(Actor{ID: "op-1", Role: "operator", Org: "o", PublicKey: pubKey(aliceKey), Revoked: true})), 1)
	r := NewRegistry()
	resp, err := r.Query(st, PathActors+"/op-1")
	if err != nil || resp.Status != http.StatusOK || !strings.Contains(string(resp.Body), `"revoked":true`) {
		t.Errorf("GET op-1: %d %s %v", resp.Status, resp.Body, err)
	}
	for _, id := range []string{"nobody", "bad%20id"} {
		if resp, _ := r.Query(st, PathActors+"/"+id); resp.Status != http.StatusNotFound {
			t.Errorf("GET %s: %d %s, want 404", id, resp.Status, resp.Body)
		}
	}
}
