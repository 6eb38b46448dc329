package buffer

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/duet-bft/duet/protocol"
	"github.com/duet-bft/duet/service"
)

// Chain is what the buffer needs of L1: the verified committed state (from
// the node's own follower) and a way to submit a transaction. retry tells
// that the transaction resubmits sessions L1 did not judge in time (or
// refused only for its block's time), so it should go where an answer
// says what happened to it.
type Chain interface {
	Committed() (service.Store, int64)
	Submit(ctx context.Context, tx []byte, retry bool) error
}

// Observer receives measurements; Buffer calls it from its own goroutines.
type Observer interface {
	Fsync(d time.Duration, records int)
	Batch(bundles int)
	Finality(d time.Duration)
	QueueDepth(n int)
}

type nopObserver struct{}

func (nopObserver) Fsync(time.Duration, int) {}
func (nopObserver) Batch(int)                {}
func (nopObserver) Finality(time.Duration)   {}
func (nopObserver) QueueDepth(int)           {}

// Config configures a Buffer.
type Config struct {
	Node     string             // this L2 node's actor id (role l2). Required.
	Key      ed25519.PrivateKey // its key: signs receipts and bundles. Required.
	Registry *service.Registry  // the application. Required.
	WALPath  string             // write-ahead log file. Required.
	FS       FS                 // what the WAL does its I/O through; default the operating system's

	BatchInterval time.Duration // while a batch awaits its verdict, collect the next one this long; default 10ms
	BatchMax      int           // or as soon as it holds this many bundles; default 256
	SessionTTL    time.Duration // an open session idle this long is expired; default 15m
	MaxOpen       int           // open sessions before new ones get 429; default 10000
	MaxQueue      int           // bundles waiting for L1 before commits get 429; default 20000
	MaxLag        time.Duration // new sessions get 429 while a commit has waited this long for L1; default 2s
	ResubmitAfter time.Duration // resubmit a bundle with no verdict after this; default 10s
	MaxRebase     int           // automatic rebases of one session after CONFLICT; default 5
	Retain        time.Duration // keep final sessions in memory this long; default 10m (L1 keeps them for good)
	RetainBytes   int           // and only while their answers take at most this many bytes in all (the oldest go first); default 256 MiB
	MaxSessionAge time.Duration // an open session this long after its start takes no more ops but an abort, and is aborted (EXPIRED); default 12h, so its ops stay within L1's 24h op age
	CompactAt     int64         // rewrite the WAL with only live sessions once it grew by this many bytes; default 64 MiB

	// Limits of one session and quotas of one actor. Over a session limit an
	// op gets 413 TOO_LARGE; over an actor's quota, 429 naming the quota,
	// and other actors are served as before.
	MaxSessionBytes     int           // a session's bundle (with room for its commit) plus the answers kept for it (Session.MaxBytes); default and most protocol.MaxBundleBytes (1 MiB)
	MaxOpenPerActor     int           // open sessions of one actor; default 64
	MaxReservedPerActor int           // keys reserved by one actor's live sessions, committing ones included; default 4096
	MaxBytesPerActor    int           // bytes (Session.Size) of one actor's live sessions; default 64 MiB
	ActorRate           float64       // signed ops per second of one actor (token bucket); default 200; negative: no limit
	ActorBurst          int           // the bucket's size; default 2*ActorRate
	MaxOpLifetime       time.Duration // how far past its op time an op's signed expiry may be; default 24h

	Now      func() time.Time // clock; default time.Now
	Logger   *slog.Logger     // nil discards
	Observer Observer         // nil discards
}

// SetDefaults fills every zero field that has a default with it (the
// defaults are listed on Config). Open calls it before Validate.
func (c *Config) SetDefaults() {
	set := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	seti := func(d *int, v int) {
		if *d == 0 {
			*d = v
		}
	}
	set(&c.BatchInterval, 10*time.Millisecond)
	set(&c.SessionTTL, 15*time.Minute)
	set(&c.ResubmitAfter, 10*time.Second)
	set(&c.Retain, 10*time.Minute)
	set(&c.MaxLag, 2*time.Second)
	set(&c.MaxOpLifetime, 24*time.Hour)
	set(&c.MaxSessionAge, protocol.MaxOpAge/2)
	seti(&c.BatchMax, 256)
	seti(&c.MaxOpen, 10000)
	seti(&c.MaxQueue, 20000)
	seti(&c.MaxRebase, 5)
	seti(&c.MaxSessionBytes, protocol.MaxBundleBytes)
	seti(&c.MaxOpenPerActor, 64)
	seti(&c.MaxReservedPerActor, 4096)
	seti(&c.MaxBytesPerActor, 64<<20)
	seti(&c.RetainBytes, 256<<20)
	if c.ActorRate == 0 {
		c.ActorRate = 200
	}
	if c.ActorBurst == 0 {
		c.ActorBurst = max(1, int(2*c.ActorRate))
	}
	if c.CompactAt == 0 {
		c.CompactAt = 64 << 20
	}
	if c.FS == nil {
		c.FS = OSFS{}
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Observer == nil {
		c.Observer = nopObserver{}
	}
}

// Validate reports a config that cannot work. It changes nothing: call
// SetDefaults first for the zero fields.
func (c *Config) Validate() error {
	switch {
	case !protocol.ValidID(c.Node):
		return errors.New("buffer: Config.Node must be a valid actor id")
	case len(c.Key) != ed25519.PrivateKeySize:
		return errors.New("buffer: Config.Key is required")
	case c.Registry == nil:
		return errors.New("buffer: Config.Registry is required")
	case c.WALPath == "":
		return errors.New("buffer: Config.WALPath is required")
	case c.BatchMax > protocol.MaxBundles:
		return fmt.Errorf("buffer: Config.BatchMax %d exceeds what L1 accepts (protocol.MaxBundles, %d)", c.BatchMax, protocol.MaxBundles)
	case c.MaxSessionAge >= protocol.MaxOpAge:
		return fmt.Errorf("buffer: Config.MaxSessionAge %s must be below the op age L1 takes (protocol.MaxOpAge, %s)", c.MaxSessionAge, protocol.MaxOpAge)
	case c.MaxSessionBytes > protocol.MaxBundleBytes:
		return fmt.Errorf("buffer: Config.MaxSessionBytes %d exceeds what L1 accepts (protocol.MaxBundleBytes, %d)", c.MaxSessionBytes, protocol.MaxBundleBytes)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"BatchInterval", c.BatchInterval}, {"SessionTTL", c.SessionTTL}, {"ResubmitAfter", c.ResubmitAfter},
		{"Retain", c.Retain}, {"MaxLag", c.MaxLag}, {"MaxOpLifetime", c.MaxOpLifetime}, {"MaxSessionAge", c.MaxSessionAge},
	} {
		if d.v <= 0 {
			return fmt.Errorf("buffer: Config.%s is %s, want a positive duration", d.name, d.v)
		}
	}
	for _, n := range []struct {
		name string
		v    int64
	}{
		{"BatchMax", int64(c.BatchMax)}, {"MaxOpen", int64(c.MaxOpen)}, {"MaxQueue", int64(c.MaxQueue)},
		{"MaxRebase", int64(c.MaxRebase)}, {"MaxSessionBytes", int64(c.MaxSessionBytes)},
		{"MaxOpenPerActor", int64(c.MaxOpenPerActor)}, {"MaxReservedPerActor", int64(c.MaxReservedPerActor)},
		{"MaxBytesPerActor", int64(c.MaxBytesPerActor)}, {"RetainBytes", int64(c.RetainBytes)},
		{"ActorBurst", int64(c.ActorBurst)}, {"CompactAt", c.CompactAt},
	} {
		if n.v <= 0 {
			return fmt.Errorf("buffer: Config.%s is %d, want a positive number", n.name, n.v)
		}
	}
	if c.FS == nil || c.Now == nil || c.Logger == nil || c.Observer == nil {
		return errors.New("buffer: Config.FS, Now, Logger and Observer must be set (SetDefaults sets them)")
	}
	return nil
}

// Session statuses and the JSON of sessions and their events are part of
// the wire format.
const (
	StatusOpen       = protocol.StatusOpen
	StatusCommitting = protocol.StatusCommitting
	StatusCommitted  = protocol.StatusCommitted
	StatusRejected   = protocol.StatusRejected
	StatusAborted    = protocol.StatusAborted
)

type (
	Final       = protocol.Final
	OpResult    = protocol.OpResult
	Event       = protocol.Event
	SessionView = protocol.SessionView
)

// Input is one signed op as it arrives.
type Input struct {
	Session   string
	Seq       uint64
	Actor     string
	Method    string
	Path      string
	Body      []byte
	Signature []byte
	Expires   int64 // the expiry the actor signed, Unix ms
}

// Reply is the answer to an op: the result, and for a kept op the node's
// signed receipt; for a direct-mode op, its L1 outcome.
type Reply struct {
	Resp       service.Response
	Receipt    *protocol.Receipt
	ReceiptSig []byte
	Final      *Final
}

// Buffer is an L2 node's session buffer: the driver of its core (core.go).
// It does the I/O the core asks for: the WAL, L1 (submissions, verdicts),
// the clock and the event streams. Each op's signature check and handler
// run here, outside the core, so that steps of different sessions do not
// wait for one another's; an op of a session waits only for the op of the
// same session before it.
type Buffer struct {
	cfg   Config
	chain Chain
	log   *slog.Logger
	obs   Observer
	wal   *WAL

	mu      sync.Mutex // guards core, subs and waiters
	core    *core
	subs    map[*state]map[chan Event]struct{}
	waiters map[*state][]chan struct{} // direct-mode ops waiting for L1
	compact int64                      // WAL size at which to compact next (the committer's)
	depth   int                        // the queue depth last observed

	kick      chan struct{}
	blocks    chan protocol.Block
	stop      chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup
}

// Open replays the WAL at cfg.WALPath (re-executing every live session on
// the current committed state), compacts it, and starts the committer,
// which compacts it again whenever it grew by Config.CompactAt.
func Open(cfg Config, chain Chain) (*Buffer, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	b := &Buffer{cfg: cfg, chain: chain, log: cfg.Logger, obs: cfg.Observer,
		subs: map[*state]map[chan Event]struct{}{}, waiters: map[*state][]chan struct{}{},
		kick: make(chan struct{}, 1), blocks: make(chan protocol.Block, 1024), stop: make(chan struct{})}
	b.core = newCore(cfg, func() service.Store { st, _ := chain.Committed(); return st })
	raw, err := ReadWAL(cfg.FS, cfg.WALPath)
	if err != nil {
		return nil, err
	}
	st, _ := chain.Committed()
	live, err := b.core.replay(raw, st, cfg.Now())
	if err != nil {
		return nil, err
	}
	rd := b.core.ready()
	rd.Records = nil // the log is rewritten with the live sessions only: the ends of the others need no records
	if err := Rewrite(cfg.FS, cfg.WALPath, live); err != nil {
		return nil, fmt.Errorf("buffer: compact wal: %w", err)
	}
	w, _, err := OpenWAL(cfg.FS, cfg.WALPath, b.obs.Fsync)
	if err != nil {
		return nil, err
	}
	b.wal = w
	b.compact = w.Size() + cfg.CompactAt
	b.mu.Lock()
	b.apply(rd)
	b.mu.Unlock()
	b.wg.Add(1)
	go b.committer()
	return b, nil
}

// Err is why this node can take no more ops (its WAL failed), or nil.
func (b *Buffer) Err() error { return b.wal.Err() }

// Close stops the committer and closes the WAL. Queued sessions stay in the
// WAL and are resubmitted by the next Open.
func (b *Buffer) Close() error {
	b.closeOnce.Do(func() {
		close(b.stop)
		b.wg.Wait()
	})
	return b.wal.Close()
}

// OnBlock hands a committed block's verdicts to the buffer. It does not
// block (the ledger calls it inside Commit).
func (b *Buffer) OnBlock(blk protocol.Block) {
	select {
	case b.blocks <- blk:
	default:
		b.log.Error("block queue full; verdicts will be learnt by resubmission", "height", blk.Height)
	}
}

// do runs f on the core under the lock and then does what it left to do.
func (b *Buffer) do(f func(c *core)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	f(b.core)
	b.apply(b.core.ready())
}

// apply does what the core left to do (b.mu held): log the ends of
// sessions, publish events, wake the waiters of ended sessions, observe,
// and wake the committer. Records are enqueued under the lock, so they
// reach the log in the order the core made them.
func (b *Buffer) apply(rd Ready) {
	for _, r := range rd.Records {
		b.wal.Enqueue(r)
	}
	for _, e := range rd.Events {
		subs := b.subs[e.s]
		for ch := range subs {
			select {
			case ch <- e.ev:
			default: // a subscriber that cannot keep up is cut off; it can reconnect
				close(ch)
				delete(subs, ch)
			}
		}
		if e.ev.Type == "final" {
			for ch := range subs {
				close(ch)
			}
			delete(b.subs, e.s)
			for _, w := range b.waiters[e.s] {
				close(w)
			}
			delete(b.waiters, e.s)
		}
	}
	for _, d := range rd.Finality {
		b.obs.Finality(d)
	}
	if d := len(b.core.queue); d != b.depth {
		b.depth = d
		b.obs.QueueDepth(d)
	}
	if rd.Kick {
		b.rekick()
	}
}

// Do executes one signed op: a session start, a step, a commit, an abort,
// or a direct-mode op (seq 0 of a new session id that is not a start). It
// answers a kept op only once it is durable in the WAL; a direct-mode op
// only once L1 has judged it (or ctx ends).
//
// In order: the op must fit its session (core.admit), have the session to
// itself (an op of a session waits for the one before it), be unexpired,
// verify against its actor's registered key, and be within the actor's
// rate; only then does it execute, within the session's limits and the
// actor's quotas. An actor is charged only for ops it signed, so no one
// can spend another actor's quota.
func (b *Buffer) Do(ctx context.Context, in *Input) *Reply {
	if err := b.wal.Err(); err != nil {
		return errResp(http.StatusServiceUnavailable, "UNAVAILABLE", "this node can no longer make ops durable (%v); nothing was done: send the op to another node", err)
	}
	for {
		st, _ := b.chain.Committed()
		b.mu.Lock()
		s, fresh, rep := b.core.admit(in, b.cfg.Now(), st)
		b.mu.Unlock()
		if rep != nil {
			return rep
		}
		if rep, retry := b.run(ctx, s, fresh, in); !retry {
			return rep
		}
	}
}

// run executes an admitted op on session s. retry: s is gone (the op that
// was opening it failed): admit the op again.
func (b *Buffer) run(ctx context.Context, s *state, fresh bool, in *Input) (*Reply, bool) {
	if !fresh {
		s.exec.Lock() // a new session's is held since its admission
	}
	unlocked := false
	unlock := func() {
		if !unlocked {
			unlocked = true
			s.exec.Unlock()
		}
	}
	defer unlock()
	now := b.cfg.Now()
	b.mu.Lock()
	t, rep, retry := b.core.claim(s, fresh, in, now)
	b.mu.Unlock()
	if rep != nil || retry {
		return rep, retry
	}
	// The op has its session to itself from here until applied.
	rep = b.authenticate(s, in, t)
	if rep == nil {
		b.mu.Lock()
		rep = b.core.allow(in.Actor, now)
		b.mu.Unlock()
	}
	if rep != nil {
		b.do(func(c *core) { c.release(s, fresh, now) })
		return rep, false
	}
	kind := service.Classify(in.Session, in.Seq, in.Method, in.Path)
	s.check = func(tx *service.Tx, resp service.Response, size int) error {
		b.mu.Lock()
		defer b.mu.Unlock()
		return b.core.reserveOp(s, fresh, kind, tx.OpKeys(), tx.OpReadKeys(), size, now)
	}
	resp, opHash, err := s.Step(b.cfg.Registry, in.Seq, protocol.Op{Method: in.Method, Path: in.Path, Body: in.Body,
		Signature: in.Signature, Time: t, Expires: in.Expires})
	s.check = nil
	if err != nil {
		b.log.Error("state read failed", "session", in.Session, "err", err)
	}

	b.mu.Lock()
	rec, rep := b.core.applied(s, fresh, in, t, resp, opHash, err, now)
	if rep != nil {
		b.apply(b.core.ready())
		b.mu.Unlock()
		return rep, false
	}
	durable := b.wal.Enqueue(rec)
	id, direct := s.ID, s.direct
	var decided chan struct{}
	if direct {
		decided = make(chan struct{})
		b.waiters[s] = append(b.waiters[s], decided)
	}
	b.apply(b.core.ready())
	b.mu.Unlock()
	unlock() // the session's next op may run while this one becomes durable

	err = <-durable
	b.do(func(c *core) { c.durable(s, kind, err, b.cfg.Now()) })
	if err != nil {
		b.log.Error("wal append failed", "err", err)
		return errResp(http.StatusServiceUnavailable, "UNAVAILABLE",
			"the op could not be made durable (%v): it is not acknowledged, and its session %s is ended on this node and never reaches L1; this node takes no more ops until it is restarted, and after a restart the session holds what reached the disk (GET /v1/sessions/%s)", err, id, id), false
	}
	rc := &protocol.Receipt{Node: b.cfg.Node, Actor: in.Actor, Session: id, Seq: in.Seq, Kind: kind.String(), Op: opHash, Result: resp.Hash(), Time: t, Expires: in.Expires}
	reply := &Reply{Resp: resp, Receipt: rc, ReceiptSig: rc.Sign(b.cfg.Key)}
	if direct {
		select {
		case <-decided:
			b.mu.Lock()
			reply.Final = s.final
			b.mu.Unlock()
		case <-ctx.Done():
			return errResp(http.StatusServiceUnavailable, "UNAVAILABLE",
				"L1 did not finalise session %s in time; it stays queued until its expiry (%s) at the latest: follow GET /v1/sessions/%s",
				id, time.UnixMilli(in.Expires).UTC().Format(time.RFC3339Nano), id), false
		}
	}
	return reply, false
}

// authenticate checks an op before it may cost anything (the op holds its
// session, so its previous op's hash is settled; the core is not needed):
// its expiry against its time t, and its signature against its actor's
// registered key (protocol.Verify through the registry's signature memory,
// so Apply's own check of it is free).
func (b *Buffer) authenticate(s *state, in *Input, t int64) *Reply {
	if in.Expires <= t {
		return errResp(http.StatusBadRequest, "EXPIRED", "the op expired at %d (Unix ms); this node's time is %d", in.Expires, t)
	}
	if in.Expires > t+b.cfg.MaxOpLifetime.Milliseconds() {
		return errResp(http.StatusBadRequest, "INVALID_ARGUMENT", "the op's expiry %d is more than %s after this node's time %d", in.Expires, b.cfg.MaxOpLifetime, t)
	}
	st, _ := b.chain.Committed()
	actor, ok := service.LoadActor(service.NewTx(st), in.Actor)
	if !ok {
		return errResp(http.StatusUnauthorized, "UNAUTHENTICATED", "unknown or revoked actor %q", in.Actor)
	}
	msg := protocol.OpBytes(s.ID, in.Seq, s.Prev(), in.Method, in.Path, in.Body, in.Expires)
	if !b.cfg.Registry.Verify(actor.PublicKey, msg, in.Signature) {
		return errResp(http.StatusUnauthorized, "UNAUTHENTICATED", "bad signature")
	}
	return nil
}

// Subscribe returns a session's events so far and a channel of later ones,
// closed when the session ends. ok is false for an unknown session.
func (b *Buffer) Subscribe(id string) (past []Event, ch <-chan Event, cancel func(), ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.core.session(id)
	if s == nil {
		return nil, nil, nil, false
	}
	past = append([]Event(nil), s.events...)
	c := make(chan Event, 256)
	if s.final != nil {
		close(c)
		return past, c, func() {}, true
	}
	if b.subs[s] == nil {
		b.subs[s] = map[chan Event]struct{}{}
	}
	b.subs[s][c] = struct{}{}
	return past, c, func() {
		b.mu.Lock()
		if _, live := b.subs[s][c]; live {
			delete(b.subs[s], c)
			close(c)
		}
		b.mu.Unlock()
	}, true
}

// Lookup returns a session this node holds in memory, or, if actor is
// given, one L1 committed (sessions are keyed by actor and id on L1).
func (b *Buffer) Lookup(id, actor string) (SessionView, bool) {
	b.mu.Lock()
	s := b.core.session(id)
	if s != nil && (actor == "" || actor == s.Actor) {
		v := SessionView{ID: s.ID, Actor: s.Actor, Status: s.status, Direct: s.direct,
			Ops: append([]OpResult(nil), s.results...), Final: s.final}
		b.mu.Unlock()
		return v, true
	}
	b.mu.Unlock()
	if actor == "" {
		return SessionView{}, false
	}
	st, _ := b.chain.Committed()
	rec, ok := service.LookupSession(st, actor, id)
	if !ok {
		return SessionView{}, false
	}
	return SessionView{ID: id, Actor: rec.Actor, Status: StatusCommitted,
		Final: &Final{Status: StatusCommitted, Height: rec.Height, TxHash: rec.TxHash}}, true
}

// QueueDepth returns the number of bundles waiting to be submitted.
func (b *Buffer) QueueDepth() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.core.queue)
}

// committer flushes the commit queue, follows verdicts, rebases conflicts,
// resubmits stragglers and expires idle sessions. It is the only goroutine
// that talks to L1.
func (b *Buffer) committer() {
	defer b.wg.Done()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-b.stop:
			return
		case blk := <-b.blocks:
			b.applyBlock(blk)
		case <-b.kick:
			// With nothing in flight, submit at once: an idle node should not
			// add the batch interval to finality. Otherwise wait out the
			// interval (or until the batch is full), learning verdicts
			// meanwhile, so that load turns into larger batches.
			if !b.idle() {
				deadline := time.NewTimer(b.cfg.BatchInterval)
			wait:
				for b.QueueDepth() < b.cfg.BatchMax {
					select {
					case <-deadline.C:
						break wait
					case blk := <-b.blocks:
						b.applyBlock(blk)
					case <-b.kick: // another bundle queued: is the batch full?
					case <-b.stop:
						deadline.Stop()
						return
					}
				}
				deadline.Stop()
			}
			b.flush()
		case <-tick.C:
			b.housekeep()
		}
	}
}

// idle reports whether no batch is waiting for its verdict.
func (b *Buffer) idle() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.core.inflight) == 0
}

func (b *Buffer) applyBlock(blk protocol.Block) {
	st, _ := b.chain.Committed()
	b.do(func(c *core) { c.block(blk, st, b.cfg.Now()) })
}

// flush submits the queue, batch by batch. The bundles are signed here,
// outside the core's lock: a committing session does not change until L1
// judges it.
func (b *Buffer) flush() {
	for {
		var batch []*state
		var bundles []protocol.Bundle
		var key string
		b.do(func(c *core) { batch, bundles, key = c.take(b.cfg.Now()) })
		if len(batch) == 0 {
			return
		}
		retry := false
		for i := range bundles {
			bundles[i].Sign(b.cfg.Key)
			retry = retry || bundles[i].Attempt > 0
		}
		tx := protocol.EncodeBatch(&protocol.Batch{Bundles: bundles})
		sum := sha256.Sum256(tx)
		hash := strings.ToUpper(hex.EncodeToString(sum[:]))
		var ok bool
		b.do(func(c *core) { ok = c.sent(key, hash) })
		if !ok {
			continue
		}
		b.obs.Batch(len(batch))
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := b.chain.Submit(ctx, tx, retry)
		cancel()
		if err == nil {
			continue
		}
		st, _ := b.chain.Committed()
		var wait bool
		b.do(func(c *core) { wait = c.submitFailed(batch, hash, err, st, b.cfg.Now()) })
		if wait {
			b.log.Warn("submit failed; requeued", "bundles", len(batch), "err", err)
			select {
			case <-b.stop:
			case <-time.After(200 * time.Millisecond):
			}
			b.rekick()
			return
		}
	}
}

func (b *Buffer) rekick() {
	select {
	case b.kick <- struct{}{}:
	default:
	}
}

// housekeep expires idle sessions, resubmits bundles L1 has not judged,
// forgets old final sessions, and compacts the WAL when it has grown.
func (b *Buffer) housekeep() {
	b.do(func(c *core) { c.tick(b.cfg.Now()) })
	if b.wal.Size() >= b.compact {
		b.compactWAL()
	}
}

// compactWAL rewrites the WAL with the records of the live sessions only.
// The rotation is queued under the lock that the snapshot is taken under,
// so it covers exactly the records enqueued before it.
func (b *Buffer) compactWAL() {
	b.mu.Lock()
	recs := b.core.live()
	var size int64
	for _, r := range recs {
		size += int64(frameSize(r))
	}
	done := b.wal.Rotate(recs)
	b.mu.Unlock()
	if err := <-done; err != nil {
		b.log.Error("wal compaction failed", "err", err)
		b.compact = b.wal.Size() + b.cfg.CompactAt
		return
	}
	b.compact = size + b.cfg.CompactAt
	b.log.Info("wal compacted", "records", len(recs), "bytes", size)
}

// PendingView returns the L2 view for queries: committed state with the
// writes of this node's sessions that wait for L1 on top (version 0).
func (b *Buffer) PendingView() service.Store {
	b.mu.Lock()
	pending := b.core.pendingWrites()
	b.mu.Unlock()
	st, _ := b.chain.Committed()
	return pendingView{st, pending}
}

type pendingView struct {
	base    service.Store
	pending map[string][]byte
}

func (p pendingView) Get(key string) ([]byte, uint64, error) {
	if v, ok := p.pending[key]; ok {
		return v, 0, nil
	}
	return p.base.Get(key)
}
