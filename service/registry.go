package service

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/duet-bft/duet/protocol"
)

// Context is what the framework tells a handler about the op it runs.
type Context struct {
	Actor   Actor  // authenticated actor (zero for queries)
	Session string // session id
	Seq     uint64 // op seq within the session
	Time    int64  // op timestamp, Unix milliseconds, assigned by L2
	verify  func(pub ed25519.PublicKey, msg, sig []byte) bool
}

// Verify checks an Ed25519 signature with the registry's verifier, which a
// node shares across everything it verifies (see WithVerifier): a handler
// that checks a document's signature again later pays for it once.
func (c *Context) Verify(pub ed25519.PublicKey, msg, sig []byte) bool {
	if c.verify == nil {
		return protocol.Verify(pub, msg, sig)
	}
	return c.verify(pub, msg, sig)
}

// Request is the part of the HTTP request a handler may depend on.
type Request struct {
	Method string
	Path   string
	Body   []byte
	params []string // name, value pairs from the route pattern
}

// Param returns the path parameter name of the route pattern, or "".
func (r *Request) Param(name string) string {
	for i := 0; i+1 < len(r.params); i += 2 {
		if r.params[i] == name {
			return r.params[i+1]
		}
	}
	return ""
}

// Response is a handler's result: an HTTP status and a JSON body. Its
// protocol.ResultHash is what L2 claims and L1 recomputes.
type Response struct {
	Status int
	Body   []byte
}

// OK reports whether the status is a success (2xx).
func (r Response) OK() bool { return r.Status >= 200 && r.Status < 300 }

// Hash returns the result hash of r.
func (r Response) Hash() protocol.Hash { return protocol.ResultHash(r.Status, r.Body) }

// Handler is a deterministic operation of an application.
type Handler func(tx *Tx, ctx *Context, req *Request) Response

// Route binds a method and a path pattern ("/v1/packages/{id}/scan") to a
// handler. Roles lists who may call it; empty means any registered actor.
// GET routes are queries: they run with no actor and their writes are
// discarded.
type Route struct {
	Method  string
	Pattern string
	Roles   []string
	Handler Handler
	segs    []string
}

// GenesisFunc loads an application's part of the genesis state.
type GenesisFunc func(tx *Tx, appState json.RawMessage) error

// StartFunc is an application's hook into every session start: it sees the
// start body (a JSON object, empty if the body was) and may refuse the start
// (an error, usually from Refuse) or name the state keys the session claims
// (e.g. the package a workflow is about). It runs inside the start op, so L2
// and L1 decide alike.
type StartFunc func(tx *Tx, ctx *Context, start map[string]json.RawMessage) (claims []string, err error)

// Registry is an application: its routes and its genesis loader. Build it
// once at start-up; it is read-only afterwards and safe to share. The zero
// Registry has no routes at all; NewRegistry adds the framework's.
type Registry struct {
	routes  []*Route
	genesis GenesisFunc
	start   StartFunc
	verify  func(pub ed25519.PublicKey, msg, sig []byte) bool
}

// WithVerifier returns a copy of r that checks op signatures with verify
// (e.g. a protocol.SigCache) instead of plain Ed25519. verify must be
// exactly as strict as protocol.Verify.
func (r *Registry) WithVerifier(verify func(pub ed25519.PublicKey, msg, sig []byte) bool) *Registry {
	c := *r
	c.verify = verify
	return &c
}

// NewRegistry returns a registry holding the framework's own routes: session
// start, commit and abort, and the actor registry.
func NewRegistry() *Registry {
	r := &Registry{}
	registerFramework(r)
	return r
}

// Handle adds a route. It panics on a malformed or duplicate pattern, and
// on a pattern in the framework's namespace (the session and actor routes,
// see FrameworkPath): routes are fixed at start-up, and an application
// cannot take a path that L1 and L2 read as session control.
func (r *Registry) Handle(method, pattern string, roles []string, h Handler) {
	if FrameworkPath(pattern) {
		panic("service: " + pattern + " is in the framework's namespace (" + PathSessions + ", " + PathActors + ")")
	}
	r.handle(method, pattern, roles, h)
}

func (r *Registry) handle(method, pattern string, roles []string, h Handler) {
	if !strings.HasPrefix(pattern, "/") {
		panic("service: pattern must start with /: " + pattern)
	}
	rt := &Route{Method: method, Pattern: pattern, Roles: roles, Handler: h, segs: strings.Split(pattern[1:], "/")}
	for _, o := range r.routes {
		if o.Method == method && shape(o.segs) == shape(rt.segs) {
			panic("service: duplicate route " + method + " " + pattern)
		}
	}
	r.routes = append(r.routes, rt)
}

// Genesis sets the application's genesis loader.
func (r *Registry) Genesis(f GenesisFunc) { r.genesis = f }

// OnStart sets the application's session-start hook. The keys it claims
// are reserved on the L2 node for the session's life (see Tx.Claim), so a
// second session on them gets 409 at once, before any step; the hook should
// therefore claim only what exists and only for actors whose role may act
// on it.
func (r *Registry) OnStart(f StartFunc) { r.start = f }

// Verify checks an Ed25519 signature the way Apply does (with the verifier
// set by WithVerifier, if any).
func (r *Registry) Verify(pub ed25519.PublicKey, msg, sig []byte) bool {
	if r.verify == nil {
		return protocol.Verify(pub, msg, sig)
	}
	return r.verify(pub, msg, sig)
}

// Routes returns the registered routes in registration order.
func (r *Registry) Routes() []*Route { return r.routes }

// Match finds the route for method and path. found reports whether any route
// matches the path, so a caller can tell 404 from 405.
func (r *Registry) Match(method, path string) (rt *Route, params []string, found bool) {
	if !strings.HasPrefix(path, "/") {
		return nil, nil, false
	}
	segs := strings.Split(path[1:], "/")
	for _, c := range r.routes {
		p, ok := matchSegs(c.segs, segs)
		if !ok {
			continue
		}
		found = true
		if c.Method == method {
			return c, p, true
		}
	}
	return nil, nil, found
}

// shape replaces parameter names by {} so /a/{x} and /a/{y} compare equal.
func shape(segs []string) string {
	var b strings.Builder
	for _, s := range segs {
		if strings.HasPrefix(s, "{") {
			s = "{}"
		}
		b.WriteString("/" + s)
	}
	return b.String()
}

func matchSegs(pattern, segs []string) ([]string, bool) {
	if len(pattern) != len(segs) {
		return nil, false
	}
	var params []string
	for i, p := range pattern {
		if strings.HasPrefix(p, "{") && strings.HasSuffix(p, "}") {
			if segs[i] == "" {
				return nil, false
			}
			params = append(params, p[1:len(p)-1], segs[i])
		} else if p != segs[i] {
			return nil, false
		}
	}
	return params, true
}

// Op is one signed operation to apply: everything Apply needs and nothing
// it could take from a clock or a network.
type Op struct {
	Session   string
	Seq       uint64
	Actor     string
	Method    string
	Path      string
	Body      []byte
	Prev      protocol.Hash // hash of the session's previous op; zero for seq 0
	Signature []byte        // actor's signature of Bytes()
	Time      int64         // op time, Unix ms, assigned by L2
	Expires   int64         // the expiry the actor signed, Unix ms
}

// Bytes returns what the actor signed: protocol.OpBytes of the op.
func (op *Op) Bytes() []byte {
	return protocol.OpBytes(op.Session, op.Seq, op.Prev, op.Method, op.Path, op.Body, op.Expires)
}

// Apply is the one apply path, shared by L2 (simulation) and L1
// (verification): authenticate the actor against the key registered in
// state (Ed25519 over op.Bytes(), which names the previous op's hash),
// route, check the role, run the handler, and keep its writes in tx only if
// it succeeded. Every outcome of the op is a Response, the same on every
// node: a handler panic or a write to the ledger's keys is a 500 INTERNAL,
// an op that takes the session over the Tx's limits is a 413 TOO_LARGE,
// and nothing of a failed op is kept. An error is a failure of the store
// under tx, which says nothing of the op: the caller must not take it as
// a result (L1 halts rather than diverge; L2 answers 503).
func (r *Registry) Apply(tx *Tx, op *Op) (resp Response, err error) {
	defer func() {
		if p := recover(); p != nil {
			tx.fail(fmt.Errorf("handler panic: %v", p))
		}
		if tx.storeErr != nil {
			resp, err = Response{}, tx.storeErr
			tx.drop()
			return
		}
		if tx.err == nil && resp.OK() && tx.limit != nil {
			switch err := tx.limit(tx, resp); {
			case errors.As(err, new(*Refusal)):
				resp = refusal(err)
			case errors.Is(err, ErrHeld):
				tx.fail(err)
			case err != nil:
				tx.fail(fmt.Errorf("%w: %v", ErrTooLarge, err))
			}
		}
		var held *Held
		switch {
		case errors.Is(tx.err, ErrTooLarge):
			resp = Error(http.StatusRequestEntityTooLarge, "TOO_LARGE", tx.err.Error())
		case errors.As(tx.err, &held):
			resp = heldError(held)
		case errors.Is(tx.err, ErrHeld):
			resp = Error(http.StatusConflict, "CONFLICT", strings.TrimPrefix(tx.err.Error(), ErrHeld.Error()+": "))
		case tx.err != nil:
			resp = Error(http.StatusInternalServerError, "INTERNAL", tx.err.Error())
		}
		if resp.OK() {
			tx.keep()
		} else {
			tx.drop()
		}
	}()
	actor, lerr := loadActor(tx, op.Actor)
	if lerr != nil {
		return Error(http.StatusUnauthorized, "UNAUTHENTICATED", lerr.Error()), nil
	}
	if !r.Verify(actor.PublicKey, op.Bytes(), op.Signature) {
		return Error(http.StatusUnauthorized, "UNAUTHENTICATED", "bad signature"), nil
	}
	rt, params, found := r.Match(op.Method, op.Path)
	if rt == nil || rt.Method == http.MethodGet {
		if found {
			return Error(http.StatusMethodNotAllowed, "METHOD_NOT_ALLOWED", op.Method+" not allowed on "+op.Path), nil
		}
		return Error(http.StatusNotFound, "NOT_FOUND", "no route "+op.Method+" "+op.Path), nil
	}
	if len(rt.Roles) > 0 && !slices.Contains(rt.Roles, actor.Role) {
		return Error(http.StatusForbidden, "PERMISSION_DENIED",
			fmt.Sprintf("role %q may not %s %s (needs %s)", actor.Role, op.Method, rt.Pattern, strings.Join(rt.Roles, " or "))), nil
	}
	ctx := &Context{Actor: actor, Session: op.Session, Seq: op.Seq, Time: op.Time, verify: r.Verify}
	req := &Request{Method: op.Method, Path: op.Path, Body: op.Body, params: params}
	return rt.Handler(tx, ctx, req), nil
}

// Query runs a GET route on a throwaway view of st. It returns 404 for an
// unknown path, and 500 INTERNAL if the handler panics: no handler can
// take down a node. An error is a failure of st.
func (r *Registry) Query(st Store, path string) (resp Response, err error) {
	rt, params, _ := r.Match(http.MethodGet, path)
	if rt == nil || rt.Method != http.MethodGet {
		return Error(http.StatusNotFound, "NOT_FOUND", "no route GET "+path), nil
	}
	tx := NewTx(st)
	defer func() {
		if p := recover(); p != nil {
			tx.fail(fmt.Errorf("handler panic: %v", p))
		}
		switch {
		case tx.storeErr != nil:
			resp, err = Response{}, tx.storeErr
		case tx.err != nil:
			resp = Error(http.StatusInternalServerError, "INTERNAL", tx.err.Error())
		}
	}()
	return rt.Handler(tx, &Context{verify: r.Verify}, &Request{Method: http.MethodGet, Path: path, params: params}), nil
}

// InitGenesis loads a genesis app state (Genesis): the actors and the
// app's own state. App.InitGenesis checks the app's name and version first.
func (r *Registry) InitGenesis(tx *Tx, raw json.RawMessage) error {
	var g Genesis
	if len(bytes.TrimSpace(raw)) > 0 {
		if err := decodeStrict(raw, &g); err != nil {
			return fmt.Errorf("genesis app_state: %w", err)
		}
	}
	// The genesis is not a session: no session limits.
	tx.genesis = true
	defer func() { tx.genesis = false }()
	for _, a := range g.Actors {
		if err := a.Validate(); err != nil {
			return fmt.Errorf("genesis actor %q: %w", a.ID, err)
		}
		if _, exists := tx.Get(ActorKey(a.ID)); exists {
			return fmt.Errorf("genesis actor %q: duplicate", a.ID)
		}
		tx.Put(ActorKey(a.ID), MustJSON(a))
	}
	if r.genesis != nil && len(g.App) > 0 {
		if err := r.genesis(tx, g.App); err != nil {
			return err
		}
	}
	if tx.storeErr != nil {
		return tx.storeErr
	}
	if tx.err != nil {
		return tx.err
	}
	tx.keep()
	return nil
}

// Actor is a registered identity: who signs ops, for which organisation, in
// which role. Roles are strings an application gives meaning to; the
// framework knows RoleAdmin (manages actors) and RoleL2 (L2 nodes that sign
// bundles). A revoked actor's record stays, so history can name it, but it
// can sign nothing more.
type Actor struct {
	ID        string `json:"id"`
	Role      string `json:"role"`
	Org       string `json:"org"`
	PublicKey []byte `json:"public_key"`
	Revoked   bool   `json:"revoked,omitempty"`
}

const (
	RoleAdmin = "admin"
	RoleL2    = "l2"
)

// Validate checks an actor record's shape.
func (a *Actor) Validate() error {
	switch {
	case !protocol.ValidID(a.ID):
		return protocol.ErrBadID
	case !protocol.ValidID(a.Role):
		return fmt.Errorf("role must be 1-64 characters of A-Za-z0-9._-")
	case len(a.Org) == 0 || len(a.Org) > 128 || !utf8.ValidString(a.Org):
		return fmt.Errorf("org must be 1-128 bytes of UTF-8")
	case len(a.PublicKey) != ed25519.PublicKeySize:
		return fmt.Errorf("public_key must be %d bytes (standard base64)", ed25519.PublicKeySize)
	}
	if err := ValidPublicKey(a.PublicKey); err != nil {
		return fmt.Errorf("public_key: %w", err)
	}
	return nil
}

// ActorKey is the state key of an actor record.
func ActorKey(id string) string { return "actor/" + id }

// LoadActor reads an actor record through tx (so it enters the read set).
// A revoked actor is not found.
func LoadActor(tx *Tx, id string) (Actor, bool) {
	a, err := loadActor(tx, id)
	return a, err == nil
}

func loadActor(tx *Tx, id string) (Actor, error) {
	var a Actor
	if !protocol.ValidID(id) {
		return a, fmt.Errorf("unknown actor %q", truncateID(id))
	}
	raw, ok := tx.Get(ActorKey(id))
	if !ok || json.Unmarshal(raw, &a) != nil {
		return Actor{}, fmt.Errorf("unknown actor %q", id)
	}
	if a.Revoked {
		return Actor{}, fmt.Errorf("actor %q is revoked", id)
	}
	return a, nil
}
