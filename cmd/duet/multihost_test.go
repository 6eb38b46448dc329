package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	cmtcfg "github.com/cometbft/cometbft/config"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/duet-bft/duet/chain"
	"github.com/duet-bft/duet/client"
	"github.com/duet-bft/duet/deploy"
	"github.com/duet-bft/duet/l2"
	"github.com/duet-bft/duet/localnet"
)

// hosts is a lab of network namespaces, each a host with its own address
// on one bridge, and a toxiproxy in this process for every directed link
// between them, which adds the link's latency. Its cleanup removes the
// namespaces and the bridge, whether the test passed or not.
type hosts struct {
	t      *testing.T
	prefix string // of every namespace and interface name
	subnet string // 10.x.y.
	gw     string // the bridge's address: the proxies listen there
	names  []string
	srv    *toxiproxy.ApiServer
	links  map[[2]int][]*toxiproxy.Proxy // (from, to) -> its proxies
}

var labs int // labs made by this process

func sh(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// newHosts makes n namespaces on a fresh bridge.
func newHosts(t *testing.T, n int) *hosts {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("TestMultiHost makes network namespaces (ip netns): run it as root, as CI does")
	}
	labs++
	id := (os.Getpid()*7 + labs) % 10000 // another per run of the test in this process
	h := &hosts{t: t, prefix: fmt.Sprintf("dt%d", id), subnet: fmt.Sprintf("10.%d.%d.", 100+id/250%100, id%250), links: map[[2]int][]*toxiproxy.Proxy{}}
	h.gw = h.subnet + "1"
	h.cleanup() // what a killed run left
	t.Cleanup(h.cleanup)
	br := h.prefix + "br"
	sh(t, "ip", "link", "add", br, "type", "bridge")
	sh(t, "ip", "addr", "add", h.gw+"/24", "dev", br)
	sh(t, "ip", "link", "set", br, "up")
	for i := range n {
		ns, veth := fmt.Sprintf("%s-%d", h.prefix, i), fmt.Sprintf("%sv%d", h.prefix, i)
		sh(t, "ip", "netns", "add", ns)
		sh(t, "ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
		sh(t, "ip", "link", "set", veth, "master", br, "up")
		sh(t, "ip", "netns", "exec", ns, "ip", "addr", "add", h.addr(i)+"/24", "dev", "eth0")
		sh(t, "ip", "netns", "exec", ns, "ip", "link", "set", "eth0", "up")
		sh(t, "ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
		h.names = append(h.names, ns)
	}
	h.srv = toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())
	return h
}

func (h *hosts) addr(i int) string { return fmt.Sprintf("%s%d", h.subnet, 10+i) }

// cleanup deletes the namespaces (their veths go with them) and the
// bridge; it ignores what is already gone.
func (h *hosts) cleanup() {
	for _, ps := range h.links {
		for _, p := range ps {
			p.Stop()
		}
	}
	out, _ := exec.Command("ip", "netns", "list").Output()
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(f[0], h.prefix+"-") {
			exec.Command("ip", "netns", "del", f[0]).Run()
		}
	}
	links, _ := exec.Command("ip", "-o", "link", "show").Output()
	for _, line := range strings.Split(string(links), "\n") {
		if f := strings.Fields(line); len(f) > 1 {
			name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
			if strings.HasPrefix(name, h.prefix+"v") || name == h.prefix+"br" {
				exec.Command("ip", "link", "del", name).Run()
			}
		}
	}
}

// link proxies from host a to host b's address to: it returns the address
// host a dials instead, where the bytes a sends wait ab ms and the bytes
// back ba ms.
func (h *hosts) link(a, b int, to string, ab, ba int) string {
	h.t.Helper()
	p := toxiproxy.NewProxy(h.srv, fmt.Sprintf("%d-%d-%s", a, b, to), h.gw+":0", to)
	if err := p.Start(); err != nil {
		h.t.Fatal(err)
	}
	for _, tx := range []struct {
		stream string
		ms     int
	}{{"upstream", ab}, {"downstream", ba}} {
		if tx.ms == 0 {
			continue
		}
		js := fmt.Sprintf(`{"name":"latency_%s","type":"latency","stream":%q,"attributes":{"latency":%d}}`, tx.stream, tx.stream, tx.ms)
		if _, err := p.Toxics.AddToxicJson(strings.NewReader(js)); err != nil {
			h.t.Fatal(err)
		}
	}
	h.links[[2]int{a, b}] = append(h.links[[2]int{a, b}], p)
	return p.Listen
}

// cut stops every link to and from host i; heal starts them again.
func (h *hosts) cut(i int, on bool) {
	h.t.Helper()
	for k, ps := range h.links {
		if k[0] != i && k[1] != i {
			continue
		}
		for _, p := range ps {
			if on {
				p.Stop()
			} else if err := p.Start(); err != nil {
				h.t.Fatal(err)
			}
		}
	}
}

// TestMultiHost: four validators and an L2 node, each on its own host (a
// network namespace with its own address), assembled by init, genesis and
// join as independent organisations would, with 10 ms between validators
// and 50 ms between the L2 node and each of them (toxiproxy on every
// directed link). The paper's workflow runs across them; the L2 node
// answers steps in milliseconds (logged, not asserted: that is for
// benchmarks); a validator cut off and healed loses nothing: sessions
// commit while it is away, and it catches up on every one.
func TestMultiHost(t *testing.T) {
	const validators, valMs, l2Ms = 4, 10, 50
	h := newHosts(t, validators+1)
	dir := t.TempDir()
	var homes, intents []string
	for i := range validators + 1 {
		moniker, args := fmt.Sprintf("v%d", i), []string{"--role", "validator", "--publish-rpc"}
		if i == validators {
			moniker, args = "l2-0", []string{"--role", "l2", "--http", h.addr(i) + ":8080"}
		}
		home := filepath.Join(dir, moniker)
		run(t, append([]string{"init", "--home", home, "--moniker", moniker, "--org", "org-" + moniker,
			"--p2p", h.addr(i) + ":26656", "--rpc", h.addr(i) + ":26657", "--prometheus", "-"}, args...)...)
		homes, intents = append(homes, home), append(intents, filepath.Join(home, deploy.IntentFile))
	}
	actors := map[string]deploy.KeyedActor{}
	var public []json.RawMessage
	for _, r := range [][2]string{{"admin-1", "admin"}, {"supplier-1", "supplier"}, {"operator-1", "operator"}, {"courier-1", "courier"}} {
		a, err := deploy.NewActor(r[0], r[1], "org-"+r[0])
		if err != nil {
			t.Fatal(err)
		}
		actors[a.ID] = a
		raw, _ := json.Marshal(a.Actor)
		public = append(public, raw)
	}
	raw, _ := json.Marshal(public)
	os.WriteFile(filepath.Join(dir, "actors.json"), raw, 0o644)
	genesis := filepath.Join(dir, "genesis.json")
	run(t, append([]string{"genesis", "--chain-id", "duet-wan", "--actors", filepath.Join(dir, "actors.json"), "--out", genesis}, intents...)...)
	for _, home := range homes {
		run(t, append([]string{"join", "--home", home, "--genesis", genesis}, intents...)...)
	}

	// Every link through its proxy: a node dials each peer (and the L2
	// node each validator's RPC) at the proxy of that directed link. The
	// proxies all listen on the bridge, so every connection arrives from
	// its address: duplicate IPs are allowed.
	for i, home := range homes {
		conf, err := chain.LoadConfig(home)
		if err != nil {
			t.Fatal(err)
		}
		in, err := deploy.ReadIntent(intents[i])
		if err != nil {
			t.Fatal(err)
		}
		var peers, rpcs []string
		for j := range validators {
			if j == i {
				continue
			}
			peer, err := deploy.ReadIntent(intents[j])
			if err != nil {
				t.Fatal(err)
			}
			ab, ba := valMs, valMs
			if in.Role == deploy.RoleL2 {
				ab, ba = l2Ms, l2Ms
			}
			peers = append(peers, peer.NodeID+"@"+h.link(i, j, peer.P2P, ab, ba))
			if in.Role == deploy.RoleL2 {
				rpcs = append(rpcs, "http://"+h.link(i, j, peer.RPC, ab, ba))
			}
		}
		conf.P2P.PersistentPeers = strings.Join(peers, ",")
		conf.P2P.AllowDuplicateIP, conf.P2P.AddrBookStrict = true, false
		cmtcfg.WriteConfigFile(filepath.Join(home, "config", "config.toml"), conf)
		if in.Role == deploy.RoleL2 {
			path := filepath.Join(home, "config", l2.ConfigFile)
			fc, err := l2.LoadFileConfig(path)
			if err != nil {
				t.Fatal(err)
			}
			fc.L1RPC = rpcs
			if err := fc.Write(path); err != nil {
				t.Fatal(err)
			}
		}
	}

	// One node per host. Their cleanups run before the namespaces go
	// (cleanups run last-in first-out).
	for i, home := range homes {
		startNode(t, home, "ip", "netns", "exec", h.names[i])
	}

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	c := client.New("http://" + h.addr(validators) + ":8080")
	waitReady(t, ctx, c)

	// The paper's workflow across the hosts; the L2 node's step latency.
	t0 := time.Now()
	workflow(t, ctx, c, actors, "PKG-WAN-1")
	t.Logf("workflow across hosts: %s", time.Since(t0))
	var netv struct {
		Steps []struct {
			MS float64 `json:"ms"`
		} `json:"steps"`
	}
	if err := c.Get(ctx, "/v1/network", &netv); err != nil {
		t.Fatal(err)
	}
	var steps []float64
	for _, s := range netv.Steps {
		steps = append(steps, s.MS)
	}
	slices.Sort(steps)
	if len(steps) > 0 {
		t.Logf("L2 step latency with the validators %d ms away: median %.1f ms, max %.1f ms (%d ops)", l2Ms, steps[len(steps)/2], steps[len(steps)-1], len(steps))
	}

	// Cut validator 3 off: sessions still commit (3 of 4 validators).
	cutAt := rpcHeight(t, ctx, h.addr(3))
	h.cut(3, true)
	for k := range 3 {
		workflow(t, ctx, c, actors, fmt.Sprintf("PKG-WAN-CUT-%d", k))
	}
	if hh := rpcHeight(t, ctx, h.addr(3)); hh > cutAt+2 {
		t.Errorf("validator 3 kept up while cut off (height %d, cut at %d): the cut did not hold", hh, cutAt)
	}
	// Heal it: it catches up and holds every session.
	h.cut(3, false)
	target := rpcHeight(t, ctx, h.addr(0))
	for rpcHeight(t, ctx, h.addr(3)) < target {
		if ctx.Err() != nil {
			t.Fatalf("validator 3 did not catch up to height %d", target)
		}
		time.Sleep(200 * time.Millisecond)
	}
	for k := range 3 {
		pkg := fmt.Sprintf("PKG-WAN-CUT-%d", k)
		if got := abciPackage(t, ctx, h.addr(3), pkg); got["stage"] != "labeled" {
			t.Errorf("validator 3 after healing: %s is %v", pkg, got["stage"])
		}
	}
}

// rpcHeight is a validator's height, by its RPC on its host.
func rpcHeight(t *testing.T, ctx context.Context, host string) int64 {
	t.Helper()
	h, err := localnet.Height(ctx, &http.Client{Timeout: 5 * time.Second}, "http://"+net.JoinHostPort(host, "26657"))
	if err != nil {
		t.Fatalf("%s: %v", host, err)
	}
	return h
}

// abciPackage is a package as a validator's own state holds it.
func abciPackage(t *testing.T, ctx context.Context, host, id string) map[string]any {
	t.Helper()
	n := &network{t: t, Network: localnet.Network{Validators: []localnet.Node{{RPC: "http://" + net.JoinHostPort(host, "26657")}}}}
	return n.pkgAt(0, id)
}
