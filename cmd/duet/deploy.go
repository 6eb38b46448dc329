package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cometbft/cometbft/types"

	"github.com/duet-bft/duet/deploy"
	"github.com/duet-bft/duet/service"
)

// The path for independent organisations: init (each node), genesis (one
// of them, every intent), join (each node). testnet does all three for a
// lab. See docs/deploy.md.

func newFlags(name, usage string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: %s\n\nFlags:\n", usage)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses args and refuses positional arguments unless allowed.
func parse(fs *flag.FlagSet, args []string, positional bool) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if !positional && fs.NArg() > 0 {
		return fmt.Errorf("%s: unexpected argument %q", fs.Name(), fs.Arg(0))
	}
	return nil
}

func runInit(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("init", "duet init --home DIR --moniker NAME --role validator|l2 [--p2p HOST:PORT] [--rpc HOST:PORT] [--http HOST:PORT] [--app NAME]", stderr)
	var c deploy.InitConfig
	fs.StringVar(&c.Home, "home", "", "the node's home directory (required; must not hold a node)")
	fs.StringVar(&c.Moniker, "moniker", "", "the node's name; an L2 node's actor id on L1 (required)")
	fs.StringVar(&c.Org, "org", "", "the organisation that runs it (default: the moniker)")
	fs.StringVar(&c.Role, "role", "", "validator or l2 (required)")
	fs.StringVar(&c.P2P, "p2p", "127.0.0.1:26656", "HOST:PORT its peers reach it at")
	fs.StringVar(&c.P2PListen, "p2p-listen", "", "HOST:PORT it listens on for peers (default: --p2p on loopback, else 0.0.0.0:PORT)")
	fs.StringVar(&c.RPC, "rpc", "127.0.0.1:26657", "HOST:PORT its CometBFT RPC listens on")
	fs.BoolVar(&c.PublishRPC, "publish-rpc", false, "a validator: name --rpc in its intent, for L2 nodes to submit to (open it to them only)")
	fs.StringVar(&c.HTTP, "http", "127.0.0.1:8080", "an L2 node's HTTP address")
	fs.StringVar(&c.Prometheus, "prometheus", "127.0.0.1:26660", "HOST:PORT of CometBFT's metrics (internal); - for none")
	appName := fs.String("app", defaultApp, "the application it runs (duet apps lists them)")
	if err := parse(fs, args, false); err != nil {
		return err
	}
	app, err := lookupApp(*appName)
	if err != nil {
		return err
	}
	c.App = app
	in, err := deploy.Init(c)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s %s: node id %s; send %s to whoever makes the genesis\n",
		in.Role, in.Moniker, in.NodeID, filepath.Join(c.Home, deploy.IntentFile))
	return nil
}

func readIntents(paths []string) ([]deploy.Intent, error) {
	if len(paths) == 0 {
		return nil, errors.New("no INTENT.json given")
	}
	var out []deploy.Intent
	for _, p := range paths {
		in, err := deploy.ReadIntent(p)
		if err != nil {
			return nil, err
		}
		out = append(out, in)
	}
	return out, nil
}

func runGenesis(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("genesis", "duet genesis --chain-id ID --actors ACTORS.json --out genesis.json [--app NAME] INTENT.json...", stderr)
	chainID := fs.String("chain-id", "", "the chain's id (required)")
	actorsPath := fs.String("actors", "", `the initial actors: a JSON array of {"id","role","org","public_key"} (required; [] for none)`)
	out := fs.String("out", "genesis.json", "where to write the genesis (not overwritten)")
	appName := fs.String("app", defaultApp, "the application")
	at := fs.String("time", "", "genesis time, RFC 3339 (default now): organisations that each build the genesis to compare give the same")
	noFaults := fs.Bool("no-faults", false, "allow fewer than 4 validators")
	appStatePath := fs.String("app-state", "", `the app's own genesis state (JSON), instead of what its demo genesis makes for the actors (as under duet up)`)
	if err := parse(fs, args, true); err != nil {
		return err
	}
	var appState json.RawMessage
	if *appStatePath != "" {
		raw, err := os.ReadFile(*appStatePath)
		if err != nil {
			return fmt.Errorf("genesis: --app-state: %w", err)
		}
		if !json.Valid(raw) {
			return fmt.Errorf("genesis: --app-state %s: not JSON", *appStatePath)
		}
		appState = raw
	}
	if *chainID == "" || *actorsPath == "" {
		return errors.New("genesis: --chain-id and --actors are required")
	}
	if _, err := os.Stat(*out); err == nil {
		return fmt.Errorf("genesis: --out %s exists; remove it or give another path", *out)
	}
	app, err := lookupApp(*appName)
	if err != nil {
		return err
	}
	var t time.Time
	if *at != "" {
		if t, err = time.Parse(time.RFC3339Nano, *at); err != nil {
			return fmt.Errorf("genesis: --time %q: %w", *at, err)
		}
	}
	actors, err := readActors(*actorsPath)
	if err != nil {
		return err
	}
	intents, err := readIntents(fs.Args())
	if err != nil {
		return fmt.Errorf("genesis: %w", err)
	}
	doc, err := deploy.Genesis(deploy.GenesisConfig{ChainID: *chainID, App: app, Actors: actors, Intents: intents, Time: t, NoFaults: *noFaults, AppState: appState})
	if err != nil {
		return err
	}
	sum, err := deploy.WriteGenesis(doc, *out)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: %d validators, %d actors; sha256 %s (every organisation compares it)\n", *out, len(doc.Validators), len(actors)+len(intents)-len(doc.Validators), sum)
	return nil
}

// readActors reads ACTORS.json strictly: the actor fields of cluster.json,
// without private keys.
func readActors(path string) ([]service.Actor, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("genesis: --actors: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var actors []service.Actor
	if err := dec.Decode(&actors); err != nil {
		return nil, fmt.Errorf("genesis: --actors %s: %w", path, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("genesis: --actors %s: data after the JSON array", path)
	}
	return actors, nil
}

func runJoin(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("join", "duet join --home DIR --genesis genesis.json INTENT.json...", stderr)
	home := fs.String("home", "", "the node's home (made by duet init)")
	genesis := fs.String("genesis", "", "the genesis every organisation agreed on")
	sum := fs.String("sha256", "", "the genesis's SHA-256, as duet genesis printed it: join refuses another file")
	if err := parse(fs, args, true); err != nil {
		return err
	}
	if *home == "" || *genesis == "" {
		return errors.New("join: --home and --genesis are required")
	}
	if *sum != "" {
		raw, err := os.ReadFile(*genesis)
		if err != nil {
			return fmt.Errorf("join: --genesis: %w", err)
		}
		if got := sha256.Sum256(raw); hex.EncodeToString(got[:]) != strings.ToLower(*sum) {
			return fmt.Errorf("join: --genesis %s has SHA-256 %x, not the %s agreed (--sha256)", *genesis, got, *sum)
		}
	}
	doc, err := types.GenesisDocFromFile(*genesis)
	if err != nil {
		return fmt.Errorf("join: --genesis: %w", err)
	}
	intents, err := readIntents(fs.Args())
	if err != nil {
		return fmt.Errorf("join: %w", err)
	}
	if err := deploy.Join(*home, doc, intents); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s joined chain %s; start it with: duet node --home %s\n", *home, doc.ChainID, *home)
	return nil
}

func runTestnet(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("testnet", "duet testnet --out DIR --validators N --l2 M [--hosts H1,H2,...] [--app NAME]", stderr)
	var c deploy.TestnetConfig
	fs.StringVar(&c.Dir, "out", "", "directory for every node's home, genesis.json, actors.json and keys.json (required)")
	fs.IntVar(&c.Validators, "validators", 4, "number of validators (n = 3f+1)")
	fs.IntVar(&c.L2, "l2", 1, "number of L2 nodes")
	hosts := fs.String("hosts", "127.0.0.1", "comma-separated hosts; node i (validators first) on host i mod their number")
	fs.StringVar(&c.ChainID, "chain-id", "duet-testnet", "the chain's id")
	fs.IntVar(&c.BasePort, "base-port", 26656, "node i listens on p2p base+10i, RPC base+10i+1, metrics base+10i+2")
	fs.StringVar(&c.HTTP, "http", ":8080", "the first L2 node's HTTP address; L2 node j on PORT+j (on its own host if HOST is empty)")
	fs.BoolVar(&c.NoFaults, "no-faults", false, "allow fewer than 4 validators")
	appName := fs.String("app", defaultApp, "the application")
	if err := parse(fs, args, false); err != nil {
		return err
	}
	switch {
	case c.Dir == "":
		return errors.New("testnet: --out is required")
	case c.Validators < 1 || c.Validators > 64:
		return fmt.Errorf("testnet: --validators %d: want 1..64", c.Validators)
	case c.L2 < 0 || c.L2 > 16:
		return fmt.Errorf("testnet: --l2 %d: want 0..16", c.L2)
	case c.BasePort < 1024 || c.BasePort+10*(c.Validators+c.L2) > 65535:
		return fmt.Errorf("testnet: --base-port %d: out of range for %d nodes", c.BasePort, c.Validators+c.L2)
	}
	for _, h := range strings.Split(*hosts, ",") {
		if _, err := deploy.ParseHostPort(h + ":1"); err != nil || h == "" {
			return fmt.Errorf("testnet: --hosts: %q is not a host", h)
		}
		c.Hosts = append(c.Hosts, h)
	}
	app, err := lookupApp(*appName)
	if err != nil {
		return err
	}
	c.App = app
	if entries, err := os.ReadDir(c.Dir); err == nil && len(entries) > 0 {
		return fmt.Errorf("testnet: --out %s is not empty", c.Dir)
	}
	if err := os.MkdirAll(c.Dir, 0o700); err != nil {
		return err
	}
	demo, err := deploy.DemoActors(app)
	if err != nil {
		return err
	}
	for _, a := range demo {
		c.Actors = append(c.Actors, a.Actor)
	}
	t, err := deploy.MakeTestnet(c)
	if err != nil {
		return err
	}
	if err := deploy.WriteJSON(filepath.Join(c.Dir, "actors.json"), c.Actors, 0o644); err != nil {
		return err
	}
	if err := deploy.WriteJSON(filepath.Join(c.Dir, "keys.json"), demo, 0o600); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: genesis sha256 %s\n", c.Dir, t.SHA256)
	for i, in := range t.Intents {
		fmt.Fprintf(stdout, "  %-9s %-6s p2p %s  home %s\n", in.Role, in.Moniker, in.P2P, t.Homes[i])
	}
	fmt.Fprintf(stdout, "actors.json holds the actors, keys.json their development keys. Start each node with: duet node --home HOME\n")
	return nil
}

// runKeygen is `duet keygen --out FILE`: a new Ed25519 key for an actor (an
// organisation's admin for ACTORS.json, say). The file holds the key (0600;
// duet actor's --admin-key reads it); the public key is printed.
func runKeygen(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("keygen", "duet keygen --out FILE", stderr)
	out := fs.String("out", "", "where to write the private key (required; not overwritten)")
	if err := parse(fs, args, false); err != nil {
		return err
	}
	if *out == "" {
		return errors.New("keygen: --out is required")
	}
	a, err := deploy.NewActor("key", "key", "key")
	if err != nil {
		return err
	}
	raw, _ := json.MarshalIndent(map[string][]byte{"public_key": a.PublicKey, "private_key": a.PrivateKey}, "", "  ")
	f, err := os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("keygen: --out: %w", err)
	}
	if _, err := f.Write(append(raw, '\n')); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	pub, _ := json.Marshal(a.PublicKey)
	fmt.Fprintf(stdout, "public key %s (for ACTORS.json: {\"id\":\"...\",\"role\":\"...\",\"org\":\"...\",\"public_key\":%s}); private key in %s\n", pub, pub, *out)
	return nil
}
