// Package proof is duet's verifiable finality: a session proof, one
// self-contained JSON document that lets anyone check a session's outcome
// offline, trusting only the validator set of the chain's genesis; the
// completion certificate that names a proof by its hash; and the check of
// an L2 receipt against a proof (a broken promise).
//
// Verify runs the checks in the order of docs/verify.md, with CometBFT's
// own code for everything CometBFT defines (light blocks, commits, the
// transaction and result Merkle proofs) and ics23 for the state. The same
// code runs in `duet verify`, the client SDK and, compiled to WebAssembly,
// the console.
package proof

import (
	"errors"

	"github.com/duet-bft/duet/protocol"
)

// Format is the version tag of a proof document.
const Format = "duet/proof/v1"

// MaxProofBytes bounds a proof document a verifier reads (and so what a
// node serves). The largest session stays well under it: base64 of a
// transaction of at most protocol.MaxBatchBytes (2 MiB), of the session's
// ops again (at most protocol.MaxBundleBytes, bodies and signed bytes) and
// their answers (as much again), and of the keys it wrote (at most 4 MiB of
// keys and values read and written, service.Tx), each value twice (in the
// entry and in its ics23 proof): about 21 MiB at most.
const MaxProofBytes = 32 << 20

// Proof is a session proof. Every field is checked by Verify; a proof
// carries nothing else (unknown fields are refused).
type Proof struct {
	Format  string `json:"format"`
	ChainID string `json:"chain_id"`
	Session string `json:"session"`
	Actor   string `json:"actor"`
	Node    string `json:"node"` // the L2 node that executed the session and signed its bundle
	Height  int64  `json:"height"`
	// Outcome is L1's verdict on the session's bundle.
	Outcome Outcome `json:"outcome"`
	// Ops are the session's signed ops, as the bundle in Block.Tx holds
	// them, with the answers the node gave (if the node serving the proof
	// kept them).
	Ops []Op `json:"ops"`
	// Receipts are the executing node's signed receipts, one per op, when
	// that node serves the proof.
	Receipts []Receipt `json:"receipts"`
	// Block is block Height: its header and the inclusion and verdict of
	// the transaction.
	Block Block `json:"block"`
	// LightBlock is block Height+1, signed by more than 2/3 of the voting
	// power of its validator set: it commits to header Height (LastBlockID),
	// the state after Height (AppHash) and the verdicts of Height
	// (LastResultsHash).
	LightBlock LightBlock `json:"light_block"`
	// ValidatorHistory, if the validator set of LightBlock is not the
	// trusted (genesis) one, is a chain of light blocks from one signed by
	// the trusted set, each verified from the one before it with the light
	// client's rules (light.Verify); LightBlock is verified from the last.
	ValidatorHistory []LightBlock `json:"validator_history,omitempty"`
	// StateBefore proves, against header Height's AppHash (the state after
	// Height-1), the records of the actor and of the node: their keys.
	StateBefore []State `json:"state_before"`
	// StateAfter proves, against LightBlock's AppHash (the state after
	// Height), the session's record followed by every key it wrote (an OK
	// verdict), or the evidence against the node (RESULT_MISMATCH).
	StateAfter []State `json:"state_after"`
}

// Absent is the outcome of a proof of absence: as of Height, L1 holds no
// record of the session (it committed no such session). Such a proof
// carries block Height's header, the light block Height+1, the actor's and
// the node's records (StateBefore) and a non-membership proof of the
// session's record (StateAfter); every other field is empty. Held against
// a receipt, it shows a promise the node did not keep in time (see
// MinPromiseWindow).
const Absent = "ABSENT"

// Outcome is L1's verdict on one bundle.
type Outcome struct {
	Code    string        `json:"code"`    // protocol.Code name: OK, RESULT_MISMATCH, ...; or Absent
	Results protocol.Hash `json:"results"` // L1's results digest of its re-execution (hex)
}

// Op is one signed op of the session.
type Op struct {
	Seq       uint64        `json:"seq"`
	Method    string        `json:"method"`
	Path      string        `json:"path"`
	Body      []byte        `json:"body"` // base64
	Time      int64         `json:"time"`
	Expires   int64         `json:"expires"`
	Signed    []byte        `json:"signed"`    // the bytes the actor signed (duet/op/v2), base64
	Signature []byte        `json:"signature"` // the actor's Ed25519 signature, base64
	Hash      protocol.Hash `json:"hash"`      // sha256 of Signed (protocol.OpHash), which the next op's signed bytes name: the op chain
	// ResultHash is the result the node claimed in the bundle; Status and
	// Result, when present, are the answer it hashes.
	ResultHash protocol.Hash `json:"result_hash"`
	Status     int           `json:"status,omitempty"`
	Result     []byte        `json:"result,omitempty"` // base64
}

// Receipt is an L2 node's signed receipt (protocol.Receipt) with its
// signature.
type Receipt struct {
	protocol.Receipt
	Signature []byte `json:"signature"`
}

// Block is block Height's part of the proof.
type Block struct {
	Header []byte `json:"header"` // the header, protobuf (tendermint.types.Header), base64
	Tx     []byte `json:"tx"`     // the transaction (a duet batch), base64
	// TxProof proves Tx against the header's DataHash; its index is the
	// transaction's index in the block.
	TxProof MerkleProof `json:"tx_proof"`
	Bundle  int         `json:"bundle"` // the session's bundle in the batch
	// Result is the transaction's deterministic ABCI result, whose Data
	// lists the verdict on each bundle (protocol.EncodeOutcomes); ResultProof
	// proves it against LightBlock's LastResultsHash.
	Result      TxResult    `json:"result"`
	ResultProof MerkleProof `json:"result_proof"`
}

// MerkleProof is CometBFT's merkle.Proof.
type MerkleProof struct {
	Total    int64    `json:"total"`
	Index    int64    `json:"index"`
	LeafHash []byte   `json:"leaf_hash"`
	Aunts    [][]byte `json:"aunts"`
}

// TxResult is the deterministic part of an ABCI ExecTxResult.
type TxResult struct {
	Code      uint32 `json:"code"`
	Data      []byte `json:"data"`
	GasWanted int64  `json:"gas_wanted"`
	GasUsed   int64  `json:"gas_used"`
}

// LightBlock is a signed header and the validator set that signed it.
type LightBlock struct {
	SignedHeader []byte      `json:"signed_header"` // protobuf (tendermint.types.SignedHeader), base64
	Validators   []Validator `json:"validators"`    // in the set's canonical order
}

// Validator is one member of a validator set.
type Validator struct {
	PubKey []byte `json:"pub_key"` // Ed25519, base64
	Power  int64  `json:"power"`
}

// State is one key of the ledger's state with an ics23 proof.
type State struct {
	Key    string `json:"key"`
	Stored []byte `json:"stored"` // uvarint(version) || value, base64; "" if absent
	Proof  []byte `json:"proof"`  // ics23.CommitmentProof, protobuf, base64
}

// Request asks a node for a proof.
type Request struct {
	Actor, Session string
	// Canonical: without the answers and receipts only the executing node
	// holds, so that every node gives the same bytes.
	Canonical bool
	// Absent: if L1 never judged the session, a proof of absence (as of
	// the last provable height) rather than ErrNotFound; Node names the L2
	// node it is held against (default: the serving node).
	Absent bool
	Node   string
}

// Errors a node's prover returns.
var (
	ErrNotFinal = errors.New("proof: the session is not final yet")
	ErrNotYet   = errors.New("proof: not provable yet: the block after next is not committed (at most a few seconds)")
	// ErrUnprovable: no proof of the session verifies. L1 rejected it as
	// UNAUTHENTICATED or PERMISSION_DENIED, for an actor or node it does not
	// know as such, so no proof can show the keys that sign it; or its proof
	// would be over MaxProofBytes (a session that wrote very many keys); or
	// it wrote a key that is not UTF-8, which its record cannot name.
	ErrUnprovable = errors.New("proof: no proof of this session can verify")
)
