// Package ledger is duet's L1: the ABCI 2.0 application every validator runs.
//
// A transaction is a protocol.Batch of session bundles. FinalizeBlock judges
// each bundle on its own, in order, against the state left by the bundles
// before it:
//
//  1. the session id was applied before: ALREADY_COMMITTED;
//  2. the L2 node is not a registered "l2" actor or its signature fails:
//     UNAUTHENTICATED / PERMISSION_DENIED;
//  3. the ops do not form a session (start ... commit) or a one-op direct
//     session: INVALID_SESSION; an op time outside the block-time window:
//     TIME_OUT_OF_BOUNDS;
//  4. a claimed read version differs from the current one: CONFLICT;
//  5. re-execution through service.Registry.Apply (which checks every actor
//     signature over the op chain): a 401 is UNAUTHENTICATED; any result
//     that differs from the claim is RESULT_MISMATCH, recorded on the ledger
//     as evidence against the node;
//  6. otherwise the session's writes are applied at version = height and the
//     session id is recorded.
//
// Each verdict is a protocol.Outcome; the transaction's result Data is their
// canonical encoding, so CometBFT's LastResultsHash commits to them. Events
// repeat them for subscribers. Commit saves the IAVL tree (state, height and
// app hash, atomically); Info reports them for the handshake.
package ledger
