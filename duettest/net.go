package duettest

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	abci "github.com/cometbft/cometbft/abci/types"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/duet-bft/duet/buffer"
	"github.com/duet-bft/duet/client"
	"github.com/duet-bft/duet/gateway"
	"github.com/duet-bft/duet/ledger"
	"github.com/duet-bft/duet/protocol"
	"github.com/duet-bft/duet/service"
	"github.com/duet-bft/duet/service/servicetest"
)

// Config describes a Net.
type Config struct {
	App *service.App // required
	// Actors are the genesis actors besides the L2 node: id to role. Their
	// keys are servicetest.Key(id).
	Actors map[string]string
	// AppGenesis is the app's genesis state; nil: App.DemoGenesis of the
	// actors, if the app has one.
	AppGenesis json.RawMessage
	// Manual makes blocks only when the test calls Net.Block; otherwise a
	// block is made as soon as the mempool holds a transaction. Net.SetManual
	// switches later.
	Manual bool
	// Buffer adjusts the L2 node's buffer config (limits, batching).
	Buffer func(*buffer.Config)
	// Gateway adjusts the L2 node's gateway config (timeouts, logger,
	// metrics).
	Gateway func(*gateway.Config)
}

// NodeID is the L2 node's actor id in every Net.
const NodeID = "l2-0"

// Net is an application running on both layers in one process: one L2
// node (the real buffer, with its write-ahead log, behind the real
// gateway on an httptest server) and one L1 validator (the real ledger,
// with its IAVL store), joined as a CometBFT node joins them: the buffer
// reads the ledger's committed state, its batches pass CheckTx into a
// mempool, and blocks of the mempool are finalized and committed, each
// reported back to the buffer. No consensus, no network, no processes.
type Net struct {
	T      testing.TB
	App    *service.App
	Ledger *ledger.App
	Buffer *buffer.Buffer
	Server *httptest.Server // the L2 node's HTTP API
	Node   servicetest.Actor

	actors  map[string]string
	handler http.Handler // the gateway Server serves
	kick    chan struct{}
	stop    chan struct{}
	done    chan struct{}

	mu struct {
		sync.Mutex
		mempool [][]byte
		manual  bool // blocks only on Block
		ready   bool // what Chain.Ready reports
	}

	blockMu   sync.Mutex // one block at a time
	height    int64
	blockTime time.Time
}

// New starts a Net; t's cleanup stops it.
func New(t testing.TB, cfg Config) *Net {
	t.Helper()
	if cfg.App == nil {
		t.Fatal("duettest: Config.App is required")
	}
	n := &Net{T: t, App: cfg.App, Node: servicetest.Actor{ID: NodeID, Role: service.RoleL2, Key: servicetest.Key(NodeID)},
		actors: maps.Clone(cfg.Actors), kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	n.mu.manual, n.mu.ready = cfg.Manual, true
	if n.actors == nil {
		n.actors = map[string]string{}
	}
	var records []service.Actor
	for _, id := range slices.Sorted(maps.Keys(n.actors)) {
		records = append(records, service.Actor{ID: id, Role: n.actors[id], Org: "org-" + id, PublicKey: servicetest.Key(id).Public().(ed25519.PublicKey)})
	}
	appState := cfg.AppGenesis
	if appState == nil && cfg.App.DemoGenesis != nil {
		appState = cfg.App.DemoGenesis(records)
	}
	records = append(records, service.Actor{ID: NodeID, Role: service.RoleL2, Org: "l2-operator", PublicKey: n.Node.Public()})
	dir := t.TempDir()
	lg, err := ledger.New(ledger.DefaultConfig(filepath.Join(dir, "app")), cfg.App)
	if err != nil {
		t.Fatalf("duettest: %v", err)
	}
	n.Ledger = lg
	n.blockTime = time.Now().UTC()
	if _, err := lg.InitChain(context.Background(), &abci.RequestInitChain{Time: n.blockTime, ChainId: "duettest",
		AppStateBytes: cfg.App.Genesis(records, appState), InitialHeight: 1}); err != nil {
		lg.Close()
		t.Fatalf("duettest: InitChain: %v", err)
	}
	n.block(nil) // the genesis becomes committed state at height 1

	// Wired as an L2 node wires them: the gateway's metrics observe the buffer.
	preg := prometheus.NewRegistry()
	metrics, err := gateway.NewMetrics(preg)
	if err != nil {
		lg.Close()
		t.Fatalf("duettest: %v", err)
	}
	bc := buffer.Config{Node: NodeID, Key: n.Node.Key, Registry: lg.Registry(), WALPath: filepath.Join(dir, "wal.log"),
		BatchInterval: time.Millisecond, Observer: metrics}
	if cfg.Buffer != nil {
		cfg.Buffer(&bc)
	}
	buf, err := buffer.Open(bc, (*l1)(n))
	if err != nil {
		lg.Close()
		t.Fatalf("duettest: %v", err)
	}
	n.Buffer = buf
	lg.OnBlock(buf.OnBlock)
	gc := gateway.Config{Buffer: buf, App: cfg.App, Registry: lg.Registry(), Chain: (*l1)(n),
		Node: NodeID, NodeKey: n.Node.Public(), Metrics: metrics, Gatherer: preg,
		L1Query: func(ctx context.Context, path string) (uint32, []byte, error) {
			r, err := lg.Query(ctx, &abci.RequestQuery{Path: path})
			if err != nil {
				return 0, nil, err
			}
			return r.Code, r.Value, nil
		},
		Network: func() gateway.Network { return gateway.Network{ChainID: "duettest"} },
	}
	if cfg.Gateway != nil {
		cfg.Gateway(&gc)
	}
	h, err := gateway.New(gc)
	if err != nil {
		buf.Close()
		lg.Close()
		t.Fatalf("duettest: %v", err)
	}
	n.handler = h
	n.Server = httptest.NewServer(h)
	go n.maker()
	t.Cleanup(n.close)
	return n
}

func (n *Net) close() {
	n.Server.Close()
	close(n.stop)
	<-n.done
	n.Buffer.Close()
	n.Ledger.Close()
}

// l1 is the Net as the buffer and the gateway see L1.
type l1 Net

func (c *l1) Committed() (service.Store, int64) { return c.Ledger.Committed() }

func (c *l1) Ready() bool {
	n := (*Net)(c)
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.mu.ready
}

// Submit runs CheckTx and puts what passes into the mempool, as a
// CometBFT node's mempool does.
func (c *l1) Submit(ctx context.Context, tx []byte, retry bool) error {
	res, err := c.Ledger.CheckTx(ctx, &abci.RequestCheckTx{Tx: tx, Type: abci.CheckTxType_New})
	if err != nil {
		return err
	}
	if res.Code != abci.CodeTypeOK {
		return &refused{res.Code, res.Log}
	}
	n := (*Net)(c)
	n.mu.Lock()
	defer n.mu.Unlock()
	if slices.ContainsFunc(n.mu.mempool, func(t []byte) bool { return string(t) == string(tx) }) {
		return nil
	}
	n.mu.mempool = append(n.mu.mempool, tx)
	select {
	case n.kick <- struct{}{}:
	default:
	}
	return nil
}

// refused is CheckTx's refusal, as chain.RejectedError reports it.
type refused struct {
	code uint32
	log  string
}

func (e *refused) Error() string              { return fmt.Sprintf("checktx: code %d: %s", e.code, e.log) }
func (e *refused) Rejected() (uint32, string) { return e.code, e.log }

// maker makes a block whenever the mempool holds transactions (unless the
// Net is manual).
func (n *Net) maker() {
	defer close(n.done)
	for {
		select {
		case <-n.stop:
			return
		case <-n.kick:
			n.mu.Lock()
			auto := !n.mu.manual && len(n.mu.mempool) > 0
			n.mu.Unlock()
			if auto {
				n.Block()
			}
		}
	}
}

// SetManual switches the Net to manual blocks (made only by Block) or back
// to automatic ones; at the switch to automatic blocks, what the mempool
// holds is made a block before SetManual returns.
func (n *Net) SetManual(manual bool) {
	n.mu.Lock()
	n.mu.manual = manual
	waiting := len(n.mu.mempool) > 0
	n.mu.Unlock()
	if !manual && waiting {
		n.Block()
	}
}

// SetReady sets what L1 reports to the L2 node's gateway as Chain.Ready
// (true at first): false is a node still catching up, whose /readyz
// answers 503.
func (n *Net) SetReady(ready bool) {
	n.mu.Lock()
	n.mu.ready = ready
	n.mu.Unlock()
}

// Handler is the L2 node's gateway, the handler Server serves, for tests
// that call it without a connection (httptest.ResponseRecorder).
func (n *Net) Handler() http.Handler { return n.handler }

// Block finalizes and commits a block of everything in the mempool (maybe
// nothing) and returns its height.
func (n *Net) Block() int64 {
	n.mu.Lock()
	txs := n.mu.mempool
	n.mu.mempool = nil
	n.mu.Unlock()
	return n.block(txs)
}

func (n *Net) block(txs [][]byte) int64 {
	n.blockMu.Lock()
	defer n.blockMu.Unlock()
	if _, err := n.finalize(txs...); err != nil {
		n.T.Errorf("duettest: %v", err)
	}
	return n.height
}

// finalize finalizes and commits the next block; the caller holds blockMu.
func (n *Net) finalize(txs ...[]byte) (*abci.ResponseFinalizeBlock, error) {
	n.height++
	// A block's time follows the wall clock, as CometBFT's median vote
	// time does, and always moves forward.
	bt := time.Now().UTC()
	if !bt.After(n.blockTime) {
		bt = n.blockTime.Add(time.Millisecond)
	}
	n.blockTime = bt
	ctx := context.Background()
	res, err := n.Ledger.FinalizeBlock(ctx, &abci.RequestFinalizeBlock{Height: n.height, Time: bt, Txs: txs})
	if err != nil {
		return nil, fmt.Errorf("FinalizeBlock %d: %w", n.height, err)
	}
	if _, err := n.Ledger.Commit(ctx, &abci.RequestCommit{}); err != nil {
		return nil, fmt.Errorf("Commit %d: %w", n.height, err)
	}
	return res, nil
}

// Judge puts tx before L1 at once, as a byzantine L2 node could: CheckTx,
// then (if it passes) a block holding tx alone. It returns the verdict on
// each bundle, or CheckTx's refusal as an error.
func (n *Net) Judge(tx []byte) ([]protocol.Outcome, error) {
	ctx := context.Background()
	res, err := n.Ledger.CheckTx(ctx, &abci.RequestCheckTx{Tx: tx, Type: abci.CheckTxType_New})
	if err != nil {
		return nil, err
	}
	if res.Code != abci.CodeTypeOK {
		return nil, &refused{res.Code, res.Log}
	}
	n.blockMu.Lock()
	defer n.blockMu.Unlock()
	fin, err := n.finalize(tx)
	if err != nil {
		return nil, err
	}
	if r := fin.TxResults[0]; r.Code != 0 {
		return nil, &refused{r.Code, r.Log}
	}
	return protocol.DecodeOutcomes(fin.TxResults[0].Data)
}

// Mempool returns the transactions waiting for a block (in manual mode).
func (n *Net) Mempool() [][]byte {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.mu.mempool)
}

// Height is the last committed height.
func (n *Net) Height() int64 {
	_, h := n.Ledger.Committed()
	return h
}

// Signer is the genesis actor id as the Go SDK signs for it.
func (n *Net) Signer(id string) client.Signer {
	if _, ok := n.actors[id]; !ok {
		n.T.Fatalf("duettest: no actor %s", id)
	}
	return client.Signer{ID: id, Key: servicetest.Key(id)}
}

// Client returns a Go SDK client of the L2 node that checks its receipts.
func (n *Net) Client() *client.Client {
	c := client.New(n.Server.URL)
	c.NodeKey = n.Node.Public()
	return c
}

// Session returns session id of actor on the L2 node, through the SDK.
func (n *Net) Session(id, actor string) *client.Session {
	return n.Client().NewSession(n.Signer(actor), id)
}

// Query runs a GET route of the app on L1's committed state.
func (n *Net) Query(path string) service.Response {
	n.T.Helper()
	st, _ := n.Ledger.Committed()
	resp, err := n.App.Registry.Query(st, path)
	if err != nil {
		n.T.Fatalf("duettest: query %s: %v", path, err)
	}
	return resp
}

// Wait follows session id of actor to its end on L1 (10 s at most).
func (n *Net) Wait(id, actor string) *protocol.Final {
	n.T.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	f, err := n.Client().NewSession(n.Signer(actor), id).Wait(ctx)
	if err != nil {
		n.T.Fatalf("duettest: wait for session %s: %v", id, err)
	}
	return f
}

// TxHash is the hash CometBFT names a transaction by.
func TxHash(tx []byte) string {
	sum := sha256.Sum256(tx)
	return strings.ToUpper(hex.EncodeToString(sum[:]))
}

// MustOK fails the test unless err is nil; it returns the result.
func MustOK(t testing.TB, what string) func(*client.Result, error) *client.Result {
	return func(r *client.Result, err error) *client.Result {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if r.Status < 200 || r.Status >= 300 {
			t.Fatalf("%s: got %d %s", what, r.Status, r.Body)
		}
		return r
	}
}
