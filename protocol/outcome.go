package protocol

import (
	"encoding/binary"
	"fmt"
)

// Code is the L1 verdict on one bundle. It is also the ABCI result code of a
// transaction that cannot be decoded at all (CodeMalformed).
type Code uint32

const (
	CodeOK               Code = 0
	CodeMalformed        Code = 1 // not a canonical batch
	CodeUnauthenticated  Code = 2 // unknown actor or node, or a bad signature
	CodeConflict         Code = 3 // a read is stale: another session changed the state it saw
	CodeResultMismatch   Code = 4 // re-execution disagrees with the claimed results
	CodeAlreadyCommitted Code = 5 // the session id was applied before
	CodeInvalidSession   Code = 6 // wrong shape: no start/commit, mixed actors
	CodeTimeOutOfBounds  Code = 7 // op timestamps outside the block-time window
	CodePermissionDenied Code = 8 // the node is not a registered L2 node
	CodeExpired          Code = 9 // the block is later than the expiry the actor signed on the last op
)

var codeNames = [...]string{"OK", "MALFORMED", "UNAUTHENTICATED", "CONFLICT", "RESULT_MISMATCH",
	"ALREADY_COMMITTED", "INVALID_SESSION", "TIME_OUT_OF_BOUNDS", "PERMISSION_DENIED", "EXPIRED"}

func (c Code) String() string {
	if int(c) < len(codeNames) {
		return codeNames[c]
	}
	return fmt.Sprintf("CODE_%d", uint32(c))
}

// Outcome is L1's verdict on one bundle of a batch, in batch order. Results
// is the ResultsDigest of L1's own re-execution (zero when it did not run).
type Outcome struct {
	Session string
	Code    Code
	Results Hash
}

// EncodeOutcomes is the canonical encoding carried in a transaction's result
// Data, so that CometBFT's LastResultsHash commits to every verdict.
func EncodeOutcomes(outs []Outcome) []byte {
	b := []byte{outcomesTag}
	b = binary.AppendUvarint(b, uint64(len(outs)))
	for i := range outs {
		b = appendString(b, outs[i].Session)
		b = binary.AppendUvarint(b, uint64(outs[i].Code))
		b = append(b, outs[i].Results[:]...)
	}
	return b
}

// DecodeOutcomes parses what EncodeOutcomes produced.
func DecodeOutcomes(data []byte) ([]Outcome, error) {
	d := decoder{buf: data}
	if d.byte() != outcomesTag {
		return nil, fmt.Errorf("%w: not a duet outcome list", ErrMalformed)
	}
	n := d.count(MaxBundles)
	outs := make([]Outcome, n)
	for i := 0; i < n && d.err == nil; i++ {
		outs[i].Session = d.string(MaxIDLen)
		c := d.uvarint()
		if c > 1<<31 {
			d.fail("code out of range")
		}
		outs[i].Code = Code(c)
		copy(outs[i].Results[:], d.raw(32))
	}
	if d.err != nil {
		return nil, d.err
	}
	if len(d.buf) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrMalformed, len(d.buf))
	}
	return outs, nil
}

// Block is what a committed block did: its height and time and, for each
// decodable transaction, its hash and the verdict on each bundle.
type Block struct {
	Height int64
	Time   int64 // block time, Unix milliseconds (what L1 checks op expiries against)
	Txs    []TxResult
}

// TxResult is one transaction of a Block.
type TxResult struct {
	Hash     string // upper-case hex SHA-256 of the tx, as CometBFT names it
	Outcomes []Outcome
	Reasons  []string // why each rejected bundle was rejected ("" if accepted)
}
