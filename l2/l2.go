// Package l2 runs an L2 node: a CometBFT full node of the L1 chain (so the
// committed state it executes on is local and verified), the session buffer
// and the HTTP gateway.
package l2

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/duet-bft/duet/buffer"
	"github.com/duet-bft/duet/chain"
	"github.com/duet-bft/duet/gateway"
	"github.com/duet-bft/duet/service"
)

// Files in a node's config directory that make it an L2 node.
const (
	ConfigFile = "l2.json"
	KeyFile    = "l2_key.json"
)

// FileConfig is config/l2.json.
type FileConfig struct {
	Node          string   `json:"node"`           // actor id of this L2 node
	HTTP          string   `json:"http"`           // listen address, e.g. 127.0.0.1:8080
	L1RPC         []string `json:"l1_rpc"`         // validators' RPC URLs to submit to, in order of preference
	BatchInterval string   `json:"batch_interval"` // Go duration; default 10ms
	BatchMax      int      `json:"batch_max"`      // default 256
	SessionTTL    string   `json:"session_ttl"`    // default 15m
	MaxLag        string   `json:"max_lag"`        // new sessions get 429 while a commit has waited this long for L1; default 2s

	// Limits of one session and quotas of one actor (buffer.Config); 0 or
	// absent means the default.
	MaxSessionBytes     int     `json:"max_session_bytes"`      // default and most 1 MiB
	MaxOpenPerActor     int     `json:"max_open_per_actor"`     // default 64
	MaxReservedPerActor int     `json:"max_reserved_per_actor"` // default 4096
	MaxBytesPerActor    int     `json:"max_bytes_per_actor"`    // default 64 MiB
	ActorRate           float64 `json:"actor_rate"`             // signed ops per second per actor; default 200; negative: no limit
	ActorBurst          int     `json:"actor_burst"`            // default 2*actor_rate

	MaxOpen       int    `json:"max_open"`        // open sessions of the node; default 10000
	MaxQueue      int    `json:"max_queue"`       // commits waiting for L1; default 20000
	MaxSessionAge string `json:"max_session_age"` // an open session this old takes only an abort; default 12h
	MaxOpLifetime string `json:"max_op_lifetime"` // how far ahead an op's expiry may be; default 24h
	RetainBytes   int    `json:"retain_bytes"`    // answers of final sessions kept in memory; default 256 MiB
}

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
	Home      string            // required
	Registry  *service.Registry // required
	LogLevel  string            // CometBFT's log level
	Logger    *slog.Logger
	ChainLogs *os.File // CometBFT's log output; nil: stderr
}

// Node is a running L2 node.
type Node struct {
	Chain  *chain.Node
	Buffer *buffer.Buffer
	Server *http.Server
	Addr   string // the HTTP address it listens on
	ln     net.Listener
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
func (c l1) Ready() bool { return !c.n.CometBFT.ConsensusReactor().WaitSync() }

func readJSON(path string, v any) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return json.Unmarshal(raw, v)
}

// Start starts the follower, replays the buffer's WAL and serves HTTP.
func Start(cfg Config) (*Node, error) {
	if cfg.Home == "" || cfg.Registry == nil {
		return nil, errors.New("l2: Home and Registry are required")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var fc FileConfig
	if err := readJSON(filepath.Join(cfg.Home, "config", ConfigFile), &fc); err != nil {
		return nil, fmt.Errorf("l2: %w", err)
	}
	var kf KeyFileContent
	if err := readJSON(filepath.Join(cfg.Home, "config", KeyFile), &kf); err != nil {
		return nil, fmt.Errorf("l2: %w", err)
	}
	if len(kf.PrivateKey) != ed25519.SeedSize || kf.ID != fc.Node {
		return nil, errors.New("l2: key file does not hold the key of config's node")
	}
	// Durations left out take the buffer's defaults (buffer.Config).
	var interval, ttl, maxLag, maxAge, maxLife time.Duration
	for _, d := range []struct {
		name, in string
		out      *time.Duration
	}{
		{"batch_interval", fc.BatchInterval, &interval},
		{"session_ttl", fc.SessionTTL, &ttl},
		{"max_lag", fc.MaxLag, &maxLag},
		{"max_session_age", fc.MaxSessionAge, &maxAge},
		{"max_op_lifetime", fc.MaxOpLifetime, &maxLife},
	} {
		if d.in == "" {
			continue
		}
		v, err := time.ParseDuration(d.in)
		if err != nil || v <= 0 {
			return nil, fmt.Errorf("l2: %s %q: want a positive Go duration, such as 10ms or 15m", d.name, d.in)
		}
		*d.out = v
	}
	sub, err := chain.NewSubmitter(fc.L1RPC)
	if err != nil {
		return nil, err
	}
	ccfg := chain.Config{Home: cfg.Home, Registry: cfg.Registry, LogLevel: cfg.LogLevel, Logger: log}
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
	buf, err := buffer.Open(buffer.Config{Node: fc.Node, Key: key, Registry: cn.App.Registry(),
		WALPath: filepath.Join(dataDir, "wal.log"), BatchInterval: interval, BatchMax: fc.BatchMax,
		SessionTTL: ttl, MaxLag: maxLag, MaxSessionBytes: fc.MaxSessionBytes, MaxOpenPerActor: fc.MaxOpenPerActor,
		MaxReservedPerActor: fc.MaxReservedPerActor, MaxBytesPerActor: fc.MaxBytesPerActor, ActorRate: fc.ActorRate,
		ActorBurst: fc.ActorBurst, MaxOpen: fc.MaxOpen, MaxQueue: fc.MaxQueue, MaxSessionAge: maxAge,
		MaxOpLifetime: maxLife, RetainBytes: fc.RetainBytes, Logger: log, Observer: metrics}, chainIO)
	if err != nil {
		cn.Stop()
		return nil, err
	}
	cn.App.OnBlock(buf.OnBlock)
	h, err := gateway.New(gateway.Config{Buffer: buf, Registry: cn.App.Registry(), Chain: chainIO, Node: fc.Node,
		NodeKey: key.Public().(ed25519.PublicKey), Metrics: metrics, Gatherer: reg, Logger: log})
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
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute}
	go srv.Serve(ln)
	log.Info("L2 node serving", "node", fc.Node, "http", ln.Addr().String())
	return &Node{Chain: cn, Buffer: buf, Server: srv, Addr: ln.Addr().String(), ln: ln}, nil
}

// Stop shuts the HTTP server, the buffer and the follower down.
func (n *Node) Stop() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	n.Server.Shutdown(ctx)
	err := n.Buffer.Close()
	if cerr := n.Chain.Stop(); err == nil {
		err = cerr
	}
	return err
}
