package buffer

import (
	"cmp"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/duet-bft/duet/protocol"
	"github.com/duet-bft/duet/service"
)

// core is the buffer's state machine: the sessions this node holds, the
// keys they reserve, what each actor uses of its quotas, the commit queue,
// and the batches L1 has not judged yet. It takes ops, blocks and ticks,
// with the time (and L1's committed state, where a rule needs it) passed
// in; it does no I/O, reads no clock and starts no goroutine. L1's
// committed state comes from the driver: as an argument where a rule needs
// it, and through committed for the views sessions execute on. What the
// driver must do as a result it collects in a Ready: WAL records to
// append, events to publish, finality to observe, a batch to submit.
//
// The driver (Buffer) calls it under its mutex, one call at a time. Only
// the work that needs no shared state runs outside: checking an op's
// signature and running its handler on the session's own overlay, so that
// steps of different sessions do not wait for one another's. An executing
// op meets the core twice more: its reads ask who holds a key (reserved is
// safe to read concurrently for that), and just before its session keeps
// it, reserveOp checks and takes its keys and quotas in one call.
type core struct {
	cfg       Config
	committed func() service.Store // L1's latest committed state (the driver's follower)

	sessions map[string]*state
	actors   map[string]*actorUse
	reserved sync.Map // key -> *service.Held: the live session holding it; written only by the core
	queue    []*state
	inflight map[string][]*state // by transaction hash
	batches  uint64              // batches taken so far
	finals   []*state            // final sessions still in memory, oldest first
	retained int                 // bytes of the answers kept for them
	open     int                 // open sessions
	opened   uint64              // sessions opened so far

	rd Ready
}

// Ready is what the driver must do after core calls, in order.
type Ready struct {
	Records  [][]byte       // WAL records to append (the ends of sessions)
	Events   []sessionEvent // events to publish to each session's subscribers
	Finality []time.Duration
	Kick     bool // the queue holds bundles to submit
}

type sessionEvent struct {
	s  *state
	ev Event
}

func newCore(cfg Config, committed func() service.Store) *core {
	return &core{cfg: cfg, committed: committed, sessions: map[string]*state{}, actors: map[string]*actorUse{}, inflight: map[string][]*state{}}
}

// view is the store a session executes on: L1's latest committed state,
// refusing keys another live session of this node holds. Executing ops
// read it outside the driver's lock (holder is safe for that).
type view struct {
	c *core
	s *state
}

func (v view) Get(key string) ([]byte, uint64, error) {
	if h, ok := v.c.holder(key); ok && h.Session != v.s.ID {
		return nil, 0, h
	}
	return v.c.committed().Get(key)
}

// ready returns what the calls since the last ready left to do.
func (c *core) ready() Ready {
	rd := c.rd
	c.rd = Ready{}
	return rd
}

// state is one session as the core holds it.
type state struct {
	*Session
	status     string
	direct     bool
	pending    bool   // opened by an op still executing: not a session yet
	busy       bool   // an op of it is executing outside the core
	doomed     *Final // how it ends once its executing op is done
	lastActive time.Time
	lastTime   int64
	finished   time.Time // when it ended (final)
	kept       int       // bytes of the answers kept for it once final
	committing time.Time // when the commit was requested
	submitted  time.Time // when its current bundle went to L1 (zero: queued)
	attempts   uint64    // submissions of it so far that L1 did not judge (protocol.Bundle.Attempt)
	alone      bool      // its last batch was refused: it goes next in a batch of its own
	rebases    int
	results    []OpResult
	reserved   []string
	size       int // Session.Size counted against its actor's quota
	final      *Final
	events     []Event
	wal        [][]byte // WAL records of its acknowledged ops, while it lives
	opened     uint64   // order of opening on this node: replay's order

	exec sync.Mutex // held by the driver while an op of it executes
}

// actorUse is what one actor holds on this node, against its quotas.
type actorUse struct {
	open     int // open sessions
	reserved int // keys its live sessions reserve
	bytes    int // Session.Size of its live sessions
	rate     *rate.Limiter
	seen     time.Time
}

func errResp(status int, code, format string, args ...any) *Reply {
	return &Reply{Resp: service.Error(status, code, fmt.Sprintf(format, args...))}
}

// Admission: an op, before anything of it executes.

// admit checks an op against the session it belongs to, or registers a
// pending session for a seq 0 (which becomes a session only once its
// first op is kept: see applied). st is L1's committed state.
func (c *core) admit(in *Input, now time.Time, st service.Store) (s *state, fresh bool, rep *Reply) {
	kind := service.Classify(in.Session, in.Seq, in.Method, in.Path)
	if s := c.sessions[in.Session]; s != nil {
		switch {
		case in.Actor != s.Actor:
			return nil, false, errResp(http.StatusConflict, "CONFLICT", "session id %s is in use on this node by another actor; choose another id", s.ID)
		case s.pending || s.busy:
			// An op of it is executing (outside the core, so the session
			// must not be read now): wait for it, then look again (claim).
			return s, false, nil
		}
		if rep := c.recheck(s, in, now); rep != nil {
			return nil, false, rep
		}
		return s, false, nil
	}
	if in.Seq != 0 {
		return nil, false, errResp(http.StatusConflict, "FAILED_PRECONDITION", "session %s is not open on this node; a session starts at seq 0", in.Session)
	}
	if kind == service.KindInvalid {
		return nil, false, errResp(http.StatusNotFound, "NOT_FOUND", "session %s is not open on this node", in.Session)
	}
	if _, used := service.LookupSession(st, in.Actor, in.Session); used {
		return nil, false, errResp(http.StatusConflict, "CONFLICT", "session id %s was already used", in.Session)
	}
	if c.open >= c.cfg.MaxOpen || len(c.queue) >= c.cfg.MaxQueue {
		return nil, false, errResp(http.StatusTooManyRequests, "OVERLOADED", "too many open sessions or queued commits; retry later")
	}
	// L1 finalises less than this node commits: shed new work (open
	// sessions go on) rather than let finality fall further behind.
	if lag := c.lag(now); lag > c.cfg.MaxLag {
		return nil, false, errResp(http.StatusTooManyRequests, "OVERLOADED",
			"L1 is %s behind this node's commits; retry later", lag.Round(time.Millisecond))
	}
	s = c.newState(in.Session, in.Actor)
	s.pending = true
	// The op that opens it holds it from now (the driver unlocks it), so a
	// second op with the id waits for the first instead of spinning.
	s.exec.Lock()
	c.sessions[s.ID] = s
	return s, true, nil
}

// recheck checks an op against its registered session: once at admission,
// and again once the op has its session to itself (an op of it may have
// run meanwhile).
func (c *core) recheck(s *state, in *Input, now time.Time) *Reply {
	kind := service.Classify(in.Session, in.Seq, in.Method, in.Path)
	switch {
	case s.status != StatusOpen:
		return errResp(http.StatusConflict, "FAILED_PRECONDITION", "session %s is %s", s.ID, s.status)
	case in.Seq != s.Seq():
		return errResp(http.StatusConflict, "FAILED_PRECONDITION", "seq %d out of order: session %s expects seq %d", in.Seq, s.ID, s.Seq())
	case s.Seq() > 0 && now.UnixMilli()-s.started() > c.cfg.MaxSessionAge.Milliseconds() && kind != service.KindAbort:
		return errResp(http.StatusConflict, "FAILED_PRECONDITION",
			"session %s started more than %s ago (max_session_age), too long for L1 to take its ops; abort it and start another", s.ID, c.cfg.MaxSessionAge)
	case kind == service.KindInvalid:
		return errResp(http.StatusBadRequest, "INVALID_ARGUMENT", "%s %s is session control out of place in session %s (at seq %d)", in.Method, in.Path, s.ID, in.Seq)
	case kind == service.KindCommit && len(c.queue) >= c.cfg.MaxQueue:
		return errResp(http.StatusTooManyRequests, "OVERLOADED", "the commit queue is full; retry the commit later")
	}
	return nil
}

// claim gives the op's session to it, once the driver holds the session's
// exec lock: it checks the op again (an op of the session may have run
// meanwhile) and marks the session busy. retry: the session the op was
// admitted to is gone (its first op failed); admit it again.
func (c *core) claim(s *state, fresh bool, in *Input, now time.Time) (t int64, rep *Reply, retry bool) {
	if c.sessions[s.ID] != s || (s.pending && !fresh) {
		return 0, nil, true
	}
	if !fresh {
		if rep := c.recheck(s, in, now); rep != nil {
			return 0, rep, false
		}
	}
	if s.doomed != nil {
		return 0, errResp(http.StatusConflict, "FAILED_PRECONDITION", "session %s is ending: %s", s.ID, s.doomed.Reason), false
	}
	s.busy = true
	return max(now.UnixMilli(), s.lastTime), nil, false
}

// release ends an op's hold on its session without keeping anything.
func (c *core) release(s *state, fresh bool, now time.Time) {
	c.unbusy(s, now)
	if fresh && s.pending && c.sessions[s.ID] == s {
		delete(c.sessions, s.ID)
	}
}

// unbusy ends an op's hold on its session, ending the session if it was
// doomed meanwhile (see durable).
func (c *core) unbusy(s *state, now time.Time) {
	s.busy = false
	if s.doomed != nil {
		c.finish(s, s.doomed, now)
	}
}

// newState returns a session for the core to register.
func (c *core) newState(id, actor string) *state {
	s := &state{status: StatusOpen}
	s.Session = NewSession(id, actor, view{c, s})
	s.MaxBytes = c.cfg.MaxSessionBytes
	return s
}

// allow charges an authenticated op to its actor's rate.
func (c *core) allow(actor string, now time.Time) *Reply {
	u := c.actor(actor, now)
	if u.rate != nil && !u.rate.AllowN(now, 1) {
		return errResp(http.StatusTooManyRequests, "RATE_LIMITED", "actor %s is over its rate of %g signed ops per second (actor_rate); retry later", actor, c.cfg.ActorRate)
	}
	return nil
}

// actor returns what an actor holds on this node.
func (c *core) actor(id string, now time.Time) *actorUse {
	u := c.actors[id]
	if u == nil {
		u = &actorUse{}
		if c.cfg.ActorRate > 0 {
			u.rate = rate.NewLimiter(rate.Limit(c.cfg.ActorRate), c.cfg.ActorBurst)
		}
		c.actors[id] = u
	}
	u.seen = now
	return u
}

// holder returns who holds key, if a live session does. It is the one
// core call executing ops make without the driver's lock.
func (c *core) holder(key string) (*service.Held, bool) {
	v, ok := c.reserved.Load(key)
	if !ok {
		return nil, false
	}
	return v.(*service.Held), true
}

// reserveOp is the core's check of an op just before its session keeps
// it (Session.check): the keys it writes or claims must be free, and its
// actor must stay within its quotas, the session growing to size. If so,
// the keys and quotas are taken at once (the op will be kept), and a
// session the op opens counts as open.
func (c *core) reserveOp(s *state, fresh bool, kind service.OpKind, keys, reads []string, size int, now time.Time) error {
	u := c.actor(s.Actor, now)
	// The op executed outside the core: a key it read may have been taken
	// since by another session's op. It is answered as if it had run after
	// that op, whose reservation its read would have met.
	for _, k := range reads {
		if h, held := c.holder(k); held && h.Session != s.ID {
			return h
		}
	}
	if fresh && c.open >= c.cfg.MaxOpen {
		return service.Refuse(http.StatusTooManyRequests, "OVERLOADED", "too many open sessions or queued commits; retry later")
	}
	if fresh && kind != service.KindDirect && u.open >= c.cfg.MaxOpenPerActor {
		return service.Refuse(http.StatusTooManyRequests, "QUOTA_EXCEEDED",
			"actor %s has %d open sessions on this node, the most one actor may (max_open_per_actor); commit or abort one", s.Actor, u.open)
	}
	added := 0
	for _, k := range keys {
		h, held := c.holder(k)
		switch {
		case held && h.Session != s.ID:
			return h
		case !held:
			added++
		}
	}
	if added > 0 && u.reserved+added > c.cfg.MaxReservedPerActor {
		return service.Refuse(http.StatusTooManyRequests, "QUOTA_EXCEEDED",
			"actor %s would reserve %d keys on this node, over its quota of %d (max_reserved_per_actor); commit or abort a session", s.Actor, u.reserved+added, c.cfg.MaxReservedPerActor)
	}
	if grown := size - s.size; grown > 0 && u.bytes+grown > c.cfg.MaxBytesPerActor {
		return service.Refuse(http.StatusTooManyRequests, "QUOTA_EXCEEDED",
			"actor %s's sessions would hold %d bytes on this node, over its quota of %d (max_bytes_per_actor); commit or abort a session", s.Actor, u.bytes+grown, c.cfg.MaxBytesPerActor)
	}
	c.reserveKeys(s, keys, now)
	u.bytes += size - s.size
	s.size = size
	if fresh {
		c.open++
		u.open++
	}
	return nil
}

// applied takes the outcome of an executed op (resp, or err: a failure of
// the state under it) into its session. For a kept op it returns the WAL
// record the driver must make durable before answering.
func (c *core) applied(s *state, fresh bool, in *Input, t int64, resp service.Response, opHash protocol.Hash, err error, now time.Time) (rec []byte, rep *Reply) {
	switch {
	case err != nil:
		c.release(s, fresh, now)
		return nil, errResp(http.StatusServiceUnavailable, "UNAVAILABLE", "this node could not read its copy of L1's state; nothing was done")
	case !resp.OK():
		c.release(s, fresh, now)
		return nil, &Reply{Resp: resp}
	}
	defer c.unbusy(s, now)
	if fresh {
		s.pending = false
		c.opened++
		s.opened = c.opened
	}
	s.lastTime, s.lastActive = t, now
	c.resize(s)
	r := OpResult{Seq: in.Seq, Method: in.Method, Path: in.Path, Status: resp.Status, Result: resp.Body, Time: t, OpHash: opHash.String()}
	s.results = append(s.results, r)
	c.publish(s, Event{Type: "op", Op: &r, Status: s.status})
	switch service.Classify(in.Session, in.Seq, in.Method, in.Path) {
	case service.KindCommit:
		c.commit(s, now)
	case service.KindAbort:
		c.finish(s, &Final{Status: StatusAborted}, now)
	case service.KindDirect:
		s.direct = true
		c.commit(s, now)
	}
	rec = encodeOp(s.ID, in.Actor, in.Seq, protocol.Op{Method: in.Method, Path: in.Path, Body: in.Body,
		Signature: in.Signature, Time: t, Expires: in.Expires, Result: resp.Hash()})
	if s.final == nil {
		s.wal = append(s.wal, rec)
	}
	return rec, nil
}

// durable takes the WAL's answer for an op's record: a commit goes to the
// queue only now (after a crash, replay finds every op of a session L1 may
// have applied); a record that could not be made durable ends its
// session, which then never reaches L1.
func (c *core) durable(s *state, kind service.OpKind, err error, now time.Time) {
	switch {
	case err != nil && s.busy:
		// A later op of the session is executing: end it when that op is
		// done (its record cannot be made durable either).
		s.doomed = &Final{Status: StatusRejected, Code: "UNAVAILABLE", Reason: "an op could not be made durable"}
	case err != nil:
		c.finish(s, &Final{Status: StatusRejected, Code: "UNAVAILABLE", Reason: "an op could not be made durable"}, now)
	case (kind == service.KindCommit || kind == service.KindDirect) && s.final == nil:
		c.enqueue(s)
	}
}

// lag is how long the oldest commit still waiting for L1 has waited.
func (c *core) lag(now time.Time) time.Duration {
	var oldest time.Time
	older := func(s *state) {
		if s.status == StatusCommitting && (oldest.IsZero() || s.committing.Before(oldest)) {
			oldest = s.committing
		}
	}
	for _, s := range c.queue {
		older(s)
	}
	for _, batch := range c.inflight {
		for _, s := range batch {
			older(s)
		}
	}
	if oldest.IsZero() {
		return 0
	}
	return now.Sub(oldest)
}

// Reservations and quotas.

// reserveAll holds every key the session claimed or wrote (after a replay
// or a rebase); an op reserves only its own (reserveOp).
func (c *core) reserveAll(s *state, now time.Time) {
	c.reserveKeys(s, append(append([]string(nil), s.Tx().Claims()...), s.Tx().WriteKeys()...), now)
}

func (c *core) reserveKeys(s *state, keys []string, now time.Time) {
	u := c.actor(s.Actor, now)
	since := s.started()
	if since == 0 {
		since = now.UnixMilli() // the session's first op, being kept
	}
	for _, k := range keys {
		if _, held := c.holder(k); !held {
			c.reserved.Store(k, &service.Held{Key: k, Session: s.ID, Actor: s.Actor, Since: since})
			s.reserved = append(s.reserved, k)
			u.reserved++
		}
	}
}

// resize counts the session's current size against its actor's quota.
func (c *core) resize(s *state) {
	size := 0
	if s.final == nil {
		size = s.Size()
	}
	c.actor(s.Actor, s.lastActive).bytes += size - s.size
	s.size = size
}

func (c *core) releaseKeys(s *state) {
	u := c.actors[s.Actor]
	for _, k := range s.reserved {
		if h, held := c.holder(k); held && h.Session == s.ID {
			c.reserved.Delete(k)
			if u != nil {
				u.reserved--
			}
		}
	}
	s.reserved = nil
}

// Session life.

// commit ends a session's open life: it takes no more ops and waits for
// L1. durable then queues it, once its commit is durable.
func (c *core) commit(s *state, now time.Time) {
	s.status = StatusCommitting
	s.committing = now
	c.open--
	c.actor(s.Actor, now).open--
	c.publish(s, Event{Type: "status", Status: s.status})
}

func (c *core) enqueue(s *state) {
	c.queue = append(c.queue, s)
	c.rd.Kick = true
}

// finish ends a session: releases its keys, tells subscribers, and logs
// the end so replay skips it.
func (c *core) finish(s *state, f *Final, now time.Time) {
	if s.final != nil {
		return
	}
	if s.status == StatusOpen {
		c.open--
		c.actor(s.Actor, now).open--
	}
	s.status, s.final = f.Status, f
	s.wal = nil
	s.finished = now
	for _, r := range s.results {
		s.kept += len(r.Result)
	}
	c.finals = append(c.finals, s)
	c.retained += s.kept
	// Keep what GET and the event stream show; drop the overlay and the
	// signed ops, which only L1 submission needed.
	s.Session = &Session{ID: s.ID, Actor: s.Actor, prev: s.prev}
	c.releaseKeys(s)
	c.resize(s)
	c.publish(s, Event{Type: "final", Status: f.Status, Final: f})
	if f.Status == StatusCommitted && !s.committing.IsZero() {
		c.rd.Finality = append(c.rd.Finality, now.Sub(s.committing))
	}
	// The end need not be durable: replay re-learns it from L1.
	c.rd.Records = append(c.rd.Records, encodeFinal(s.ID, f))
}

func (c *core) publish(s *state, ev Event) {
	s.events = append(s.events, ev)
	c.rd.Events = append(c.rd.Events, sessionEvent{s, ev})
}

// session returns the session id as GET and the event stream show it.
func (c *core) session(id string) *state {
	if s := c.sessions[id]; s != nil && !s.pending {
		return s
	}
	return nil
}

// Submission to L1.

// take takes the next batch off the queue: at most BatchMax bundles and
// protocol.MaxBatchBytes in all. The bundles are not signed yet: the
// driver signs them outside the core, then reports the transaction's hash
// (sent). The batch is in flight from now, under key, so its sessions are
// always either queued or in flight (pendingWrites, lag and expire see
// them). Sessions that ended while queued (their commit expired) are
// dropped from the queue.
func (c *core) take(now time.Time) (batch []*state, bundles []protocol.Bundle, key string) {
	size := 1 + 2 // version tag and bundle count (at most protocol.MaxBundles: two bytes)
	for len(c.queue) > 0 && len(batch) < c.cfg.BatchMax {
		s := c.queue[0]
		if s.final != nil {
			c.queue = c.queue[1:]
			continue
		}
		if s.alone && len(batch) > 0 {
			break // it goes in a batch of its own
		}
		bu := protocol.Bundle{Session: s.ID, Actor: s.Actor, Node: c.cfg.Node, Ops: s.ops, Reads: s.Tx().Reads(),
			Attempt: s.attempts, Signature: make([]byte, ed25519.SignatureSize)}
		if n := bu.Size(); len(batch) > 0 && size+n > protocol.MaxBatchBytes {
			break // every bundle is at most protocol.MaxBundleBytes, so it fits a batch of its own
		} else {
			size += n
		}
		batch, bundles = append(batch, s), append(bundles, bu)
		c.queue = c.queue[1:]
		if s.alone {
			s.alone = false
			break
		}
	}
	if len(batch) == 0 {
		return nil, nil, ""
	}
	for _, s := range batch {
		s.submitted = now
	}
	c.batches++
	key = fmt.Sprintf("batch %d", c.batches) // never a transaction hash
	c.inflight[key] = batch
	return batch, bundles, key
}

// sent names a batch taken under key by its transaction's hash, as L1's
// verdicts will. ok is false if the batch is no longer in flight.
func (c *core) sent(key, hash string) (ok bool) {
	batch, ok := c.inflight[key]
	if ok {
		delete(c.inflight, key)
		c.inflight[hash] = batch
	}
	return ok
}

// submitFailed takes L1's refusal of a batch in flight (err; a
// RejectedError if CheckTx refused it for good). A transient failure
// requeues it: it may have reached a mempool all the same, so it goes
// again as new bytes, and L1 applies a session at most once. A refused
// batch is split, so one bad bundle cannot hold back others, and a
// refused single bundle rejects its session with L1's reason. follower
// reports a session L1 says it applied that the node's follower does not
// show yet. wait: the driver should wait a moment before it submits again
// (a transient failure, or a follower behind).
func (c *core) submitFailed(batch []*state, hash string, err error, st service.Store, now time.Time) (wait bool) {
	delete(c.inflight, hash)
	for _, s := range batch {
		s.submitted = time.Time{}
	}
	var rej RejectedError
	if !errors.As(err, &rej) {
		for _, s := range batch {
			c.retry(s)
		}
		c.queue = append(slices.Clone(batch), c.queue...)
		return true
	}
	if len(batch) > 1 {
		// Split: each goes again alone, first in the queue, so one bad
		// bundle cannot hold back the others.
		for _, s := range batch {
			s.alone = true
		}
		c.queue = append(slices.Clone(batch), c.queue...)
		c.rd.Kick = true
		return false
	}
	s := batch[0]
	code, log := rej.Rejected()
	if protocol.Code(code) != protocol.CodeAlreadyCommitted {
		c.finish(s, &Final{Status: StatusRejected, Code: protocol.Code(code).String(), Reason: log}, now)
		return false
	}
	// Resubmitted after L1 applied it (its verdict was missed).
	if f, known := alreadyCommitted(s.Session, st); known {
		c.finish(s, f, now)
		return false
	}
	c.retry(s)
	c.queue = append(c.queue, s)
	return true
}

// RejectedError is what Chain.Submit returns when L1 refuses a transaction
// for good (CheckTx refused it, or it can never be taken): resubmitting it
// unchanged cannot help. Any other error is transient.
type RejectedError interface {
	error
	Rejected() (code uint32, log string)
}

// block settles the sessions whose bundles a committed block judged.
func (c *core) block(blk protocol.Block, st service.Store, now time.Time) {
	for _, tx := range blk.Txs {
		batch, ours := c.inflight[tx.Hash]
		if !ours {
			continue
		}
		delete(c.inflight, tx.Hash)
		for i, s := range batch {
			if s.final != nil {
				continue
			}
			s.submitted = time.Time{}
			if i >= len(tx.Outcomes) || tx.Outcomes[i].Session != s.ID {
				// A verdict list that does not match what we sent: resubmit;
				// L1 applies a session at most once.
				c.requeue(s)
				continue
			}
			out, reason := tx.Outcomes[i], ""
			if i < len(tx.Reasons) {
				reason = tx.Reasons[i]
			}
			switch out.Code {
			case protocol.CodeOK:
				c.finish(s, &Final{Status: StatusCommitted, Height: blk.Height, TxHash: tx.Hash}, now)
			case protocol.CodeAlreadyCommitted:
				if f, known := alreadyCommitted(s.Session, st); known {
					c.finish(s, f, now)
				} else {
					c.requeue(s)
				}
			case protocol.CodeConflict:
				c.rebase(s, reason, now)
			case protocol.CodeTimeOutOfBounds:
				// A block made after an L1 outage carries a time from before
				// it (block time is the median of the votes for the block
				// before), too early for ops made during the outage; a later
				// block will not be. Ops too old stay too old.
				if s.lastTime > blk.Time {
					c.requeue(s)
					continue
				}
				c.finish(s, &Final{Status: StatusRejected, Code: out.Code.String(), Reason: reason}, now)
			default:
				c.finish(s, &Final{Status: StatusRejected, Code: out.Code.String(), Reason: reason}, now)
			}
		}
	}
	c.expire(blk.Time, st, now)
}

// requeue sends a session L1 did not judge again, as new bytes.
func (c *core) requeue(s *state) {
	c.retry(s)
	c.queue = append(c.queue, s)
	c.rd.Kick = true
}

// retry counts a submission of s that L1 did not judge, so that the next
// one is new bytes (protocol.Bundle.Attempt).
func (c *core) retry(s *state) {
	if s.attempts < protocol.MaxAttempt {
		s.attempts++
	}
}

// expire rejects the committing sessions whose last op expired before
// L1's block time: block time never goes back, so L1 can never apply
// them. Nothing that waits for L1 waits longer than its expiry.
func (c *core) expire(blockTime int64, st service.Store, now time.Time) {
	expire := func(s *state) {
		if exp := s.expires(); s.final == nil && exp < blockTime {
			// An earlier submission may have been applied, its verdict
			// missed: L1's record says.
			if f, known := alreadyCommitted(s.Session, st); known {
				c.finish(s, f, now)
				return
			}
			c.finish(s, &Final{Status: StatusRejected, Code: protocol.CodeExpired.String(),
				Reason: fmt.Sprintf("its last op expired at %d, and L1's block time is now %d", exp, blockTime)}, now)
		}
	}
	for _, s := range c.queue {
		expire(s)
	}
	for _, batch := range c.inflight {
		for _, s := range batch {
			expire(s)
		}
	}
}

// alreadyCommitted is the end of a session L1 found already committed:
// committed only if L1's record (in st) is of this very session (its
// actor's op chain, whose last op names every op before it, and the same
// results); otherwise rejected, saying how the record differs. known is
// false while the node's follower holds no record yet (L1 answered from a
// validator that is ahead of it): the session is not ended then.
func alreadyCommitted(s *Session, st service.Store) (f *Final, known bool) {
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

// rebase re-executes a conflicted session on the current committed state
// with the same signed ops and times (the one place the core runs
// handlers: a conflict is rare, and the session is committing, so no op
// of it executes elsewhere). Identical results: the session is queued
// again with fresh read versions. Otherwise it is rejected with what
// changed.
func (c *core) rebase(s *state, reason string, now time.Time) {
	s.rebases++
	if s.rebases > c.cfg.MaxRebase {
		c.finish(s, &Final{Status: StatusRejected, Code: "CONFLICT", Reason: reason + " (rebased too often)"}, now)
		return
	}
	c.releaseKeys(s)
	fresh := NewSession(s.ID, s.Actor, view{c, s})
	fresh.MaxBytes = c.cfg.MaxSessionBytes
	for _, op := range s.ops {
		resp, _, err := fresh.Step(c.cfg.Registry, fresh.Seq(), op)
		if err != nil {
			// The node cannot read its own state: keep the session as it
			// was; L1 will answer its stale reads again.
			c.cfg.Logger.Error("rebase: state read failed", "session", s.ID, "err", err)
			c.reserveAll(s, now)
			c.requeue(s)
			return
		}
		if resp.Hash() != op.Result {
			changed := fmt.Sprintf("op %d (%s %s) now gives %d %s", fresh.Seq(), op.Method, op.Path, resp.Status, truncate(resp.Body))
			c.finish(s, &Final{Status: StatusRejected, Code: "CONFLICT", Reason: reason + "; " + changed}, now)
			return
		}
	}
	s.Session = fresh
	c.reserveAll(s, now)
	c.resize(s)
	c.queue = append(c.queue, s)
	c.rd.Kick = true
	c.cfg.Logger.Info("rebased after conflict", "session", s.ID, "reason", reason)
}

func truncate(b []byte) string {
	if len(b) > 300 {
		return string(b[:300]) + "..."
	}
	return string(b)
}

// tick expires idle sessions, resubmits bundles L1 has not judged, and
// forgets old final sessions and idle actors.
func (c *core) tick(now time.Time) {
	for _, s := range c.sessions {
		if s.busy || s.pending || s.status != StatusOpen {
			continue
		}
		switch {
		case now.Sub(s.lastActive) > c.cfg.SessionTTL:
			c.finish(s, &Final{Status: StatusAborted, Code: "EXPIRED", Reason: "idle longer than the session TTL"}, now)
		case now.UnixMilli()-s.started() > c.cfg.MaxSessionAge.Milliseconds():
			c.finish(s, &Final{Status: StatusAborted, Code: "EXPIRED", Reason: "open longer than max_session_age"}, now)
		}
	}
	c.forget(now)
	for id, u := range c.actors {
		if u.open == 0 && u.reserved == 0 && u.bytes == 0 && now.Sub(u.seen) > time.Minute {
			delete(c.actors, id) // its rate bucket is full again by now
		}
	}
	for hash, batch := range c.inflight {
		if len(batch) > 0 && now.Sub(batch[0].submitted) > c.cfg.ResubmitAfter {
			delete(c.inflight, hash)
			for _, s := range batch {
				if s.final == nil {
					s.submitted = time.Time{}
					c.requeue(s)
				}
			}
		}
	}
}

// forget drops final sessions from memory, oldest first, once they ended
// more than Retain ago or their answers take more than RetainBytes. L1
// keeps the committed ones for good (Lookup with their actor).
func (c *core) forget(now time.Time) {
	for len(c.finals) > 0 {
		s := c.finals[0]
		if now.Sub(s.finished) <= c.cfg.Retain && c.retained <= c.cfg.RetainBytes {
			return
		}
		c.finals[0] = nil
		c.finals = c.finals[1:]
		c.retained -= s.kept
		if c.sessions[s.ID] == s {
			delete(c.sessions, s.ID)
		}
	}
}

// live returns the WAL records of the live sessions, in the order they
// opened (the order replay re-executes them in): what a compacted log
// holds.
func (c *core) live() [][]byte {
	var live []*state
	for _, s := range c.sessions {
		if s.final == nil && !s.pending {
			live = append(live, s)
		}
	}
	slices.SortFunc(live, func(x, y *state) int { return cmp.Compare(x.opened, y.opened) })
	var recs [][]byte
	for _, s := range live {
		recs = append(recs, s.wal...)
	}
	return recs
}

// pendingWrites are the writes of this node's sessions that wait for L1
// (queued or in flight), for the L2 view of queries.
func (c *core) pendingWrites() map[string][]byte {
	pending := map[string][]byte{}
	add := func(s *state) {
		if s.status == StatusCommitting {
			for _, kv := range s.Tx().Writes() {
				pending[kv.Key] = kv.Value
			}
		}
	}
	for _, batch := range c.inflight {
		for _, s := range batch {
			add(s)
		}
	}
	for _, s := range c.queue {
		add(s)
	}
	return pending
}
