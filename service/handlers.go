package service

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/duet-bft/duet/protocol"
)

// What application handlers share, so that each app does not write its
// own: a handler that returns errors, the refusals it returns, strict body
// decoding and typed record loading.

// HandlerE is a handler that reports failures as errors. A *Refusal
// (Refuse, Malformed, Invalid, NotFound, Conflict, Precondition, Forbidden)
// is an answer to the client with its status and code; any other error is
// a broken invariant, such as a stored record that does not decode, and
// answers 500 INTERNAL.
type HandlerE func(tx *Tx, ctx *Context, req *Request) (Response, error)

// Adapt turns f into a Handler: the one place where its errors become
// responses.
func Adapt(f HandlerE) Handler {
	return func(tx *Tx, ctx *Context, req *Request) Response {
		resp, err := f(tx, ctx, req)
		if err != nil {
			return refusal(err)
		}
		return resp
	}
}

// Malformed refuses a body that is not the JSON the route takes (400).
func Malformed(err error) error {
	return &Refusal{Status: http.StatusBadRequest, Code: "MALFORMED", Message: err.Error()}
}

// Invalid refuses a value out of range (400 INVALID_ARGUMENT).
func Invalid(format string, args ...any) error {
	return Refuse(http.StatusBadRequest, "INVALID_ARGUMENT", format, args...)
}

// NotFound refuses a request about a record that does not exist (404).
func NotFound(format string, args ...any) error {
	return Refuse(http.StatusNotFound, "NOT_FOUND", format, args...)
}

// Conflict refuses to create what exists already (409 CONFLICT).
func Conflict(format string, args ...any) error {
	return Refuse(http.StatusConflict, "CONFLICT", format, args...)
}

// Precondition refuses a request the state does not allow yet or any more
// (409 FAILED_PRECONDITION), such as a workflow step out of order.
func Precondition(format string, args ...any) error {
	return Refuse(http.StatusConflict, "FAILED_PRECONDITION", format, args...)
}

// Forbidden refuses an actor a request its role allows in general but not
// here, such as acting on another actor's record (403 PERMISSION_DENIED).
func Forbidden(format string, args ...any) error {
	return Refuse(http.StatusForbidden, "PERMISSION_DENIED", format, args...)
}

// Decode decodes the request body into v strictly (DecodeJSON: no unknown
// fields, no trailing data, within the JSON limits). A bad body is a
// Malformed refusal.
func (r *Request) Decode(v any) error {
	if err := DecodeJSON(r.Body, v); err != nil {
		return Malformed(err)
	}
	return nil
}

// DecodeOptional is Decode that leaves v as it is for an empty body.
func (r *Request) DecodeOptional(v any) error {
	if len(bytes.TrimSpace(r.Body)) == 0 {
		return nil
	}
	return r.Decode(v)
}

// CheckID refuses an id that is not 1-64 characters of A-Za-z0-9._-
// (protocol.ValidID), naming what it is.
func CheckID(what, id string) error {
	if !protocol.ValidID(id) {
		return Invalid("%s %q: must be 1-64 characters of A-Za-z0-9._-", what, truncateID(id))
	}
	return nil
}

// Load reads the JSON record at key through tx (so it enters the read
// set). A missing key is a NotFound refusal naming what ("package PKG-1");
// a record that does not decode is a broken invariant (an error that
// answers 500).
func Load[T any](tx *Tx, key, what string) (*T, error) {
	v, ok, err := Lookup[T](tx, key)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if !ok {
		return nil, NotFound("%s not found", what)
	}
	return v, nil
}

// Lookup is Load for a record that may be absent: ok is false if it is.
func Lookup[T any](tx *Tx, key string) (v *T, ok bool, err error) {
	raw, ok := tx.Get(key)
	if !ok {
		return nil, false, nil
	}
	v = new(T)
	if err := json.Unmarshal(raw, v); err != nil {
		return nil, false, fmt.Errorf("decode %s: %w", key, err)
	}
	return v, true, nil
}

// PutJSON writes v as JSON at key.
func (t *Tx) PutJSON(key string, v any) { t.Put(key, MustJSON(v)) }
