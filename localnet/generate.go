// Package localnet is the `duet up` launcher: it generates a local network
// (homes, keys, genesis with demo actors, tuned consensus settings) under one
// directory, runs every node as a child process, restarts children that die,
// and writes cluster.json for clients.
//
// The keys it generates are development keys for a network on one machine:
// they sit in plain files and cluster.json. Never use them elsewhere.
package localnet

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	cmtcfg "github.com/cometbft/cometbft/config"

	"github.com/duet-bft/duet/chain"
	"github.com/duet-bft/duet/deploy"
	"github.com/duet-bft/duet/l2"
	"github.com/duet-bft/duet/service"
)

// Spec describes a local network to generate.
type Spec struct {
	Dir        string // required
	ChainID    string // default "duet-local"
	Validators int    // default 4
	L2         int    // L2 nodes (full nodes with a session buffer and HTTP gateway)
	BasePort   int    // node i uses p2p BasePort+10i, RPC BasePort+10i+1; default 26656
	HTTP       string // first L2 node's HTTP address; default 127.0.0.1:8080
	// App is the application the network runs. Required. Its demo actors
	// and genesis make the network's, and its name and version go into the
	// genesis (and network.json).
	App *service.App
	// L2Config adjusts every L2 node's l2.json before it is written, e.g.
	// func(c *l2.FileConfig) { c.ActorRate = -1 }; nil keeps the defaults.
	L2Config func(*l2.FileConfig)
	// NoFaults allows fewer than 4 validators: a network that tolerates no
	// faulty validator (n = 3f+1 tolerates f). Without it, Validate refuses
	// such a network.
	NoFaults bool
}

func (s *Spec) setDefaults() {
	if s.ChainID == "" {
		s.ChainID = "duet-local"
	}
	if s.Validators == 0 {
		s.Validators = 4
	}
	if s.BasePort == 0 {
		s.BasePort = 26656
	}
	if s.HTTP == "" {
		s.HTTP = "127.0.0.1:8080"
	}
}

// Validate reports a spec that cannot work.
func (s *Spec) Validate() error {
	switch {
	case s.Dir == "":
		return errors.New("localnet: Spec.Dir is required")
	case s.App == nil:
		return errors.New("localnet: Spec.App is required")
	case s.Validators < 1 || s.Validators > 64:
		return fmt.Errorf("localnet: %d validators, want 1..64", s.Validators)
	case s.Validators < 4 && !s.NoFaults:
		return fmt.Errorf("localnet: %d validators tolerate no faulty validator (n = 3f+1 validators tolerate f; one fault takes 4); allow it explicitly to run such a network", s.Validators)
	case s.L2 < 0 || s.L2 > 16:
		return fmt.Errorf("localnet: %d L2 nodes, want 0..16", s.L2)
	case s.BasePort < 1024 || s.BasePort+10*(s.Validators+s.L2) > 65535:
		return fmt.Errorf("localnet: base port %d out of range: want 1024..%d for %d nodes", s.BasePort, 65535-10*(s.Validators+s.L2), s.Validators+s.L2)
	}
	if _, err := ParseHostPort(s.HTTP); err != nil {
		return fmt.Errorf("localnet: HTTP address: %w", err)
	}
	return nil
}

// ParseHostPort checks a HOST:PORT address and returns its port
// (deploy.ParseHostPort).
func ParseHostPort(addr string) (int, error) { return deploy.ParseHostPort(addr) }

// Actor is a demo identity (as registered on L1) with its private key (the
// 32-byte seed).
type Actor = deploy.KeyedActor

// Node is one node of the network.
type Node struct {
	ID     string `json:"id"`
	Home   string `json:"home"`
	RPC    string `json:"rpc"`
	P2P    string `json:"p2p,omitempty"`     // HOST:PORT it listens on for peers
	NodeID string `json:"node_id,omitempty"` // its CometBFT node id (of its node key): readiness checks the node answering is it
	HTTP   string `json:"http,omitempty"`    // L2 only
	PID    int    `json:"pid"`
}

// Network is what cluster.json holds.
type Network struct {
	ChainID    string  `json:"chain_id"`
	App        string  `json:"app"`         // the application's name
	AppVersion string  `json:"app_version"` // and version
	Validators []Node  `json:"validators"`
	L2         []Node  `json:"l2"`
	Actors     []Actor `json:"actors"`
	Note       string  `json:"note"`
}

const devKeysNote = "development keys for a local network only; never use them elsewhere"

// networkFile holds the generated network; cluster.json adds live pids.
const networkFile = "network.json"

// LoadOrGenerate returns the network in spec.Dir, generating it first if
// the directory holds none. A resumed network must match the spec's sizes.
func LoadOrGenerate(spec Spec) (*Network, error) {
	spec.setDefaults()
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	path := filepath.Join(spec.Dir, networkFile)
	if raw, err := os.ReadFile(path); err == nil {
		var n Network
		if err := json.Unmarshal(raw, &n); err != nil {
			return nil, fmt.Errorf("localnet: %s: %w", path, err)
		}
		switch {
		case n.App == "":
			return nil, fmt.Errorf("localnet: %s holds a network made before networks recorded their application; remove it or use another --home", spec.Dir)
		case n.App != spec.App.Name || n.AppVersion != spec.App.Version:
			return nil, fmt.Errorf("localnet: %s holds a network of %s %s, not %s; use another --home (or --app %s)",
				spec.Dir, n.App, n.AppVersion, spec.App, n.App)
		}
		if len(n.Validators) != spec.Validators || len(n.L2) != spec.L2 {
			return nil, fmt.Errorf("localnet: %s holds %d validators and %d L2 nodes, not %d and %d; use another --home",
				spec.Dir, len(n.Validators), len(n.L2), spec.Validators, spec.L2)
		}
		return &n, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	n, err := generate(spec)
	if err != nil {
		return nil, err
	}
	if err := writeJSON(path, n); err != nil {
		return nil, err
	}
	return n, nil
}

func generate(spec Spec) (*Network, error) {
	n := &Network{ChainID: spec.ChainID, App: spec.App.Name, AppVersion: spec.App.Version, Note: devKeysNote}
	demo, err := deploy.DemoActors(spec.App)
	if err != nil {
		return nil, err
	}
	var actors []service.Actor
	for _, a := range demo {
		n.Actors = append(n.Actors, a)
		actors = append(actors, a.Actor)
	}
	// The same steps as organisations take (deploy: init, genesis, join),
	// on loopback.
	t, err := deploy.MakeTestnet(deploy.TestnetConfig{Dir: spec.Dir, ChainID: spec.ChainID, App: spec.App,
		Validators: spec.Validators, L2: spec.L2, BasePort: spec.BasePort, NoMetrics: true, HTTP: spec.HTTP, Actors: actors,
		Tune: func(moniker string, c *cmtcfg.Config) {
			chain.Tune(c, "cometbft_"+strings.ReplaceAll(moniker, "-", "_"))
		},
		L2Config: spec.L2Config, NoFaults: spec.NoFaults})
	if err != nil {
		return nil, err
	}
	for i, in := range t.Intents {
		node := Node{ID: in.Moniker, Home: t.Homes[i], RPC: fmt.Sprintf("http://127.0.0.1:%d", spec.BasePort+10*i+1),
			P2P: in.P2P, NodeID: in.NodeID, HTTP: in.HTTP}
		if in.Role == deploy.RoleValidator {
			n.Validators = append(n.Validators, node)
			continue
		}
		n.L2 = append(n.L2, node)
		var kf l2.KeyFileContent
		raw, err := os.ReadFile(filepath.Join(t.Homes[i], "config", l2.KeyFile))
		if err == nil {
			err = json.Unmarshal(raw, &kf)
		}
		if err != nil {
			return nil, err
		}
		n.Actors = append(n.Actors, Actor{Actor: service.Actor{ID: in.Moniker, Role: service.RoleL2, Org: in.Org, PublicKey: in.L2Key}, PrivateKey: kf.PrivateKey})
	}
	return n, nil
}

func writeJSON(path string, v any) error {
	raw, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(raw, '\n'), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
