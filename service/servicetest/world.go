package servicetest

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"maps"
	"net/http"
	"slices"
	"testing"

	"github.com/duet-bft/duet/protocol"
	"github.com/duet-bft/duet/service"
)

// World is an application's committed state in memory, driven as the two
// layers drive it: a Session signs its ops as its actor would and applies
// them one by one through the app's Registry (what an L2 node does), and
// Commit applies the session's writes at the next height (what L1 does
// with a bundle that re-executes the same). It is the harness for an
// application's handler tests: no buffer, no ledger, no network.
type World struct {
	T      testing.TB
	App    *service.App
	Store  Store
	Height uint64 // the last committed height
	Now    int64  // the time of the last op, Unix ms; every op adds a second
	actors map[string]Actor
}

// T0 is the time a World starts at (Unix ms).
const T0 = int64(1_700_000_000_000)

// expires is the expiry every op of a World signs: Apply does not check
// it (L2 and L1 do, against their clocks).
const expires = 4_000_000_000_000

// Key returns the actor id's key, derived from the id, so every run uses
// the same keys.
func Key(id string) ed25519.PrivateKey {
	seed := sha256.Sum256([]byte("duet-servicetest/" + id))
	return ed25519.NewKeyFromSeed(seed[:])
}

// NewWorld starts app's chain with the given actors (id and role; keys
// from Key) and the app's own genesis state (nil: none), through
// App.InitGenesis as a validator would.
func NewWorld(t testing.TB, app *service.App, actors map[string]string, appGenesis json.RawMessage) *World {
	t.Helper()
	w := &World{T: t, App: app, Store: Store{}, Now: T0, actors: map[string]Actor{}}
	var records []service.Actor
	for _, id := range slices.Sorted(maps.Keys(actors)) {
		a := Actor{ID: id, Role: actors[id], Key: Key(id)}
		w.actors[id] = a
		records = append(records, service.Actor{ID: id, Role: a.Role, Org: "org-" + id, PublicKey: a.Public()})
	}
	tx := service.NewTx(w.Store)
	if err := app.InitGenesis(tx, app.Genesis(records, appGenesis)); err != nil {
		t.Fatalf("genesis: %v", err)
	}
	w.commit(tx)
	return w
}

// Actor returns the world's actor id.
func (w *World) Actor(id string) Actor {
	a, ok := w.actors[id]
	if !ok {
		w.T.Fatalf("servicetest: no actor %s in the world", id)
	}
	return a
}

func (w *World) commit(tx *service.Tx) {
	w.Height++
	w.Store.Apply(tx.Writes(), w.Height)
}

// Query runs a GET route on the committed state.
func (w *World) Query(path string) service.Response {
	w.T.Helper()
	resp, err := w.App.Registry.Query(w.Store, path)
	if err != nil {
		w.T.Fatalf("query %s: %v", path, err)
	}
	return resp
}

// QueryJSON runs a GET route that must answer 200 and decodes its body
// into v.
func (w *World) QueryJSON(path string, v any) {
	w.T.Helper()
	resp := w.Query(path)
	if resp.Status != http.StatusOK {
		w.T.Fatalf("query %s: got %d %s, want 200", path, resp.Status, resp.Body)
	}
	if err := json.Unmarshal(resp.Body, v); err != nil {
		w.T.Fatalf("query %s: %v", path, err)
	}
}

// Session is one session of one actor: its ops share a Tx over the
// world's committed state, so each sees the writes of the ones before.
type Session struct {
	W     *World
	Tx    *service.Tx
	ID    string
	Actor Actor
	Seq   uint64        // the next op's seq
	Prev  protocol.Hash // the previous op's hash
}

// Session returns session id of actor, not started: its first op is seq
// 0 (a start, or a direct-mode op).
func (w *World) Session(id, actor string) *Session {
	return &Session{W: w, Tx: service.NewTx(w.Store), ID: id, Actor: w.Actor(actor)}
}

// Open starts session id of actor with the start body (a JSON object; ""
// for {}), which must be answered 201.
func (w *World) Open(id, actor, start string) *Session {
	w.T.Helper()
	if start == "" {
		start = "{}"
	}
	s := w.Session(id, actor)
	s.Must(http.StatusCreated, http.MethodPost, service.PathSessions, start)
	return s
}

// Do signs the next op and applies it. Only a 2xx answer advances the
// session, as on an L2 node.
func (s *Session) Do(method, path, body string) service.Response {
	s.W.T.Helper()
	signed := protocol.OpBytes(s.ID, s.Seq, s.Prev, method, path, []byte(body), expires)
	s.W.Now += 1000
	op := &service.Op{Session: s.ID, Seq: s.Seq, Actor: s.Actor.ID, Method: method, Path: path, Body: []byte(body),
		Prev: s.Prev, Signature: ed25519.Sign(s.Actor.Key, signed), Time: s.W.Now, Expires: expires}
	resp, err := s.W.App.Registry.Apply(s.Tx, op)
	if err != nil {
		s.W.T.Fatalf("apply %s %s: %v", method, path, err)
	}
	if resp.OK() {
		s.Seq++
		s.Prev = protocol.OpHash(signed)
	}
	return resp
}

// Must is Do that requires the status want; it returns the body.
func (s *Session) Must(want int, method, path, body string) []byte {
	s.W.T.Helper()
	resp := s.Do(method, path, body)
	if resp.Status != want {
		s.W.T.Fatalf("%s %s %s (session %s seq %d): got %d %s, want %d", method, path, body, s.ID, s.Seq, resp.Status, resp.Body, want)
	}
	return resp.Body
}

// Commit signs the session's commit and applies its writes at the next
// height, as L1 does. (It does not check the session's reads against
// later commits: a conflict between sessions is the layers' business,
// tested with the two-layer harness.)
func (s *Session) Commit() {
	s.W.T.Helper()
	s.Must(http.StatusAccepted, http.MethodPost, service.CommitPath(s.ID), "{}")
	s.W.commit(s.Tx)
}

// Direct applies one op as a direct-mode session (seq 0 of a new session)
// and commits it if it succeeds.
func (w *World) Direct(id, actor, method, path, body string) service.Response {
	w.T.Helper()
	s := w.Session(id, actor)
	resp := s.Do(method, path, body)
	if resp.OK() {
		w.commit(s.Tx)
	}
	return resp
}
