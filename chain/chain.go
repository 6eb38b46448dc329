// Package chain runs one duet L1 node: CometBFT in-process with the ledger
// application through a local ABCI client. A validator and an L2 node's
// follower are the same thing here; genesis decides who votes.
package chain

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	dbm "github.com/cometbft/cometbft-db"
	cmtcfg "github.com/cometbft/cometbft/config"
	cmtlog "github.com/cometbft/cometbft/libs/log"
	"github.com/cometbft/cometbft/node"
	"github.com/cometbft/cometbft/p2p"
	"github.com/cometbft/cometbft/privval"
	"github.com/cometbft/cometbft/proxy"
	rpccore "github.com/cometbft/cometbft/rpc/core"
	"github.com/cometbft/cometbft/types"

	"github.com/duet-bft/duet/ledger"
	"github.com/duet-bft/duet/protocol"
	"github.com/duet-bft/duet/service"
)

// Config says which home to run and with which application.
type Config struct {
	// Home is the node's directory: config/ (config.toml, genesis.json,
	// keys) and data/. Required.
	Home string
	// App is the application. Required: it must be the one the home's
	// genesis names (name and version).
	App *service.App
	// LogLevel of CometBFT's own log: "error" (default), "info" or "debug".
	LogLevel string
	// LogOutput receives CometBFT's log; nil means os.Stderr.
	LogOutput io.Writer
	// Logger receives duet's logs; nil discards.
	Logger *slog.Logger
	// Overrides set config.toml's keys over the file (see Overrides).
	Overrides Overrides
}

// Validate reports a config that cannot work.
func (c *Config) Validate() error {
	if c.Home == "" {
		return errors.New("chain: Config.Home is required")
	}
	if c.App == nil {
		return errors.New("chain: Config.App is required")
	}
	return nil
}

// Node is a running CometBFT node with its ledger.
type Node struct {
	CometBFT *node.Node
	App      *ledger.App
	Config   *cmtcfg.Config
	dbs      *dbTracker
	env      func() (*rpccore.Environment, error) // CometBFT's stores, for proofs
}

// dbTracker remembers every database CometBFT opens, so Stop can close the
// ones CometBFT's own shutdown leaves open (the tx indexer's), and a node
// restarted in the same process can open them again. Each database is
// guarded: CometBFT's consensus reactor can still read the block store for
// a moment after the node stopped (a peer routine wakes from its sleep),
// and a read of a closed goleveldb panics. After Close, reads find nothing.
type dbTracker struct {
	mu  sync.Mutex
	dbs []*guardedDB
}

func (t *dbTracker) provide(ctx *cmtcfg.DBContext) (dbm.DB, error) {
	db, err := cmtcfg.DefaultDBProvider(ctx)
	if err != nil {
		return nil, err
	}
	g := &guardedDB{DB: db}
	t.mu.Lock()
	t.dbs = append(t.dbs, g)
	t.mu.Unlock()
	return g, nil
}

func (t *dbTracker) closeAll() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, db := range t.dbs {
		db.Close()
	}
	t.dbs = nil
}

type guardedDB struct {
	dbm.DB
	mu     sync.RWMutex
	closed bool
}

func (g *guardedDB) Get(key []byte) ([]byte, error) {
	g.mu.RLock()
	defer g.mu.RUnlock()
	if g.closed {
		return nil, nil
	}
	return g.DB.Get(key)
}

func (g *guardedDB) Has(key []byte) (bool, error) {
	g.mu.RLock()
	defer g.mu.RUnlock()
	if g.closed {
		return false, nil
	}
	return g.DB.Has(key)
}

func (g *guardedDB) Close() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return nil
	}
	g.closed = true
	return g.DB.Close()
}

// LoadConfig reads home/config/config.toml the way CometBFT does.
func LoadConfig(home string) (*cmtcfg.Config, error) { return LoadConfigWith(home, nil) }

// Start opens the ledger state under home/data/app and starts the node.
func Start(cfg Config) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	conf, err := LoadConfigWith(cfg.Home, cfg.Overrides)
	if err != nil {
		return nil, err
	}
	if err := CheckApp(conf.GenesisFile(), cfg.App); err != nil {
		return nil, err
	}
	app, err := ledger.New(ledgerConfig(cfg), cfg.App)
	if err != nil {
		return nil, err
	}
	nodeKey, err := p2p.LoadNodeKey(conf.NodeKeyFile())
	if err != nil {
		app.Close()
		return nil, fmt.Errorf("chain: node key: %w", err)
	}
	pv := privval.LoadOrGenFilePV(conf.PrivValidatorKeyFile(), conf.PrivValidatorStateFile())
	out := cfg.LogOutput
	if out == nil {
		out = os.Stderr
	}
	lvl := cfg.LogLevel
	if lvl == "" {
		lvl = "error"
	}
	allow, err := cmtlog.AllowLevel(lvl)
	if err != nil {
		app.Close()
		return nil, fmt.Errorf("chain: %w", err)
	}
	logger := cmtlog.NewFilter(cmtlog.NewTMLogger(cmtlog.NewSyncWriter(out)), allow)
	dbs := &dbTracker{}
	n, err := node.NewNode(conf, pv, nodeKey, proxy.NewLocalClientCreator(app),
		node.DefaultGenesisDocProviderFunc(conf), dbs.provide,
		node.DefaultMetricsProvider(conf.Instrumentation), logger)
	if err != nil {
		dbs.closeAll()
		app.Close()
		return nil, fmt.Errorf("chain: new node: %w", err)
	}
	if err := n.Start(); err != nil {
		dbs.closeAll()
		app.Close()
		return nil, fmt.Errorf("chain: start node: %w", err)
	}
	return &Node{CometBFT: n, App: app, Config: conf, dbs: dbs, env: sync.OnceValues(n.ConfigureRPC)}, nil
}

// GenesisApp reads which application (name and version) the genesis file
// at path is for.
func GenesisApp(path string) (name, version string, err error) {
	doc, err := types.GenesisDocFromFile(path)
	if err != nil {
		return "", "", fmt.Errorf("chain: %w", err)
	}
	name, version, err = service.GenesisApp(doc.AppState)
	if err != nil {
		return "", "", fmt.Errorf("chain: %s: %w", path, err)
	}
	return name, version, nil
}

// CheckApp refuses to run app on a chain whose genesis (at path) names
// another application or another version, and says which.
func CheckApp(path string, app *service.App) error {
	if err := app.Check(GenesisApp(path)); err != nil {
		return fmt.Errorf("chain: %s: %w", path, err)
	}
	return nil
}

func ledgerConfig(cfg Config) ledger.Config {
	lc := ledger.DefaultConfig(filepath.Join(cfg.Home, "data", "app"))
	lc.Logger = cfg.Logger
	return lc
}

// Stop stops the node and closes the ledger state.
func (n *Node) Stop() error {
	err := n.CometBFT.Stop()
	n.CometBFT.Wait()
	n.dbs.closeAll()
	if cerr := n.App.Close(); err == nil {
		err = cerr
	}
	return err
}

// RPCAddress returns the node's CometBFT RPC URL (http://host:port).
func (n *Node) RPCAddress() string { return RPCURL(n.Config.RPC.ListenAddress) }

// RPCURL turns a tcp:// listen address into an http:// URL.
func RPCURL(listen string) string {
	const p = "tcp://"
	if len(listen) > len(p) && listen[:len(p)] == p {
		return "http://" + listen[len(p):]
	}
	return listen
}

// EmptyBlockInterval is the chain's idle heartbeat. A block's time is the
// median time of the votes for the block before it, so on a chain that makes
// no empty blocks at all, the first block after an idle hour would carry a
// time an hour old, and L1 could not bound op timestamps against it. One
// empty block every few seconds keeps block time fresh at a negligible cost;
// blocks with transactions are still proposed at once.
const EmptyBlockInterval = 5 * time.Second

// MaxBlockBytes is the block size duet's genesis sets (consensus params
// block.max_bytes): room for two of the largest batches. A proposal must
// reach every validator well within the consensus timeouts; at P2PRate a
// full block takes about 0.2 s per hop (docs/threat-model.md has the
// measurements).
const MaxBlockBytes = 2 * protocol.MaxBatchBytes

// P2PRate is each connection's send and receive rate, in bytes per second
// (CometBFT's default is 5 MB/s).
const P2PRate = 20_000_000

// Tune applies duet's consensus settings to conf: no commit delay, empty
// blocks only as a heartbeat, fast gossip on loopback, timeouts that only
// matter on faults, transaction limits that match the ledger's, and
// refused transactions that stay refused. Measured effects are in
// docs/cometbft.md.
func Tune(conf *cmtcfg.Config, namespace string) {
	c := conf.Consensus
	c.TimeoutCommit = 0
	c.SkipTimeoutCommit = true
	c.CreateEmptyBlocks = true
	c.CreateEmptyBlocksInterval = EmptyBlockInterval
	c.PeerGossipSleepDuration = 5 * time.Millisecond
	c.TimeoutPropose = time.Second
	c.TimeoutPrevote = 200 * time.Millisecond
	c.TimeoutPrecommit = 200 * time.Millisecond
	conf.P2P.FlushThrottleTimeout = time.Millisecond
	conf.P2P.PexReactor = false
	conf.P2P.AddrBookStrict = false
	conf.P2P.AllowDuplicateIP = true
	conf.P2P.SendRate, conf.P2P.RecvRate = P2PRate, P2PRate
	conf.Mempool.MaxTxBytes = protocol.MaxBatchBytes
	conf.Mempool.MaxTxsBytes = 64 * protocol.MaxBatchBytes
	conf.Mempool.KeepInvalidTxsInCache = true
	conf.RPC.MaxBodyBytes = 2*protocol.MaxBatchBytes + 1<<20 // a batch in JSON-RPC is base64: 4/3 of its size
	conf.RPC.MaxSubscriptionsPerClient = 1000
	conf.RPC.MaxSubscriptionClients = 1000
	conf.RPC.TimeoutBroadcastTxCommit = 30 * time.Second
	conf.Instrumentation.Namespace = namespace
	conf.LogLevel = "error"
}
