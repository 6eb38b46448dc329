// Package deploy assembles a duet network across organisations, in the
// spirit of the Cosmos gentx flow:
//
//  1. each organisation runs Init for each of its nodes: keys and config in
//     the node's home, and an Intent (intent.json) that says what the node
//     is, where others reach it, and its public keys, signed with its key
//     (a proof of possession);
//  2. one of them runs Genesis over every Intent and the initial actors:
//     it checks each intent and writes the genesis, whose SHA-256 every
//     organisation compares;
//  3. each organisation runs Join on each node's home: the genesis, and
//     the peers and L1 endpoints the intents name.
//
// Testnet does all three at once for a lab, and duet up uses it on one
// machine. No step needs another organisation's private key.
package deploy

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	cmtcfg "github.com/cometbft/cometbft/config"
	cmted "github.com/cometbft/cometbft/crypto/ed25519"
	"github.com/cometbft/cometbft/p2p"
	"github.com/cometbft/cometbft/privval"
	"github.com/cometbft/cometbft/types"

	"github.com/duet-bft/duet/chain"
	"github.com/duet-bft/duet/l2"
	"github.com/duet-bft/duet/protocol"
	"github.com/duet-bft/duet/service"
)

// Roles of a node.
const (
	RoleValidator = "validator"
	RoleL2        = "l2"
)

// IntentFormat tags an intent and the bytes its signature covers.
const IntentFormat = "duet/intent/v1"

// IntentFile is the intent's name in a node's home.
const IntentFile = "intent.json"

// Intent is what a node's organisation declares of it for the genesis.
type Intent struct {
	Format     string `json:"format"`
	Role       string `json:"role"`    // validator or l2
	Moniker    string `json:"moniker"` // its name; an L2 node's actor id on L1
	Org        string `json:"org"`     // the organisation that runs it
	App        string `json:"app"`     // the application (name and version) it runs
	AppVersion string `json:"app_version"`
	NodeID     string `json:"node_id"` // CometBFT node id, of its node key
	P2P        string `json:"p2p"`     // HOST:PORT its peers reach it at
	// RPC is HOST:PORT where L2 nodes reach a validator's CometBFT RPC to
	// submit sessions; "" if it is not published (L2 nodes then submit
	// through their own node's mempool only).
	RPC  string `json:"rpc,omitempty"`
	HTTP string `json:"http,omitempty"` // an L2 node's HTTP address, for clients
	// ConsensusKey is a validator's Ed25519 consensus public key; L2Key an
	// L2 node's Ed25519 signing key (its actor key on L1).
	ConsensusKey []byte `json:"consensus_key,omitempty"`
	L2Key        []byte `json:"l2_key,omitempty"`
	// Signature is by ConsensusKey (a validator) or L2Key (an L2 node) over
	// SigningBytes: proof that the organisation holds the key it declares.
	Signature []byte `json:"signature"`
}

// SigningBytes are what an intent's key signs: the format tag, a newline,
// and the intent's JSON without its signature.
func (in Intent) SigningBytes() []byte {
	in.Signature = nil
	b, _ := json.Marshal(in)
	return append([]byte(IntentFormat+"\n"), b...)
}

// Key returns the public key the intent declares for its role.
func (in Intent) Key() []byte {
	if in.Role == RoleValidator {
		return in.ConsensusKey
	}
	return in.L2Key
}

// Check verifies an intent on its own: its fields and its signature.
func (in Intent) Check() error {
	name := in.Moniker
	if name == "" {
		name = in.NodeID
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("intent of %s: %s", name, fmt.Sprintf(format, args...))
	}
	switch {
	case in.Format != IntentFormat:
		return bad("format %q, want %q", in.Format, IntentFormat)
	case in.Role != RoleValidator && in.Role != RoleL2:
		return bad("role %q, want %s or %s", in.Role, RoleValidator, RoleL2)
	case !protocol.ValidID(in.Moniker):
		return bad("moniker %q: want 1-64 characters of A-Z, a-z, 0-9, '.', '_' and '-'", in.Moniker)
	case in.Org == "":
		return bad("no org")
	case in.App == "" || in.AppVersion == "":
		return bad("no app")
	case len(in.NodeID) != 40 || strings.ToLower(in.NodeID) != in.NodeID:
		return bad("node_id %q is not a CometBFT node id (40 lower-case hex digits)", in.NodeID)
	}
	if _, err := hex.DecodeString(in.NodeID); err != nil {
		return bad("node_id %q is not hex", in.NodeID)
	}
	for _, a := range []struct{ name, v string }{{"p2p", in.P2P}, {"rpc", in.RPC}, {"http", in.HTTP}} {
		if a.v == "" && a.name != "p2p" {
			continue
		}
		if err := dialable(a.v); err != nil {
			return bad("%s: %v", a.name, err)
		}
	}
	if in.RPC != "" && loopback(in.RPC) && !loopback(in.P2P) {
		return bad("rpc %s is loopback: no other host can submit to it (publish an address the L2 nodes reach)", in.RPC)
	}
	key := in.Key()
	switch {
	case in.Role == RoleValidator && (len(in.L2Key) != 0 || in.HTTP != ""):
		return bad("a validator has no l2_key or http")
	case in.Role == RoleL2 && len(in.ConsensusKey) != 0:
		return bad("an L2 node has no consensus_key")
	case len(key) != ed25519.PublicKeySize:
		return bad("no Ed25519 public key for its role")
	}
	if err := service.ValidPublicKey(key); err != nil {
		return bad("%v", err)
	}
	if !ed25519.Verify(key, in.SigningBytes(), in.Signature) {
		return bad("the signature does not verify with the key it declares: it is not that key's holder's")
	}
	return nil
}

// ReadIntent reads an intent file strictly.
func ReadIntent(path string) (Intent, error) {
	var in Intent
	raw, err := os.ReadFile(path)
	if err != nil {
		return in, err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return in, fmt.Errorf("%s: %w", path, err)
	}
	return in, nil
}

// InitConfig says which node Init makes.
type InitConfig struct {
	Home    string // required; must not hold a node yet
	Moniker string // required
	Org     string // default: the moniker
	Role    string // validator or l2
	App     *service.App
	// P2P is HOST:PORT its peers reach it at (default 127.0.0.1:26656). It
	// listens on that address if HOST is an IP address of this machine's
	// loopback, and on every interface (0.0.0.0:PORT) otherwise, unless
	// P2PListen says where.
	P2P       string
	P2PListen string
	// RPC is HOST:PORT its CometBFT RPC listens on (default 127.0.0.1:26657,
	// loopback only). A validator that publishes it for L2 nodes sets
	// PublishRPC, and its intent names it.
	RPC        string
	PublishRPC bool
	// HTTP is an L2 node's gateway address (default 127.0.0.1:8080).
	HTTP string
	// Prometheus is where CometBFT's metrics listen (default
	// 127.0.0.1:26660, internal); "-" turns them off.
	Prometheus string
	// Tune adjusts the CometBFT config before it is written (duet up uses
	// it for its loopback settings); nil keeps the production defaults.
	Tune func(*cmtcfg.Config)
}

func (c *InitConfig) setDefaults() {
	if c.Org == "" {
		c.Org = c.Moniker
	}
	if c.P2P == "" {
		c.P2P = "127.0.0.1:26656"
	}
	if c.RPC == "" {
		c.RPC = "127.0.0.1:26657"
	}
	if c.HTTP == "" && c.Role == RoleL2 {
		c.HTTP = "127.0.0.1:8080"
	}
	if c.Prometheus == "" {
		c.Prometheus = "127.0.0.1:26660"
	}
	if c.P2PListen == "" {
		_, port, _ := net.SplitHostPort(c.P2P)
		if loopback(c.P2P) {
			c.P2PListen = c.P2P
		} else {
			c.P2PListen = net.JoinHostPort("0.0.0.0", port)
		}
	}
}

// Validate reports a config that cannot work, naming the field and value.
func (c *InitConfig) Validate() error {
	switch {
	case c.Home == "":
		return errors.New("init: --home is required")
	case !protocol.ValidID(c.Moniker):
		return fmt.Errorf("init: --moniker %q: want 1-64 characters of A-Z, a-z, 0-9, '.', '_' and '-'", c.Moniker)
	case c.Role != RoleValidator && c.Role != RoleL2:
		return fmt.Errorf("init: --role %q: want %s or %s", c.Role, RoleValidator, RoleL2)
	case c.App == nil:
		return errors.New("init: no application")
	}
	for _, a := range []struct{ flag, v string }{{"--p2p", c.P2P}, {"--p2p-listen", c.P2PListen}, {"--rpc", c.RPC}, {"--http", c.HTTP}, {"--prometheus", c.Prometheus}} {
		if a.v == "" || a.v == "-" && a.flag == "--prometheus" {
			continue
		}
		if _, err := ParseHostPort(a.v); err != nil {
			return fmt.Errorf("init: %s: %w", a.flag, err)
		}
	}
	if err := dialable(c.P2P); err != nil {
		return fmt.Errorf("init: --p2p: %w", err)
	}
	if c.PublishRPC {
		if err := dialable(c.RPC); err != nil {
			return fmt.Errorf("init: --rpc (published): %w", err)
		}
		if loopback(c.RPC) && !loopback(c.P2P) {
			return fmt.Errorf("init: --publish-rpc with --rpc %s: a loopback address no other host reaches; give the address the L2 nodes reach", c.RPC)
		}
	}
	if c.Role == RoleL2 {
		if _, err := ParseHostPort(c.HTTP); err != nil {
			return fmt.Errorf("init: --http: %w", err)
		}
	}
	for _, f := range []string{IntentFile, filepath.Join("config", "node_key.json")} {
		if _, err := os.Stat(filepath.Join(c.Home, f)); err == nil {
			return fmt.Errorf("init: %s already holds a node (%s); use another --home", c.Home, f)
		}
	}
	return nil
}

// Init creates a node's keys and config in cfg.Home and writes its intent
// (cfg.Home/intent.json), which it returns.
func Init(cfg InitConfig) (*Intent, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	conf := cmtcfg.DefaultConfig()
	conf.SetRoot(cfg.Home)
	conf.Moniker = cfg.Moniker
	chain.Tune(conf, "cometbft")
	// Production defaults: peers only from the intents, an address book
	// that keeps to routable addresses, RPC where it was asked (loopback by
	// default), metrics on an internal address.
	conf.P2P.PexReactor = false
	conf.P2P.AddrBookStrict = !loopback(cfg.P2P)
	// Peers come only from the intents, so several from one address (an
	// organisation's validator and L2 node behind one NAT, a lab's nodes on
	// one host) are expected, not an attack.
	conf.P2P.AllowDuplicateIP = true
	conf.P2P.ListenAddress = "tcp://" + cfg.P2PListen
	conf.P2P.ExternalAddress = "tcp://" + cfg.P2P
	conf.RPC.ListenAddress = "tcp://" + cfg.RPC
	if cfg.Prometheus != "-" {
		conf.Instrumentation.Prometheus = true
		conf.Instrumentation.PrometheusListenAddr = cfg.Prometheus
	}
	if cfg.Tune != nil {
		cfg.Tune(conf)
	}
	for _, d := range []string{filepath.Join(cfg.Home, "config"), conf.DBDir()} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	nk, err := p2p.LoadOrGenNodeKey(conf.NodeKeyFile())
	if err != nil {
		return nil, err
	}
	in := Intent{Format: IntentFormat, Role: cfg.Role, Moniker: cfg.Moniker, Org: cfg.Org, App: cfg.App.Name, AppVersion: cfg.App.Version,
		NodeID: string(nk.ID()), P2P: cfg.P2P}
	var sign func([]byte) ([]byte, error)
	if cfg.Role == RoleValidator {
		pv := privval.LoadOrGenFilePV(conf.PrivValidatorKeyFile(), conf.PrivValidatorStateFile())
		in.ConsensusKey = pv.Key.PubKey.Bytes()
		sign = pv.Key.PrivKey.Sign
		if cfg.PublishRPC {
			in.RPC = cfg.RPC
		}
	} else {
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		in.L2Key, in.HTTP = pub, cfg.HTTP
		sign = func(b []byte) ([]byte, error) { return ed25519.Sign(priv, b), nil }
		if err := WriteJSON(filepath.Join(cfg.Home, "config", l2.KeyFile), l2.KeyFileContent{ID: cfg.Moniker, PublicKey: pub, PrivateKey: priv.Seed()}, 0o600); err != nil {
			return nil, err
		}
		if err := (l2.FileConfig{Node: cfg.Moniker, HTTP: cfg.HTTP}).Write(filepath.Join(cfg.Home, "config", l2.ConfigFile)); err != nil {
			return nil, err
		}
	}
	if in.Signature, err = sign(in.SigningBytes()); err != nil {
		return nil, err
	}
	cmtcfg.WriteConfigFile(filepath.Join(cfg.Home, "config", "config.toml"), conf)
	if err := WriteJSON(filepath.Join(cfg.Home, IntentFile), in, 0o644); err != nil {
		return nil, err
	}
	return &in, nil
}

// dialable checks an address others dial: HOST:PORT with a host that is
// neither empty nor unspecified (0.0.0.0, ::).
func dialable(addr string) error {
	if _, err := ParseHostPort(addr); err != nil {
		return err
	}
	host, _, _ := net.SplitHostPort(addr)
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		return fmt.Errorf("%q: others cannot dial host %q: name the address they reach this node at", addr, host)
	}
	return nil
}

func loopback(addr string) bool {
	host, _, _ := net.SplitHostPort(addr)
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback() || host == "localhost"
}

// GenesisConfig is what Genesis makes a genesis of.
type GenesisConfig struct {
	ChainID string
	App     *service.App
	// Actors are the initial actors (ACTORS.json), without the L2 nodes,
	// which come from their intents.
	Actors  []service.Actor
	Intents []Intent
	// Time is the genesis time; zero means now. Organisations that each
	// build the genesis to compare hashes give the same time.
	Time time.Time
	// NoFaults allows fewer than 4 validators.
	NoFaults bool
	// AppState, if set, is the app's own genesis state (the "app" field of
	// the app state) instead of the one its DemoGenesis makes for the
	// actors.
	AppState json.RawMessage
}

// Genesis checks every intent and actor and returns the genesis: the
// validators and L2 nodes of the intents, the actors, and the app's state
// for them (its genesis rules, as under duet up).
func Genesis(cfg GenesisConfig) (*types.GenesisDoc, error) {
	if cfg.ChainID == "" || len(cfg.ChainID) > 50 {
		return nil, fmt.Errorf("genesis: --chain-id %q: want 1-50 characters", cfg.ChainID)
	}
	if cfg.App == nil {
		return nil, errors.New("genesis: no application")
	}
	seen := map[string]string{} // a value that must be unique -> whose
	unique := func(kind, v, who string) error {
		if prev, dup := seen[kind+"\x00"+v]; dup {
			return fmt.Errorf("genesis: %s and %s have the same %s %s", prev, who, kind, v)
		}
		seen[kind+"\x00"+v] = who
		return nil
	}
	// The same intents in any order make the same genesis.
	intents := slices.Clone(cfg.Intents)
	slices.SortFunc(intents, func(a, b Intent) int {
		return strings.Compare(a.Role+"\x00"+a.Moniker, b.Role+"\x00"+b.Moniker)
	})
	var vals []types.GenesisValidator
	actors := slices.Clone(cfg.Actors)
	for _, a := range actors {
		if a.Role == service.RoleL2 {
			return nil, fmt.Errorf("genesis: actor %s has role %s: L2 nodes come from their intents, not the actors", a.ID, service.RoleL2)
		}
		if err := unique("actor id", a.ID, "actor "+a.ID); err != nil {
			return nil, err
		}
		if err := unique("public key", hex.EncodeToString(a.PublicKey), "actor "+a.ID); err != nil {
			return nil, err
		}
	}
	for _, in := range intents {
		who := in.Role + " " + in.Moniker
		if err := in.Check(); err != nil {
			return nil, fmt.Errorf("genesis: %w", err)
		}
		if in.App != cfg.App.Name || in.AppVersion != cfg.App.Version {
			return nil, fmt.Errorf("genesis: %s runs %s %s, not %s %s", who, in.App, in.AppVersion, cfg.App.Name, cfg.App.Version)
		}
		for _, u := range [][2]string{{"moniker", in.Moniker}, {"node id", in.NodeID}, {"p2p address", in.P2P},
			{"public key", hex.EncodeToString(in.Key())}} {
			if err := unique(u[0], u[1], who); err != nil {
				return nil, err
			}
		}
		if in.Role == RoleValidator {
			pub := cmted.PubKey(in.ConsensusKey)
			vals = append(vals, types.GenesisValidator{Address: pub.Address(), PubKey: pub, Power: 10, Name: in.Moniker})
			continue
		}
		if err := unique("actor id", in.Moniker, who); err != nil {
			return nil, err
		}
		actors = append(actors, service.Actor{ID: in.Moniker, Role: service.RoleL2, Org: in.Org, PublicKey: in.L2Key})
	}
	switch n := len(vals); {
	case n == 0:
		return nil, errors.New("genesis: no validator intent")
	case n < 4 && !cfg.NoFaults:
		return nil, fmt.Errorf("genesis: %d validators tolerate no faulty validator (n = 3f+1 tolerate f; one fault takes 4); allow it explicitly to make such a genesis", n)
	}
	appState := cfg.AppState
	if appState == nil && cfg.App.DemoGenesis != nil {
		appState = cfg.App.DemoGenesis(actors)
	}
	params := types.DefaultConsensusParams()
	params.Block.MaxBytes = chain.MaxBlockBytes
	t := cfg.Time
	if t.IsZero() {
		t = time.Now()
	}
	doc := &types.GenesisDoc{GenesisTime: t.UTC().Truncate(time.Millisecond), ChainID: cfg.ChainID, InitialHeight: 1,
		ConsensusParams: params, Validators: vals, AppState: cfg.App.Genesis(actors, appState)}
	if err := doc.ValidateAndComplete(); err != nil {
		return nil, fmt.Errorf("genesis: %w", err)
	}
	// The chain loads the app state at InitChain; check it now, on an empty
	// state, so that a bad actor fails here and not on every node.
	if err := cfg.App.InitGenesis(service.NewTx(emptyStore{}), doc.AppState); err != nil {
		return nil, fmt.Errorf("genesis: %w", err)
	}
	return doc, nil
}

type emptyStore struct{}

func (emptyStore) Get(string) ([]byte, uint64, error) { return nil, 0, nil }

// WriteGenesis writes doc to path and returns the file's SHA-256 (hex),
// which every organisation compares.
func WriteGenesis(doc *types.GenesisDoc, path string) (string, error) {
	if err := doc.SaveAs(path); err != nil {
		return "", err
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:]), nil
}

// Join installs a genesis in a node's home and points the node at the
// others: persistent peers are every validator but itself, and an L2 node
// submits to the validators that publish their RPC. It checks that the
// genesis holds this node's key (as a validator, or as an L2 node's actor)
// and runs the app of this node's intent.
func Join(home string, genesis *types.GenesisDoc, intents []Intent) error {
	self, err := ReadIntent(filepath.Join(home, IntentFile))
	if err != nil {
		return fmt.Errorf("join: %w", err)
	}
	name, version, err := service.GenesisApp(genesis.AppState)
	if err != nil {
		return fmt.Errorf("join: %w", err)
	}
	if name != self.App || version != self.AppVersion {
		return fmt.Errorf("join: the genesis is of %s %s; this node was made for %s %s", name, version, self.App, self.AppVersion)
	}
	if !inGenesis(genesis, self) {
		return fmt.Errorf("join: the genesis does not hold this node's key (%s %s): it was made without this node's intent", self.Role, self.Moniker)
	}
	byKey := map[string]bool{}
	for _, in := range intents {
		k := hex.EncodeToString(in.Key())
		if byKey[k] {
			return fmt.Errorf("join: two intents declare the key %s (%s %s): give each node's intent once", k, in.Role, in.Moniker)
		}
		byKey[k] = true
	}
	for _, v := range genesis.Validators {
		if !byKey[hex.EncodeToString(v.PubKey.Bytes())] {
			return fmt.Errorf("join: no intent for validator %s of the genesis: give every validator's intent, so the node has every peer", v.Name)
		}
	}
	var peers, rpcs []string
	rotate := 0 // L2 nodes start submitting at different validators
	for _, in := range intents {
		if in.Role == RoleL2 && in.NodeID != self.NodeID && in.Moniker < self.Moniker {
			rotate++
		}
	}
	for _, in := range intents {
		if err := in.Check(); err != nil {
			return fmt.Errorf("join: %w", err)
		}
		if !inGenesis(genesis, in) {
			return fmt.Errorf("join: %s %s is not in the genesis", in.Role, in.Moniker)
		}
		if in.Role != RoleValidator || in.NodeID == self.NodeID {
			continue
		}
		peers = append(peers, in.NodeID+"@"+in.P2P)
		if in.RPC != "" {
			rpcs = append(rpcs, "http://"+in.RPC)
		}
	}
	if len(peers) == 0 && self.Role == RoleL2 {
		return errors.New("join: no validator intent given: an L2 node needs the validators' intents for its peers")
	}
	confPath := filepath.Join(home, "config", "config.toml")
	conf, err := chain.LoadConfig(home)
	if err != nil {
		return fmt.Errorf("join: %w", err)
	}
	conf.P2P.PersistentPeers = strings.Join(peers, ",")
	cmtcfg.WriteConfigFile(confPath, conf)
	if err := genesis.SaveAs(conf.GenesisFile()); err != nil {
		return err
	}
	if self.Role == RoleL2 {
		path := filepath.Join(home, "config", l2.ConfigFile)
		var fc l2.FileConfig
		raw, err := os.ReadFile(path)
		if err == nil {
			dec := json.NewDecoder(bytes.NewReader(raw))
			dec.DisallowUnknownFields()
			err = dec.Decode(&fc)
		}
		if err != nil {
			return fmt.Errorf("join: %s: %w", path, err)
		}
		if len(rpcs) == 0 {
			// No validator publishes its RPC: submit through this node's own.
			rpcs = []string{chain.RPCURL(conf.RPC.ListenAddress)}
		}
		k := rotate % len(rpcs)
		rpcs = append(rpcs[k:], rpcs[:k]...)
		fc.L1RPC = rpcs
		if err := fc.Write(path); err != nil {
			return err
		}
	}
	return nil
}

func inGenesis(g *types.GenesisDoc, in Intent) bool {
	if in.Role == RoleValidator {
		for _, v := range g.Validators {
			if bytes.Equal(v.PubKey.Bytes(), in.ConsensusKey) {
				return true
			}
		}
		return false
	}
	var st service.Genesis
	if json.Unmarshal(g.AppState, &st) != nil {
		return false
	}
	for _, a := range st.Actors {
		if a.ID == in.Moniker && a.Role == service.RoleL2 && bytes.Equal(a.PublicKey, in.L2Key) {
			return true
		}
	}
	return false
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

// WriteJSON writes v to path as indented JSON with a final newline.
func WriteJSON(path string, v any, mode os.FileMode) error {
	raw, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(raw, '\n'), mode)
}

// KeyedActor is an actor with its private key (the 32-byte seed): what a
// lab's generated actors are, never a production one.
type KeyedActor struct {
	service.Actor
	PrivateKey []byte `json:"private_key"`
}

// Key returns the actor's Ed25519 private key.
func (a KeyedActor) Key() ed25519.PrivateKey { return ed25519.NewKeyFromSeed(a.PrivateKey) }

// NewActor generates an actor's key pair.
func NewActor(id, role, org string) (KeyedActor, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return KeyedActor{}, err
	}
	return KeyedActor{Actor: service.Actor{ID: id, Role: role, Org: org, PublicKey: pub}, PrivateKey: priv.Seed()}, nil
}

// DemoActors generates a lab's actors: an admin, and the app's demo actors,
// named <role>-<n>.
func DemoActors(app *service.App) ([]KeyedActor, error) {
	var out []KeyedActor
	count := map[string]int{}
	for _, r := range append([]service.DemoActor{{Role: service.RoleAdmin, Org: "consortium"}}, app.DemoActors...) {
		count[r.Role]++
		a, err := NewActor(r.Role+"-"+strconv.Itoa(count[r.Role]), r.Role, r.Org)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}

// TestnetConfig describes a lab network Testnet generates at once.
type TestnetConfig struct {
	Dir        string // each node's home is Dir/<moniker>: v0, v1, ..., l2-0, ...
	ChainID    string
	App        *service.App
	Validators int
	L2         int
	// Hosts are the nodes' hosts, node i (validators first) on
	// Hosts[i % len(Hosts)]; default 127.0.0.1.
	Hosts []string
	// BasePort: node i listens on p2p BasePort+10i and RPC BasePort+10i+1
	// (on its host, published for the L2 nodes), and, unless NoMetrics, on
	// Prometheus BasePort+10i+2 (loopback).
	BasePort  int
	NoMetrics bool
	// HTTP is the first L2 node's HOST:PORT; L2 node j listens on PORT+j,
	// on HOST, or on its own host if HOST is empty (":8080").
	HTTP     string
	Actors   []service.Actor // the initial actors, besides the L2 nodes
	Tune     func(moniker string, c *cmtcfg.Config)
	L2Config func(*l2.FileConfig)
	NoFaults bool
}

// Testnet is what Testnet made: the genesis (and its SHA-256) and every
// node's intent, validators first.
type Testnet struct {
	Genesis *types.GenesisDoc
	SHA256  string
	Intents []Intent
	Homes   []string
}

// MakeTestnet runs Init for every node, Genesis over their intents, and
// Join on every home: the same steps as organisations take, in one place.
func MakeTestnet(cfg TestnetConfig) (*Testnet, error) {
	if len(cfg.Hosts) == 0 {
		cfg.Hosts = []string{"127.0.0.1"}
	}
	if cfg.Validators < 1 || cfg.L2 < 0 {
		return nil, fmt.Errorf("testnet: %d validators and %d L2 nodes", cfg.Validators, cfg.L2)
	}
	httpHost, httpPort, err := net.SplitHostPort(cfg.HTTP)
	port, perr := strconv.Atoi(httpPort)
	if cfg.L2 > 0 && (err != nil || perr != nil) {
		return nil, fmt.Errorf("testnet: HTTP address %q is not HOST:PORT", cfg.HTTP)
	}
	t := &Testnet{}
	for i := range cfg.Validators + cfg.L2 {
		host := cfg.Hosts[i%len(cfg.Hosts)]
		ic := InitConfig{Role: RoleValidator, Moniker: "v" + strconv.Itoa(i), App: cfg.App,
			P2P: net.JoinHostPort(host, strconv.Itoa(cfg.BasePort+10*i)), RPC: net.JoinHostPort(host, strconv.Itoa(cfg.BasePort+10*i+1)),
			PublishRPC: true, Prometheus: net.JoinHostPort("127.0.0.1", strconv.Itoa(cfg.BasePort+10*i+2))}
		if cfg.NoMetrics {
			ic.Prometheus = "-"
		}
		if i >= cfg.Validators {
			j := i - cfg.Validators
			ic.Role, ic.Moniker, ic.Org = RoleL2, "l2-"+strconv.Itoa(j), "l2-operator"
			h := httpHost
			if h == "" {
				h = host
			}
			ic.HTTP = net.JoinHostPort(h, strconv.Itoa(port+j))
		}
		ic.Home = filepath.Join(cfg.Dir, ic.Moniker)
		if cfg.Tune != nil {
			ic.Tune = func(c *cmtcfg.Config) { cfg.Tune(ic.Moniker, c) }
		}
		in, err := Init(ic)
		if err != nil {
			return nil, err
		}
		t.Intents = append(t.Intents, *in)
		t.Homes = append(t.Homes, ic.Home)
	}
	doc, err := Genesis(GenesisConfig{ChainID: cfg.ChainID, App: cfg.App, Actors: cfg.Actors, Intents: t.Intents, NoFaults: cfg.NoFaults})
	if err != nil {
		return nil, err
	}
	t.Genesis = doc
	if t.SHA256, err = WriteGenesis(doc, filepath.Join(cfg.Dir, "genesis.json")); err != nil {
		return nil, err
	}
	for i, home := range t.Homes {
		if err := Join(home, doc, t.Intents); err != nil {
			return nil, err
		}
		if t.Intents[i].Role == RoleL2 && cfg.L2Config != nil {
			path := filepath.Join(home, "config", l2.ConfigFile)
			fc, err := l2.LoadFileConfig(path)
			if err != nil {
				return nil, err
			}
			cfg.L2Config(&fc)
			if err := fc.Write(path); err != nil {
				return nil, err
			}
		}
	}
	return t, nil
}
