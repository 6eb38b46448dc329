// Package protocol is duet's wire format: the bytes an actor signs for each
// operation, the session bundles an L2 node submits to L1, the batches that
// carry bundles in one L1 transaction, the per-bundle outcomes L1 returns, and
// the receipts an L2 node signs for each step.
//
// Everything here is pure: no I/O, no clock, no randomness. Encodings are
// canonical (one byte string per value) and versioned by a leading tag, and
// every decoder rejects malformed, non-canonical or oversized input with an
// error, never a panic.
//
// A caller building a bundle does, in order:
//
//  1. For each op, compute OpBytes(session, seq, prev, method, path, body,
//     expires) and have the actor sign it (Ed25519). OpHash chains the ops:
//     op seq k names the hash of op k-1 (64 zeros for seq 0).
//  2. Execute the op before its expiry and record ResultHash(status, body)
//     of its result. Keep only ops that succeeded, and only while the
//     bundle stays within MaxOps and MaxBundleBytes (Bundle.Size, with room
//     left for the commit).
//  3. Collect the session's read set (key, version), sorted by key.
//  4. Fill a Bundle, sign it with Bundle.Sign using the L2 node's key.
//  5. Put bundles in a Batch of at most MaxBatchBytes and submit
//     EncodeBatch(b) as one L1 transaction.
package protocol
