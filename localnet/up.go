package localnet

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/duet-bft/duet/chain"
)

// Config configures Up.
type Config struct {
	Spec
	// Executable is the duet binary children run as `<exe> node --home H`.
	// Default: this process's executable.
	Executable string
	// ReadyTimeout bounds the wait for every node to serve. Default 2m.
	ReadyTimeout time.Duration
	// ValidatorNice runs validators at this lower CPU priority (nice), so
	// that on one machine the interactive L2 nodes are not queued behind
	// consensus work. 0 (the default) leaves priorities alone.
	ValidatorNice int
	// Logger receives supervision events; nil discards.
	Logger *slog.Logger
	// Out, if set, receives the console's address and a sign-in link per
	// demo actor once the network serves.
	Out io.Writer
	// Latency, if not zero, emulates distance between the nodes (see
	// Latency); zero links them directly.
	Latency Latency
}

// PrintConsole writes the first L2 node's console address and a sign-in
// link for each demo actor (the L2 nodes' own keys excepted).
func PrintConsole(w io.Writer, n *Network) {
	base := "http://" + n.L2[0].HTTP + "/"
	fmt.Fprintf(w, "\nConsole: %s\n\nSign-in links (%s):\n", base, devKeysNote)
	l2 := map[string]bool{}
	for _, nd := range n.L2 {
		l2[nd.ID] = true
	}
	for _, a := range n.Actors {
		if l2[a.ID] {
			continue
		}
		fmt.Fprintf(w, "  %-14s %s\n", a.ID, SignInLink(base, a))
	}
	fmt.Fprintln(w)
}

// SignInLink is the console link that signs a browser in as a: the key
// travels in the fragment, which the browser never sends to the server.
func SignInLink(base string, a Actor) string {
	q := url.Values{"actor": {a.ID}, "key": {base64.StdEncoding.EncodeToString(a.PrivateKey)}}
	return base + "#" + q.Encode()
}

// ClusterFile is the name of the file Up writes once the network serves.
const ClusterFile = "cluster.json"

type child struct {
	node *Node
	cmd  *exec.Cmd
	done chan struct{}
}

// Up generates (or resumes) the network in cfg.Dir, runs each node as a
// child process, writes cluster.json once every node serves, restarts any
// child that exits while ctx is live, and stops all children when ctx ends.
func Up(ctx context.Context, cfg Config) error {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Executable == "" {
		exe, err := os.Executable()
		if err != nil {
			return err
		}
		cfg.Executable = exe
	}
	if cfg.ReadyTimeout == 0 {
		cfg.ReadyTimeout = 2 * time.Minute
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return err
	}
	net, err := LoadOrGenerate(cfg.Spec)
	if err != nil {
		return err
	}
	var nodes []*Node
	for i := range net.Validators {
		nodes = append(nodes, &net.Validators[i])
	}
	for i := range net.L2 {
		nodes = append(nodes, &net.L2[i])
	}

	var mu sync.Mutex // guards pids in net and the cluster file
	writeCluster := func() error {
		mu.Lock()
		defer mu.Unlock()
		return writeJSON(filepath.Join(cfg.Dir, ClusterFile), net)
	}
	start := func(n *Node) (*child, error) {
		logf, err := os.OpenFile(filepath.Join(n.Home, "node.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return nil, err
		}
		args := []string{"node", "--home", n.Home, "--app", net.App}
		cmd := exec.Command(cfg.Executable, args...)
		if cfg.ValidatorNice > 0 && n.HTTP == "" {
			if nice, err := exec.LookPath("nice"); err == nil {
				cmd = exec.Command(nice, append([]string{"-n", strconv.Itoa(cfg.ValidatorNice), cfg.Executable}, args...)...)
			}
		}
		cmd.Stdout, cmd.Stderr = logf, logf
		// The nodes' settings are the network's files: DUET_* settings
		// left in this shell would apply to every node.
		for _, kv := range os.Environ() {
			if name, _, _ := strings.Cut(kv, "="); !strings.HasPrefix(name, "DUET_") || slices.Contains(chain.NotSettings, name) {
				cmd.Env = append(cmd.Env, kv)
			}
		}
		// Children die with the supervisor even if it is killed -9.
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM, Setpgid: true}
		if err := cmd.Start(); err != nil {
			logf.Close()
			return nil, fmt.Errorf("start %s: %w", n.ID, err)
		}
		mu.Lock()
		n.PID = cmd.Process.Pid
		mu.Unlock()
		c := &child{node: n, cmd: cmd, done: make(chan struct{})}
		go func() {
			cmd.Wait()
			logf.Close()
			close(c.done)
		}()
		log.Info("started", "node", n.ID, "pid", n.PID)
		return c, nil
	}

	children := make([]*child, len(nodes))
	stopAll := func() {
		for _, c := range children {
			if c != nil {
				c.cmd.Process.Signal(syscall.SIGTERM)
			}
		}
		deadline := time.After(15 * time.Second)
		for _, c := range children {
			if c == nil {
				continue
			}
			select {
			case <-c.done:
			case <-deadline:
				c.cmd.Process.Kill()
				<-c.done
			}
		}
	}
	if err := portsFree(nodes); err != nil {
		return err
	}
	stopLinks, err := wire(net, cfg.Latency)
	defer stopLinks()
	if err != nil {
		return fmt.Errorf("localnet: links: %w", err)
	}
	for i, n := range nodes {
		c, err := start(n)
		if err != nil {
			stopAll()
			return err
		}
		children[i] = c
	}
	if err := waitReady(ctx, children, cfg.ReadyTimeout); err != nil {
		stopAll()
		return err
	}
	if err := writeCluster(); err != nil {
		stopAll()
		return err
	}
	log.Info("network serving", "dir", cfg.Dir, "validators", len(net.Validators), "l2", len(net.L2))
	if cfg.Out != nil && len(net.L2) > 0 {
		PrintConsole(cfg.Out, net)
	}

	// Supervise: one restart loop per child.
	var wg sync.WaitGroup
	for i := range children {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			backoff := 500 * time.Millisecond
			for {
				c := children[i]
				started := time.Now()
				select {
				case <-ctx.Done():
					return
				case <-c.done:
				}
				if ctx.Err() != nil {
					return
				}
				log.Warn("node exited; restarting", "node", c.node.ID, "status", c.cmd.ProcessState.String(), "after", backoff,
					"log", filepath.Join(c.node.Home, "node.log"), "last_lines", tail(filepath.Join(c.node.Home, "node.log"), 8))
				if time.Since(started) > time.Minute {
					backoff = 500 * time.Millisecond
				}
				select {
				case <-ctx.Done():
					return
				case <-time.After(backoff):
				}
				backoff = min(2*backoff, 10*time.Second)
				nc, err := start(c.node)
				if err != nil {
					log.Error("restart failed", "node", c.node.ID, "err", err)
					continue
				}
				mu.Lock()
				children[i] = nc
				mu.Unlock()
				if err := writeCluster(); err != nil {
					log.Error("write cluster file", "err", err)
				}
			}
		}(i)
	}
	<-ctx.Done()
	wg.Wait()
	stopAll()
	log.Info("network stopped")
	return nil
}

// portsFree checks, before any node starts, that every address a node
// listens on is free, and names each one that is not: a node that cannot
// bind would only say so in its own log, and another program (another
// network) answering on the port would pass for it.
func portsFree(nodes []*Node) error {
	var busy []string
	try := func(n *Node, what, addr string) {
		if addr == "" {
			return
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			busy = append(busy, fmt.Sprintf("%s's %s address %s: %v", n.ID, what, addr, err))
			return
		}
		l.Close()
	}
	for _, n := range nodes {
		try(n, "p2p", n.P2P)
		if u, err := url.Parse(n.RPC); err == nil {
			try(n, "RPC", u.Host)
		}
		try(n, "HTTP", n.HTTP)
	}
	if len(busy) > 0 {
		return fmt.Errorf("localnet: cannot listen (another network or program holds these; stop it, or choose other ports with --base-port and --http):\n  %s", strings.Join(busy, "\n  "))
	}
	return nil
}

// waitReady waits until every node serves as itself: its CometBFT RPC
// /status answers with a committed block and the node id of its key, and an
// L2 node's /readyz answers 200 and its /v1/node names it. A node that
// exits first fails it at once, with the last lines of its log.
func waitReady(ctx context.Context, children []*child, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Second}
	for _, c := range children {
		n := c.node
		for {
			st, err := RPCStatus(ctx, client, n.RPC)
			id, h := st.ID, st.Height
			if err == nil && n.NodeID != "" && id != n.NodeID {
				return fmt.Errorf("localnet: %s answers as node %s, not %s's %s: %w", n.RPC, id, n.ID, n.NodeID, errOtherNetwork)
			}
			if err == nil && h >= 1 && n.HTTP != "" {
				if err = l2Ready(ctx, client, n); errors.Is(err, errOtherNetwork) {
					return err
				}
			}
			if err == nil && h >= 1 {
				break
			}
			select {
			case <-c.done:
				return fmt.Errorf("localnet: %s exited while starting (%s); the end of %s:\n%s", n.ID, c.cmd.ProcessState,
					filepath.Join(n.Home, "node.log"), tail(filepath.Join(n.Home, "node.log"), 12))
			case <-ctx.Done():
				return fmt.Errorf("localnet: %s not serving at %s: %v", n.ID, n.RPC, errors.Join(err, ctx.Err()))
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	return nil
}

var errOtherNetwork = errors.New("another network holds the port")

// tail returns the last n lines of a file, indented, or "" if it cannot
// be read.
func tail(path string, n int) string {
	raw, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(raw), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "    " + strings.Join(lines, "\n    ")
}

// Height asks a node's RPC /status for its latest block height.
func Height(ctx context.Context, client *http.Client, rpc string) (int64, error) {
	st, err := RPCStatus(ctx, client, rpc)
	return st.Height, err
}

// NodeStatus is what a CometBFT RPC's /status says of its node.
type NodeStatus struct {
	ID      string // node id
	Network string // chain id
	Height  int64  // latest block height
}

// RPCStatus asks a CometBFT RPC (http://HOST:PORT) for its /status.
func RPCStatus(ctx context.Context, client *http.Client, rpc string) (NodeStatus, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rpc+"/status", nil)
	if err != nil {
		return NodeStatus{}, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return NodeStatus{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return NodeStatus{}, fmt.Errorf("GET /status: %s", resp.Status)
	}
	var st struct {
		Result *struct {
			NodeInfo struct {
				ID      string `json:"id"`
				Network string `json:"network"`
			} `json:"node_info"`
			SyncInfo struct {
				Height json.Number `json:"latest_block_height"`
			} `json:"sync_info"`
		} `json:"result"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&st); err != nil {
		return NodeStatus{}, fmt.Errorf("GET /status: %w", err)
	}
	if st.Result == nil {
		return NodeStatus{}, errors.New("GET /status: no result")
	}
	h, err := st.Result.SyncInfo.Height.Int64()
	if err != nil {
		return NodeStatus{}, fmt.Errorf("GET /status: height: %w", err)
	}
	return NodeStatus{ID: st.Result.NodeInfo.ID, Network: st.Result.NodeInfo.Network, Height: h}, nil
}

// l2Ready checks that an L2 node's /readyz answers 200 and that its
// /v1/node names it.
func l2Ready(ctx context.Context, client *http.Client, n *Node) error {
	get := func(path string, v any) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+n.HTTP+path, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: %s", path, resp.Status)
		}
		if v != nil {
			return json.NewDecoder(resp.Body).Decode(v)
		}
		return nil
	}
	if err := get("/readyz", nil); err != nil {
		return err
	}
	var node struct{ ID string }
	if err := get("/v1/node", &node); err != nil {
		return err
	}
	if node.ID != n.ID {
		return fmt.Errorf("localnet: %s answers as L2 node %q, not %s: %w", n.HTTP, node.ID, n.ID, errOtherNetwork)
	}
	return nil
}
