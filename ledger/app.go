package ledger

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	dbm "github.com/cosmos/cosmos-db"
	"github.com/cosmos/iavl"
	iavldb "github.com/cosmos/iavl/db"

	abci "github.com/cometbft/cometbft/abci/types"
	cmtproto "github.com/cometbft/cometbft/proto/tendermint/types"

	"github.com/duet-bft/duet/protocol"
	"github.com/duet-bft/duet/service"
)

// Config configures an App.
type Config struct {
	// Dir holds the application state (an IAVL tree in goleveldb). Required.
	Dir string
	// MaxFutureSkew is how far past the block time an op timestamp may be.
	// A block's time is the median of the votes that committed the block
	// before it, so it lags the wall clock by up to the chain's idle
	// heartbeat (chain.EmptyBlockInterval, 5s) plus clock skew. Default 30s.
	MaxFutureSkew time.Duration
	// MaxOpAge is how far before the block time an op timestamp may be: the
	// longest a session may stay open on L2 plus the time to commit it.
	// Default 24h.
	MaxOpAge time.Duration
	// CacheSize is the IAVL node cache, in nodes. Default 100000.
	CacheSize int
	// SigCache is how many verified signatures to remember (CheckTx, then
	// FinalizeBlock, verify the same ones). Default 3*protocol.MaxBatchSigs
	// (71,640): three times what the largest batch can hold, so the
	// signatures CheckTx checked are still remembered when the block comes.
	SigCache int
	// Logger receives operational logs; nil discards.
	Logger *slog.Logger
}

// DefaultConfig returns the defaults documented on Config, for dir.
func DefaultConfig(dir string) Config {
	c := Config{Dir: dir}
	c.SetDefaults()
	return c
}

// SetDefaults fills every zero field that has a default with it. New calls
// it before Validate.
func (c *Config) SetDefaults() {
	if c.MaxFutureSkew == 0 {
		c.MaxFutureSkew = 30 * time.Second
	}
	if c.MaxOpAge == 0 {
		c.MaxOpAge = protocol.MaxOpAge
	}
	if c.CacheSize == 0 {
		c.CacheSize = 100000
	}
	if c.SigCache == 0 {
		c.SigCache = 3 * protocol.MaxBatchSigs
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate reports a config that cannot work. It changes nothing.
func (c *Config) Validate() error {
	switch {
	case c.Dir == "":
		return errors.New("ledger: Config.Dir is required")
	case c.MaxFutureSkew <= 0 || c.MaxOpAge <= 0:
		return errors.New("ledger: MaxFutureSkew and MaxOpAge must be positive")
	case c.CacheSize < 0 || c.SigCache < 0:
		return errors.New("ledger: CacheSize and SigCache must not be negative")
	}
	return nil
}

// Keys of the ledger's own records. Handlers can read but never write them.
const evidencePrefix = service.EvidencePrefix

// EvidenceKey is the state key of the Evidence against node for a session.
func EvidenceKey(node, actor, session string) string {
	return service.EvidenceKey(node, actor, session)
}

// SessionRecord is what the ledger keeps of each applied session.
type SessionRecord = service.SessionRecord

// SessionKey is the state key of a committed session's record.
func SessionKey(actor, id string) string { return service.SessionKey(actor, id) }

// Evidence is recorded when a node's claimed results differ from what every
// honest validator computes.
type Evidence = service.Evidence

// App is the L1 application. All ABCI calls arrive serialised (CometBFT's
// local client holds one mutex); Committed is safe to call concurrently.
type App struct {
	abci.BaseApplication
	cfg  Config
	app  *service.App
	reg  *service.Registry
	sigs *protocol.SigCache
	log  *slog.Logger
	db   dbm.DB
	tree *iavl.MutableTree

	// block in progress (FinalizeBlock .. Commit)
	height  int64
	timeMs  int64
	results []TxResult

	lastTime int64 // time of the last committed block, Unix ms (CheckTx reads it)

	// saving is held by Commit while it saves a version, and by Prove
	// (shared) while it reads past versions from HTTP goroutines.
	saving sync.RWMutex

	mu struct {
		sync.RWMutex
		committed *iavl.ImmutableTree
		listeners []func(Block)
		signers   map[string]bool // validator address (hex) -> signed the last commit
	}
}

// Block and TxResult are the ledger's report of a committed block.
type (
	Block    = protocol.Block
	TxResult = protocol.TxResult
)

// New opens (or creates) the state in cfg.Dir for app and loads the latest
// version. State that another app (or another version of it) wrote is an
// error: this node would fork from its chain.
func New(cfg Config, app *service.App) (*App, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	db, err := dbm.NewGoLevelDB("state", cfg.Dir, nil)
	if err != nil {
		return nil, fmt.Errorf("ledger: open state: %w", err)
	}
	// Without IAVL's fast-node index (skipFastStorageUpgrade): its
	// version string, rewritten by every SaveVersion, was read unlocked by
	// every Get of a committed snapshot on the HTTP goroutines (a data race
	// the race detector showed). Reads walk the tree through the node cache.
	tree := iavl.NewMutableTree(iavldb.NewWrapper(db), cfg.CacheSize, true, iavl.NewNopLogger(), iavl.SyncOption(true))
	if _, err := tree.Load(); err != nil {
		db.Close()
		return nil, fmt.Errorf("ledger: load state: %w", err)
	}
	if tree.Version() > 0 {
		raw, err := tree.Get([]byte(appKey))
		var id appRecord
		if err == nil && raw == nil {
			err = errors.New("it names no application")
		}
		if err == nil {
			raw, _, err = decodeValue(raw)
		}
		if err == nil {
			err = json.Unmarshal(raw, &id)
		}
		if err == nil {
			err = app.Check(id.Name, id.Version, nil)
		}
		if err != nil {
			db.Close()
			return nil, fmt.Errorf("ledger: the state in %s: %w", cfg.Dir, err)
		}
	}
	sigs := protocol.NewSigCache(cfg.SigCache)
	a := &App{cfg: cfg, app: app, reg: app.Registry.WithVerifier(sigs.Verify), sigs: sigs, log: log, db: db, tree: tree}
	if err := a.refreshCommitted(Block{}); err != nil {
		db.Close()
		return nil, err
	}
	return a, nil
}

// appKey holds which app (name and version) the state belongs to, written
// at genesis.
const appKey = service.ReservedPrefix + "app"

type appRecord struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// Registry returns the application as the ledger runs it (its signature
// checks share the ledger's cache). An L2 node executes ops with it, so its
// follower does not verify them a second time.
func (a *App) Registry() *service.Registry { return a.reg }

// Close releases the state database.
func (a *App) Close() error { return a.db.Close() }

func (a *App) refreshCommitted(blk Block) error {
	imm, err := a.tree.GetImmutable(a.tree.Version())
	if err != nil {
		if a.tree.Version() != 0 {
			return fmt.Errorf("ledger: committed view at %d: %w", a.tree.Version(), err)
		}
		imm = iavl.NewImmutableTree(iavldb.NewMemDB(), 0, true, iavl.NewNopLogger())
	}
	a.mu.Lock()
	a.mu.committed = imm
	listeners := a.mu.listeners
	a.mu.Unlock()
	if blk.Height > 0 {
		for _, f := range listeners {
			f(blk)
		}
	}
	return nil
}

// Committed returns a read-only view of the last committed state and its
// height. It is safe for concurrent use and stays valid after later commits.
func (a *App) Committed() (service.Store, int64) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return treeStore{a.mu.committed}, a.mu.committed.Version()
}

// Signed reports whether the validator with address (upper-case hex)
// signed the commit of the last block, as the block after it recorded. It
// is for display only (no rule depends on it).
func (a *App) Signed(address string) bool {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.mu.signers[address]
}

// OnBlock registers f to be called, synchronously inside Commit and after
// the new state is visible through Committed, with every committed block.
// f must not block: an L2 node hands the block to its own goroutine.
func (a *App) OnBlock(f func(Block)) {
	a.mu.Lock()
	a.mu.listeners = append(a.mu.listeners, f)
	a.mu.Unlock()
}

// Info reports the app (Data: its name, Version: its version) and the last
// committed height and app hash for the handshake.
func (a *App) Info(context.Context, *abci.RequestInfo) (*abci.ResponseInfo, error) {
	return &abci.ResponseInfo{
		Data:             a.app.Name,
		Version:          a.app.Version,
		AppVersion:       1,
		LastBlockHeight:  a.tree.Version(),
		LastBlockAppHash: a.tree.Hash(),
	}, nil
}

// InitChain loads the genesis app state: actors and the application's own.
func (a *App) InitChain(_ context.Context, req *abci.RequestInitChain) (*abci.ResponseInitChain, error) {
	if req.InitialHeight > 1 {
		return nil, fmt.Errorf("ledger: initial height %d not supported (must be 1)", req.InitialHeight)
	}
	tx := service.NewTx(treeStore{a.tree})
	if err := a.app.InitGenesis(tx, req.AppStateBytes); err != nil {
		return nil, fmt.Errorf("ledger: %w", err)
	}
	if err := a.applyWrites(tx.Writes(), 0); err != nil {
		return nil, err
	}
	if err := a.put(appKey, service.MustJSON(appRecord{a.app.Name, a.app.Version}), 0); err != nil {
		return nil, err
	}
	return &abci.ResponseInitChain{AppHash: a.tree.WorkingHash()}, nil
}

// PrepareProposal keeps the mempool's order and respects MaxTxBytes.
func (a *App) PrepareProposal(_ context.Context, req *abci.RequestPrepareProposal) (*abci.ResponsePrepareProposal, error) {
	var out [][]byte
	var size int64
	for _, tx := range req.Txs {
		size += int64(len(tx))
		if size > req.MaxTxBytes {
			break
		}
		out = append(out, tx)
	}
	return &abci.ResponsePrepareProposal{Txs: out}, nil
}

// ProcessProposal accepts every proposal: a bad transaction is judged in
// FinalizeBlock (as a result code), never by refusing the block.
func (a *App) ProcessProposal(context.Context, *abci.RequestProcessProposal) (*abci.ResponseProcessProposal, error) {
	return &abci.ResponseProcessProposal{Status: abci.ResponseProcessProposal_ACCEPT}, nil
}

// CheckTx admits a batch to the mempool only if it decodes, every bundle's
// L2 node is registered and signed it, at least one bundle is not already
// committed, no bundle's last op has expired, and every actor signature
// verifies against the committed registry. It checks the cheap things
// first: a node's signature covers its whole bundle, and the first one
// this node has not verified before is checked alone, so a transaction
// that no registered node signed costs one signature check, not one per
// op. The other signatures are checked in one batch (about twice as fast
// as one by one) and remembered, so FinalizeBlock does not check them
// again. A refused transaction stays
// refused: duet's nodes keep refused hashes in the mempool cache
// (mempool.keep-invalid-txs-in-cache).
func (a *App) CheckTx(_ context.Context, req *abci.RequestCheckTx) (*abci.ResponseCheckTx, error) {
	if req.Type == abci.CheckTxType_Recheck {
		return &abci.ResponseCheckTx{Code: abci.CodeTypeOK}, nil // signatures do not change validity
	}
	batch, err := protocol.DecodeBatch(req.Tx)
	if err != nil {
		return &abci.ResponseCheckTx{Code: uint32(protocol.CodeMalformed), Log: err.Error()}, nil
	}
	refuse := func(code protocol.Code, i int, format string, args ...any) (*abci.ResponseCheckTx, error) {
		return &abci.ResponseCheckTx{Code: uint32(code),
			Log: fmt.Sprintf("bundle %d (%s): ", i, batch.Bundles[i].Session) + fmt.Sprintf(format, args...)}, nil
	}
	st, _ := a.Committed()
	tx := service.NewTx(st)
	fresh := false
	var items []protocol.SigItem
	var refs [][2]int // bundle, op (-1: the node's signature)
	first := -1       // the first bundle whose node signature is not known
	for i := range batch.Bundles {
		b := &batch.Bundles[i]
		node, code, msg := loadNode(tx, b)
		if code != protocol.CodeOK {
			return refuse(code, i, "%s", msg)
		}
		it := protocol.SigItem{Key: node.PublicKey, Msg: b.SigningBytes(), Sig: b.Signature}
		if first < 0 && !a.sigs.Known(it.Key, it.Msg, it.Sig) {
			first = i
			if !a.sigs.Verify(it.Key, it.Msg, it.Sig) {
				return refuse(protocol.CodeUnauthenticated, i, "bad node signature")
			}
		} else {
			items = append(items, it)
			refs = append(refs, [2]int{i, -1})
		}
		if exp := b.Ops[len(b.Ops)-1].Expires; exp < a.lastTime {
			return refuse(protocol.CodeExpired, i, "the last op expired at %d, before the last block (%d)", exp, a.lastTime)
		}
		if _, ok := service.LookupSession(st, b.Actor, b.Session); !ok {
			fresh = true
		}
	}
	if !fresh {
		return refuse(protocol.CodeAlreadyCommitted, 0, "every bundle of the batch is already committed")
	}
	for i := range batch.Bundles {
		b := &batch.Bundles[i]
		actor, ok := service.LoadActor(tx, b.Actor)
		if !ok {
			return refuse(protocol.CodeUnauthenticated, i, "unknown actor %q", b.Actor)
		}
		for c := range b.Chain() {
			items = append(items, protocol.SigItem{Key: actor.PublicKey, Msg: c.Signed, Sig: c.Op.Signature})
			refs = append(refs, [2]int{i, c.Seq})
		}
	}
	valid := a.sigs.VerifyBatch(items)
	for k, ok := range valid { // a node's bad signature first
		if !ok && refs[k][1] < 0 {
			return refuse(protocol.CodeUnauthenticated, refs[k][0], "bad node signature")
		}
	}
	for k, ok := range valid {
		if !ok {
			return refuse(protocol.CodeUnauthenticated, refs[k][0], "op %d: bad signature", refs[k][1])
		}
	}
	return &abci.ResponseCheckTx{Code: abci.CodeTypeOK}, nil
}

// loadNode finds the bundle's L2 node: a registered actor of role l2.
func loadNode(tx *service.Tx, b *protocol.Bundle) (service.Actor, protocol.Code, string) {
	node, ok := service.LoadActor(tx, b.Node)
	if !ok {
		return node, protocol.CodeUnauthenticated, "unknown node " + b.Node
	}
	if node.Role != service.RoleL2 {
		return node, protocol.CodePermissionDenied, fmt.Sprintf("actor %s has role %q, not %q", b.Node, node.Role, service.RoleL2)
	}
	return node, protocol.CodeOK, ""
}

// FinalizeBlock judges every bundle of every transaction and applies the
// accepted ones, in block order.
func (a *App) FinalizeBlock(_ context.Context, req *abci.RequestFinalizeBlock) (*abci.ResponseFinalizeBlock, error) {
	a.height, a.timeMs, a.results = req.Height, req.Time.UnixMilli(), nil
	signers := make(map[string]bool, len(req.DecidedLastCommit.Votes))
	for _, v := range req.DecidedLastCommit.Votes {
		signers[strings.ToUpper(hex.EncodeToString(v.Validator.Address))] = v.BlockIdFlag == cmtproto.BlockIDFlagCommit
	}
	a.mu.Lock()
	a.mu.signers = signers
	a.mu.Unlock()
	blk := block{height: req.Height, timeMs: req.Time.UnixMilli(),
		minTime: req.Time.Add(-a.cfg.MaxOpAge).UnixMilli(), maxTime: req.Time.Add(a.cfg.MaxFutureSkew).UnixMilli()}
	results := make([]*abci.ExecTxResult, len(req.Txs))
	for i, raw := range req.Txs {
		r, err := a.deliver(&blk, raw)
		if err != nil {
			return nil, err // storage failure: halt rather than diverge
		}
		results[i] = r
	}
	return &abci.ResponseFinalizeBlock{TxResults: results, AppHash: a.tree.WorkingHash()}, nil
}

type block struct {
	height           int64
	timeMs           int64
	minTime, maxTime int64
}

func (a *App) deliver(blk *block, raw []byte) (*abci.ExecTxResult, error) {
	batch, err := protocol.DecodeBatch(raw)
	if err != nil {
		return &abci.ExecTxResult{Code: uint32(protocol.CodeMalformed), Log: err.Error()}, nil
	}
	sum := sha256.Sum256(raw)
	txHash := strings.ToUpper(hex.EncodeToString(sum[:]))
	outs := make([]protocol.Outcome, len(batch.Bundles))
	reasons := make([]string, len(batch.Bundles))
	events := make([]abci.Event, len(batch.Bundles))
	for i := range batch.Bundles {
		b := &batch.Bundles[i]
		v, err := a.judge(blk, txHash, b)
		if err != nil {
			return nil, err
		}
		outs[i] = protocol.Outcome{Session: b.Session, Code: v.code, Results: v.results}
		reasons[i] = v.reason
		events[i] = abci.Event{Type: "bundle", Attributes: []abci.EventAttribute{
			{Key: "session", Value: b.Session, Index: true},
			{Key: "node", Value: b.Node, Index: true},
			{Key: "code", Value: v.code.String(), Index: true},
			{Key: "results", Value: v.results.String()},
			{Key: "reason", Value: v.reason},
		}}
	}
	a.results = append(a.results, TxResult{Hash: txHash, Outcomes: outs, Reasons: reasons})
	return &abci.ExecTxResult{Code: abci.CodeTypeOK, Data: protocol.EncodeOutcomes(outs), Events: events}, nil
}

type verdict struct {
	code    protocol.Code
	results protocol.Hash
	reason  string
}

func reject(code protocol.Code, format string, args ...any) verdict {
	return verdict{code: code, reason: fmt.Sprintf(format, args...)}
}

// judge decides one bundle against the working state and applies it if it
// is accepted. A returned error is a storage failure, never a verdict.
func (a *App) judge(blk *block, txHash string, b *protocol.Bundle) (verdict, error) {
	st := treeStore{a.tree}
	if _, ver, err := st.Get(SessionKey(b.Actor, b.Session)); err != nil {
		return verdict{}, err
	} else if ver != 0 {
		return reject(protocol.CodeAlreadyCommitted, "session %s of %s was applied at height %d", b.Session, b.Actor, ver), nil
	}
	tx := service.NewTx(st)
	node, code, msg := loadNode(tx, b)
	if code != protocol.CodeOK {
		return reject(code, "%s", msg), nil
	}
	if !a.sigs.Verify(node.PublicKey, b.SigningBytes(), b.Signature) {
		return reject(protocol.CodeUnauthenticated, "bad node signature"), nil
	}
	if msg := sessionShape(b); msg != "" {
		return reject(protocol.CodeInvalidSession, "%s", msg), nil
	}
	prevTime := int64(0)
	for i := range b.Ops {
		t := b.Ops[i].Time
		if t < blk.minTime || t > blk.maxTime || t < prevTime {
			return reject(protocol.CodeTimeOutOfBounds, "op %d time %d outside [%d, %d] or before op %d", i, t, max(blk.minTime, prevTime), blk.maxTime, i-1), nil
		}
		prevTime = t
	}
	if exp := b.Ops[len(b.Ops)-1].Expires; blk.timeMs > exp {
		return reject(protocol.CodeExpired, "the last op expired at %d, before the block time %d", exp, blk.timeMs), nil
	}
	for _, r := range b.Reads {
		_, ver, err := st.Get(r.Key)
		if err != nil {
			return verdict{}, err
		}
		if ver != r.Version {
			return reject(protocol.CodeConflict, "read %s at version %d, now %d", r.Key, r.Version, ver), nil
		}
	}

	// Re-execute. A fresh Tx: the node's lookup above must not enter the
	// session's read set. A storage failure halts the node (an error), it
	// never turns into a verdict.
	tx = service.NewTx(st)
	results := make([]protocol.Hash, len(b.Ops))
	mismatch, failed := -1, -1
	var failedResp service.Response
	lastOp := protocol.ZeroHash
	for c := range b.Chain() {
		i, op := c.Seq, c.Op
		sop := &service.Op{Session: b.Session, Seq: uint64(i), Actor: b.Actor, Method: op.Method, Path: op.Path,
			Body: op.Body, Prev: c.Prev, Signature: op.Signature, Time: op.Time, Expires: op.Expires}
		lastOp = c.Hash
		resp, err := a.reg.Apply(tx, sop)
		if err != nil {
			return verdict{}, err
		}
		if resp.Status == http.StatusUnauthorized {
			return reject(protocol.CodeUnauthenticated, "op %d: %s", i, resp.Body), nil
		}
		results[i] = resp.Hash()
		if mismatch < 0 && results[i] != op.Result {
			mismatch = i
		}
		if failed < 0 && !resp.OK() {
			failed, failedResp = i, resp
		}
	}
	digest := protocol.ResultsDigest(results)
	if mismatch >= 0 {
		ev := Evidence{Node: b.Node, Actor: b.Actor, Session: b.Session, Height: blk.height, TxHash: txHash, Seq: mismatch,
			Claimed: b.Ops[mismatch].Result.String(), Actual: results[mismatch].String()}
		// One record per (node, actor, session): resubmitting the same
		// signed lie cannot grow the state.
		key := EvidenceKey(b.Node, b.Actor, b.Session)
		if _, ver, err := st.Get(key); err != nil {
			return verdict{}, err
		} else if ver == 0 {
			if err := a.put(key, service.MustJSON(ev), blk.height); err != nil {
				return verdict{}, err
			}
		}
		return verdict{code: protocol.CodeResultMismatch, results: digest,
			reason: fmt.Sprintf("op %d: claimed result %s, re-execution gives %s", mismatch, ev.Claimed, ev.Actual)}, nil
	}
	if failed >= 0 {
		// An L2 node keeps only ops that succeeded. A failed op in a bundle
		// is one its actor was told had failed: it must never take effect.
		return verdict{code: protocol.CodeInvalidSession, results: digest,
			reason: fmt.Sprintf("op %d failed with %d %s: a bundle holds only ops that succeeded", failed, failedResp.Status, truncate(failedResp.Body))}, nil
	}
	writes := tx.Writes()
	if err := a.applyWrites(writes, blk.height); err != nil {
		return verdict{}, err
	}
	rec := SessionRecord{Session: b.Session, Actor: b.Actor, Node: b.Node, Height: blk.height, TxHash: txHash,
		Ops: len(b.Ops), LastOp: lastOp.String(), Results: digest.String()}
	for _, kv := range writes {
		rec.Writes = append(rec.Writes, kv.Key)
	}
	if err := a.put(SessionKey(b.Actor, b.Session), service.MustJSON(rec), blk.height); err != nil {
		return verdict{}, err
	}
	return verdict{code: protocol.CodeOK, results: digest}, nil
}

func truncate(b []byte) string {
	if len(b) > 200 {
		return string(b[:200]) + "..."
	}
	return string(b)
}

// sessionShape checks that the ops form a session, by service.Classify:
// start (seq 0), steps, commit (last); or a single direct-mode op. It
// returns "" if so.
func sessionShape(b *protocol.Bundle) string {
	kind := func(i int) service.OpKind {
		return service.Classify(b.Session, uint64(i), b.Ops[i].Method, b.Ops[i].Path)
	}
	last := len(b.Ops) - 1
	if last == 0 {
		if kind(0) != service.KindDirect {
			return "a one-op session must be a direct-mode operation, not session control"
		}
		return ""
	}
	if kind(0) != service.KindStart {
		return "op 0 is not a session start (POST " + service.PathSessions + ")"
	}
	if kind(last) != service.KindCommit {
		return "last op is not the commit of session " + b.Session
	}
	for i := 1; i < last; i++ {
		if kind(i) != service.KindStep {
			return fmt.Sprintf("op %d: session control inside a session", i)
		}
	}
	return ""
}

func (a *App) put(key string, value []byte, height int64) error {
	if _, err := a.tree.Set([]byte(key), encodeValue(uint64(height), value)); err != nil {
		return fmt.Errorf("ledger: set %q: %w", key, err)
	}
	return nil
}

func (a *App) applyWrites(writes []service.KV, height int64) error {
	for _, kv := range writes {
		if err := a.put(kv.Key, kv.Value, height); err != nil {
			return err
		}
	}
	return nil
}

// Commit persists the block's state; height, state and app hash are saved
// in one atomic write.
func (a *App) Commit(context.Context, *abci.RequestCommit) (*abci.ResponseCommit, error) {
	a.saving.Lock()
	_, version, err := a.tree.SaveVersion()
	a.saving.Unlock()
	if err != nil {
		return nil, fmt.Errorf("ledger: commit: %w", err)
	}
	if a.height != 0 && version != a.height {
		panic(fmt.Sprintf("ledger: committed version %d for height %d", version, a.height))
	}
	blk := Block{Height: version, Time: a.timeMs, Txs: a.results}
	a.results = nil
	a.lastTime = a.timeMs
	if err := a.refreshCommitted(blk); err != nil {
		return nil, err
	}
	return &abci.ResponseCommit{}, nil
}

// Query answers, on the last committed state:
//
//	/store        Data = key: raw value, version in Info; Prove adds an ics23 proof
//	/session/<actor>/<id> the session's SessionRecord
//	/evidence     every Evidence record (/evidence/<node> for one node)
//	/app<path>    a GET route of the application, e.g. /app/v1/packages/PKG-1
func (a *App) Query(_ context.Context, req *abci.RequestQuery) (*abci.ResponseQuery, error) {
	a.mu.RLock()
	imm := a.mu.committed
	a.mu.RUnlock()
	st := treeStore{imm}
	resp := &abci.ResponseQuery{Height: imm.Version()}
	fail := func(code uint32, msg string) (*abci.ResponseQuery, error) {
		resp.Code, resp.Log = code, msg
		return resp, nil
	}
	switch {
	case req.Path == "/store":
		v, ver, err := st.Get(string(req.Data))
		if err != nil {
			return fail(1, err.Error())
		}
		resp.Key, resp.Value, resp.Info = req.Data, v, strconv.FormatUint(ver, 10)
		if req.Prove {
			ops, err := proveKey(imm, req.Data, v != nil)
			if err != nil {
				return fail(1, err.Error())
			}
			resp.ProofOps = ops
		}
		if v == nil {
			return fail(404, "not found")
		}
	case strings.HasPrefix(req.Path, "/session/"):
		actor, id, _ := strings.Cut(strings.TrimPrefix(req.Path, "/session/"), "/")
		v, _, err := st.Get(SessionKey(actor, id))
		if err != nil {
			return fail(1, err.Error())
		}
		if v == nil {
			return fail(404, "session not committed")
		}
		resp.Value = v
	case req.Path == "/evidence" || strings.HasPrefix(req.Path, "/evidence/"):
		prefix := evidencePrefix
		if node := strings.TrimPrefix(strings.TrimPrefix(req.Path, "/evidence"), "/"); node != "" {
			prefix += node + "/" // not a mere prefix: /evidence/L2-1 must not list L2-10
		}
		list := []json.RawMessage{}
		var ierr error
		imm.IterateRange([]byte(prefix), prefixEnd([]byte(prefix)), true, func(_, raw []byte) bool {
			v, _, err := decodeValue(raw)
			if err != nil {
				ierr = err
				return true
			}
			list = append(list, v)
			return false
		})
		if ierr != nil {
			return fail(1, ierr.Error())
		}
		resp.Value = service.MustJSON(list)
	case strings.HasPrefix(req.Path, "/app/"):
		r, err := a.reg.Query(st, strings.TrimPrefix(req.Path, "/app"))
		if err != nil {
			return fail(1, err.Error())
		}
		resp.Value = r.Body
		if !r.OK() {
			resp.Code = uint32(r.Status)
		}
	default:
		return fail(400, "unknown query path "+req.Path)
	}
	return resp, nil
}

func prefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

// LookupSession reads a committed session's record from st.
func LookupSession(st service.Store, actor, id string) (SessionRecord, bool) {
	return service.LookupSession(st, actor, id)
}
