// Package localnet is the `duet up` launcher: it generates a local network
// (homes, keys, genesis with demo actors, tuned consensus settings) under one
// directory, runs every node as a child process, restarts children that die,
// and writes cluster.json for clients.
//
// The keys it generates are development keys for a network on one machine:
// they sit in plain files and cluster.json. Never use them elsewhere.
package localnet

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	cmtcfg "github.com/cometbft/cometbft/config"
	"github.com/cometbft/cometbft/p2p"
	"github.com/cometbft/cometbft/privval"
	"github.com/cometbft/cometbft/types"

	"github.com/duet-bft/duet/chain"
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

// ParseHostPort checks a HOST:PORT address (a port 1..65535, a host that
// is an IP address or a DNS name) and returns its port.
func ParseHostPort(addr string) (int, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return 0, fmt.Errorf("%q is not HOST:PORT: %w", addr, err)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 1 || p > 65535 {
		return 0, fmt.Errorf("%q: port %q is not a number in 1..65535", addr, port)
	}
	if host != "" && net.ParseIP(host) == nil && !validHostname(host) {
		return 0, fmt.Errorf("%q: host %q is neither an IP address nor a host name", addr, host)
	}
	return p, nil
}

func validHostname(h string) bool {
	if len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// Actor is a demo identity (as registered on L1) with its private key (the
// 32-byte seed).
type Actor struct {
	service.Actor
	PrivateKey []byte `json:"private_key"`
}

// Key returns the actor's Ed25519 private key.
func (a Actor) Key() ed25519.PrivateKey { return ed25519.NewKeyFromSeed(a.PrivateKey) }

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

// demoAdmin is the network's admin, who manages actors, beside the app's
// demo actors.
var demoAdmin = service.DemoActor{Role: service.RoleAdmin, Org: "consortium"}

func newActor(id, role, org string) (Actor, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return Actor{}, err
	}
	return Actor{Actor: service.Actor{ID: id, Role: role, Org: org, PublicKey: pub}, PrivateKey: priv.Seed()}, nil
}

func generate(spec Spec) (*Network, error) {
	n := &Network{ChainID: spec.ChainID, App: spec.App.Name, AppVersion: spec.App.Version, Note: devKeysNote}
	count := map[string]int{}
	for _, r := range append([]service.DemoActor{demoAdmin}, spec.App.DemoActors...) {
		count[r.Role]++
		a, err := newActor(r.Role+"-"+strconv.Itoa(count[r.Role]), r.Role, r.Org)
		if err != nil {
			return nil, err
		}
		n.Actors = append(n.Actors, a)
	}
	total := spec.Validators + spec.L2
	homes := make([]string, total)
	confs := make([]*cmtcfg.Config, total)
	peers := make([]string, 0, spec.Validators)
	var vals []types.GenesisValidator
	var l2nodes []int
	for i := 0; i < total; i++ {
		id := "v" + strconv.Itoa(i)
		if i >= spec.Validators {
			id = "l2-" + strconv.Itoa(i-spec.Validators)
		}
		home := filepath.Join(spec.Dir, id)
		homes[i] = home
		conf := cmtcfg.DefaultConfig()
		conf.SetRoot(home)
		conf.Moniker = id
		chain.Tune(conf, "cometbft_"+strings.ReplaceAll(id, "-", "_"))
		p2pPort, rpcPort := spec.BasePort+10*i, spec.BasePort+10*i+1
		conf.P2P.ListenAddress = fmt.Sprintf("tcp://127.0.0.1:%d", p2pPort)
		conf.RPC.ListenAddress = fmt.Sprintf("tcp://127.0.0.1:%d", rpcPort)
		confs[i] = conf
		for _, d := range []string{conf.RootDir + "/config", conf.DBDir()} {
			if err := os.MkdirAll(d, 0o700); err != nil {
				return nil, err
			}
		}
		nk, err := p2p.LoadOrGenNodeKey(conf.NodeKeyFile())
		if err != nil {
			return nil, err
		}
		pv := privval.LoadOrGenFilePV(conf.PrivValidatorKeyFile(), conf.PrivValidatorStateFile())
		node := Node{ID: id, Home: home, RPC: chain.RPCURL(conf.RPC.ListenAddress),
			P2P: fmt.Sprintf("127.0.0.1:%d", p2pPort), NodeID: string(nk.ID())}
		if i < spec.Validators {
			peers = append(peers, fmt.Sprintf("%s@127.0.0.1:%d", nk.ID(), p2pPort))
			pub, err := pv.GetPubKey()
			if err != nil {
				return nil, err
			}
			vals = append(vals, types.GenesisValidator{Address: pub.Address(), PubKey: pub, Power: 10, Name: id})
			n.Validators = append(n.Validators, node)
			continue
		}
		j := i - spec.Validators
		node.HTTP = spec.HTTP
		if j > 0 {
			node.HTTP = fmt.Sprintf("127.0.0.1:%d", portOf(spec.HTTP)+j)
		}
		n.L2 = append(n.L2, node)
		a, err := newActor(id, service.RoleL2, "l2-operator")
		if err != nil {
			return nil, err
		}
		n.Actors = append(n.Actors, a)
		if err := writeJSON(filepath.Join(home, "config", l2.KeyFile), l2.KeyFileContent{ID: a.ID, PublicKey: a.PublicKey, PrivateKey: a.PrivateKey}); err != nil {
			return nil, err
		}
		l2nodes = append(l2nodes, len(n.L2)-1)
	}
	// Each L2 node submits to every validator, starting with a different one.
	for _, j := range l2nodes {
		var rpcs []string
		for k := range n.Validators {
			rpcs = append(rpcs, n.Validators[(j+k)%len(n.Validators)].RPC)
		}
		cfg := l2.FileConfig{Node: n.L2[j].ID, HTTP: n.L2[j].HTTP, L1RPC: rpcs}
		if spec.L2Config != nil {
			spec.L2Config(&cfg)
		}
		if err := cfg.Write(filepath.Join(n.L2[j].Home, "config", l2.ConfigFile)); err != nil {
			return nil, err
		}
	}
	var actors []service.Actor
	for _, a := range n.Actors {
		actors = append(actors, a.Actor)
	}
	var appState json.RawMessage
	if spec.App.DemoGenesis != nil {
		appState = spec.App.DemoGenesis(actors)
	}
	params := types.DefaultConsensusParams()
	params.Block.MaxBytes = chain.MaxBlockBytes
	gen := &types.GenesisDoc{
		GenesisTime:     time.Now().UTC().Truncate(time.Millisecond),
		ChainID:         spec.ChainID,
		InitialHeight:   1,
		ConsensusParams: params,
		Validators:      vals,
		AppState:        spec.App.Genesis(actors, appState),
	}
	for i, conf := range confs {
		var others []string
		for j, p := range peers {
			if j != i {
				others = append(others, p)
			}
		}
		conf.P2P.PersistentPeers = strings.Join(others, ",")
		cmtcfg.WriteConfigFile(filepath.Join(homes[i], "config", "config.toml"), conf)
		if err := gen.SaveAs(conf.GenesisFile()); err != nil {
			return nil, err
		}
	}
	return n, nil
}

func portOf(addr string) int {
	i := strings.LastIndexByte(addr, ':')
	p, _ := strconv.Atoi(addr[i+1:])
	return p
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
