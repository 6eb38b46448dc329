package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/duet-bft/duet/apps/supplychain"
	"github.com/duet-bft/duet/client"
	"github.com/duet-bft/duet/deploy"
	"github.com/duet-bft/duet/protocol"
	"github.com/duet-bft/duet/service"
)

// orgNet is a network assembled as independent organisations would:
// duet init per node, duet genesis over the intents, duet join per node,
// then duet node per home.
type orgNet struct {
	dir     string
	homes   []string // validators first
	intents []string
	actors  map[string]deploy.KeyedActor
	http    string // the L2 node's
	genesis string
}

// assemble runs init for nodes validators and one L2 node on loopback,
// the genesis and join, through the binary.
func assemble(t *testing.T, validators int) *orgNet {
	t.Helper()
	n := &orgNet{dir: t.TempDir(), actors: map[string]deploy.KeyedActor{}}
	base := freeBasePort(t, validators+1)
	for i := range validators + 1 {
		moniker, role := fmt.Sprintf("v%d", i), "validator"
		args := []string{"--publish-rpc"}
		if i == validators {
			moniker, role = "l2-0", "l2"
			n.http = fmt.Sprintf("127.0.0.1:%d", base+200)
			args = []string{"--http", n.http}
		}
		home := filepath.Join(n.dir, moniker)
		run(t, append([]string{"init", "--home", home, "--moniker", moniker, "--org", "org-" + moniker, "--role", role,
			"--p2p", fmt.Sprintf("127.0.0.1:%d", base+10*i), "--rpc", fmt.Sprintf("127.0.0.1:%d", base+10*i+1), "--prometheus", "-"}, args...)...)
		n.homes = append(n.homes, home)
		n.intents = append(n.intents, filepath.Join(home, deploy.IntentFile))
	}
	var public []service.Actor
	for _, r := range [][2]string{{"admin-1", service.RoleAdmin}, {"supplier-1", supplychain.RoleSupplier},
		{"operator-1", supplychain.RoleOperator}, {"courier-1", supplychain.RoleCourier}} {
		a, err := deploy.NewActor(r[0], r[1], "org-"+r[0])
		if err != nil {
			t.Fatal(err)
		}
		n.actors[a.ID] = a
		public = append(public, a.Actor)
	}
	raw, _ := json.Marshal(public)
	actorsPath := filepath.Join(n.dir, "actors.json")
	os.WriteFile(actorsPath, raw, 0o644)
	n.genesis = filepath.Join(n.dir, "genesis.json")
	out := run(t, append([]string{"genesis", "--chain-id", "duet-orgs", "--actors", actorsPath, "--out", n.genesis,
		"--time", "2026-11-30T00:00:00Z"}, n.intents...)...)
	// A second organisation builds the same genesis from the same inputs.
	again := run(t, append([]string{"genesis", "--chain-id", "duet-orgs", "--actors", actorsPath, "--out", n.genesis + ".2",
		"--time", "2026-11-30T00:00:00Z"}, n.intents...)...)
	sha := strings.Fields(out)[len(strings.Fields(out))-5]
	if !strings.Contains(again, sha) {
		t.Errorf("two organisations' genesis differ:\n%s\n%s", out, again)
	}
	// A join checks the hash the organisations agreed on.
	cmd := exec.Command(bin, append([]string{"join", "--home", n.homes[0], "--genesis", n.genesis, "--sha256", strings.Repeat("0", 64)}, n.intents...)...)
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "not the "+strings.Repeat("0", 64)+" agreed") {
		t.Errorf("join with another hash: %v: %s", err, out)
	}
	for _, home := range n.homes {
		run(t, append([]string{"join", "--home", home, "--genesis", n.genesis, "--sha256", sha}, n.intents...)...)
	}
	return n
}

// run runs the binary and returns its stdout; it fails the test on a
// non-zero exit.
func run(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, args...)
	out, err := cmd.Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("duet %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr)
	}
	return string(out)
}

// start runs duet node for every home; t's cleanup stops them.
func (n *orgNet) start(t *testing.T) {
	t.Helper()
	for _, home := range n.homes {
		startNode(t, home)
	}
}

// startNode runs duet node for home, as a command of wrap (such as ip
// netns exec NS) if given; t's cleanup stops it (before any cleanup
// registered earlier) and, if the test failed, logs the end of its log.
func startNode(t *testing.T, home string, wrap ...string) {
	t.Helper()
	logf, err := os.Create(filepath.Join(home, "node.log"))
	if err != nil {
		t.Fatal(err)
	}
	args := append(wrap, bin, "node", "--home", home)
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stopProcess(cmd, 20*time.Second)
		logf.Close()
		if t.Failed() {
			raw, _ := os.ReadFile(logf.Name())
			t.Logf("%s:\n%s", logf.Name(), lastLines(string(raw), 15))
		}
	})
}

// TestInitGenesisJoin: a network assembled by independent organisations
// (init, genesis, join: no one holds another's key) runs the paper's
// workflow; the genesis refuses a forged or duplicated intent, a
// validator's join refuses a genesis without its key.
func TestInitGenesisJoin(t *testing.T) {
	n := assemble(t, 4)

	// What the genesis refuses.
	in, err := deploy.ReadIntent(n.intents[1])
	if err != nil {
		t.Fatal(err)
	}
	forged := in
	forged.P2P = "127.0.0.9:26656" // another address, the signature left as it was
	bad := filepath.Join(n.dir, "forged.json")
	raw, _ := json.Marshal(forged)
	os.WriteFile(bad, raw, 0o644)
	for name, tc := range map[string]struct {
		intents []string
		want    string
	}{
		"a forged intent":      {append(n.intents[:1:1], bad), "the signature does not verify"},
		"an intent twice":      {append(n.intents[:2:2], n.intents[1]), "have the same"},
		"three validators":     {n.intents[:3], "tolerate no faulty validator"},
		"no intent at all":     {nil, "no INTENT.json"},
		"a missing file":       {[]string{filepath.Join(n.dir, "nope.json")}, "no such file"},
		"an intent of l2 only": {n.intents[4:], "no validator intent"},
	} {
		cmd := exec.Command(bin, append([]string{"genesis", "--chain-id", "x", "--actors", filepath.Join(n.dir, "actors.json"), "--out", filepath.Join(n.dir, "g.json")}, tc.intents...)...)
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), tc.want) {
			t.Errorf("genesis of %s: %v: %s (want an error saying %q)", name, err, out, tc.want)
		}
	}
	// What init refuses: addresses no one can dial, a loopback RPC
	// published to other hosts.
	for _, args := range [][]string{
		{"--p2p", "0.0.0.0:26656", "--role", "validator"},
		{"--p2p", ":26656", "--role", "validator"},
		{"--p2p", "203.0.113.5:26656", "--rpc", "127.0.0.1:26657", "--publish-rpc", "--role", "validator"},
	} {
		home := filepath.Join(n.dir, "bad-"+strings.Join(args, "")[:6])
		cmd := exec.Command(bin, append([]string{"init", "--home", home, "--moniker", "x1"}, args...)...)
		if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "--p2p") && !strings.Contains(string(out), "--publish-rpc") {
			t.Errorf("init %v: %v: %s", args, err, out)
		}
	}
	// An actor may not pose as an L2 node; the app's state may be given.
	var l2actor []map[string]any
	json.Unmarshal([]byte(`[{"id":"fake-l2","role":"l2","org":"x","public_key":"`+base64Key(t)+`"}]`), &l2actor)
	raw, _ = json.Marshal(l2actor)
	os.WriteFile(filepath.Join(n.dir, "l2actors.json"), raw, 0o644)
	cmd := exec.Command(bin, append([]string{"genesis", "--chain-id", "x", "--actors", filepath.Join(n.dir, "l2actors.json"), "--out", filepath.Join(n.dir, "g.json")}, n.intents...)...)
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "L2 nodes come from their intents") {
		t.Errorf("genesis with an actor of role l2: %v: %s", err, out)
	}
	// A node must be given every validator's intent to join.
	cmd = exec.Command(bin, "join", "--home", n.homes[0], "--genesis", n.genesis, n.intents[0])
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "no intent for validator") {
		t.Errorf("join with one intent: %v: %s", err, out)
	}

	// A node whose key the genesis lacks cannot join it.
	stranger := filepath.Join(n.dir, "stranger")
	run(t, "init", "--home", stranger, "--moniker", "v9", "--role", "validator", "--p2p", "127.0.0.1:1", "--prometheus", "-")
	cmd = exec.Command(bin, append([]string{"join", "--home", stranger, "--genesis", n.genesis}, n.intents...)...)
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "does not hold this node's key") {
		t.Errorf("join of a node the genesis lacks: %v: %s", err, out)
	}

	// duet config check: a node's files and settings, as its start would
	// check them; DUET_* environment variables and --set flags over them.
	for _, tc := range []struct {
		home string
		env  []string
		args []string
		code int
		want string
	}{
		{n.homes[0], nil, nil, 0, "ok: validator v0 of chain duet-orgs"},
		{n.homes[4], nil, nil, 0, "ok: L2 node l2-0, HTTP " + n.http + ", submitting to 4 validators"},
		{n.homes[4], []string{"DUET_L2_MAX_OPEN=7", "DUET_RPC_LADDR=tcp://127.0.0.1:1"}, nil, 0, "RPC tcp://127.0.0.1:1"},
		{n.homes[4], nil, []string{"--set", "l2.batch_interval=soon"}, 1, "batch_interval"},
		{n.homes[4], nil, []string{"--set", "l2.max_session_bytes=99999999"}, 1, "MaxSessionBytes"},
		{n.homes[0], nil, []string{"--set", "p2p.no_such_key=1"}, 1, `config.toml has no key "p2p.no_such_key"`},
		{n.homes[0], nil, []string{"--set", "l2.batch_interval=20ms"}, 1, "not an L2 node's home"},
		{n.homes[0], nil, []string{"--set", "novalue"}, 2, ""},
		{n.homes[4], []string{"DUET_L2_BATCH_INTERVL=5ms"}, nil, 1, "DUET_L2_BATCH_INTERVL, which name no setting"},
		{n.homes[4], nil, []string{"--set", "l2.http="}, 1, "node, http and l1_rpc are required"},
		{n.homes[4], nil, []string{"--set", "l2.l1_rpc=notaurl"}, 1, `l1_rpc "notaurl"`},
	} {
		cmd := exec.Command(bin, append([]string{"config", "check", "--home", tc.home}, tc.args...)...)
		cmd.Env = append(os.Environ(), tc.env...)
		out, _ := cmd.CombinedOutput()
		if code := cmd.ProcessState.ExitCode(); code != tc.code || !strings.Contains(string(out), tc.want) {
			t.Errorf("config check %s %v %v: exit %d: %s (want %d, %q)", filepath.Base(tc.home), tc.env, tc.args, code, out, tc.code, tc.want)
		}
	}

	// The network runs the paper's workflow.
	n.start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := client.New("http://" + n.http)
	waitReady(t, ctx, c)
	workflow(t, ctx, c, n.actors, "PKG-ORG")
}

// waitReady waits until the L2 node c talks to says it is ready.
func waitReady(t *testing.T, ctx context.Context, c *client.Client) {
	t.Helper()
	for {
		var net struct{ Ready bool }
		if c.Get(ctx, "/v1/network", &net) == nil && net.Ready {
			return
		}
		if ctx.Err() != nil {
			t.Fatal("the L2 node did not get ready in time")
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// workflow runs the paper's workflow on package pkg through c and waits
// until L1 commits it.
func workflow(t *testing.T, ctx context.Context, c *client.Client, actors map[string]deploy.KeyedActor, pkg string) {
	t.Helper()
	signer := func(id string) client.Signer { return client.Signer{ID: id, Key: ed25519.PrivateKey(actors[id].Key())} }
	if _, err := supplychain.CreatePackage(ctx, c, signer("supplier-1"), "create-"+pkg, supplychain.NewPackage{ID: pkg, Destination: "DC", Items: items()}); err != nil {
		t.Fatalf("create %s: %v", pkg, err)
	}
	s := supplychain.NewSession(c, signer("operator-1"), "wf-"+pkg)
	if err := s.Start(ctx, map[string]string{"package_id": pkg}); err != nil {
		t.Fatal(err)
	}
	must(t, "scan", nil, second(s.Scan(ctx, pkg)))
	must(t, "validate", nil, second(s.Validate(ctx, pkg, observed(), nil)))
	must(t, "qc", nil, second(s.QC(ctx, pkg, true, "ok", nil)))
	must(t, "label", nil, second(s.Label(ctx, pkg, "courier-1", nil)))
	if err := s.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if f, err := s.Wait(ctx); err != nil || f.Status != protocol.StatusCommitted {
		t.Fatalf("%s: %+v %v", s.ID, f, err)
	}
}

// TestKeygen: duet keygen writes a key only its owner can read, whose
// public key is the one it prints, and never overwrites one.
func TestKeygen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "admin.json")
	var out strings.Builder
	if err := runKeygen([]string{"--out", path}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var k struct{ PublicKey, PrivateKey []byte }
	if err := json.Unmarshal(raw, &struct {
		PublicKey  *[]byte `json:"public_key"`
		PrivateKey *[]byte `json:"private_key"`
	}{&k.PublicKey, &k.PrivateKey}); err != nil {
		t.Fatal(err)
	}
	pub, _ := json.Marshal(k.PublicKey)
	if !bytes.Equal(ed25519.NewKeyFromSeed(k.PrivateKey).Public().(ed25519.PublicKey), k.PublicKey) || !strings.Contains(out.String(), string(pub)) {
		t.Errorf("the key file and the printed key disagree: %s", out.String())
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", st.Mode())
	}
	if err := runKeygen([]string{"--out", path}, io.Discard, io.Discard); err == nil {
		t.Error("a key was overwritten")
	}
}

func base64Key(t *testing.T) string {
	a, err := deploy.NewActor("k", "k", "k")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(a.PublicKey)
	return strings.Trim(string(raw), `"`)
}
