package service

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/duet-bft/duet/protocol"
)

// Framework routes. Session start is op seq 0; commit and abort are the last
// op of a session. They change no state: their results are signed, claimed
// and re-executed like any other op, which is what binds the actor's intent
// to start and to commit into the bundle.
const (
	PathSessions = "/v1/sessions"
	PathActors   = "/v1/actors"
)

// CommitPath and AbortPath return the path of a session's commit and abort.
func CommitPath(session string) string { return PathSessions + "/" + session + "/commit" }
func AbortPath(session string) string  { return PathSessions + "/" + session }

// OpKind is what an op is to its session.
type OpKind int

const (
	KindStep    OpKind = iota // an application op inside an open session
	KindStart                 // POST /v1/sessions at seq 0
	KindCommit                // POST /v1/sessions/<id>/commit after seq 0: the last op L1 sees
	KindAbort                 // DELETE /v1/sessions/<id> after seq 0: ends the session on L2
	KindDirect                // seq 0 of anything else: a one-op session (direct mode)
	KindInvalid               // session control out of place: at seq 0, or naming another session
)

var kindNames = [...]string{"step", "start", "commit", "abort", "direct", "invalid"}

// String is the kind's name, as receipts carry it: step, start, commit,
// abort, direct or invalid.
func (k OpKind) String() string {
	if k >= 0 && int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "invalid"
}

// FrameworkPath reports whether path is in the framework's namespace:
// PathSessions or PathActors, or below either (/v1/sessions-archive is
// not). Applications cannot register routes there.
func FrameworkPath(path string) bool {
	return IsSessionControl(path) || path == PathActors || strings.HasPrefix(path, PathActors+"/")
}

// IsSessionControl reports whether path is the framework's session routes'
// (PathSessions or below it; /v1/sessions-archive is not).
func IsSessionControl(path string) bool {
	return path == PathSessions || strings.HasPrefix(path, PathSessions+"/")
}

// Classify is the one definition of the session rules: it says what op seq
// of session is. An L2 node runs sessions by it and L1 checks a bundle's
// shape by it (start, steps, commit; or one direct op), so the two layers
// cannot disagree on what a session is.
func Classify(session string, seq uint64, method, path string) OpKind {
	switch {
	case seq == 0 && method == http.MethodPost && path == PathSessions:
		return KindStart
	case seq == 0 && !IsSessionControl(path):
		return KindDirect
	case seq == 0:
		return KindInvalid
	case method == http.MethodPost && path == CommitPath(session):
		return KindCommit
	case method == http.MethodDelete && path == AbortPath(session):
		return KindAbort
	case IsSessionControl(path):
		return KindInvalid
	}
	return KindStep
}

// ControlBody is the largest body a commit or an abort may carry: it is
// empty or {}. An L2 node keeps room for a commit of this size in every
// session, so a session can always commit.
const ControlBody = "{}"

func registerFramework(r *Registry) {
	r.handle(http.MethodPost, PathSessions, nil, r.startSession)
	r.handle(http.MethodPost, PathSessions+"/{id}/commit", nil, endSession(http.StatusAccepted, "committing"))
	r.handle(http.MethodDelete, PathSessions+"/{id}", nil, endSession(http.StatusOK, "aborted"))
	r.handle(http.MethodPost, PathActors, []string{RoleAdmin}, createActor)
	r.handle(http.MethodPost, PathActors+"/{id}/key", []string{RoleAdmin}, rotateKey)
	r.handle(http.MethodDelete, PathActors+"/{id}", []string{RoleAdmin}, revokeActor)
	r.handle(http.MethodGet, PathActors+"/{id}", nil, getActor)
}

// getActor answers an actor's record (revoked ones too: history names
// them): who signs for which organisation in which role, with which key.
func getActor(tx *Tx, ctx *Context, req *Request) Response {
	id := req.Param("id")
	raw, ok := tx.Get(ActorKey(id))
	var a Actor
	if !ok || !protocol.ValidID(id) || json.Unmarshal(raw, &a) != nil {
		return Error(http.StatusNotFound, "NOT_FOUND", "no actor "+truncateID(id))
	}
	return JSON(http.StatusOK, map[string]Actor{"actor": a})
}

// SessionInfo is the body of the framework's session responses.
type SessionInfo struct {
	ID     string          `json:"id"`
	Actor  string          `json:"actor"`
	Status string          `json:"status"`
	Seq    uint64          `json:"seq"`
	Time   int64           `json:"time"`
	Start  json.RawMessage `json:"start,omitempty"`
}

// startSession opens a session. The application's start hook (see
// Registry.OnStart) may refuse the start body or claim keys for the session.
func (r *Registry) startSession(tx *Tx, ctx *Context, req *Request) Response {
	if ctx.Seq != 0 {
		return Error(http.StatusConflict, "FAILED_PRECONDITION", "a session starts at seq 0")
	}
	var start json.RawMessage
	m := map[string]json.RawMessage{}
	if len(bytes.TrimSpace(req.Body)) > 0 {
		if err := DecodeJSON(req.Body, &m); err != nil {
			return Error(http.StatusBadRequest, "MALFORMED", "session start body: "+err.Error())
		}
		start = MustJSON(m) // canonical: keys sorted, compact
	}
	if r.start != nil {
		claims, err := r.start(tx, ctx, m)
		if err != nil {
			return refusal(err)
		}
		tx.Claim(claims...)
	}
	return JSON(http.StatusCreated, map[string]SessionInfo{"session": {
		ID: ctx.Session, Actor: ctx.Actor.ID, Status: "open", Time: ctx.Time, Start: start}})
}

func endSession(status int, state string) Handler {
	return func(tx *Tx, ctx *Context, req *Request) Response {
		if req.Param("id") != ctx.Session {
			return Error(http.StatusBadRequest, "INVALID_ARGUMENT", "path names session "+req.Param("id")+", op is signed for "+ctx.Session)
		}
		if ctx.Seq == 0 {
			return Error(http.StatusConflict, "FAILED_PRECONDITION", "no session to end at seq 0")
		}
		if b := string(req.Body); b != "" && b != ControlBody {
			return Error(http.StatusBadRequest, "INVALID_ARGUMENT", "the body of a commit or abort must be empty or "+ControlBody)
		}
		return JSON(status, map[string]SessionInfo{"session": {
			ID: ctx.Session, Actor: ctx.Actor.ID, Status: state, Seq: ctx.Seq, Time: ctx.Time}})
	}
}

func createActor(tx *Tx, ctx *Context, req *Request) Response {
	var a Actor
	if err := DecodeJSON(req.Body, &a); err != nil {
		return Error(http.StatusBadRequest, "MALFORMED", err.Error())
	}
	if a.Revoked {
		return Error(http.StatusBadRequest, "INVALID_ARGUMENT", "a new actor cannot be revoked")
	}
	if err := a.Validate(); err != nil {
		return Error(http.StatusBadRequest, "INVALID_ARGUMENT", err.Error())
	}
	if _, exists := tx.Get(ActorKey(a.ID)); exists {
		return Error(http.StatusConflict, "CONFLICT", "actor "+a.ID+" already exists")
	}
	tx.Put(ActorKey(a.ID), MustJSON(a))
	return JSON(http.StatusCreated, map[string]Actor{"actor": a})
}

// actorToChange loads the actor a key rotation or revocation names: it must
// exist, must not be revoked, and must not be the admin who signs (an admin
// cannot lock itself out by mistake; another admin can revoke it).
func actorToChange(tx *Tx, ctx *Context, req *Request) (Actor, *Response) {
	id := req.Param("id")
	raw, ok := tx.Get(ActorKey(id))
	var a Actor
	if !ok || !protocol.ValidID(id) || json.Unmarshal(raw, &a) != nil {
		resp := Error(http.StatusNotFound, "NOT_FOUND", "no actor "+truncateID(id))
		return a, &resp
	}
	if a.Revoked {
		resp := Error(http.StatusConflict, "FAILED_PRECONDITION", "actor "+id+" is revoked")
		return a, &resp
	}
	if id == ctx.Actor.ID {
		resp := Error(http.StatusConflict, "FAILED_PRECONDITION", "an admin cannot rotate or revoke its own key; another admin can")
		return a, &resp
	}
	return a, nil
}

// rotateKey replaces an actor's public key. Ops signed with the old key no
// longer verify: an open session of that actor fails on L1 (its read of the
// actor record is stale, and re-execution with the new key is 401).
func rotateKey(tx *Tx, ctx *Context, req *Request) Response {
	var body struct {
		PublicKey []byte `json:"public_key"`
	}
	if err := DecodeJSON(req.Body, &body); err != nil {
		return Error(http.StatusBadRequest, "MALFORMED", err.Error())
	}
	a, refused := actorToChange(tx, ctx, req)
	if refused != nil {
		return *refused
	}
	if err := ValidPublicKey(body.PublicKey); err != nil {
		return Error(http.StatusBadRequest, "INVALID_ARGUMENT", "public_key: "+err.Error())
	}
	a.PublicKey = body.PublicKey
	tx.Put(ActorKey(a.ID), MustJSON(a))
	return JSON(http.StatusOK, map[string]Actor{"actor": a})
}

// revokeActor marks an actor revoked. The record stays, so history still
// names who did what, but the actor can sign nothing more.
func revokeActor(tx *Tx, ctx *Context, req *Request) Response {
	if b := string(req.Body); b != "" && b != ControlBody {
		return Error(http.StatusBadRequest, "INVALID_ARGUMENT", "the body of a revocation must be empty or "+ControlBody)
	}
	a, refused := actorToChange(tx, ctx, req)
	if refused != nil {
		return *refused
	}
	a.Revoked = true
	tx.Put(ActorKey(a.ID), MustJSON(a))
	return JSON(http.StatusOK, map[string]Actor{"actor": a})
}

func truncateID(s string) string {
	if len(s) > protocol.MaxIDLen {
		return s[:protocol.MaxIDLen] + "..."
	}
	return s
}

// Refusal is an error with which application code refuses a request: it
// becomes a response with its status and code.
type Refusal struct {
	Status  int
	Code    string
	Message string
}

func (e *Refusal) Error() string { return e.Code + ": " + e.Message }

// Refuse returns a *Refusal.
func Refuse(status int, code, format string, args ...any) error {
	return &Refusal{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// refusal maps an error from application code to a response: a *Refusal as
// it says, anything else as 500 INTERNAL.
func refusal(err error) Response {
	if e, ok := errors.AsType[*Refusal](err); ok {
		return Error(e.Status, e.Code, e.Message)
	}
	return Error(http.StatusInternalServerError, "INTERNAL", err.Error())
}

// JSON returns a response with v encoded as compact JSON.
func JSON(status int, v any) Response {
	return Response{Status: status, Body: MustJSON(v)}
}

// ErrorBody is the JSON shape of every error.
type ErrorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Holder  *Held  `json:"holder,omitempty"` // a 409 CONFLICT for a key another session holds: who
	} `json:"error"`
}

// Error returns {"error":{"code":code,"message":msg}} with status.
func Error(status int, code, msg string) Response {
	var e ErrorBody
	e.Error.Code, e.Error.Message = code, msg
	return JSON(status, e)
}

// heldError is the answer to an op that met a key another session holds.
func heldError(h *Held) Response {
	var e ErrorBody
	e.Error.Code, e.Error.Message, e.Error.Holder = "CONFLICT", h.Error(), h
	return JSON(http.StatusConflict, e)
}

// MustJSON marshals v; it panics only on a value that cannot be JSON, which
// is a programming error.
func MustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("service: marshal %T: %v", v, err))
	}
	return b
}

// DecodeJSON decodes exactly one JSON value into v, rejecting unknown
// fields and trailing data, and any document that breaks the limits of
// CheckJSON (invalid UTF-8, too deep, too many values, too long a string):
// whatever a handler accepts, every handler and query can read back.
func DecodeJSON(data []byte, v any) error {
	if err := CheckJSON(data); err != nil {
		return fmt.Errorf("invalid JSON: %w", err)
	}
	return decodeStrict(data, v)
}

// decodeStrict is DecodeJSON without the size limits, for the genesis,
// which every validator vouches for and which may list many actors.
func decodeStrict(data []byte, v any) error {
	if !utf8.Valid(data) {
		return errors.New("invalid JSON: not UTF-8")
	}
	d := json.NewDecoder(bytes.NewReader(data))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return fmt.Errorf("invalid JSON: %w", err)
	}
	if _, err := d.Token(); !errors.Is(err, io.EOF) {
		return errors.New("invalid JSON: trailing data after the value")
	}
	return nil
}
