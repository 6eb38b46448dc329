package buffer

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// WAL is an append-only log of records, made durable by group commit: every
// Append waits for an fsync that covers its record, and appends that arrive
// while one fsync runs share the next. Each record on disk is
// uvarint(len) || crc32c(payload) (4 bytes, little endian) || payload.
//
// The file is kept zero-filled ahead of the records, in chunks that are
// written and fsynced once: an append then overwrites blocks the file already
// has, and fdatasync flushes only data, without a journal commit for a new
// file size. Replay stops at the zeros (a record's length is never 0).
type WAL struct {
	path      string
	f         *os.File
	off, size int64        // end of the records; end of the file (the writer's)
	end       atomic.Int64 // off, for other goroutines
	reqs      chan walReq
	done      chan struct{}
	onFsync   func(time.Duration, int) // metrics hook: fsync time, records covered

	failed error // set by a rotation that could not complete; the writer's

	mu     sync.Mutex
	closed bool
}

type walReq struct {
	rec     []byte
	replace [][]byte // with rotate: the records of the new log
	rotate  bool
	errc    chan error
}

var (
	// ErrWALClosed is returned by Append after Close.
	ErrWALClosed = errors.New("buffer: wal closed")
	crcTable     = crc32.MakeTable(crc32.Castagnoli)
)

// MaxRecord bounds one WAL record.
const MaxRecord = 1 << 20

// walChunk is how far ahead of the records the file is zero-filled.
const walChunk = 16 << 20

// OpenWAL opens (creating if needed) the log at path and returns it with
// every intact record already in it. A torn or corrupt tail (a crash in the
// middle of a write) is cut off: those records were never acknowledged.
func OpenWAL(path string, onFsync func(time.Duration, int)) (*WAL, [][]byte, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("buffer: open wal: %w", err)
	}
	recs, good, err := readRecords(f)
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	if err := f.Truncate(good); err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("buffer: truncate wal tail: %w", err)
	}
	if onFsync == nil {
		onFsync = func(time.Duration, int) {}
	}
	w := &WAL{path: path, f: f, off: good, size: good, reqs: make(chan walReq, 4096), done: make(chan struct{}), onFsync: onFsync}
	w.end.Store(good)
	if err := w.grow(0); err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("buffer: preallocate wal: %w", err)
	}
	go w.loop()
	return w, recs, nil
}

func readRecords(f *os.File) ([][]byte, int64, error) {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, 0, err
	}
	r := bufio.NewReader(f)
	var recs [][]byte
	var good int64
	for {
		n, err := binary.ReadUvarint(r)
		if err != nil || n == 0 || n > MaxRecord {
			// EOF or torn length; 0 is a zero-filled tail (crc32c of
			// nothing is 0, so zeros would pass as empty records).
			return recs, good, nil
		}
		buf := make([]byte, 4+n)
		if _, err := io.ReadFull(r, buf); err != nil {
			return recs, good, nil
		}
		if crc32.Checksum(buf[4:], crcTable) != binary.LittleEndian.Uint32(buf[:4]) {
			return recs, good, nil
		}
		recs = append(recs, buf[4:])
		good += int64(len(binary.AppendUvarint(nil, n))) + 4 + int64(n)
	}
}

func frame(out, rec []byte) []byte {
	out = binary.AppendUvarint(out, uint64(len(rec)))
	out = binary.LittleEndian.AppendUint32(out, crc32.Checksum(rec, crcTable))
	return append(out, rec...)
}

// Append writes rec and returns once it is on stable storage.
func (w *WAL) Append(rec []byte) error { return <-w.Enqueue(rec) }

// Enqueue queues rec and returns a channel that yields the outcome once rec
// is on stable storage. Records reach the disk in Enqueue order, so a caller
// that enqueues under its own lock gets its order preserved, and an fsync
// that covers a record covers every record enqueued before it.
func (w *WAL) Enqueue(rec []byte) <-chan error {
	errc := make(chan error, 1)
	if len(rec) == 0 || len(rec) > MaxRecord {
		errc <- fmt.Errorf("buffer: wal record of %d bytes, want 1..%d", len(rec), MaxRecord)
		return errc
	}
	return w.send(walReq{rec: rec, errc: errc})
}

// Rotate replaces the log with recs (online compaction), in order with
// appends: whatever was enqueued before it reaches the old file first,
// whatever comes after goes to the new one. The channel yields nil once the
// new log is durably in place. A caller that enqueues under its own lock
// and rotates under it too can pass exactly the records still needed.
func (w *WAL) Rotate(recs [][]byte) <-chan error {
	return w.send(walReq{replace: recs, rotate: true, errc: make(chan error, 1)})
}

// Size is how many bytes of records the log holds.
func (w *WAL) Size() int64 { return w.end.Load() }

func (w *WAL) send(r walReq) <-chan error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		r.errc <- ErrWALClosed
		return r.errc
	}
	w.reqs <- r
	return r.errc
}

// loop is the group-commit writer: take everything queued (up to a
// rotation), write it, fsync once, answer every waiter.
func (w *WAL) loop() {
	defer close(w.done)
	var buf []byte
	var batch []walReq
	var next *walReq // a rotation met while draining
	for {
		req := next
		next = nil
		if req == nil {
			r, ok := <-w.reqs
			if !ok {
				return
			}
			req = &r
		}
		if req.rotate {
			req.errc <- w.rotate(req.replace)
			continue
		}
		batch = append(batch[:0], *req)
		buf = frame(buf[:0], req.rec)
	drain:
		for {
			select {
			case r, ok := <-w.reqs:
				if !ok {
					break drain
				}
				if r.rotate {
					next = &r
					break drain
				}
				batch = append(batch, r)
				buf = frame(buf, r.rec)
			default:
				break drain
			}
		}
		err := w.failed
		if err == nil {
			err = w.grow(len(buf))
		}
		if err == nil {
			_, err = w.f.WriteAt(buf, w.off)
		}
		if err == nil {
			start := time.Now()
			err = datasync(w.f)
			w.onFsync(time.Since(start), len(batch))
		}
		if err == nil {
			w.off += int64(len(buf))
			w.end.Store(w.off)
		}
		for _, r := range batch {
			r.errc <- err
		}
	}
}

// grow makes sure n more bytes fit before the end of the file, extending it
// with zeroed chunks made durable with a full fsync (the file size changes).
// The group commit that crosses a chunk's end pays for writing the next one
// (16 MiB: some 20k steps).
func (w *WAL) grow(n int) error {
	if w.off+int64(n) < w.size {
		return nil
	}
	zeros := make([]byte, 1<<20)
	end := w.off + int64(n) + walChunk
	for w.size < end {
		k, err := w.f.WriteAt(zeros[:min(int64(len(zeros)), end-w.size)], w.size)
		w.size += int64(k)
		if err != nil {
			return err
		}
	}
	return w.f.Sync()
}

// rotate writes recs to a new file and puts it in the old one's place. Until
// the rename the old log stands; after it, a failure leaves the WAL failing
// every append (the old file is gone), which the node reports as 500s.
func (w *WAL) rotate(recs [][]byte) error {
	if w.failed != nil {
		return w.failed
	}
	if err := Rewrite(w.path, recs); err != nil {
		return fmt.Errorf("buffer: compact wal: %w", err)
	}
	f, err := os.OpenFile(w.path, os.O_RDWR, 0o600)
	if err != nil {
		w.failed = fmt.Errorf("buffer: reopen compacted wal: %w", err)
		return w.failed
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		w.failed = fmt.Errorf("buffer: reopen compacted wal: %w", err)
		return w.failed
	}
	w.f.Close()
	w.f, w.off, w.size = f, fi.Size(), fi.Size()
	w.end.Store(w.off)
	if err := w.grow(0); err != nil {
		w.failed = fmt.Errorf("buffer: preallocate compacted wal: %w", err)
		return w.failed
	}
	return nil
}

// Close stops accepting appends, waits for pending ones, and closes the file.
func (w *WAL) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	close(w.reqs)
	w.mu.Unlock()
	<-w.done
	return w.f.Close()
}

// Rewrite atomically replaces the log at path with recs (compaction). It
// must be called before OpenWAL on that path.
func Rewrite(path string, recs [][]byte) error {
	tmp := path + ".compact"
	var buf []byte
	for _, r := range recs {
		buf = frame(buf, r)
	}
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(buf); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	// The rename itself must be durable before anything is appended to
	// the new file.
	dir, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer dir.Close()
	return dir.Sync()
}
