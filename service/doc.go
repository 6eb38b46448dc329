// Package service is the contract between duet's framework and the
// applications built on it. An application is a Registry of deterministic
// handlers; the same registry runs on L2, to answer each step at once, and
// on every L1 validator, to re-execute and verify each committed session.
//
// A Handler is a function of (Tx, Context, Request) to Response. Tx is a
// versioned key-value view: every read of committed state records the key's
// version (the read set) and every write is buffered (the write set). Context
// carries the authenticated actor, the session, the op's seq and its
// timestamp (assigned by L2, bounded by L1 against block time). Handlers must
// be pure: no wall clock, no randomness, no goroutines, no I/O, no iteration
// over maps whose order reaches the output. encoding/json is fine: it sorts
// map keys.
//
// Registry.Apply is the one apply path. It authenticates the op (actor key
// from state, Ed25519 over protocol.OpBytes), routes it, checks the route's
// roles, runs the handler, and keeps the op's writes only if it succeeded.
// The framework itself registers the session routes and the actor registry;
// it knows nothing of any application's domain.
package service
