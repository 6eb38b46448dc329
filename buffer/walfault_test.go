package buffer

import (
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/duet-bft/duet/protocol"
)

// faultFS is the operating system's file system with faults to switch on:
// every fsync fails (EIO), every write finds the disk full (ENOSPC), or a
// directory's fsync fails (EIO).
type faultFS struct {
	OSFS
	failSync, full, failDir atomic.Bool
}

func (fs *faultFS) SyncDir(dir string) error {
	if fs.failDir.Load() {
		return syscall.EIO
	}
	return fs.OSFS.SyncDir(dir)
}

func (fs *faultFS) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	f, err := fs.OSFS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return faultFile{f, fs}, nil
}

type faultFile struct {
	File
	fs *faultFS
}

func (f faultFile) WriteAt(p []byte, off int64) (int, error) {
	if f.fs.full.Load() {
		return 0, syscall.ENOSPC
	}
	return f.File.WriteAt(p, off)
}

func (f faultFile) Sync() error {
	if f.fs.failSync.Load() {
		return syscall.EIO
	}
	return f.File.Sync()
}

func (f faultFile) Datasync() error {
	if f.fs.failSync.Load() {
		return syscall.EIO
	}
	return f.File.Datasync()
}

// TestWALFaults: a step whose record cannot be made durable (the fsync
// fails, or the disk is full) is answered 503 and never acknowledged; its
// session ends and never reaches L1; the node takes no more ops, even once
// the fault clears (after a failed fsync the file's state is unknown), and
// says so on /readyz (Buffer.Err). Restarted on a healthy disk, it resumes
// the session from what the log holds, and L1 accepts it.
func TestWALFaults(t *testing.T) {
	for _, tt := range []struct {
		name   string
		fault  func(*faultFS) *atomic.Bool
		errno  error
		logged int // ops of the session in the log after the restart
	}{
		// The failed fsync's write reached the page cache, so the file
		// read back holds the op: like an answer lost on the way, the op
		// was never acknowledged and the client learns from the session
		// where it stands.
		{"fsync fails", func(fs *faultFS) *atomic.Bool { return &fs.failSync }, syscall.EIO, 3},
		{"disk full", func(fs *faultFS) *atomic.Bool { return &fs.full }, syscall.ENOSPC, 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			fs := &faultFS{}
			e := newEnv(t, func(c *Config) { c.FS = fs })
			s := newSess("wf-1", operator1)
			e.start(s, "PKG-1")
			e.scan(s, "PKG-1")

			tt.fault(fs).Store(true)
			rep := e.do(s, http.MethodPost, pkgPath("PKG-1", "validate"), validateBody)
			if rep.Resp.Status != http.StatusServiceUnavailable || errorCode(rep.Resp) != "UNAVAILABLE" || rep.Receipt != nil {
				t.Fatalf("step on a failing disk: got %d %s (receipt %v), want 503 UNAVAILABLE and no receipt", rep.Resp.Status, rep.Resp.Body, rep.Receipt != nil)
			}
			if f := e.waitFinal(s.id); f.Status != StatusRejected || f.Code != "UNAVAILABLE" {
				t.Errorf("session after the failed step: %+v, want rejected UNAVAILABLE", f)
			}
			if err := e.buf.Err(); !errors.Is(err, tt.errno) {
				t.Errorf("Buffer.Err: got %v, want %v", err, tt.errno)
			}
			tt.fault(fs).Store(false)
			// Sticky: nothing more is taken, nothing more executes.
			other := newSess("wf-2", operator2)
			if rep := e.do(other, http.MethodPost, "/v1/sessions", `{"package_id":"PKG-2"}`); rep.Resp.Status != http.StatusServiceUnavailable {
				t.Errorf("a new session after the failure: got %d %s, want 503", rep.Resp.Status, rep.Resp.Body)
			}
			if _, ok := e.buf.Lookup(other.id, ""); ok {
				t.Error("a session refused with 503 exists on the node")
			}
			e.chain.none(t, 30*time.Millisecond)

			// Restart on a healthy disk: the session is back with the ops
			// its log holds, goes on and commits.
			e.reopen()
			if err := e.buf.Err(); err != nil {
				t.Fatalf("Buffer.Err after the restart: %v", err)
			}
			v, ok := e.buf.Lookup(s.id, "")
			if !ok || v.Status != StatusOpen || len(v.Ops) != tt.logged {
				t.Fatalf("session after the restart: %+v (found %v), want open with %d ops", v, ok, tt.logged)
			}
			s.seq = uint64(tt.logged)
			if tt.logged == 2 {
				e.must(s, http.StatusOK, http.MethodPost, pkgPath("PKG-1", "validate"), validateBody)
			} else {
				prev, err := protocol.ParseHash(v.Ops[2].OpHash)
				if err != nil {
					t.Fatal(err)
				}
				s.prev = prev
			}
			e.commit(s)
			e.chain.judge(t, e.reg, e.buf, e.chain.next(t), protocol.CodeOK)
			if f := e.waitFinal(s.id); f.Status != StatusCommitted {
				t.Fatalf("session after the restart: %+v, want committed", f)
			}
		})
	}
}

// TestOpenCorruptWAL: a node whose WAL is damaged before its tail does not
// start: Open fails naming the file and the offset, and leaves the file as
// it was.
func TestOpenCorruptWAL(t *testing.T) {
	e := newEnv(t, nil)
	e.scan(e.startNew("a", operator1, "PKG-1"), "PKG-1")
	e.scan(e.startNew("b", operator2, "PKG-2"), "PKG-2")
	e.must(e.startNew("c", operator1, ""), http.StatusOK, http.MethodPost, "/v1/test/blob", `"x"`)
	e.close()
	data, err := os.ReadFile(e.cfg.WALPath)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := ReadWAL(nil, e.cfg.WALPath)
	if err != nil || len(recs) != 6 {
		t.Fatalf("the log holds %d records (%v), want 6", len(recs), err)
	}
	at := len(frame(frame(nil, recs[0]), recs[1])) // the third record
	data[at+10] ^= 1
	if err := os.WriteFile(e.cfg.WALPath, data, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Open(e.cfg, e.chain)
	var c *CorruptError
	if !errors.As(err, &c) || c.Path != e.cfg.WALPath || c.Offset != int64(at) {
		t.Fatalf("Open on a corrupt WAL: got %v, want a *CorruptError for %s at byte %d", err, e.cfg.WALPath, at)
	}
	if after, err := os.ReadFile(e.cfg.WALPath); err != nil || string(after) != string(data) {
		t.Errorf("Open changed the corrupt WAL (%v)", err)
	}
	if entries, _ := os.ReadDir(filepath.Dir(e.cfg.WALPath)); len(entries) != 1 {
		t.Errorf("files beside the WAL: %d, want 1", len(entries))
	}
}

// TestWALRotateFault: a compaction that fails before its rename leaves the
// old log standing and appends go on; one that fails after it (the rename
// may not be durable) fails the log for good, since the file it appended
// to is no longer the one at its path.
func TestWALRotateFault(t *testing.T) {
	fs := &faultFS{}
	path := filepath.Join(t.TempDir(), "wal.log")
	w, _, err := OpenWAL(fs, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	appendAll(t, w, [][]byte{[]byte("a")})
	fs.full.Store(true)
	if err := <-w.Rotate([][]byte{[]byte("a")}); err == nil {
		t.Fatal("a rotation that could not write its file succeeded")
	}
	fs.full.Store(false)
	if err := w.Append([]byte("b")); err != nil || w.Err() != nil {
		t.Fatalf("after a rotation that failed before its rename: append %v, Err %v", err, w.Err())
	}
	fs.failDir.Store(true)
	if err := <-w.Rotate([][]byte{[]byte("a"), []byte("b")}); err == nil {
		t.Fatal("a rotation whose rename could not be made durable succeeded")
	}
	if err := w.Append([]byte("c")); err == nil || !errors.Is(w.Err(), syscall.EIO) {
		t.Fatalf("after a rotation that failed after its rename: append %v, Err %v; want the log failed", err, w.Err())
	}
}
