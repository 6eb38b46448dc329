package main

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/cometbft/cometbft/privval"
	"github.com/cometbft/cometbft/types"

	"github.com/duet-bft/duet/chain"
	"github.com/duet-bft/duet/l2"
	"github.com/duet-bft/duet/service"
)

// setFlags collects --set KEY=VALUE flags (chain.Overrides).
type setFlags chain.Overrides

func (s setFlags) String() string { return "" }

func (s setFlags) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return fmt.Errorf("--set %q: want KEY=VALUE, e.g. p2p.persistent_peers=ID@HOST:PORT or l2.batch_interval=20ms", v)
	}
	s[k] = val
	return nil
}

// overrides are a node's settings over its files: DUET_* environment
// variables, then --set flags (chain.Overrides).
func overrides(home string, flags setFlags) (chain.Overrides, error) {
	keys, err := chain.ConfigKeys(home)
	if err != nil {
		return nil, err
	}
	if l2.IsL2(home) {
		keys = append(keys, l2.ConfigKeys()...)
	}
	o := chain.FromEnv(keys)
	if unknown := chain.UnknownEnv(keys); len(unknown) > 0 {
		return nil, fmt.Errorf("the environment sets %s, which name no setting of this node (config.toml's keys, and l2.json's for an L2 node: docs/deploy.md); unset them", strings.Join(unknown, ", "))
	}
	for k, v := range flags {
		if strings.HasPrefix(k, chain.L2Prefix) && !l2.IsL2(home) {
			return nil, fmt.Errorf("--set %s: %s is not an L2 node's home", k, home)
		}
		o[k] = v
	}
	return o, nil
}

// runConfigCmd is `duet config check --home DIR [--set KEY=VALUE]...`: it
// checks a node's files and settings as duet node would at start, without
// starting it.
func runConfigCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "check" {
		fmt.Fprintln(stderr, "usage: duet config check --home DIR [--set KEY=VALUE]...")
		return 2
	}
	fs := newFlags("config check", "duet config check --home DIR [--set KEY=VALUE]...", stderr)
	home := fs.String("home", "", "the node's home (required)")
	sets := setFlags{}
	fs.Var(sets, "set", "a setting over the files, KEY=VALUE (repeatable; see docs/deploy.md)")
	if err := parse(fs, args[1:], false); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "duet config check:", err)
		return 2
	}
	if *home == "" {
		fmt.Fprintln(stderr, "duet config check: --home is required")
		return 2
	}
	summary, err := checkHome(*home, sets)
	if err != nil {
		fmt.Fprintln(stdout, "INVALID:", err)
		return 1
	}
	fmt.Fprintln(stdout, summary)
	return 0
}

// checkHome runs the checks of a node's start on its home.
func checkHome(home string, sets setFlags) (string, error) {
	app, err := nodeApp(home, "")
	if err != nil {
		return "", err
	}
	o, err := overrides(home, sets)
	if err != nil {
		return "", err
	}
	conf, err := chain.LoadConfigWith(home, o)
	if err != nil {
		return "", err
	}
	doc, err := types.GenesisDocFromFile(conf.GenesisFile())
	if err != nil {
		return "", fmt.Errorf("genesis: %w", err)
	}
	role := "full node"
	if l2.IsL2(home) {
		fc, err := l2.Check(home, o)
		if err != nil {
			return "", err
		}
		var kf l2.KeyFileContent
		raw, _ := os.ReadFile(filepath.Join(home, "config", l2.KeyFile))
		json.Unmarshal(raw, &kf)
		var st service.Genesis
		json.Unmarshal(doc.AppState, &st)
		found := false
		for _, a := range st.Actors {
			if a.ID == fc.Node && a.Role == service.RoleL2 && bytes.Equal(a.PublicKey, ed25519.NewKeyFromSeed(kf.PrivateKey).Public().(ed25519.PublicKey)) {
				found = true
			}
		}
		if !found {
			return "", fmt.Errorf("the genesis does not register L2 node %s with this home's key (%s)", fc.Node, l2.KeyFile)
		}
		role = fmt.Sprintf("L2 node %s, HTTP %s, submitting to %d validators", fc.Node, fc.HTTP, len(fc.L1RPC))
	} else if _, err := os.Stat(conf.PrivValidatorKeyFile()); err == nil {
		pv := privval.LoadFilePV(conf.PrivValidatorKeyFile(), conf.PrivValidatorStateFile())
		for _, v := range doc.Validators {
			if v.PubKey.Equals(pv.Key.PubKey) {
				role = "validator " + v.Name
			}
		}
	}
	peers := 0
	if conf.P2P.PersistentPeers != "" {
		peers = len(strings.Split(conf.P2P.PersistentPeers, ","))
	}
	var set []string
	for k := range o {
		set = append(set, k)
	}
	sort.Strings(set)
	s := fmt.Sprintf("ok: %s of chain %s (%s), p2p %s, RPC %s, %d persistent peers", role, doc.ChainID, app, conf.P2P.ListenAddress, conf.RPC.ListenAddress, peers)
	if len(set) > 0 {
		s += "; set over the files: " + strings.Join(set, ", ")
	}
	return s, nil
}
