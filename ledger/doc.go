// Package ledger is duet's L1: the ABCI 2.0 application every validator runs.
//
// A transaction is a protocol.Batch of session bundles. FinalizeBlock judges
// each bundle on its own, in order, against the state left by the bundles
// before it:
//
//  1. the actor's session id was applied before: ALREADY_COMMITTED (a
//     session id is its actor's own: sessions are keyed by actor and id);
//  2. the L2 node is not a registered "l2" actor or its signature fails:
//     UNAUTHENTICATED / PERMISSION_DENIED;
//  3. the ops do not form a session by service.Classify (start, steps,
//     commit) or a one-op direct session: INVALID_SESSION; an op time
//     outside the block-time window or before the op before it:
//     TIME_OUT_OF_BOUNDS;
//  4. the block is later than the expiry the actor signed on the last op:
//     EXPIRED;
//  5. a claimed read version differs from the current one: CONFLICT;
//  6. re-execution through service.Registry.Apply (which checks every actor
//     signature over the op chain): a 401 is UNAUTHENTICATED; any result
//     that differs from the claim is RESULT_MISMATCH, recorded on the ledger
//     as evidence against the node;
//  7. an op failed (not 2xx), even one whose failure the node claimed: its
//     actor was told it failed, so it must never take effect:
//     INVALID_SESSION;
//  8. otherwise the session's writes are applied at version = height and its
//     record (actor, node, height, tx, last op hash, results digest) is
//     kept under its actor and id.
//
// CheckTx refuses what FinalizeBlock would, cheapest check first: a batch
// that does not decode, a bundle whose node is not registered or did not
// sign it (one signature check for the whole bundle), a last op already
// expired, a batch whose every bundle is already committed, then any bad
// actor signature (all of them in one batch verification).
//
// Each verdict is a protocol.Outcome; the transaction's result Data is their
// canonical encoding, so CometBFT's LastResultsHash commits to them. Events
// repeat them for subscribers. Commit saves the IAVL tree (state, height and
// app hash, atomically); Info reports them for the handshake.
package ledger
