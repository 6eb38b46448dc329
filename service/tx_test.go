package service

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/duet-bft/duet/protocol"
)

// memStore is an in-memory Store. Keys in fail return an error.
type memStore struct {
	m    map[string]memEntry
	fail map[string]bool
}

type memEntry struct {
	value   []byte
	version uint64
}

var errStore = errors.New("memstore: disk on fire")

func newMemStore() *memStore {
	return &memStore{m: map[string]memEntry{}, fail: map[string]bool{}}
}

func (s *memStore) Get(key string) ([]byte, uint64, error) {
	if s.fail[key] {
		return nil, 0, errStore
	}
	e, ok := s.m[key]
	if !ok {
		return nil, 0, nil
	}
	return e.value, e.version, nil
}

func (s *memStore) set(key, value string, version uint64) {
	s.m[key] = memEntry{value: []byte(value), version: version}
}

func checkGet(t *testing.T, tx *Tx, key string, wantValue string, wantOK bool) {
	t.Helper()
	v, ok := tx.Get(key)
	if string(v) != wantValue || ok != wantOK {
		t.Errorf("Get(%q) = %q, %v; want %q, %v", key, v, ok, wantValue, wantOK)
	}
}

func checkReads(t *testing.T, tx *Tx, want []protocol.Read) {
	t.Helper()
	if got := tx.Reads(); !reflect.DeepEqual(got, want) {
		t.Errorf("Reads() = %v, want %v", got, want)
	}
}

func checkWrites(t *testing.T, tx *Tx, want []KV) {
	t.Helper()
	got := tx.Writes()
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Writes() = %s, want %s", fmtKVs(got), fmtKVs(want))
	}
}

func fmtKVs(kvs []KV) string {
	var b strings.Builder
	b.WriteString("[")
	for i, kv := range kvs {
		if i > 0 {
			b.WriteString(" ")
		}
		b.WriteString(kv.Key + "=" + string(kv.Value))
	}
	b.WriteString("]")
	return b.String()
}

func TestTxReadSet(t *testing.T) {
	st := newMemStore()
	st.set("a", "A", 3)
	st.set("b", "B", 5)
	tx := NewTx(st)

	// Op 1: read a committed key, a missing key, and a key written first.
	checkGet(t, tx, "a", "A", true)
	checkGet(t, tx, "missing", "", false)
	tx.Put("b", []byte("B1"))
	checkGet(t, tx, "b", "B1", true)
	tx.keep()
	checkReads(t, tx, []protocol.Read{{Key: "a", Version: 3}, {Key: "missing", Version: 0}})
	checkWrites(t, tx, []KV{{Key: "b", Value: []byte("B1")}})

	// The base store moves on; the session keeps its snapshot and records
	// the first version it saw.
	st.set("a", "A2", 9)
	st.set("missing", "now here", 9)
	st.set("b", "B2", 9)
	checkGet(t, tx, "a", "A", true)
	checkGet(t, tx, "missing", "", false)
	checkGet(t, tx, "b", "B1", true)
	tx.Put("a", []byte("A3"))
	checkGet(t, tx, "a", "A3", true)
	tx.keep()
	checkReads(t, tx, []protocol.Read{{Key: "a", Version: 3}, {Key: "missing", Version: 0}})
	checkWrites(t, tx, []KV{{Key: "a", Value: []byte("A3")}, {Key: "b", Value: []byte("B1")}})
}

func TestTxSnapshotWithinOp(t *testing.T) {
	st := newMemStore()
	st.set("k", "v1", 1)
	tx := NewTx(st)
	checkGet(t, tx, "k", "v1", true)
	st.set("k", "v2", 2)
	checkGet(t, tx, "k", "v1", true)
	tx.keep()
	checkGet(t, tx, "k", "v1", true)
	checkReads(t, tx, []protocol.Read{{Key: "k", Version: 1}})
}

func TestTxWrittenKeyNotRead(t *testing.T) {
	st := newMemStore()
	st.set("k", "old", 4)
	tx := NewTx(st)
	tx.Put("k", []byte("new"))
	tx.keep()
	checkGet(t, tx, "k", "new", true)
	tx.keep()
	checkReads(t, tx, []protocol.Read{})
	if got := tx.WriteKeys(); !reflect.DeepEqual(got, []string{"k"}) {
		t.Errorf("WriteKeys() = %q, want [k]", got)
	}
}

func TestTxDropDiscardsOp(t *testing.T) {
	st := newMemStore()
	st.set("r", "R", 1)
	st.set("w", "W", 1)
	tx := NewTx(st)
	tx.Put("kept", []byte("1"))
	tx.keep()

	// A failed op: its reads and writes vanish.
	checkGet(t, tx, "r", "R", true)
	tx.Put("w", []byte("W!"))
	tx.Put("kept", []byte("overwritten"))
	tx.drop()
	checkReads(t, tx, []protocol.Read{})
	checkWrites(t, tx, []KV{{Key: "kept", Value: []byte("1")}})
	checkGet(t, tx, "w", "W", true)
	checkGet(t, tx, "kept", "1", true)

	// A later op that reads r sees the state at that time, not the
	// failed op's snapshot.
	st.set("r", "R2", 2)
	checkGet(t, tx, "r", "R2", true)
	tx.keep()
	checkReads(t, tx, []protocol.Read{{Key: "r", Version: 2}, {Key: "w", Version: 1}})
}

func TestTxWritesSorted(t *testing.T) {
	tx := NewTx(newMemStore())
	for _, k := range []string{"z", "m", "a", "b/2", "b/10", "B"} {
		tx.Put(k, []byte(k))
	}
	tx.keep()
	tx.Put("c", nil) // stored as empty
	tx.keep()
	want := []KV{
		{Key: "B", Value: []byte("B")}, {Key: "a", Value: []byte("a")}, {Key: "b/10", Value: []byte("b/10")},
		{Key: "b/2", Value: []byte("b/2")}, {Key: "c", Value: []byte{}}, {Key: "m", Value: []byte("m")}, {Key: "z", Value: []byte("z")},
	}
	checkWrites(t, tx, want)
	if got, want := tx.WriteKeys(), []string{"B", "a", "b/10", "b/2", "c", "m", "z"}; !reflect.DeepEqual(got, want) {
		t.Errorf("WriteKeys() = %q, want %q", got, want)
	}
	// A nil write still exists.
	if v, ok := tx.Get("c"); !ok || v == nil || len(v) != 0 {
		t.Errorf("Get(c) after Put(c, nil) = %q (nil %v), %v; want empty non-nil, true", v, v == nil, ok)
	}
}

func TestTxReadsSorted(t *testing.T) {
	st := newMemStore()
	for i, k := range []string{"z", "m", "a", "b"} {
		st.set(k, k, uint64(i+1))
	}
	tx := NewTx(st)
	for _, k := range []string{"z", "m", "a", "b", "nope"} {
		tx.Get(k)
	}
	tx.keep()
	checkReads(t, tx, []protocol.Read{{Key: "a", Version: 3}, {Key: "b", Version: 4}, {Key: "m", Version: 2}, {Key: "nope", Version: 0}, {Key: "z", Version: 1}})
}

func TestTxPutRejectsKeys(t *testing.T) {
	tests := []struct {
		name string
		key  string
	}{
		{"reserved prefix", "ledger/session/s-1"},
		{"reserved prefix exactly", "ledger/"},
		{"empty key", ""},
		{"key too long", strings.Repeat("k", protocol.MaxKeyLen+1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tx := NewTx(newMemStore())
			tx.Put("ok", []byte("1"))
			tx.Put(tt.key, []byte("x"))
			if !errors.Is(tx.err, ErrReserved) {
				t.Errorf("tx.err = %v, want ErrReserved", tx.err)
			}
			if _, ok := tx.opWrites[tt.key]; ok {
				t.Errorf("rejected key %q was buffered", tt.key)
			}
		})
	}
	// Reading the reserved space and the longest key is fine.
	st := newMemStore()
	st.set("ledger/x", "L", 1)
	tx := NewTx(st)
	checkGet(t, tx, "ledger/x", "L", true)
	tx.Put(strings.Repeat("k", protocol.MaxKeyLen), []byte("1"))
	tx.Put("ledger", []byte("1"))
	if tx.err != nil {
		t.Errorf("tx.err = %v, want nil", tx.err)
	}
}

func TestTxStoreError(t *testing.T) {
	st := newMemStore()
	st.fail["boom"] = true
	tx := NewTx(st)
	checkGet(t, tx, "boom", "", false)
	if !errors.Is(tx.storeErr, errStore) {
		t.Errorf("tx.storeErr = %v, want errStore", tx.storeErr)
	}
	if tx.err != nil {
		t.Errorf("tx.err = %v: a store failure is not a result", tx.err)
	}
	// It sticks: nothing the Tx reads after it is trusted.
	tx.drop()
	if !errors.Is(tx.storeErr, errStore) {
		t.Errorf("tx.storeErr after drop = %v, want errStore", tx.storeErr)
	}
}

// TestApplyStoreError: a failure of the store is Apply's error, not a
// result: a node must not answer, or judge, an op by it.
func TestApplyStoreError(t *testing.T) {
	tx := NewTx(testStore())
	resp, err := testRegistry().Apply(tx, signOp(aliceKey, "alice", 1, "POST", "/v1/storeerr", nil))
	if !errors.Is(err, errStore) || resp.Status != 0 {
		t.Fatalf("Apply = %d %s, %v; want no response and errStore", resp.Status, resp.Body, err)
	}
	checkWrites(t, tx, nil)
	if _, err := testRegistry().Query(testStore(), "/v1/widgets/w1"); err != nil {
		t.Errorf("Query of a readable key: %v", err)
	}
	st := testStore()
	st.fail["widget/w9"] = true
	if resp, err := testRegistry().Query(st, "/v1/widgets/w9"); !errors.Is(err, errStore) {
		t.Errorf("Query of a failing key = %d %s, %v; want errStore", resp.Status, resp.Body, err)
	}
}

func TestTxReadThenWrite(t *testing.T) {
	// A key read before the session wrote it stays in the read set, whether
	// the write comes in the same op or a later one.
	st := newMemStore()
	st.set("same", "S", 4)
	st.set("later", "L", 6)
	tx := NewTx(st)
	checkGet(t, tx, "same", "S", true)
	tx.Put("same", []byte("S2"))
	checkGet(t, tx, "later", "L", true)
	tx.keep()
	tx.Put("later", []byte("L2"))
	tx.keep()
	checkReads(t, tx, []protocol.Read{{Key: "later", Version: 6}, {Key: "same", Version: 4}})
	checkWrites(t, tx, []KV{{Key: "later", Value: []byte("L2")}, {Key: "same", Value: []byte("S2")}})
}
