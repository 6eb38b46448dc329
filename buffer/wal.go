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
	"slices"
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
//
// A crash can tear only the last write, and one write is at most
// walMaxWrite bytes: so a damaged record is a torn tail (never acknowledged,
// dropped) only if it looks torn (it runs past the end of the file, or one of
// its sectors is all zeros) and nothing but zeros lies beyond that window.
// Anything else is corruption of acknowledged records: OpenWAL returns a
// *CorruptError and leaves the file as it is.
//
// A failed write or fsync fails every later append too: after a failed
// fsync the state of the file's pages is unknown (a later fsync may report
// success for pages the kernel already dropped), so nothing more is ever
// acknowledged from this file. Err reports it.
type WAL struct {
	fs        FS
	path      string
	f         File
	off, size int64        // end of the records; end of the file (the writer's)
	end       atomic.Int64 // off, for other goroutines
	reqs      chan walReq
	done      chan struct{}
	onFsync   func(time.Duration, int) // metrics hook: fsync time, records covered

	failed atomic.Pointer[error] // the first failed write, fsync or rotation; set by the writer

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

const (
	// MaxRecord bounds one WAL record.
	MaxRecord = 1 << 20
	// walChunk is how far ahead of the records the file is zero-filled.
	walChunk = 16 << 20
	// walMaxWrite bounds one group commit's write, and so the span of
	// the file a crash can leave half written.
	walMaxWrite = 4 << 20
	// sector is the unit a disk writes whole or not at all.
	sector = 512
)

// CorruptError reports a WAL whose records are damaged before its tail:
// acknowledged ops would be lost by reading on, so the node does not start.
type CorruptError struct {
	Path   string
	Offset int64 // where the first damaged record starts
	Reason string
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("buffer: wal %s is corrupt at byte %d: %s. The file is left as it is: restore it from a copy, "+
		"or move it aside to start this node without its unfinished sessions (their clients hold receipts L1 will never see)",
		e.Path, e.Offset, e.Reason)
}

// OpenWAL opens (creating if needed) the log at path through fs (nil: the
// operating system's) and returns it with every record in it. A torn final
// write (a crash in the middle of it) is cut off: its records were never
// acknowledged. A damaged record before that is a *CorruptError.
func OpenWAL(fs FS, path string, onFsync func(time.Duration, int)) (*WAL, [][]byte, error) {
	if fs == nil {
		fs = OSFS{}
	}
	f, err := fs.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("buffer: open wal: %w", err)
	}
	recs, good, err := readFile(f, path)
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
	w := &WAL{fs: fs, path: path, f: f, off: good, size: good, reqs: make(chan walReq, 4096), done: make(chan struct{}), onFsync: onFsync}
	w.end.Store(good)
	if err := w.grow(0); err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("buffer: preallocate wal: %w", err)
	}
	go w.loop()
	return w, recs, nil
}

// ReadWAL returns the records of the log at path without opening it for
// appends (none if there is no file), or a *CorruptError.
func ReadWAL(fs FS, path string) ([][]byte, error) {
	if fs == nil {
		fs = OSFS{}
	}
	f, err := fs.OpenFile(path, os.O_RDONLY, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("buffer: open wal: %w", err)
	}
	defer f.Close()
	recs, _, err := readFile(f, path)
	return recs, err
}

func readFile(f File, path string) ([][]byte, int64, error) {
	size, err := f.Size()
	if err != nil {
		return nil, 0, fmt.Errorf("buffer: read wal: %w", err)
	}
	recs, good, err := readRecords(f, size)
	if c, ok := err.(*CorruptError); ok {
		c.Path = path
	}
	return recs, good, err
}

// readRecords reads the records of a log of size bytes. It returns them
// and where they end, or a *CorruptError (without Path), or an I/O error.
func readRecords(f io.ReaderAt, size int64) ([][]byte, int64, error) {
	r := &counter{r: bufio.NewReaderSize(io.NewSectionReader(f, 0, size), 1<<16)}
	var recs [][]byte
	for {
		at := r.n
		n, err := binary.ReadUvarint(r)
		switch {
		case err == io.EOF && r.n == at:
			return recs, at, nil // the file ends after a record
		case err == io.ErrUnexpectedEOF:
			return recs, at, torn(f, size, at, "") // the file ends inside a length
		case err != nil && r.n-at >= binary.MaxVarintLen64:
			return recs, at, &CorruptError{Offset: at, Reason: "unreadable record length"}
		case err != nil:
			return recs, at, err
		case n == 0:
			return recs, at, torn(f, size, at, "") // the zero-filled space after the records
		case n > MaxRecord:
			return recs, at, &CorruptError{Offset: at, Reason: fmt.Sprintf("record length %d exceeds %d", n, MaxRecord)}
		}
		buf := make([]byte, 4+n)
		if _, err := io.ReadFull(r, buf); err == io.EOF || err == io.ErrUnexpectedEOF {
			return recs, at, torn(f, size, at, "") // the file ends inside the record
		} else if err != nil {
			return recs, at, err
		}
		if crc32.Checksum(buf[4:], crcTable) != binary.LittleEndian.Uint32(buf[:4]) {
			if !zeroSector(f, at, r.n) {
				return recs, at, &CorruptError{Offset: at, Reason: "checksum mismatch in a record with no unwritten sector"}
			}
			return recs, at, torn(f, size, at, "checksum mismatch")
		}
		recs = append(recs, buf[4:])
	}
}

// torn checks that the records stop at off the way a crash stops them:
// nothing but zeros beyond the one write that may have been cut short.
func torn(f io.ReaderAt, size, off int64, what string) error {
	buf := make([]byte, 1<<16)
	for at := off + walMaxWrite; at < size; {
		n, err := f.ReadAt(buf[:min(int64(len(buf)), size-at)], at)
		if i := slices.IndexFunc(buf[:n], func(b byte) bool { return b != 0 }); i >= 0 {
			if what == "" {
				what = "the records stop"
			}
			return &CorruptError{Offset: off, Reason: fmt.Sprintf("%s, yet data follows at byte %d, beyond what one torn write can reach", what, at+int64(i))}
		}
		if err != nil && err != io.EOF {
			return err
		}
		at += int64(n)
	}
	return nil
}

// zeroSector reports whether some sector-aligned piece of [from, to) is all
// zeros: a write the disk never made.
func zeroSector(f io.ReaderAt, from, to int64) bool {
	buf := make([]byte, sector)
	for at := from; at < to; {
		end := min((at/sector+1)*sector, to)
		n, _ := f.ReadAt(buf[:end-at], at)
		if n == int(end-at) && !slices.ContainsFunc(buf[:n], func(b byte) bool { return b != 0 }) {
			return true
		}
		at = end
	}
	return false
}

// counter counts the bytes read through it.
type counter struct {
	r *bufio.Reader
	n int64
}

func (c *counter) ReadByte() (byte, error) {
	b, err := c.r.ReadByte()
	if err == nil {
		c.n++
	}
	return b, err
}

func (c *counter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func frame(out, rec []byte) []byte {
	out = binary.AppendUvarint(out, uint64(len(rec)))
	out = binary.LittleEndian.AppendUint32(out, crc32.Checksum(rec, crcTable))
	return append(out, rec...)
}

func frameSize(rec []byte) int {
	return len(binary.AppendUvarint(nil, uint64(len(rec)))) + 4 + len(rec)
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

// Err is the failure that stopped the log taking appends, or nil.
func (w *WAL) Err() error {
	if p := w.failed.Load(); p != nil {
		return *p
	}
	return nil
}

func (w *WAL) fail(err error) error {
	err = fmt.Errorf("buffer: wal %s takes no more appends: %w", w.path, err)
	w.failed.CompareAndSwap(nil, &err)
	return w.Err()
}

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

// loop is the group-commit writer: take what is queued (up to a rotation,
// or walMaxWrite bytes), write it, fsync once, answer every waiter.
func (w *WAL) loop() {
	defer close(w.done)
	var buf []byte
	var batch []walReq
	var next *walReq // met while draining, for the next round
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
				if r.rotate || len(buf)+frameSize(r.rec) > walMaxWrite {
					next = &r
					break drain
				}
				batch = append(batch, r)
				buf = frame(buf, r.rec)
			default:
				break drain
			}
		}
		err := w.Err()
		if err == nil {
			err = w.write(buf, len(batch))
		}
		for _, r := range batch {
			r.errc <- err
		}
	}
}

func (w *WAL) write(buf []byte, records int) error {
	if err := w.grow(len(buf)); err != nil {
		return w.fail(err)
	}
	if _, err := w.f.WriteAt(buf, w.off); err != nil {
		return w.fail(err)
	}
	start := time.Now()
	if err := w.f.Datasync(); err != nil {
		return w.fail(err)
	}
	w.onFsync(time.Since(start), records)
	w.off += int64(len(buf))
	w.end.Store(w.off)
	return nil
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
// the rename the old log stands; after it, a failure fails the log.
func (w *WAL) rotate(recs [][]byte) error {
	if err := w.Err(); err != nil {
		return err
	}
	if renamed, err := rewrite(w.fs, w.path, recs); err != nil && !renamed {
		return fmt.Errorf("buffer: compact wal: %w", err) // the old log stands
	} else if err != nil {
		return w.fail(fmt.Errorf("compact wal: the rename may not be durable: %w", err))
	}
	f, err := w.fs.OpenFile(w.path, os.O_RDWR, 0o600)
	if err != nil {
		return w.fail(fmt.Errorf("reopen compacted wal: %w", err))
	}
	size, err := f.Size()
	if err != nil {
		f.Close()
		return w.fail(fmt.Errorf("reopen compacted wal: %w", err))
	}
	w.f.Close()
	w.f, w.off, w.size = f, size, size
	w.end.Store(w.off)
	if err := w.grow(0); err != nil {
		return w.fail(fmt.Errorf("preallocate compacted wal: %w", err))
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

// Rewrite atomically replaces the log at path with recs (compaction),
// through fs (nil: the operating system's). It must be called before
// OpenWAL on that path.
func Rewrite(fs FS, path string, recs [][]byte) error {
	_, err := rewrite(fs, path, recs)
	return err
}

// rewrite is Rewrite, saying whether the new file took the old one's
// place (renamed) before an error: until then the old log stands.
func rewrite(fs FS, path string, recs [][]byte) (renamed bool, err error) {
	if fs == nil {
		fs = OSFS{}
	}
	tmp := path + ".compact"
	var buf []byte
	for _, r := range recs {
		buf = frame(buf, r)
	}
	f, err := fs.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return false, err
	}
	if _, err := f.WriteAt(buf, 0); err != nil {
		f.Close()
		return false, err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return false, err
	}
	if err := f.Close(); err != nil {
		return false, err
	}
	if err := fs.Rename(tmp, path); err != nil {
		return false, err
	}
	// The rename itself must be durable before anything is appended to
	// the new file.
	return true, fs.SyncDir(filepath.Dir(path))
}
