package buffer

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func openWAL(t *testing.T, path string) (*WAL, [][]byte) {
	t.Helper()
	w, recs, err := OpenWAL(nil, path, nil)
	if err != nil {
		t.Fatalf("OpenWAL: %v", err)
	}
	return w, recs
}

func appendAll(t *testing.T, w *WAL, recs [][]byte) {
	t.Helper()
	for i, r := range recs {
		if err := w.Append(r); err != nil {
			t.Fatalf("Append %d: %v", i, err)
		}
	}
}

func sameRecords(t *testing.T, got, want [][]byte) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d records, want %d", len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("record %d: got %q, want %q", i, trunc(got[i]), trunc(want[i]))
		}
	}
}

func trunc(b []byte) []byte {
	if len(b) > 40 {
		return b[:40]
	}
	return b
}

func testRecords() [][]byte {
	return [][]byte{
		[]byte("first"),
		{0},
		make([]byte, 5),                 // zeros, but a real record
		bytes.Repeat([]byte{0xAB}, 127), // one-byte length prefix
		bytes.Repeat([]byte("x"), 128),  // two-byte length prefix
		bytes.Repeat([]byte("big"), 40_000),
		[]byte(`{"k":"op","s":"S-1"}`),
	}
}

func TestWALRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "wal.log")
	w, recs := openWAL(t, path)
	if len(recs) != 0 {
		t.Fatalf("new WAL: got %d records, want 0", len(recs))
	}
	first := testRecords()
	appendAll(t, w, first)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}

	w, recs = openWAL(t, path)
	sameRecords(t, recs, first)
	more := [][]byte{[]byte("after reopen 1"), []byte("after reopen 2")}
	appendAll(t, w, more)
	w.Close()

	w, recs = openWAL(t, path)
	defer w.Close()
	sameRecords(t, recs, append(first, more...))
}

// TestWALTornTail damages the last write as a crash would (cut short, or
// with sectors never written) and checks that reopening keeps exactly the
// records before it, cuts the rest off the file, and that later appends are
// read back.
func TestWALTornTail(t *testing.T) {
	recs := [][]byte{[]byte("one"), []byte("two"), bytes.Repeat([]byte("three"), 400), []byte("four")}
	var offsets []int // where each record's frame starts
	var full []byte
	for _, r := range recs {
		offsets = append(offsets, len(full))
		full = frame(full, r)
	}
	three := offsets[2]
	tests := []struct {
		name     string
		mangle   func(data []byte) []byte
		wantRecs int
	}{
		{"intact", func(d []byte) []byte { return d }, 4},
		{"cut in the payload", func(d []byte) []byte { return d[:offsets[3]-10] }, 2},
		{"cut in the crc", func(d []byte) []byte { return d[:three+3] }, 2},
		{"cut in the length", func(d []byte) []byte { return d[:three+1] }, 2},
		{"cut after the length", func(d []byte) []byte { return d[:three+2] }, 2},
		{"garbage appended", func(d []byte) []byte { return append(d, 0x05, 'j', 'u', 'n', 'k') }, 4},
		{"zeros appended", func(d []byte) []byte { return append(d, make([]byte, 64)...) }, 4},
		{"zero length appended", func(d []byte) []byte { return append(d, 0, 0, 0, 0, 0) }, 4},
		{"cut and garbage", func(d []byte) []byte { return append(d[:offsets[3]-50], "garbage"...) }, 2},
		{"a sector of the last record never written", func(d []byte) []byte {
			clear(d[2*sector : 3*sector])
			return d
		}, 2},
		{"a sector lost, the record after it whole", func(d []byte) []byte {
			// The last write held records 3 and 4; the disk wrote 4 but not
			// all of 3. Neither was acknowledged.
			clear(d[sector : 2*sector])
			return append(d, make([]byte, 3*sector)...)
		}, 2},
		{"first sector of the last write never written", func(d []byte) []byte {
			clear(d[three:sector])
			return append(d, make([]byte, 3*sector)...)
		}, 2},
		{"empty file", func(d []byte) []byte { return nil }, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "wal.log")
			if err := os.WriteFile(path, tt.mangle(slices.Clone(full)), 0o600); err != nil {
				t.Fatal(err)
			}
			w, got := openWAL(t, path)
			sameRecords(t, got, recs[:tt.wantRecs])
			good := int64(offsets[min(tt.wantRecs, len(recs)-1)])
			if tt.wantRecs == len(recs) {
				good = int64(len(full))
			}
			// The torn tail is cut: the kept records are followed by zeros only.
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if int64(len(data)) < good || !bytes.Equal(data[:good], full[:good]) {
				t.Fatalf("file after open: does not start with the %d bytes of the intact records", good)
			}
			if i := slices.IndexFunc(data[good:], func(b byte) bool { return b != 0 }); i >= 0 {
				t.Errorf("file after open: byte %d after the records is %#x, want the tail zeroed", good+int64(i), data[good+int64(i)])
			}
			appendAll(t, w, [][]byte{[]byte("new-1"), []byte("new-2")})
			w.Close()
			w, got = openWAL(t, path)
			defer w.Close()
			sameRecords(t, got, append(slices.Clone(recs[:tt.wantRecs]), []byte("new-1"), []byte("new-2")))
		})
	}
}

// TestWALCorrupt damages records in ways no crash does: opening fails with
// an error naming the file and the offset of the first damaged record, and
// the file is left exactly as it was.
func TestWALCorrupt(t *testing.T) {
	recs := [][]byte{[]byte("zero"), []byte("one"), []byte("two"), []byte("three")}
	var offsets []int // where each record's frame starts
	var data []byte
	for _, r := range recs {
		offsets = append(offsets, len(data))
		data = frame(data, r)
	}
	flip := func(at int) func([]byte) []byte {
		return func(d []byte) []byte { d[at] ^= 0x40; return d }
	}
	// A long log: a damaged record with more than one write's worth of
	// records after it.
	var long []byte
	for i := 0; len(long) < walMaxWrite+sector; i++ {
		long = frame(long, bytes.Repeat([]byte{byte('a' + i%26)}, 4000))
	}
	rec1 := len(frame(nil, bytes.Repeat([]byte("a"), 4000)))
	tests := []struct {
		name   string
		data   []byte
		mangle func([]byte) []byte
		offset int
	}{
		{"payload of record 2", data, flip(offsets[2] + 1 + 4 + 1), offsets[2]},
		{"crc of record 1", data, flip(offsets[1] + 1), offsets[1]},
		{"payload of record 0", data, flip(offsets[0] + 5), 0},
		{"last byte of the file", data, flip(len(data) - 1), offsets[3]},
		{"huge length appended", data, func(d []byte) []byte { return append(d, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F) }, len(data)},
		{"endless varint appended", data, func(d []byte) []byte { return append(d, bytes.Repeat([]byte{0xFF}, 12)...) }, len(data)},
		{"a sector zeroed far before the end", long, func(d []byte) []byte {
			clear(d[2*sector : 3*sector])
			return d
		}, 0}, // record 0 spans the first sectors
		{"the records stop, then more follow", long, func(d []byte) []byte {
			clear(d[:rec1])
			return d
		}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "wal.log")
			d := tt.mangle(slices.Clone(tt.data))
			if err := os.WriteFile(path, d, 0o600); err != nil {
				t.Fatal(err)
			}
			w, _, err := OpenWAL(nil, path, nil)
			if err == nil {
				w.Close()
				t.Fatal("OpenWAL accepted a corrupt log")
			}
			var c *CorruptError
			if !errors.As(err, &c) || c.Path != path || c.Offset != int64(tt.offset) {
				t.Fatalf("OpenWAL: got %v, want a *CorruptError for %s at byte %d", err, path, tt.offset)
			}
			if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), fmt.Sprintf("byte %d", tt.offset)) {
				t.Errorf("the error does not name the file and the offset: %v", err)
			}
			if _, err := ReadWAL(nil, path); !errors.As(err, &c) {
				t.Errorf("ReadWAL: got %v, want the *CorruptError too", err)
			}
			if after, err := os.ReadFile(path); err != nil || !bytes.Equal(after, d) {
				t.Errorf("the corrupt file was changed by opening it (%v)", err)
			}
		})
	}
}

// TestWALConcurrentAppends checks group commit: many goroutines append at
// once, every Append returns only when its record can be read back from
// the file, and every record survives a reopen.
func TestWALConcurrentAppends(t *testing.T) {
	path := filepath.Join(t.TempDir(), "wal.log")
	var fsyncs, covered atomic.Int64
	w, _, err := OpenWAL(nil, path, func(d time.Duration, n int) {
		fsyncs.Add(1)
		covered.Add(int64(n))
	})
	if err != nil {
		t.Fatal(err)
	}
	const writers, each = 16, 25
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for g := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				rec := []byte(fmt.Sprintf("writer %d record %d", g, i))
				if err := w.Append(rec); err != nil {
					errs <- err
					return
				}
				onDisk, err := ReadWAL(nil, path)
				if err != nil {
					errs <- err
					return
				}
				if !slices.ContainsFunc(onDisk, func(r []byte) bool { return bytes.Equal(r, rec) }) {
					errs <- fmt.Errorf("%q acknowledged but not in the file", rec)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got, want := covered.Load(), int64(writers*each); got != want {
		t.Errorf("records covered by fsyncs: got %d, want %d", got, want)
	}
	t.Logf("%d appends in %d fsyncs", writers*each, fsyncs.Load())

	w, recs := openWAL(t, path)
	defer w.Close()
	if len(recs) != writers*each {
		t.Fatalf("after reopen: got %d records, want %d", len(recs), writers*each)
	}
	// Each writer's records are in its own order.
	next := make([]int, writers)
	for _, r := range recs {
		var g, i int
		if _, err := fmt.Sscanf(string(r), "writer %d record %d", &g, &i); err != nil {
			t.Fatalf("record %q: %v", r, err)
		}
		if i != next[g] {
			t.Fatalf("writer %d: got record %d, want %d", g, i, next[g])
		}
		next[g]++
	}
}

// TestWALEnqueueOrder enqueues without waiting: records reach the disk in
// Enqueue order.
func TestWALEnqueueOrder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "wal.log")
	w, _ := openWAL(t, path)
	var want [][]byte
	var waits []<-chan error
	for i := range 1000 {
		rec := []byte(fmt.Sprintf("rec-%04d", i))
		want = append(want, rec)
		waits = append(waits, w.Enqueue(rec))
	}
	for i, c := range waits {
		if err := <-c; err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
	}
	w.Close()
	w, got := openWAL(t, path)
	defer w.Close()
	sameRecords(t, got, want)
}

func TestWALClosed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "wal.log")
	w, _ := openWAL(t, path)
	appendAll(t, w, [][]byte{[]byte("kept")})
	pending := w.Enqueue([]byte("queued before close"))
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := <-pending; err != nil {
		t.Errorf("record queued before Close: got %v, want nil (Close waits for pending appends)", err)
	}
	if err := w.Append([]byte("late")); !errors.Is(err, ErrWALClosed) {
		t.Errorf("Append after Close: got %v, want %v", err, ErrWALClosed)
	}
	if err := w.Close(); err != nil {
		t.Errorf("second Close: got %v, want nil", err)
	}
	w, got := openWAL(t, path)
	defer w.Close()
	sameRecords(t, got, [][]byte{[]byte("kept"), []byte("queued before close")})
}

func TestWALRecordLimit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "wal.log")
	w, _ := openWAL(t, path)
	tests := []struct {
		size int
		ok   bool
	}{
		{0, false}, // indistinguishable from a zero-filled tail
		{1, true},
		{MaxRecord, true},
		{MaxRecord + 1, false},
	}
	var want [][]byte
	for _, tt := range tests {
		rec := make([]byte, tt.size)
		err := w.Append(rec)
		if (err == nil) != tt.ok {
			t.Errorf("Append of %d bytes: got %v, want ok %v", tt.size, err, tt.ok)
		}
		if err == nil {
			want = append(want, rec)
		}
	}
	w.Close()
	w, got := openWAL(t, path)
	defer w.Close()
	sameRecords(t, got, want)
}

func TestRewrite(t *testing.T) {
	tests := []struct {
		name string
		keep [][]byte
	}{
		{"subset", [][]byte{[]byte("b"), []byte("d")}},
		{"nothing", nil},
		{"new records", [][]byte{[]byte("x"), {0}, bytes.Repeat([]byte("y"), 300)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "wal.log")
			w, _ := openWAL(t, path)
			appendAll(t, w, [][]byte{[]byte("a"), []byte("b"), []byte("c"), []byte("d")})
			w.Close()
			if err := Rewrite(nil, path, tt.keep); err != nil {
				t.Fatalf("Rewrite: %v", err)
			}
			w, got := openWAL(t, path)
			sameRecords(t, got, tt.keep)
			appendAll(t, w, [][]byte{[]byte("after")})
			w.Close()
			w, got = openWAL(t, path)
			w.Close()
			sameRecords(t, got, append(slices.Clone(tt.keep), []byte("after")))
			if entries, _ := os.ReadDir(dir); len(entries) != 1 {
				t.Errorf("files in the WAL directory: got %d, want 1 (no leftover temporary file)", len(entries))
			}
		})
	}
	t.Run("missing file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "wal.log")
		if err := Rewrite(nil, path, [][]byte{[]byte("only")}); err != nil {
			t.Fatalf("Rewrite: %v", err)
		}
		w, got := openWAL(t, path)
		defer w.Close()
		sameRecords(t, got, [][]byte{[]byte("only")})
	})
}

// TestWALRotate: a rotation replaces the log in order with appends: what
// was enqueued before it is answered but not in the new log, what comes
// after is; Size follows.
func TestWALRotate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "wal.log")
	w, _ := openWAL(t, path)
	appendAll(t, w, [][]byte{[]byte("a"), []byte("b")})
	before := w.Enqueue([]byte("c"))
	rotated := w.Rotate([][]byte{[]byte("b2")})
	after := w.Enqueue([]byte("d"))
	for name, ch := range map[string]<-chan error{"c": before, "rotate": rotated, "d": after} {
		if err := <-ch; err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if got, want := w.Size(), int64(len(frame(frame(nil, []byte("b2")), []byte("d")))); got != want {
		t.Errorf("Size after rotation: got %d, want %d", got, want)
	}
	w.Close()
	w, got := openWAL(t, path)
	defer w.Close()
	sameRecords(t, got, [][]byte{[]byte("b2"), []byte("d")})
	if _, err := os.Stat(path + ".compact"); !os.IsNotExist(err) {
		t.Errorf("the compaction's temporary file is left: %v", err)
	}
}

// TestWALGrows: appends that run past the zero-filled chunk extend the file
// and come back intact, in order, after a reopen.
func TestWALGrows(t *testing.T) {
	path := filepath.Join(t.TempDir(), "wal.log")
	w, _ := openWAL(t, path)
	var recs [][]byte
	for i := 0; i < 20; i++ { // 20 MiB: past the first 16 MiB chunk
		recs = append(recs, bytes.Repeat([]byte{byte('a' + i)}, MaxRecord-8))
	}
	appendAll(t, w, recs)
	if fi, err := os.Stat(path); err != nil || fi.Size() <= 20*(MaxRecord-8) {
		t.Fatalf("file after 20 MiB of records: %v, %v", fi.Size(), err)
	}
	w.Close()
	w, got := openWAL(t, path)
	defer w.Close()
	sameRecords(t, got, recs)
}

// BenchmarkWALAppend is one record made durable at a time, as a lone
// operator's step is: write plus fdatasync on the preallocated file.
//
//	go test ./buffer -run '^$' -bench WALAppend
func BenchmarkWALAppend(b *testing.B) {
	w, _, err := OpenWAL(nil, filepath.Join(b.TempDir(), "wal.log"), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	rec := bytes.Repeat([]byte("r"), 600)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := w.Append(rec); err != nil {
			b.Fatal(err)
		}
	}
}
