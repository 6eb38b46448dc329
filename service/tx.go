package service

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/duet-bft/duet/protocol"
)

// Store is a read-only view of committed state. Get returns the value of key
// and the version (the L1 height that last wrote it); version 0 and a nil
// value mean the key does not exist.
type Store interface {
	Get(key string) (value []byte, version uint64, err error)
}

// ReservedPrefix is the key space of the ledger's own records (sessions,
// evidence). Handlers may read it but never write it.
const ReservedPrefix = "ledger/"

// SessionRecord is what the ledger keeps, under SessionKey, of each session
// it applied. Handlers may read it, e.g. to show L1 references. LastOp (the
// hash of the last op, which names the whole op chain) and Results (the
// results digest) let an L2 node check that a record is its own session.
type SessionRecord struct {
	Session string `json:"session"`
	Actor   string `json:"actor"`
	Node    string `json:"node"`
	Height  int64  `json:"height"`
	TxHash  string `json:"tx_hash"`
	Ops     int    `json:"ops"`
	LastOp  string `json:"last_op"`
	Results string `json:"results"`
	// Writes are the state keys the session wrote, sorted: what a session
	// proof proves the values of (package proof).
	Writes []string `json:"writes,omitempty"`
}

// Evidence is what the ledger records, under EvidenceKey, when an L2 node's
// claimed results differ from what every honest validator computes.
type Evidence struct {
	Node    string `json:"node"`
	Actor   string `json:"actor"`
	Session string `json:"session"`
	Height  int64  `json:"height"`
	TxHash  string `json:"tx_hash"`
	Seq     int    `json:"seq"`     // first op whose result differs
	Claimed string `json:"claimed"` // result hash the node signed
	Actual  string `json:"actual"`  // result hash of re-execution
}

// EvidencePrefix starts the keys of every Evidence record.
const EvidencePrefix = ReservedPrefix + "evidence/"

// EvidenceKey is the state key of the Evidence against node for a session
// of actor: one record per (node, actor, session).
func EvidenceKey(node, actor, session string) string {
	return EvidencePrefix + node + "/" + actor + "/" + session
}

// SessionKey is the state key of a committed session's record. Sessions are
// keyed by actor and id: an id is the actor's own, and no one else can take
// it.
func SessionKey(actor, id string) string { return ReservedPrefix + "session/" + actor + "/" + id }

// LookupSession reads a committed session's record from st.
func LookupSession(st Store, actor, id string) (SessionRecord, bool) {
	raw, _, err := st.Get(SessionKey(actor, id))
	if err != nil {
		return SessionRecord{}, false
	}
	return decodeSessionRecord(raw)
}

// SessionOf reads a committed session's record through a handler's Tx.
func SessionOf(tx *Tx, actor, id string) (SessionRecord, bool) {
	raw, _ := tx.Get(SessionKey(actor, id))
	return decodeSessionRecord(raw)
}

func decodeSessionRecord(raw []byte) (SessionRecord, bool) {
	var rec SessionRecord
	if raw == nil || json.Unmarshal(raw, &rec) != nil {
		return SessionRecord{}, false
	}
	return rec, true
}

// ErrReserved is recorded when a handler writes to ReservedPrefix.
var ErrReserved = errors.New("service: write to reserved key space")

// ErrTooLarge is recorded when an op takes its session over a limit: the
// read set over protocol.MaxReads entries, the keys and values it read and
// wrote over MaxTxBytes, or a limit the caller set with Tx.Limit. Apply
// answers such an op 413 TOO_LARGE and keeps nothing of it.
var ErrTooLarge = errors.New("service: session too large")

// ErrHeld is what a Store returns, wrapped, for a key it will not let this
// session read now: an L2 node's view refuses keys another of its live
// sessions holds. Apply answers the op 409 CONFLICT with the store's
// message, which names the holder; it is not a store failure.
var ErrHeld = errors.New("service: key held by another session")

// Held is ErrHeld with who holds the key: the session, its actor, and when
// the session started (Unix ms). Apply answers it 409 CONFLICT with these
// in the error body ("holder"), so a client can say who has the key.
type Held struct {
	Key     string `json:"key"`
	Session string `json:"session"`
	Actor   string `json:"actor"`
	Since   int64  `json:"since"`
}

func (h *Held) Error() string {
	return fmt.Sprintf("%s is held by session %s of %s (open since %s)", h.Key, h.Session, h.Actor,
		time.UnixMilli(h.Since).UTC().Format("2006-01-02 15:04:05 UTC"))
}

func (h *Held) Unwrap() error { return ErrHeld }

// MaxTxBytes bounds the bytes of keys and values one session reads and
// writes (each key counted once per read and once per write): what an L2
// node holds in memory for its overlay, and what one session may add to
// the state.
const MaxTxBytes = 4 << 20

// KV is one entry of a write set.
type KV struct {
	Key   string
	Value []byte
}

type readEntry struct {
	value   []byte
	version uint64
}

// Tx is the state one session sees: committed state (Store) plus the
// session's own writes. Reads of committed keys are cached and recorded with
// their version, so a session sees a consistent snapshot and L1 can tell
// when it went stale. Writes of the op being applied are journaled apart and
// kept only if the op succeeds.
//
// A Tx is not safe for concurrent use; sessions are independent Txs.
type Tx struct {
	base   Store
	reads  map[string]readEntry // committed keys read by kept ops
	writes map[string][]byte    // writes of kept ops
	claims []string             // keys claimed by kept ops (Claim)
	bytes  int                  // keys and values in reads and writes
	readSz int                  // protocol.MaxReadSize of every key in reads

	opReads  map[string]readEntry // reads of the op in progress
	opWrites map[string][]byte    // writes of the op in progress
	opClaims []string
	opBytes  int
	opReadSz int
	err      error // first rule error of the op in progress (a result: the same on every node)
	storeErr error // first failure of the store under the Tx (sticky: nothing read after it is trusted)

	limit   func(t *Tx, resp Response) error
	genesis bool // InitGenesis: not a session, so no session limits
}

// NewTx returns an empty session view over base.
func NewTx(base Store) *Tx {
	return &Tx{base: base, reads: map[string]readEntry{}, writes: map[string][]byte{}}
}

// Limit sets a check that Apply makes before it keeps a successful op: a
// non-nil error refuses the op (413 TOO_LARGE). An L2 node uses it to keep
// each session within what L1 accepts (see ReadSetSize).
func (t *Tx) Limit(f func(t *Tx, resp Response) error) { t.limit = f }

// ReadSetSize returns the entries of the read set, and a bound on their
// encoded size in a bundle (protocol.MaxReadSize of each key), counting the
// reads of the op in progress.
func (t *Tx) ReadSetSize() (n, size int) {
	return len(t.reads) + len(t.opReads), t.readSz + t.opReadSz
}

// Bytes returns the bytes of keys and values the session has read and
// written (as MaxTxBytes counts them), the op in progress included: what
// its overlay holds in memory.
func (t *Tx) Bytes() int { return t.bytes + t.opBytes }

// Get returns the value of key as this session sees it. A key that cannot
// exist (empty, or longer than protocol.MaxKeyLen) is not found and not
// recorded.
func (t *Tx) Get(key string) ([]byte, bool) {
	if key == "" || len(key) > protocol.MaxKeyLen {
		return nil, false
	}
	if v, ok := t.opWrites[key]; ok {
		return v, true
	}
	if v, ok := t.writes[key]; ok {
		return v, true
	}
	if r, ok := t.reads[key]; ok {
		return r.value, r.value != nil
	}
	if r, ok := t.opReads[key]; ok {
		return r.value, r.value != nil
	}
	if len(t.reads)+len(t.opReads) >= protocol.MaxReads && !t.genesis {
		t.fail(fmt.Errorf("%w: a session may read at most %d keys", ErrTooLarge, protocol.MaxReads))
		return nil, false
	}
	v, ver, err := t.base.Get(key)
	if errors.Is(err, ErrHeld) {
		t.fail(err)
		return nil, false
	}
	if err != nil {
		if t.storeErr == nil {
			t.storeErr = fmt.Errorf("service: read %q: %w", key, err)
		}
		return nil, false
	}
	if !t.grow(len(key) + len(v)) {
		return nil, false
	}
	if t.opReads == nil {
		t.opReads = map[string]readEntry{}
	}
	t.opReads[key] = readEntry{value: v, version: ver}
	t.opReadSz += protocol.MaxReadSize(key)
	return v, v != nil
}

// grow counts n more bytes of the op in progress against MaxTxBytes.
func (t *Tx) grow(n int) bool {
	t.opBytes += n
	if t.bytes+t.opBytes > MaxTxBytes && !t.genesis {
		t.fail(fmt.Errorf("%w: a session may read and write at most %d bytes of keys and values", ErrTooLarge, MaxTxBytes))
		return false
	}
	return true
}

// Claim names keys the session claims without writing them (a session
// start's hook does, see Registry.OnStart). An L2 node reserves them, like
// the keys the session writes, until the session ends. Claims of an op that
// fails are dropped with it.
func (t *Tx) Claim(keys ...string) { t.opClaims = append(t.opClaims, keys...) }

// Claims returns the keys the session's kept ops claimed, in order.
func (t *Tx) Claims() []string { return t.claims }

// OpKeys returns the keys the op in progress writes or claims, sorted and
// unique: what an L2 node would reserve if it kept the op.
func (t *Tx) OpKeys() []string {
	out := append([]string(nil), t.opClaims...)
	for k := range t.opWrites {
		out = append(out, k)
	}
	sort.Strings(out)
	return slices.Compact(out)
}

// OpReadKeys returns the keys of committed state the op in progress read
// (not those it found in the session's own writes or earlier reads),
// sorted: what an L2 node checks against other sessions' reservations.
func (t *Tx) OpReadKeys() []string {
	out := make([]string, 0, len(t.opReads))
	for k := range t.opReads {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Put buffers a write of key. A nil value is stored as empty.
func (t *Tx) Put(key string, value []byte) {
	if strings.HasPrefix(key, ReservedPrefix) || key == "" || len(key) > protocol.MaxKeyLen {
		t.fail(fmt.Errorf("%w: %q", ErrReserved, key))
		return
	}
	if value == nil {
		value = []byte{}
	}
	if old, ok := t.opWrites[key]; ok {
		t.opBytes -= len(key) + len(old)
	}
	if !t.grow(len(key) + len(value)) {
		return
	}
	if t.opWrites == nil {
		t.opWrites = map[string][]byte{}
	}
	t.opWrites[key] = value
}

func (t *Tx) fail(err error) {
	if t.err == nil {
		t.err = err
	}
}

// keep merges the op in progress into the session; drop discards it.
func (t *Tx) keep() {
	for k, r := range t.opReads {
		t.reads[k] = r
	}
	for k, v := range t.opWrites {
		if old, ok := t.writes[k]; ok {
			t.bytes -= len(k) + len(old)
		}
		t.writes[k] = v
	}
	t.claims = append(t.claims, t.opClaims...)
	t.bytes += t.opBytes
	t.readSz += t.opReadSz
	t.drop()
}

func (t *Tx) drop() {
	t.opReads, t.opWrites, t.opClaims, t.err = nil, nil, nil, nil
	t.opBytes, t.opReadSz = 0, 0
}

// Reads returns the session's read set sorted by key: every committed key a
// kept op read before the session wrote it, with the version seen.
func (t *Tx) Reads() []protocol.Read {
	out := make([]protocol.Read, 0, len(t.reads))
	for k, r := range t.reads {
		out = append(out, protocol.Read{Key: k, Version: r.version})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// Writes returns the session's write set sorted by key.
func (t *Tx) Writes() []KV {
	out := make([]KV, 0, len(t.writes))
	for k, v := range t.writes {
		out = append(out, KV{Key: k, Value: v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// WriteKeys returns the keys the session has written, sorted.
func (t *Tx) WriteKeys() []string {
	out := make([]string, 0, len(t.writes))
	for k := range t.writes {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
