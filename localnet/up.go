package localnet

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"
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
	for i, n := range nodes {
		c, err := start(n)
		if err != nil {
			stopAll()
			return err
		}
		children[i] = c
	}
	if err := waitReady(ctx, nodes, cfg.ReadyTimeout); err != nil {
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
				log.Warn("node exited; restarting", "node", c.node.ID, "status", c.cmd.ProcessState.String(), "after", backoff)
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

// waitReady polls every node's CometBFT RPC /status until it answers with a
// committed block.
func waitReady(ctx context.Context, nodes []*Node, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Second}
	for _, n := range nodes {
		for {
			h, err := Height(ctx, client, n.RPC)
			if err == nil && h >= 1 && (n.HTTP == "" || httpReady(ctx, client, n.HTTP)) {
				break
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("localnet: %s not serving at %s: %v", n.ID, n.RPC, errors.Join(err, ctx.Err()))
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	return nil
}

// Height asks a node's RPC /status for its latest block height.
func Height(ctx context.Context, client *http.Client, rpc string) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rpc+"/status", nil)
	if err != nil {
		return 0, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var st struct {
		Result struct {
			SyncInfo struct {
				Height json.Number `json:"latest_block_height"`
			} `json:"sync_info"`
		} `json:"result"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return 0, err
	}
	return st.Result.SyncInfo.Height.Int64()
}

// httpReady reports whether an L2 node's /readyz answers 200.
func httpReady(ctx context.Context, client *http.Client, addr string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/readyz", nil)
	if err != nil {
		return false
	}
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}
