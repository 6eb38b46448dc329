package service

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

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
// it applied. Handlers may read it, e.g. to show L1 references.
type SessionRecord struct {
	Session string `json:"session"`
	Actor   string `json:"actor"`
	Node    string `json:"node"`
	Height  int64  `json:"height"`
	TxHash  string `json:"tx_hash"`
	Ops     int    `json:"ops"`
	Results string `json:"results"`
}

// SessionKey is the state key of a committed session's record.
func SessionKey(id string) string { return ReservedPrefix + "session/" + id }

// LookupSession reads a committed session's record from st.
func LookupSession(st Store, id string) (SessionRecord, bool) {
	raw, _, err := st.Get(SessionKey(id))
	if err != nil {
		return SessionRecord{}, false
	}
	return decodeSessionRecord(raw)
}

// SessionOf reads a committed session's record through a handler's Tx.
func SessionOf(tx *Tx, id string) (SessionRecord, bool) {
	raw, _ := tx.Get(SessionKey(id))
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

	opReads  map[string]readEntry // reads of the op in progress
	opWrites map[string][]byte    // writes of the op in progress
	err      error                // first store or rule error of the op in progress
}

// NewTx returns an empty session view over base.
func NewTx(base Store) *Tx {
	return &Tx{base: base, reads: map[string]readEntry{}, writes: map[string][]byte{}}
}

// Get returns the value of key as this session sees it.
func (t *Tx) Get(key string) ([]byte, bool) {
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
	v, ver, err := t.base.Get(key)
	if err != nil {
		t.fail(fmt.Errorf("read %q: %w", key, err))
		return nil, false
	}
	if t.opReads == nil {
		t.opReads = map[string]readEntry{}
	}
	t.opReads[key] = readEntry{value: v, version: ver}
	return v, v != nil
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
		t.writes[k] = v
	}
	t.drop()
}

func (t *Tx) drop() {
	t.opReads, t.opWrites, t.err = nil, nil, nil
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
