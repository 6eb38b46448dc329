package buffer

import (
	"cmp"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

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

type state struct {
	*Session
	status     string
	direct     bool
	lastActive time.Time
	lastTime   int64
	finished   time.Time // when it ended (final)
	kept       int       // bytes of the answers kept for it once final
	committing time.Time // when the commit was requested
	submitted  time.Time // when its current bundle went to L1 (zero: queued)
	attempts   uint64    // submissions of it so far that L1 did not judge (protocol.Bundle.Attempt)
	alone      bool      // its last batch was refused: it goes next in a batch of its own
	opKeys     []string  // keys the op being applied writes or claims (set by quotaCheck)
	rebases    int
	results    []OpResult
	reserved   []string
	size       int // Session.Size counted against its actor's quota
	final      *Final
	events     []Event
	wal        [][]byte // WAL records of its acknowledged ops, while it lives
	opened     uint64   // order of opening on this node: replay's order
	subs       map[chan Event]struct{}
	done       chan struct{}
}

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

// Buffer is an L2 node's session buffer.
type Buffer struct {
	cfg   Config
	chain Chain
	wal   *WAL
	log   *slog.Logger
	obs   Observer

	mu       sync.Mutex
	sessions map[string]*state
	finals   []*state // final sessions still held, in the order they ended
	retained int      // their answers' bytes
	actors   map[string]*actorUse
	reserved map[string]string // key -> session holding it
	queue    []*state          // committing, waiting to be submitted
	inflight map[string][]*state
	open     int
	opened   uint64 // sessions opened so far
	compact  int64  // WAL size at which to compact next

	kick      chan struct{}
	blocks    chan protocol.Block
	stop      chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup
}

// actorUse is what one actor holds on this node, against its quotas.
type actorUse struct {
	open     int // open sessions
	reserved int // keys its live sessions reserve
	bytes    int // Session.Size of its live sessions
	rate     *rate.Limiter
	seen     time.Time
}

// view is the store a session executes on: the latest committed state,
// refusing keys another live session of this node holds.
type view struct {
	b *Buffer
	s *state
}

func (v view) Get(key string) ([]byte, uint64, error) {
	if holder, ok := v.b.reserved[key]; ok && holder != v.s.ID {
		return nil, 0, fmt.Errorf("%w: %s is held by session %s", service.ErrHeld, key, holder)
	}
	st, _ := v.b.chain.Committed()
	return st.Get(key)
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
		sessions: map[string]*state{}, actors: map[string]*actorUse{}, reserved: map[string]string{}, inflight: map[string][]*state{},
		kick: make(chan struct{}, 1), blocks: make(chan protocol.Block, 1024), stop: make(chan struct{})}
	live, err := b.replay()
	if err != nil {
		return nil, err
	}
	if err := Rewrite(cfg.FS, cfg.WALPath, live); err != nil {
		return nil, fmt.Errorf("buffer: compact wal: %w", err)
	}
	w, _, err := OpenWAL(cfg.FS, cfg.WALPath, b.obs.Fsync)
	if err != nil {
		return nil, err
	}
	b.wal = w
	b.compact = w.Size() + cfg.CompactAt
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

func errResp(status int, code, format string, args ...any) *Reply {
	return &Reply{Resp: service.Error(status, code, fmt.Sprintf(format, args...))}
}

// Do executes one signed op: a session start, a step, a commit, an abort,
// or a direct-mode op (seq 0 of a new session id that is not a start). It
// answers a kept op only once it is durable in the WAL; a direct-mode op
// only once L1 has judged it (or ctx ends).
//
// In order: the op must fit its session (admitLocked), be unexpired,
// verify against its actor's registered key, and be within the actor's
// rate; only then does it execute, within the session's limits and the
// actor's quotas. An actor is charged only for ops it signed, so no one
// can spend another actor's quota.
func (b *Buffer) Do(ctx context.Context, in *Input) *Reply {
	if err := b.wal.Err(); err != nil {
		return errResp(http.StatusServiceUnavailable, "UNAVAILABLE", "this node can no longer make ops durable (%v); nothing was done: send the op to another node", err)
	}
	b.mu.Lock()
	s, fresh, rep := b.admitLocked(in)
	if rep != nil {
		b.mu.Unlock()
		return rep
	}
	now := b.cfg.Now()
	t := max(now.UnixMilli(), s.lastTime)
	if rep := b.authenticateLocked(s, in, t, now); rep != nil {
		b.mu.Unlock()
		return rep
	}
	kind := service.Classify(in.Session, in.Seq, in.Method, in.Path)
	s.opKeys = nil
	s.check = b.quotaCheck(s, fresh)
	resp, opHash, err := s.Step(b.cfg.Registry, in.Seq, protocol.Op{Method: in.Method, Path: in.Path, Body: in.Body,
		Signature: in.Signature, Time: t, Expires: in.Expires})
	s.check = nil
	switch {
	case errors.Is(err, ErrSeq):
		b.mu.Unlock()
		return errResp(http.StatusConflict, "FAILED_PRECONDITION", "%v", err)
	case err != nil:
		b.mu.Unlock()
		b.log.Error("state read failed", "session", in.Session, "err", err)
		return errResp(http.StatusServiceUnavailable, "UNAVAILABLE", "this node could not read its copy of L1's state; nothing was done")
	}
	if !resp.OK() {
		b.mu.Unlock()
		return &Reply{Resp: resp}
	}
	if fresh {
		b.addLocked(s)
	}
	s.lastTime, s.lastActive = t, now
	b.reserveKeysLocked(s, s.opKeys)
	s.opKeys = nil
	b.resizeLocked(s)
	r := OpResult{Seq: in.Seq, Method: in.Method, Path: in.Path, Status: resp.Status, Result: resp.Body, Time: t, OpHash: opHash.String()}
	s.results = append(s.results, r)
	b.publishLocked(s, Event{Type: "op", Op: &r, Status: s.status})
	switch kind {
	case service.KindCommit:
		b.commitLocked(s, now)
	case service.KindAbort:
		b.finishLocked(s, &Final{Status: StatusAborted})
	case service.KindDirect:
		s.direct = true
		b.commitLocked(s, now)
	}
	rec := encodeOp(s.ID, in.Actor, in.Seq, protocol.Op{Method: in.Method, Path: in.Path, Body: in.Body,
		Signature: in.Signature, Time: t, Expires: in.Expires, Result: resp.Hash()})
	if s.final == nil {
		s.wal = append(s.wal, rec)
	}
	durable := b.wal.Enqueue(rec)
	// s.Session may be replaced by a rebase once the lock is released.
	id, direct, done := s.ID, s.direct, s.done
	b.mu.Unlock()

	err = <-durable
	b.mu.Lock()
	switch {
	case err != nil:
		// The op is kept in memory but not in the log, and its client is
		// told it failed: the session cannot go on truthfully, and never
		// reaches L1.
		b.finishLocked(s, &Final{Status: StatusRejected, Code: "UNAVAILABLE", Reason: "an op could not be made durable"})
	case (kind == service.KindCommit || kind == service.KindDirect) && s.final == nil:
		// Only a commit that is durable goes to L1: after a crash, replay
		// finds every op of a session L1 may have applied.
		b.enqueueLocked(s)
	}
	b.mu.Unlock()
	if err != nil {
		b.log.Error("wal append failed", "err", err)
		return errResp(http.StatusServiceUnavailable, "UNAVAILABLE", "the op could not be made durable (%v); it was not applied and its session %s is ended", err, id)
	}
	rc := &protocol.Receipt{Node: b.cfg.Node, Session: id, Seq: in.Seq, Op: opHash, Result: resp.Hash(), Time: t}
	reply := &Reply{Resp: resp, Receipt: rc, ReceiptSig: rc.Sign(b.cfg.Key)}
	if direct {
		select {
		case <-done:
			b.mu.Lock()
			reply.Final = s.final
			b.mu.Unlock()
		case <-ctx.Done():
			return errResp(http.StatusServiceUnavailable, "UNAVAILABLE",
				"L1 did not finalise session %s in time; it stays queued until its expiry (%s) at the latest: follow GET /v1/sessions/%s",
				id, time.UnixMilli(in.Expires).UTC().Format(time.RFC3339Nano), id)
		}
	}
	return reply
}

// admitLocked checks an op against the session it belongs to (or opens a
// new one) before anything executes.
func (b *Buffer) admitLocked(in *Input) (*state, bool, *Reply) {
	kind := service.Classify(in.Session, in.Seq, in.Method, in.Path)
	s := b.sessions[in.Session]
	if s != nil {
		switch {
		case in.Actor != s.Actor:
			return nil, false, errResp(http.StatusConflict, "CONFLICT", "session id %s is in use on this node by another actor; choose another id", s.ID)
		case s.status != StatusOpen:
			return nil, false, errResp(http.StatusConflict, "FAILED_PRECONDITION", "session %s is %s", s.ID, s.status)
		case in.Seq != s.Seq():
			return nil, false, errResp(http.StatusConflict, "FAILED_PRECONDITION", "seq %d out of order: session %s expects seq %d", in.Seq, s.ID, s.Seq())
		case b.cfg.Now().UnixMilli()-s.started() > b.cfg.MaxSessionAge.Milliseconds() && kind != service.KindAbort:
			return nil, false, errResp(http.StatusConflict, "FAILED_PRECONDITION",
				"session %s started more than %s ago (max_session_age), too long for L1 to take its ops; abort it and start another", s.ID, b.cfg.MaxSessionAge)
		case kind == service.KindInvalid:
			return nil, false, errResp(http.StatusBadRequest, "INVALID_ARGUMENT", "%s %s is session control out of place in session %s (at seq %d)", in.Method, in.Path, s.ID, in.Seq)
		case kind == service.KindCommit && len(b.queue) >= b.cfg.MaxQueue:
			return nil, false, errResp(http.StatusTooManyRequests, "OVERLOADED", "the commit queue is full; retry the commit later")
		}
		return s, false, nil
	}
	if in.Seq != 0 {
		return nil, false, errResp(http.StatusConflict, "FAILED_PRECONDITION", "session %s is not open on this node; a session starts at seq 0", in.Session)
	}
	if kind == service.KindInvalid {
		return nil, false, errResp(http.StatusNotFound, "NOT_FOUND", "session %s is not open on this node", in.Session)
	}
	st, _ := b.chain.Committed()
	if _, used := service.LookupSession(st, in.Actor, in.Session); used {
		return nil, false, errResp(http.StatusConflict, "CONFLICT", "session id %s was already used", in.Session)
	}
	if b.open >= b.cfg.MaxOpen || len(b.queue) >= b.cfg.MaxQueue {
		return nil, false, errResp(http.StatusTooManyRequests, "OVERLOADED", "too many open sessions or queued commits; retry later")
	}
	// L1 finalises less than this node commits: shed new work (open
	// sessions go on) rather than let finality fall further behind.
	if lag := b.lagLocked(b.cfg.Now()); lag > b.cfg.MaxLag {
		return nil, false, errResp(http.StatusTooManyRequests, "OVERLOADED",
			"L1 is %s behind this node's commits; retry later", lag.Round(time.Millisecond))
	}
	return b.newStateLocked(in.Session, in.Actor), true, nil
}

// newStateLocked returns a session not yet registered (addLocked does).
func (b *Buffer) newStateLocked(id, actor string) *state {
	s := &state{status: StatusOpen, subs: map[chan Event]struct{}{}, done: make(chan struct{})}
	s.Session = NewSession(id, actor, view{b, s})
	s.MaxBytes = b.cfg.MaxSessionBytes
	return s
}

// authenticateLocked checks an op before it may cost anything: its expiry
// against its time t, its signature against its actor's registered key
// (protocol.Verify through the registry's signature memory, so Apply's own
// check of it is free), and its actor's rate.
func (b *Buffer) authenticateLocked(s *state, in *Input, t int64, now time.Time) *Reply {
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
	u := b.actorLocked(in.Actor, now)
	if u.rate != nil && !u.rate.AllowN(now, 1) {
		return errResp(http.StatusTooManyRequests, "RATE_LIMITED", "actor %s is over its rate of %g signed ops per second (actor_rate); retry later", in.Actor, b.cfg.ActorRate)
	}
	return nil
}

// actorLocked returns what an actor holds on this node.
func (b *Buffer) actorLocked(id string, now time.Time) *actorUse {
	u := b.actors[id]
	if u == nil {
		u = &actorUse{}
		if b.cfg.ActorRate > 0 {
			u.rate = rate.NewLimiter(rate.Limit(b.cfg.ActorRate), b.cfg.ActorBurst)
		}
		b.actors[id] = u
	}
	u.seen = now
	return u
}

// quotaCheck returns the buffer's own check of an op, made before the
// session keeps it (Session.check): the keys it would reserve must be free,
// and its actor must stay within its quotas.
func (b *Buffer) quotaCheck(s *state, fresh bool) func(tx *service.Tx, resp service.Response, size int) error {
	return func(tx *service.Tx, resp service.Response, size int) error {
		u := b.actors[s.Actor]
		if u == nil {
			return nil // the op was authenticated, which registers its actor
		}
		if fresh && s.pendKind != service.KindDirect && u.open >= b.cfg.MaxOpenPerActor {
			return service.Refuse(http.StatusTooManyRequests, "QUOTA_EXCEEDED",
				"actor %s has %d open sessions on this node, the most one actor may (max_open_per_actor); commit or abort one", s.Actor, u.open)
		}
		var added int
		s.opKeys = tx.OpKeys()
		for _, k := range s.opKeys {
			holder, held := b.reserved[k]
			switch {
			case held && holder != s.ID:
				return service.Refuse(http.StatusConflict, "CONFLICT", "%s is held by session %s", k, holder)
			case !held:
				added++
			}
		}
		if added > 0 && u.reserved+added > b.cfg.MaxReservedPerActor {
			return service.Refuse(http.StatusTooManyRequests, "QUOTA_EXCEEDED",
				"actor %s would reserve %d keys on this node, over its quota of %d (max_reserved_per_actor); commit or abort a session", s.Actor, u.reserved+added, b.cfg.MaxReservedPerActor)
		}
		if grown := size - s.size; grown > 0 && u.bytes+grown > b.cfg.MaxBytesPerActor {
			return service.Refuse(http.StatusTooManyRequests, "QUOTA_EXCEEDED",
				"actor %s's sessions would hold %d bytes on this node, over its quota of %d (max_bytes_per_actor); commit or abort a session", s.Actor, u.bytes+grown, b.cfg.MaxBytesPerActor)
		}
		return nil
	}
}

// addLocked registers a new live session.
func (b *Buffer) addLocked(s *state) {
	b.opened++
	s.opened = b.opened
	b.sessions[s.ID] = s
	b.open++
	b.actorLocked(s.Actor, b.cfg.Now()).open++
}

// lagLocked is how long the oldest commit still waiting for L1 has waited.
func (b *Buffer) lagLocked(now time.Time) time.Duration {
	var oldest time.Time
	older := func(s *state) {
		if s.status == StatusCommitting && (oldest.IsZero() || s.committing.Before(oldest)) {
			oldest = s.committing
		}
	}
	for _, s := range b.queue {
		older(s)
	}
	for _, batch := range b.inflight {
		for _, s := range batch {
			older(s)
		}
	}
	if oldest.IsZero() {
		return 0
	}
	return now.Sub(oldest)
}

// reserveLocked holds every key the session claimed or wrote (after a
// replay or a rebase); a step reserves only its own (reserveKeysLocked).
func (b *Buffer) reserveLocked(s *state) {
	b.reserveKeysLocked(s, append(append([]string(nil), s.Tx().Claims()...), s.Tx().WriteKeys()...))
}

func (b *Buffer) reserveKeysLocked(s *state, keys []string) {
	u := b.actorLocked(s.Actor, b.cfg.Now())
	for _, k := range keys {
		if _, held := b.reserved[k]; !held {
			b.reserved[k] = s.ID
			s.reserved = append(s.reserved, k)
			u.reserved++
		}
	}
}

// resizeLocked counts the session's current size against its actor's
// quota.
func (b *Buffer) resizeLocked(s *state) {
	size := 0
	if s.final == nil {
		size = s.Size()
	}
	b.actorLocked(s.Actor, b.cfg.Now()).bytes += size - s.size
	s.size = size
}

func (b *Buffer) releaseLocked(s *state) {
	u := b.actorLocked(s.Actor, b.cfg.Now())
	for _, k := range s.reserved {
		if b.reserved[k] == s.ID {
			delete(b.reserved, k)
			u.reserved--
		}
	}
	s.reserved = nil
}

// commitLocked ends a session's open life: it takes no more ops and waits
// for L1. enqueueLocked then queues it for submission, once its commit is
// durable.
func (b *Buffer) commitLocked(s *state, now time.Time) {
	s.status = StatusCommitting
	s.committing = now
	b.open--
	b.actorLocked(s.Actor, now).open--
	b.publishLocked(s, Event{Type: "status", Status: s.status})
}

func (b *Buffer) enqueueLocked(s *state) {
	b.queue = append(b.queue, s)
	b.obs.QueueDepth(len(b.queue))
	b.rekick()
}

// finishLocked ends a session: releases its keys, tells subscribers, and
// logs the end so replay skips it.
func (b *Buffer) finishLocked(s *state, f *Final) {
	if s.final != nil {
		return
	}
	if s.status == StatusOpen {
		b.open--
		b.actorLocked(s.Actor, b.cfg.Now()).open--
	}
	s.status, s.final = f.Status, f
	s.wal = nil
	s.finished = b.cfg.Now()
	for _, r := range s.results {
		s.kept += len(r.Result)
	}
	b.finals = append(b.finals, s)
	b.retained += s.kept
	// Keep what GET and the event stream show; drop the overlay and the
	// signed ops, which only L1 submission needed.
	s.Session = &Session{ID: s.ID, Actor: s.Actor, prev: s.prev}
	b.releaseLocked(s)
	b.resizeLocked(s)
	b.publishLocked(s, Event{Type: "final", Status: f.Status, Final: f})
	for ch := range s.subs {
		close(ch)
	}
	s.subs = nil
	close(s.done)
	if f.Status == StatusCommitted && !s.committing.IsZero() {
		b.obs.Finality(b.cfg.Now().Sub(s.committing))
	}
	if b.wal != nil {
		b.wal.Enqueue(encodeFinal(s.ID, f)) // durability of the end is not needed: replay re-learns it from L1
	}
}

func (b *Buffer) publishLocked(s *state, ev Event) {
	s.events = append(s.events, ev)
	for ch := range s.subs {
		select {
		case ch <- ev:
		default: // a subscriber that cannot keep up is cut off; it can reconnect
			close(ch)
			delete(s.subs, ch)
		}
	}
}

// Subscribe returns a session's events so far and a channel of later ones,
// closed when the session ends. ok is false for an unknown session.
func (b *Buffer) Subscribe(id string) (past []Event, ch <-chan Event, cancel func(), ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.sessions[id]
	if s == nil {
		return nil, nil, nil, false
	}
	past = append([]Event(nil), s.events...)
	c := make(chan Event, 256)
	if s.final != nil {
		close(c)
		return past, c, func() {}, true
	}
	s.subs[c] = struct{}{}
	return past, c, func() {
		b.mu.Lock()
		if _, live := s.subs[c]; live {
			delete(s.subs, c)
			close(c)
		}
		b.mu.Unlock()
	}, true
}

// Lookup returns a session this node holds in memory, or, if actor is
// given, one L1 committed (sessions are keyed by actor and id on L1).
func (b *Buffer) Lookup(id, actor string) (SessionView, bool) {
	b.mu.Lock()
	s := b.sessions[id]
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
	return len(b.queue)
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
	return len(b.inflight) == 0
}

func (b *Buffer) flush() {
	for {
		b.mu.Lock()
		batch, bundles := b.takeLocked()
		b.obs.QueueDepth(len(b.queue))
		if len(batch) == 0 {
			b.mu.Unlock()
			return
		}
		tx, hash := b.inflightLocked(batch, bundles)
		b.mu.Unlock()
		if err := b.submit(batch, bundles, tx, hash); err != nil {
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

// takeLocked takes the next batch off the queue, signed: at most BatchMax
// bundles and protocol.MaxBatchBytes in all. Sessions that ended while
// queued (their commit expired) are dropped from the queue.
func (b *Buffer) takeLocked() ([]*state, []protocol.Bundle) {
	var batch []*state
	var bundles []protocol.Bundle
	size := 1 + 2 // version tag and bundle count (at most protocol.MaxBundles: two bytes)
	for len(b.queue) > 0 && len(batch) < b.cfg.BatchMax {
		s := b.queue[0]
		if s.final != nil {
			b.queue = b.queue[1:]
			continue
		}
		if s.alone && len(batch) > 0 {
			break // it goes in a batch of its own
		}
		bu := s.Bundle(b.cfg.Node, b.cfg.Key, s.attempts)
		if n := bu.Size(); len(batch) > 0 && size+n > protocol.MaxBatchBytes {
			break // every bundle is at most protocol.MaxBundleBytes, so it fits a batch of its own
		} else {
			size += n
		}
		batch, bundles = append(batch, s), append(bundles, bu)
		b.queue = b.queue[1:]
		if s.alone {
			s.alone = false
			break
		}
	}
	return batch, bundles
}

// RejectedError is what Chain.Submit returns when L1 refuses a transaction
// for good (CheckTx refused it, or it can never be taken): resubmitting it
// unchanged cannot help. Any other error is transient.
type RejectedError interface {
	error
	Rejected() (code uint32, log string)
}

// inflightLocked encodes a batch taken off the queue and records it as in
// flight, in the same critical section, so its sessions are always either
// queued or in flight (PendingView, lagLocked and expireLocked see them).
func (b *Buffer) inflightLocked(batch []*state, bundles []protocol.Bundle) (tx []byte, hash string) {
	tx = protocol.EncodeBatch(&protocol.Batch{Bundles: bundles})
	sum := sha256.Sum256(tx)
	hash = strings.ToUpper(hex.EncodeToString(sum[:]))
	now := b.cfg.Now()
	for _, s := range batch {
		s.submitted = now
	}
	b.inflight[hash] = batch
	return tx, hash
}

// submit sends one batch, in flight as tx with hash. A transient failure
// requeues it and is returned; a batch L1 refuses is split, so one bad
// bundle cannot hold back others, and a refused single bundle rejects its
// session with L1's reason.
func (b *Buffer) submit(batch []*state, bundles []protocol.Bundle, tx []byte, hash string) error {
	b.obs.Batch(len(batch))

	retry := false
	for i := range bundles {
		retry = retry || bundles[i].Attempt > 0
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	err := b.chain.Submit(ctx, tx, retry)
	cancel()
	if err == nil {
		return nil
	}
	b.mu.Lock()
	delete(b.inflight, hash)
	for _, s := range batch {
		s.submitted = time.Time{}
	}
	defer b.mu.Unlock()
	var rej RejectedError
	if !errors.As(err, &rej) {
		// It may have reached a mempool all the same: resubmit it as new
		// bytes, and L1 applies the session at most once.
		for _, s := range batch {
			b.retryLocked(s)
		}
		b.queue = append(slices.Clone(batch), b.queue...)
		return err
	}
	if len(batch) > 1 {
		// Split: each goes again alone, first in the queue, so one bad
		// bundle cannot hold back the others.
		for _, s := range batch {
			s.alone = true
		}
		b.queue = append(slices.Clone(batch), b.queue...)
		return nil
	}
	s := batch[0]
	code, log := rej.Rejected()
	if protocol.Code(code) != protocol.CodeAlreadyCommitted {
		b.finishLocked(s, &Final{Status: StatusRejected, Code: protocol.Code(code).String(), Reason: log})
		return nil
	}
	// Resubmitted after L1 applied it (its verdict was missed).
	if f, known := b.alreadyCommittedLocked(s.Session); known {
		b.finishLocked(s, f)
		return nil
	}
	b.retryLocked(s)
	b.queue = append(b.queue, s)
	return errFollowerBehind
}

// errFollowerBehind: L1 says it applied a session that the node's follower
// does not show yet; the committer waits a moment and asks again.
var errFollowerBehind = errors.New("buffer: L1 applied a session the node's follower does not show yet")

func (b *Buffer) rekick() {
	select {
	case b.kick <- struct{}{}:
	default:
	}
}

// applyBlock settles the sessions whose bundles a block judged.
func (b *Buffer) applyBlock(blk protocol.Block) {
	b.mu.Lock()
	defer b.mu.Unlock()
	requeued := false
	for _, tx := range blk.Txs {
		batch, ours := b.inflight[tx.Hash]
		if !ours {
			continue
		}
		delete(b.inflight, tx.Hash)
		for i, s := range batch {
			if s.final != nil {
				continue
			}
			s.submitted = time.Time{}
			if i >= len(tx.Outcomes) || tx.Outcomes[i].Session != s.ID {
				// A verdict list that does not match what we sent: resubmit;
				// L1 applies a session at most once.
				b.retryLocked(s)
				b.queue = append(b.queue, s)
				requeued = true
				continue
			}
			out, reason := tx.Outcomes[i], ""
			if i < len(tx.Reasons) {
				reason = tx.Reasons[i]
			}
			switch out.Code {
			case protocol.CodeOK:
				b.finishLocked(s, &Final{Status: StatusCommitted, Height: blk.Height, TxHash: tx.Hash})
			case protocol.CodeAlreadyCommitted:
				if f, known := b.alreadyCommittedLocked(s.Session); known {
					b.finishLocked(s, f)
				} else {
					b.retryLocked(s)
					b.queue = append(b.queue, s)
					requeued = true
				}
			case protocol.CodeConflict:
				if b.rebaseLocked(s, reason) {
					requeued = true
				}
			case protocol.CodeTimeOutOfBounds:
				// A block made after an L1 outage carries a time from before
				// it (block time is the median of the votes for the block
				// before), too early for ops made during the outage; a later
				// block will not be. Ops too old stay too old.
				if last := s.lastTime; last > blk.Time {
					b.retryLocked(s)
					b.queue = append(b.queue, s)
					requeued = true
					continue
				}
				b.finishLocked(s, &Final{Status: StatusRejected, Code: out.Code.String(), Reason: reason})
			default:
				b.finishLocked(s, &Final{Status: StatusRejected, Code: out.Code.String(), Reason: reason})
			}
		}
	}
	b.expireLocked(blk.Time)
	if requeued {
		b.rekick()
	}
}

// retryLocked counts a submission of s that L1 did not judge, so that the
// next one is new bytes (protocol.Bundle.Attempt).
func (b *Buffer) retryLocked(s *state) {
	if s.attempts < protocol.MaxAttempt {
		s.attempts++
	}
}

// expireLocked rejects the committing sessions whose last op expired
// before L1's block time: block time never goes back, so L1 can never
// apply them. Nothing that waits for L1 waits longer than its expiry.
func (b *Buffer) expireLocked(blockTime int64) {
	expire := func(s *state) {
		if exp := s.expires(); s.final == nil && exp < blockTime {
			// An earlier submission may have been applied, its verdict
			// missed: L1's record says.
			if f, known := b.alreadyCommittedLocked(s.Session); known {
				b.finishLocked(s, f)
				return
			}
			b.finishLocked(s, &Final{Status: StatusRejected, Code: protocol.CodeExpired.String(),
				Reason: fmt.Sprintf("its last op expired at %d, and L1's block time is now %d", exp, blockTime)})
		}
	}
	for _, s := range b.queue {
		expire(s)
	}
	for _, batch := range b.inflight {
		for _, s := range batch {
			expire(s)
		}
	}
}

// alreadyCommittedLocked is the end of a session L1 found already
// committed: committed only if L1's record is of this very session (its
// actor's op chain, whose last op names every op before it, and the same
// results); otherwise rejected, saying how the record differs. known is
// false while the node's follower holds no record yet (L1 answered from a
// validator that is ahead of it): the session is not ended then.
func (b *Buffer) alreadyCommittedLocked(s *Session) (f *Final, known bool) {
	st, _ := b.chain.Committed()
	rec, ok := service.LookupSession(st, s.Actor, s.ID)
	switch {
	case !ok:
		return nil, false
	case rec.LastOp != s.Prev().String():
		return &Final{Status: StatusRejected, Code: protocol.CodeAlreadyCommitted.String(),
			Reason: fmt.Sprintf("session id %s of %s was committed at height %d with other ops (last op %s, not %s)", s.ID, s.Actor, rec.Height, rec.LastOp, s.Prev())}, true
	case rec.Results != s.Results().String():
		return &Final{Status: StatusRejected, Code: protocol.CodeAlreadyCommitted.String(),
			Reason: fmt.Sprintf("session id %s of %s was committed at height %d with other results (%s, not %s)", s.ID, s.Actor, rec.Height, rec.Results, s.Results())}, true
	}
	return &Final{Status: StatusCommitted, Height: rec.Height, TxHash: rec.TxHash}, true
}

// rebaseLocked re-executes a conflicted session on the current committed
// state with the same signed ops and times. Identical results: the session
// is queued again with fresh read versions. Otherwise it is rejected with
// what changed.
func (b *Buffer) rebaseLocked(s *state, reason string) bool {
	s.rebases++
	if s.rebases > b.cfg.MaxRebase {
		b.finishLocked(s, &Final{Status: StatusRejected, Code: "CONFLICT", Reason: reason + " (rebased too often)"})
		return false
	}
	b.releaseLocked(s)
	fresh := NewSession(s.ID, s.Actor, view{b, s})
	fresh.MaxBytes = b.cfg.MaxSessionBytes
	for _, op := range s.ops {
		resp, _, err := fresh.Step(b.cfg.Registry, fresh.Seq(), op)
		if err != nil {
			// The node cannot read its own state: keep the session as it
			// was; L1 will answer its stale reads again.
			b.log.Error("rebase: state read failed", "session", s.ID, "err", err)
			b.reserveLocked(s)
			b.queue = append(b.queue, s)
			return true
		}
		if resp.Hash() != op.Result {
			changed := fmt.Sprintf("op %d (%s %s) now gives %d %s", fresh.Seq(), op.Method, op.Path, resp.Status, truncate(resp.Body))
			b.finishLocked(s, &Final{Status: StatusRejected, Code: "CONFLICT", Reason: reason + "; " + changed})
			return false
		}
	}
	s.Session = fresh
	b.reserveLocked(s)
	b.resizeLocked(s)
	b.queue = append(b.queue, s)
	b.log.Info("rebased after conflict", "session", s.ID, "reason", reason)
	return true
}

func truncate(b []byte) string {
	if len(b) > 300 {
		return string(b[:300]) + "..."
	}
	return string(b)
}

// housekeep expires idle sessions, resubmits bundles L1 has not judged,
// and forgets old final sessions.
func (b *Buffer) housekeep() {
	b.mu.Lock()
	now := b.cfg.Now()
	for _, s := range b.sessions {
		switch {
		case s.status == StatusOpen && now.Sub(s.lastActive) > b.cfg.SessionTTL:
			b.finishLocked(s, &Final{Status: StatusAborted, Code: "EXPIRED", Reason: "idle longer than the session TTL"})
		case s.status == StatusOpen && now.UnixMilli()-s.started() > b.cfg.MaxSessionAge.Milliseconds():
			b.finishLocked(s, &Final{Status: StatusAborted, Code: "EXPIRED", Reason: "open longer than max_session_age"})
		}
	}
	b.forgetLocked(now)
	for id, u := range b.actors {
		if u.open == 0 && u.reserved == 0 && u.bytes == 0 && now.Sub(u.seen) > time.Minute {
			delete(b.actors, id) // its rate bucket is full again by now
		}
	}
	resubmit := false
	for hash, batch := range b.inflight {
		if len(batch) > 0 && now.Sub(batch[0].submitted) > b.cfg.ResubmitAfter {
			delete(b.inflight, hash)
			for _, s := range batch {
				if s.final == nil {
					s.submitted = time.Time{}
					b.retryLocked(s)
					b.queue = append(b.queue, s)
					resubmit = true
				}
			}
		}
	}
	b.mu.Unlock()
	if resubmit {
		b.rekick()
	}
	if b.wal.Size() >= b.compact {
		b.compactWAL()
	}
}

// forgetLocked drops final sessions from memory, oldest first, once they
// ended more than Retain ago or their answers take more than RetainBytes.
// L1 keeps the committed ones for good (Lookup with their actor).
func (b *Buffer) forgetLocked(now time.Time) {
	for len(b.finals) > 0 {
		s := b.finals[0]
		if now.Sub(s.finished) <= b.cfg.Retain && b.retained <= b.cfg.RetainBytes {
			return
		}
		b.finals[0] = nil
		b.finals = b.finals[1:]
		b.retained -= s.kept
		if b.sessions[s.ID] == s {
			delete(b.sessions, s.ID)
		}
	}
}

// compactWAL rewrites the WAL with the records of the live sessions only,
// in the order they opened (the order replay re-executes them in). Taken
// under the lock with the rotation queued under it too, the snapshot
// covers exactly the records enqueued before it.
func (b *Buffer) compactWAL() {
	b.mu.Lock()
	var live []*state
	for _, s := range b.sessions {
		if s.final == nil {
			live = append(live, s)
		}
	}
	slices.SortFunc(live, func(x, y *state) int { return cmp.Compare(x.opened, y.opened) })
	var recs [][]byte
	var size int64
	for _, s := range live {
		for _, r := range s.wal {
			recs = append(recs, r)
			size += int64(len(frame(nil, r)))
		}
	}
	done := b.wal.Rotate(recs)
	b.mu.Unlock()
	if err := <-done; err != nil {
		b.log.Error("wal compaction failed", "err", err)
		b.compact = b.wal.Size() + b.cfg.CompactAt
		return
	}
	b.compact = size + b.cfg.CompactAt
	b.log.Info("wal compacted", "live_sessions", len(live), "records", len(recs), "bytes", size)
}

// PendingView returns the L2 view for queries: committed state with the
// writes of this node's sessions that wait for L1 on top (version 0).
func (b *Buffer) PendingView() service.Store {
	b.mu.Lock()
	defer b.mu.Unlock()
	// The committing sessions are exactly those queued or in flight.
	pending := map[string][]byte{}
	add := func(s *state) {
		if s.status == StatusCommitting {
			for _, kv := range s.Tx().Writes() {
				pending[kv.Key] = kv.Value
			}
		}
	}
	for _, batch := range b.inflight {
		for _, s := range batch {
			add(s)
		}
	}
	for _, s := range b.queue {
		add(s)
	}
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
