package service

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
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

func registerFramework(r *Registry) {
	r.Handle(http.MethodPost, PathSessions, nil, startSession)
	r.Handle(http.MethodPost, PathSessions+"/{id}/commit", nil, endSession(http.StatusAccepted, "committing"))
	r.Handle(http.MethodDelete, PathSessions+"/{id}", nil, endSession(http.StatusOK, "aborted"))
	r.Handle(http.MethodPost, PathActors, []string{RoleAdmin}, createActor)
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

func startSession(tx *Tx, ctx *Context, req *Request) Response {
	if ctx.Seq != 0 {
		return Error(http.StatusConflict, "FAILED_PRECONDITION", "a session starts at seq 0")
	}
	var start json.RawMessage
	if len(bytes.TrimSpace(req.Body)) > 0 {
		var m map[string]json.RawMessage
		if err := DecodeJSON(req.Body, &m); err != nil {
			return Error(http.StatusBadRequest, "MALFORMED", "session start body: "+err.Error())
		}
		start = MustJSON(m) // canonical: keys sorted, compact
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
		return JSON(status, map[string]SessionInfo{"session": {
			ID: ctx.Session, Actor: ctx.Actor.ID, Status: state, Seq: ctx.Seq, Time: ctx.Time}})
	}
}

func createActor(tx *Tx, ctx *Context, req *Request) Response {
	var a Actor
	if err := DecodeJSON(req.Body, &a); err != nil {
		return Error(http.StatusBadRequest, "MALFORMED", err.Error())
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

// JSON returns a response with v encoded as compact JSON.
func JSON(status int, v any) Response {
	return Response{Status: status, Body: MustJSON(v)}
}

// ErrorBody is the JSON shape of every error.
type ErrorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// Error returns {"error":{"code":code,"message":msg}} with status.
func Error(status int, code, msg string) Response {
	var e ErrorBody
	e.Error.Code, e.Error.Message = code, msg
	return JSON(status, e)
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
// fields and trailing data.
func DecodeJSON(data []byte, v any) error {
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
