// Package l2 runs an L2 node: a CometBFT full node of the L1 chain (so the
// committed state it executes on is local and verified), the session buffer
// and the HTTP gateway.
package l2

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	abci "github.com/cometbft/cometbft/abci/types"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/duet-bft/duet/buffer"
	"github.com/duet-bft/duet/chain"
	"github.com/duet-bft/duet/gateway"
	"github.com/duet-bft/duet/proof"
	"github.com/duet-bft/duet/service"
)

// Files in a node's config directory that make it an L2 node.
const (
	ConfigFile = "l2.json"
	KeyFile    = "l2_key.json"
)

// KeyFileContent is config/l2_key.json.
type KeyFileContent struct {
	ID         string `json:"id"`
	PublicKey  []byte `json:"public_key"`
	PrivateKey []byte `json:"private_key"` // 32-byte seed
}

// IsL2 reports whether home holds an L2 node.
func IsL2(home string) bool {
	_, err := os.Stat(filepath.Join(home, "config", ConfigFile))
	return err == nil
}

// Config says which home to run.
type Config struct {
	Home      string          // required
	App       *service.App    // required
	LogLevel  string          // CometBFT's log level
	Overrides chain.Overrides // settings over config.toml and l2.json (chain.Overrides)
	Logger    *slog.Logger
	ChainLogs *os.File // CometBFT's log output; nil: stderr
}

// Node is a running L2 node.
type Node struct {
	Chain  *chain.Node
	Buffer *buffer.Buffer
	Server *http.Server
	Addr   string // the HTTP address it listens on (HTTPS when l2.json names tls_cert and tls_key)
	ln     net.Listener
	log    *slog.Logger
}

type l1 struct {
	n   *chain.Node
	sub *chain.Submitter
}

func (c l1) Committed() (service.Store, int64) { return c.n.App.Committed() }

// Submit hands tx to the follower's own mempool, which gossips it to the
// validators; while the follower catches up, or if its mempool fails, it
// goes to a validator's RPC instead. A retry (sessions L1 did not judge in
// time) goes to the validators' RPC at once: the follower may have taken a
// transaction its validators refused, and gossip would never say so; a
// validator's answer does.
//
// A validator's refusal is final only if this node's follower, whose state
// the buffer reads, refuses the transaction too: a validator behind the
// follower may not know an actor yet, and one ahead of it may hold a
// record the follower does not show yet. Otherwise it is transient, and
// the buffer asks again.
func (c l1) Submit(ctx context.Context, tx []byte, retry bool) error {
	var rej *chain.RejectedError
	if !retry {
		err := c.n.SubmitLocal(ctx, tx)
		if err == nil || errors.As(err, &rej) {
			return err
		}
	}
	err := c.sub.Submit(ctx, tx)
	if errors.As(err, &rej) {
		if r, cerr := c.n.Check(ctx, tx); cerr == nil && r.Code == 0 {
			return fmt.Errorf("l2: a validator refused what this node's follower takes (code %d: %s); they are not at the same height yet", rej.Code, rej.Log)
		}
	}
	return err
}

// Ready reports whether the follower has caught up and holds a committed
// state (the genesis actors are in the state after block 1, not before).
func (c l1) Ready() bool {
	_, h := c.n.App.Committed()
	return h >= 1 && !c.n.CometBFT.ConsensusReactor().WaitSync()
}

// Check checks an L2 node's own files as Start would, with the overrides
// applied, without starting anything: l2.json (strictly, every limit
// within range), its TLS files, its key file. It returns the settings.
func Check(home string, o chain.Overrides) (FileConfig, error) {
	fc, _, _, err := check(home, o)
	return fc, err
}

func check(home string, o chain.Overrides) (FileConfig, *tls.Config, KeyFileContent, error) {
	var kf KeyFileContent
	fc, err := LoadFileConfig(filepath.Join(home, "config", ConfigFile))
	if err == nil {
		fc, err = fc.With(o)
	}
	if err != nil {
		return fc, nil, kf, err
	}
	tlsConfig, err := serverTLS(fc, filepath.Join(home, "config"))
	if err != nil {
		return fc, nil, kf, err
	}
	if err := readStrict(filepath.Join(home, "config", KeyFile), &kf); err != nil {
		return fc, nil, kf, err
	}
	if len(kf.PrivateKey) != ed25519.SeedSize || kf.ID != fc.Node {
		return fc, nil, kf, fmt.Errorf("l2: %s does not hold the key of node %q (l2.json's node)", KeyFile, fc.Node)
	}
	// The limits, as the buffer will check them.
	bc := fc.Buffer()
	bc.Key, bc.Registry, bc.WALPath = ed25519.NewKeyFromSeed(kf.PrivateKey), service.NewRegistry(), filepath.Join(home, "data", "l2", "wal.log")
	bc.SetDefaults()
	if err := bc.Validate(); err != nil {
		return fc, nil, kf, fmt.Errorf("l2: %s: %w", ConfigFile, err)
	}
	return fc, tlsConfig, kf, nil
}

// Start starts the follower, replays the buffer's WAL and serves HTTP.
func Start(cfg Config) (*Node, error) {
	if cfg.Home == "" || cfg.App == nil {
		return nil, errors.New("l2: Home and App are required")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	fc, tlsConfig, kf, err := check(cfg.Home, cfg.Overrides)
	if err != nil {
		return nil, err
	}
	sub, err := chain.NewSubmitter(fc.L1RPC)
	if err != nil {
		return nil, err
	}
	ccfg := chain.Config{Home: cfg.Home, App: cfg.App, LogLevel: cfg.LogLevel, Logger: log, Overrides: cfg.Overrides}
	if cfg.ChainLogs != nil {
		ccfg.LogOutput = cfg.ChainLogs
	}
	cn, err := chain.Start(ccfg)
	if err != nil {
		return nil, err
	}
	reg := prometheus.NewRegistry()
	metrics, err := gateway.NewMetrics(reg)
	if err != nil {
		cn.Stop()
		return nil, err
	}
	key := ed25519.NewKeyFromSeed(kf.PrivateKey)
	dataDir := filepath.Join(cfg.Home, "data", "l2")
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		cn.Stop()
		return nil, err
	}
	chainIO := l1{n: cn, sub: sub}
	bcfg := fc.Buffer()
	bcfg.Key, bcfg.Registry, bcfg.WALPath = key, cn.App.Registry(), filepath.Join(dataDir, "wal.log")
	bcfg.Logger, bcfg.Observer = log, metrics
	buf, err := buffer.Open(bcfg, chainIO)
	if err != nil {
		cn.Stop()
		return nil, err
	}
	cn.App.OnBlock(buf.OnBlock)
	stopping := make(chan struct{}) // closed when the server shuts down: event streams end
	trust, err := proof.TrustDoc(cn.CometBFT.GenesisDoc())
	if err != nil {
		buf.Close()
		cn.Stop()
		return nil, err
	}
	h, err := gateway.New(gateway.Config{Buffer: buf, App: cfg.App, Registry: cn.App.Registry(), Chain: chainIO, Node: fc.Node,
		NodeKey: key.Public().(ed25519.PublicKey), Metrics: metrics, Gatherer: reg, Logger: log,
		L1Query: func(ctx context.Context, path string) (uint32, []byte, error) {
			r, err := cn.App.Query(ctx, &abci.RequestQuery{Path: path})
			if err != nil {
				return 0, nil, err
			}
			return r.Code, r.Value, nil
		},
		Network: func() gateway.Network { return network(cn) },
		Prover:  prover{cn: cn, buf: buf, node: fc.Node, key: key},
		Trust:   trust,
		Done:    stopping,
	})
	if err != nil {
		buf.Close()
		cn.Stop()
		return nil, err
	}
	ln, err := net.Listen("tcp", fc.HTTP)
	if err != nil {
		buf.Close()
		cn.Stop()
		return nil, fmt.Errorf("l2: listen %s: %w", fc.HTTP, err)
	}
	srv := newServer(h, tlsConfig, log)
	srv.RegisterOnShutdown(sync.OnceFunc(func() { close(stopping) }))
	go serve(srv, ln)
	scheme := "http"
	if tlsConfig != nil {
		scheme = "https"
	}
	log.Info("L2 node serving", "node", fc.Node, "url", scheme+"://"+ln.Addr().String())
	return &Node{Chain: cn, Buffer: buf, Server: srv, Addr: ln.Addr().String(), ln: ln, log: log}, nil
}

// network describes L1 from the follower: the genesis validators (duet
// never changes the set) and which signed the last block.
func network(cn *chain.Node) gateway.Network {
	g := cn.CometBFT.GenesisDoc()
	n := gateway.Network{ChainID: g.ChainID}
	if t, err := proof.TrustDoc(g); err == nil {
		n.ValidatorsHash = hex.EncodeToString(t.ValidatorsHash)
	}
	for _, v := range g.Validators {
		addr := v.Address.String()
		n.Validators = append(n.Validators, gateway.Validator{Name: v.Name, Address: addr, Power: v.Power, Signed: cn.App.Signed(addr)})
	}
	return n
}

// StopTimeout is how long Stop waits for the requests in flight.
const StopTimeout = 5 * time.Second

// Stop stops the node, in this order:
//
//  1. The HTTP server stops: it closes its listener and idle connections,
//     ends every event stream, and waits up to StopTimeout for the
//     requests in flight to be answered. An op is answered only once its
//     WAL record is on stable storage (fsync), so every op acknowledged
//     is durable. A request still running after StopTimeout (a direct-mode
//     op waiting for L1) has its connection closed: its client gets an
//     error, not an answer, and can look the session up after the restart.
//  2. The buffer closes: it stops submitting to L1 and closes its WAL after
//     the records already queued are written and synced. The next Start
//     replays the WAL: open sessions come back with their ops, committing
//     ones are submitted again.
//  3. The follower (the CometBFT node) stops.
func (n *Node) Stop() error {
	ctx, cancel := context.WithTimeout(context.Background(), StopTimeout)
	defer cancel()
	if err := n.Server.Shutdown(ctx); err != nil {
		n.log.Warn("requests still running at stop; closing their connections", "after", StopTimeout, "err", err)
		n.Server.Close()
	}
	err := n.Buffer.Close()
	if cerr := n.Chain.Stop(); err == nil {
		err = cerr
	}
	return err
}
